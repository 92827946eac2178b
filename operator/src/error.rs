//! The one error type of the reconciler. Every request that fails says which
//! verb on which object failed, in the log, the event and the failures
//! metric; the errors that retrying cannot fix turn into a `Degraded`
//! condition instead of a hot retry loop.

use crate::desired::DesiredError;
use crate::status::{Failure, FailureReason};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A child of the same name exists and belongs to something else.
    #[error(
        "{kind} {name} already exists and is not managed by this MicroService; delete or rename it"
    )]
    ChildConflict { kind: String, name: String },

    #[error("cannot compute desired state: {0}")]
    Desired(#[from] DesiredError),

    /// A request to the API server failed.
    #[error("{verb} {kind} {name}: {source}")]
    Api {
        verb: &'static str,
        kind: String,
        /// `namespace/name` of the object.
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The labels of the failures metric: why, and the kind and verb that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureLabels<'a> {
    pub reason: &'static str,
    pub kind: &'a str,
    pub verb: &'a str,
}

impl Error {
    /// Wraps a failed request: `api.get(name).await.map_err(Error::api("get", "Service", &name))`.
    pub fn api(verb: &'static str, kind: &str, name: &str) -> impl FnOnce(kube::Error) -> Error {
        let (kind, name) = (kind.to_owned(), name.to_owned());
        move |source| Error::Api {
            verb,
            kind,
            name,
            source,
        }
    }

    /// Labels for the failures metric (never the object's name: it would
    /// make one series per object).
    pub fn metric_labels(&self) -> FailureLabels<'_> {
        match self {
            Error::ChildConflict { kind, .. } => FailureLabels {
                reason: "child_conflict",
                kind,
                verb: "apply",
            },
            Error::Desired(_) => FailureLabels {
                reason: "desired_state",
                kind: "MicroService",
                verb: "compute",
            },
            Error::Api {
                verb, kind, source, ..
            } => FailureLabels {
                reason: match source {
                    kube::Error::Api(s) if s.is_forbidden() => "forbidden",
                    kube::Error::Api(s) if s.is_conflict() => "conflict",
                    kube::Error::Api(s) if is_invalid(s.code) => "invalid",
                    kube::Error::Api(_) => "api",
                    _ => "transport",
                },
                kind,
                verb,
            },
        }
    }

    /// The failure to show in status when retrying as-is cannot succeed (the
    /// spec must change first); `None` for transient errors worth a retry.
    pub fn as_failure(&self) -> Option<Failure> {
        match self {
            Error::ChildConflict { .. } => Some(Failure {
                reason: FailureReason::ChildConflict,
                message: self.to_string(),
            }),
            Error::Api {
                verb,
                kind,
                name,
                source: kube::Error::Api(status),
            } if is_invalid(status.code) => Some(Failure {
                reason: FailureReason::InvalidChild,
                message: format!(
                    "the API server refused to {verb} {kind} {name}: {}",
                    status.message
                ),
            }),
            _ => None,
        }
    }
}

/// 400 Bad Request and 422 Unprocessable: the object itself is wrong.
fn is_invalid(code: u16) -> bool {
    code == 400 || code == 422
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("spec.replicas: Invalid value", "Invalid")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn a_failed_request_names_its_verb_kind_and_object() {
        let error = Error::api("apply", "Deployment", "shop/item")(api_error(500));
        assert!(
            error
                .to_string()
                .starts_with("apply Deployment shop/item: "),
            "{error}"
        );
        assert_eq!(
            error.metric_labels(),
            FailureLabels {
                reason: "api",
                kind: "Deployment",
                verb: "apply"
            }
        );
        assert!(error.as_failure().is_none(), "a 500 is worth a retry");

        let refused = Error::api("apply", "Deployment", "shop/item")(api_error(422));
        let failure = refused.as_failure().expect("a 422 needs a spec change");
        assert_eq!(failure.reason, FailureReason::InvalidChild);
        assert!(
            failure
                .message
                .contains("apply Deployment shop/item: spec.replicas"),
            "{}",
            failure.message
        );
    }
}

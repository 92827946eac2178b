//! The one error type of the reconciler. Each variant has a metric label, and
//! the ones that retrying cannot fix turn into a `Degraded` condition instead
//! of a hot retry loop.

use crate::desired::DesiredError;
use crate::status::Failure;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A child of the same name exists and belongs to something else.
    #[error(
        "{kind} {name} already exists and is not managed by this MicroService; delete or rename it"
    )]
    ChildConflict { kind: String, name: String },

    #[error("cannot compute desired state: {0}")]
    Desired(#[from] DesiredError),

    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    /// Label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ChildConflict { .. } => "child_conflict",
            Error::Desired(_) => "desired_state",
            Error::Kube(kube::Error::Api(status)) if status.is_forbidden() => "forbidden",
            Error::Kube(kube::Error::Api(status)) if status.is_conflict() => "conflict",
            Error::Kube(kube::Error::Api(status)) if is_invalid(status.code) => "invalid",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "transport",
        }
    }

    /// The failure to show in status when retrying as-is cannot succeed (the
    /// spec must change first); `None` for transient errors worth a retry.
    pub fn as_failure(&self) -> Option<Failure> {
        let (reason, message) = match self {
            Error::ChildConflict { .. } => ("ChildConflict", self.to_string()),
            Error::Kube(kube::Error::Api(status)) if is_invalid(status.code) => (
                "InvalidChild",
                format!("the API server refused a child object: {}", status.message),
            ),
            _ => return None,
        };
        Some(Failure {
            reason: reason.into(),
            message,
        })
    }
}

/// 400 Bad Request and 422 Unprocessable: the object itself is wrong.
fn is_invalid(code: u16) -> bool {
    code == 400 || code == 422
}

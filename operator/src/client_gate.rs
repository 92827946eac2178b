//! A layer on the operator's Kubernetes client that (1) lets writes through
//! only while this replica leads, and (2) counts every request by verb and
//! resource (`berth_api_requests_total`), so benchmarks and tests see exactly
//! what the operator asked of the API server.
//!
//! Gating at the client, not in the reconciler, is what makes "never both
//! writing" hold for every write path (applies, deletes, status, events) and
//! for reconciles already in flight when the lease is lost.

use std::sync::Arc;
use std::task::{Context, Poll};

use ::http::{Method, Request};
use futures::future::{BoxFuture, FutureExt};
use tower::{Layer, Service};

use crate::leader::Leadership;
use crate::metrics::Metrics;

/// The error a write gets while this replica does not lead.
#[derive(Debug, thiserror::Error)]
#[error("not the leader: {method} {path} refused")]
pub struct NotLeader {
    method: Method,
    path: String,
}

#[derive(Clone)]
pub struct GateLayer {
    pub leadership: Leadership,
    pub metrics: Arc<Metrics>,
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Gate {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    layer: GateLayer,
}

impl<S, B> Service<Request<B>> for Gate<S>
where
    S: Service<Request<B>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<tower::BoxError>,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = BoxFuture<'static, Result<S::Response, tower::BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (verb, resource) = describe(req.method(), req.uri());
        let write = !matches!(verb, "get" | "list" | "watch");
        if write && !self.layer.leadership.leading() {
            let refused = NotLeader {
                method: req.method().clone(),
                path: req.uri().path().to_string(),
            };
            return futures::future::ready(Err(refused.into())).boxed();
        }
        self.layer.metrics.requested(verb, &resource);
        let call = self.inner.call(req);
        async move { call.await.map_err(Into::into) }.boxed()
    }
}

/// The Kubernetes verb and resource of a request path, e.g.
/// `GET /apis/apps/v1/namespaces/x/deployments` -> (`list`, `deployments`).
pub fn describe(method: &Method, uri: &::http::Uri) -> (&'static str, String) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // Skip `api/v1` or `apis/<group>/<version>`.
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..).unwrap_or_default(),
        Some(&"apis") => segments.get(3..).unwrap_or_default(),
        // Non-resource URLs: /readyz, /version.
        _ => return (non_resource_verb(method), uri.path().to_string()),
    };
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let resource = match rest {
        [resource] => (*resource).to_string(),
        [resource, _name] => (*resource).to_string(),
        [resource, _name, sub, ..] => format!("{resource}/{sub}"),
        [] => "other".to_string(),
    };
    let named = rest.len() >= 2;
    let query = uri.query().unwrap_or_default();
    let verb = match *method {
        Method::GET
            if query
                .split('&')
                .any(|p| p == "watch=true" || p == "watch=1") =>
        {
            "watch"
        }
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

fn non_resource_verb(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "get",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(method: Method, uri: &str) -> (&'static str, String) {
        describe(&method, &uri.parse().unwrap())
    }

    #[test]
    fn verbs_and_resources_from_paths() {
        assert_eq!(
            d(
                Method::GET,
                "/apis/apps/v1/namespaces/a/deployments?labelSelector=x&limit=500"
            ),
            ("list", "deployments".into())
        );
        assert_eq!(
            d(
                Method::GET,
                "/apis/apps/v1/deployments?watch=true&resourceVersion=1"
            ),
            ("watch", "deployments".into())
        );
        assert_eq!(
            d(
                Method::PATCH,
                "/apis/berth.dev/v1alpha1/namespaces/a/microservices/x/status"
            ),
            ("patch", "microservices/status".into())
        );
        assert_eq!(
            d(Method::GET, "/api/v1/namespaces/a/services/x"),
            ("get", "services".into())
        );
        assert_eq!(
            d(Method::POST, "/apis/events.k8s.io/v1/namespaces/a/events"),
            ("create", "events".into())
        );
        assert_eq!(d(Method::GET, "/readyz"), ("get", "/readyz".into()));
    }
}

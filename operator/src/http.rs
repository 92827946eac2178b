//! The operator's HTTP endpoints: `/healthz` (the process is alive),
//! `/readyz` (caches synced and watches connected) and `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::controller::Probe;

pub fn router(probe: Probe) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(probe)
}

async fn readyz(State(probe): State<Probe>) -> impl IntoResponse {
    match probe.ready() {
        Ok(()) => (StatusCode::OK, "ready".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why.to_string()),
    }
}

async fn metrics(State(probe): State<Probe>) -> impl IntoResponse {
    if let Some(stores) = &probe.stores {
        let microservices = stores.microservices.state();
        probe.metrics.managed.set(microservices.len() as i64);
        probe
            .metrics
            .microservices
            .observe(microservices.iter().map(AsRef::as_ref));
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        probe.metrics.encode(),
    )
}

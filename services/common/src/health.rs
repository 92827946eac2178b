//! `/healthz` says the process is alive; `/readyz` says it can serve: the
//! database (when there is one) answers and has every migration applied, and
//! the service is not shutting down. Readiness deliberately ignores other
//! services, so one service being down does not take its callers out of
//! rotation too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::postgres::Database;
use crate::problem::Problem;

/// What readiness looks at.
#[derive(Clone, Default)]
pub struct Health {
    pub database: Option<Database>,
    pub draining: Arc<AtomicBool>,
}

/// `GET /healthz`
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`
pub async fn readyz(State(health): State<Health>) -> Response {
    if health.draining.load(Ordering::Relaxed) {
        return Problem::unavailable("not-ready", "Not ready", "the service is shutting down")
            .into_response();
    }
    if let Some(db) = &health.database
        && let Err(reason) = db.check_ready().await
    {
        return Problem::unavailable("not-ready", "Not ready", reason).into_response();
    }
    (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response()
}

//! The benchmark's floor for the item rows: bare axum handlers doing the
//! work of `GET /v1/items/{id}` and `POST /v1/items` and nothing else, on
//! the service's own store (in memory, or PostgreSQL through the same pool
//! and prepared statements when `DATABASE_URL` is set).
//!
//! GET reads the item from the store and encodes it with its ETag; POST
//! parses the body, validates it, stores the item and encodes it with its
//! ETag and Location. No metrics, request ids, trace context, spans, body
//! limit, problem+json or panic guard: what the services reach above this is
//! the cost of that machinery (see bench/services/results.md).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_service_kit::config::{Env, ServerConfig};
use item_service::model::ItemInput;
use item_service::routes::items::{created, with_etag};
use item_service::store::Store;
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = ServerConfig::from_env(&Env::process(), "item")?;
    let (store, _health) = Store::open(&config).await?;
    let app = Router::new()
        .route("/v1/items", axum::routing::post(create))
        .route("/v1/items/{id}", get(get_one))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(store));
    let listener = tokio::net::TcpListener::bind((config.host, config.port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn get_one(State(store): State<Arc<Store>>, Path(id): Path<Uuid>) -> Response {
    match store.get_item(id).await {
        Ok(Some(item)) => with_etag(StatusCode::OK, item),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn create(State(store): State<Arc<Store>>, body: Bytes) -> Response {
    let Ok(input) = serde_json::from_slice::<ItemInput>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if !input.validate().is_empty() {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    }
    match store.create_item(input).await {
        Ok(item) => created(item),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

//! The benchmark's floor for `POST /v1/orders`, part one: a bare axum
//! handler doing the order's own work and nothing else: parse and validate
//! the body, record the order `pending`, price its lines, move it to
//! `placed` with that pricing and encode it, on the service's own store (in
//! memory, or PostgreSQL through the same pool when `DATABASE_URL` is set).
//!
//! The other parts, the three item-service calls of each order (get the
//! item, reserve, confirm), are measured against the item service itself
//! (bench/services/run.sh); the floor is the sum of the parts' per-request
//! costs. The prices come from a fixed item here instead of those calls.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_service_kit::config::{Env, ServerConfig};
use order_service::model::{NewOrder, Order, OrderLine, OrderStatus, Pricing};
use order_service::store::{Inserted, Store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = ServerConfig::from_env(&Env::process(), "orders")?;
    let (store, _health) = Store::open(&config).await?;
    let app = Router::new()
        .route("/v1/orders", post(create))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(store));
    let listener = tokio::net::TcpListener::bind((config.host, config.port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn create(State(store): State<Arc<Store>>, body: Bytes) -> Response {
    let Ok(input) = serde_json::from_slice::<NewOrder>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if !input.validate().is_empty() {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    }
    let fingerprint = input.fingerprint();
    let order = Order::pending(&input);
    match store.insert_pending(&order, None, &fingerprint).await {
        Ok(Inserted::New) => {}
        _ => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
    let lines: Vec<OrderLine> = order
        .lines
        .iter()
        .map(|line| OrderLine {
            name: Some("Seed".to_owned()),
            unit_price_minor: Some(1250),
            line_total_minor: Some(1250 * line.quantity),
            ..line.clone()
        })
        .collect();
    let pricing = Pricing {
        total_minor: lines.iter().filter_map(|l| l.line_total_minor).sum(),
        lines,
        currency: "EUR".to_owned(),
    };
    let placed = store
        .transition(
            order.id,
            &[OrderStatus::Pending],
            OrderStatus::Placed,
            Some(&pricing),
            false,
        )
        .await;
    match placed {
        Ok(Some(placed)) => (StatusCode::CREATED, axum::Json(placed)).into_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

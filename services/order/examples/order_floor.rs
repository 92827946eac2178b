//! The benchmark's floors for `POST /v1/orders`: a bare axum handler doing
//! an order's work and nothing else, on the service's own store (in memory,
//! or PostgreSQL through the same pool when `DATABASE_URL` is set): parse
//! and validate the body, record the order `pending`, price its lines,
//! reserve and confirm them, move it to `placed` with that pricing and
//! encode it.
//!
//! - With `ITEM_URL` set, the end-to-end floor: each line's three item
//!   calls (get the item, reserve, confirm) go to that item service over a
//!   bare pooled hyper client: no timeouts, retries, breaker, metrics,
//!   request ids or trace context, and a failed call is a 502.
//! - Without it, the order's own work only: the prices come from a fixed
//!   item and nothing is reserved. bench/services/run.sh adds the item
//!   calls' costs, measured against the item service from the load
//!   generator's CPU, for the sum of the parts.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_service_kit::config::{Env, ServerConfig};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use order_service::model::{NewOrder, Order, OrderLine, OrderStatus, Pricing};
use order_service::store::{Inserted, Store};
use serde::Deserialize;

struct Floor {
    store: Store,
    /// The item service, for the end-to-end floor.
    items: Option<Items>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = ServerConfig::from_env(&Env::process(), "orders")?;
    let (store, _health) = Store::open(&config).await?;
    let items = std::env::var("ITEM_URL").ok().map(|base| Items {
        http: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        base: base.trim_end_matches('/').to_owned(),
    });
    let app = Router::new()
        .route("/v1/orders", post(create))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(Floor { store, items }));
    let listener = tokio::net::TcpListener::bind((config.host, config.port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn create(State(floor): State<Arc<Floor>>, body: Bytes) -> Response {
    let Ok(input) = serde_json::from_slice::<NewOrder>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if !input.validate().is_empty() {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    }
    let fingerprint = input.fingerprint();
    let order = Order::pending(&input);
    match floor.store.insert_pending(&order, None, &fingerprint).await {
        Ok(Inserted::New) => {}
        _ => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
    let (lines, currency) = match &floor.items {
        Some(items) => match items.price_reserve_confirm(&order).await {
            Some(priced) => priced,
            None => return StatusCode::BAD_GATEWAY.into_response(),
        },
        None => {
            let lines = order.lines.iter();
            let lines = lines.map(|line| priced(line, "Seed".to_owned(), 1250));
            (lines.collect(), "EUR".to_owned())
        }
    };
    let pricing = Pricing {
        total_minor: lines.iter().filter_map(|l| l.line_total_minor).sum(),
        lines,
        currency,
    };
    let placed = floor
        .store
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

fn priced(line: &OrderLine, name: String, unit_price_minor: i64) -> OrderLine {
    OrderLine {
        name: Some(name),
        unit_price_minor: Some(unit_price_minor),
        line_total_minor: Some(unit_price_minor * line.quantity),
        ..line.clone()
    }
}

struct Items {
    http: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

#[derive(Deserialize)]
struct ItemPrice {
    name: String,
    price_minor: i64,
    currency: String,
}

impl Items {
    /// The saga's forward steps, bare: every line priced (in one
    /// currency), then reserved, then confirmed. The lines and their
    /// currency; None when a call fails or is refused, or the currencies
    /// differ.
    async fn price_reserve_confirm(&self, order: &Order) -> Option<(Vec<OrderLine>, String)> {
        let mut lines = Vec::with_capacity(order.lines.len());
        let mut currency: Option<String> = None;
        for line in &order.lines {
            let path = format!("/v1/items/{}", line.item_id);
            let body = self.call(Method::GET, path, None).await?;
            let item: ItemPrice = serde_json::from_slice(&body).ok()?;
            if *currency.get_or_insert_with(|| item.currency.clone()) != item.currency {
                return None;
            }
            lines.push(priced(line, item.name, item.price_minor));
        }
        for (i, line) in order.lines.iter().enumerate() {
            let path = format!("/v1/reservations/{}", order.reservation_key(i));
            let body = format!(
                r#"{{"item_id":"{}","quantity":{}}}"#,
                line.item_id, line.quantity
            );
            self.call(Method::PUT, path, Some(body.into())).await?;
        }
        for i in 0..order.lines.len() {
            let path = format!("/v1/reservations/{}/confirm", order.reservation_key(i));
            self.call(Method::POST, path, None).await?;
        }
        Some((lines, currency.unwrap_or_default()))
    }

    async fn call(&self, method: Method, path: String, json: Option<Bytes>) -> Option<Bytes> {
        let with_body = json.is_some();
        let mut request = Request::new(Full::new(json.unwrap_or_default()));
        *request.method_mut() = method;
        *request.uri_mut() = format!("{}{path}", self.base).parse().ok()?;
        if with_body {
            request.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let response = self.http.request(request).await.ok()?;
        let status = response.status();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        status.is_success().then_some(body)
    }
}

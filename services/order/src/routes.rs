//! The order service's HTTP API under `/v1`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_service_kit::extract::{Json, Path, Query};
use berth_service_kit::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::item_client::Caller;
use crate::model::{NewOrder, Order, validate_idempotency_key};
use crate::saga::Saga;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

pub fn router(saga: Saga) -> Router {
    Router::new()
        .route("/v1/orders", get(list).post(create))
        .route("/v1/orders/{id}", get(get_one))
        .route("/v1/orders/{id}/cancel", post(cancel))
        .with_state(saga)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Place an order: prices the lines, reserves and confirms their stock.
#[utoipa::path(post, path = "/v1/orders", tag = "orders", request_body = NewOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key returns the first result")),
    responses((status = 201, body = Order, description = "Placed (or placed before under the same Idempotency-Key)"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "Not enough stock, or the key's first request is in progress"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json", description = "The item service is down or slow")))]
pub async fn create(
    State(saga): State<Saga>,
    caller: Caller,
    headers: HeaderMap,
    Json(input): Json<NewOrder>,
) -> Result<Response, Problem> {
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => {
            let key = value.to_str().map_err(|_| {
                Problem::validation(vec![FieldError::new("Idempotency-Key", "must be ASCII")])
            })?;
            validate_idempotency_key(key).map_err(|e| Problem::validation(vec![e]))?;
            Some(key.to_owned())
        }
    };
    let errors = input.validate();
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let placed = saga.place(input, key, &caller).await?;
    let location = HeaderValue::from_str(&format!("/v1/orders/{}", placed.order.id)).ok();
    let mut response = (StatusCode::CREATED, axum::Json(placed.order)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if placed.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// List orders, oldest first.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", params(ListParams),
    responses((status = 200, body = OrderPage), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(saga): State<Saga>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<OrderPage>, Problem> {
    let limit = params.limit.unwrap_or(20);
    let mut errors = Vec::new();
    if !(1..=100).contains(&limit) {
        errors.push(FieldError::new("limit", "must be between 1 and 100"));
    }
    let after = match params.cursor.as_deref().map(Uuid::parse_str) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            errors.push(FieldError::new(
                "cursor",
                "is not a cursor this service returned",
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let mut orders = saga
        .store
        .list(after, limit as usize + 1)
        .await
        .map_err(|e| e.to_problem())?;
    let next_cursor = if orders.len() > limit as usize {
        orders.truncate(limit as usize);
        orders.last().map(|o| o.id.to_string())
    } else {
        None
    };
    Ok(axum::Json(OrderPage {
        orders,
        next_cursor,
    }))
}

/// Get one order.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders", params(("id" = Uuid, Path)),
    responses((status = 200, body = Order), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(saga): State<Saga>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Order>, Problem> {
    let order = saga
        .store
        .get(id)
        .await
        .map_err(|e| e.to_problem())?
        .ok_or_else(|| Problem::not_found("no order with this id"))?;
    Ok(axum::Json(order))
}

/// Cancel a placed order and release its stock; repeating it is harmless.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders", params(("id" = Uuid, Path)),
    responses((status = 200, body = Order), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn cancel(
    State(saga): State<Saga>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Order>, Problem> {
    saga.cancel(id, &caller).await.map(axum::Json)
}

//! The order service's HTTP API under `/v1`, and how the saga's outcomes
//! become responses.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_service_kit::extract::{Json, Path, Query};
use berth_service_kit::openapi::{
    BadRequest, BodyTooLarge, NotFound, Unavailable, UnsupportedMediaType, ValidationFailed,
};
use berth_service_kit::paging::PageRequest;
use berth_service_kit::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::item_client::Caller;
use crate::model::{IdempotencyKey, NewOrder, Order, validate_idempotency_key};
use crate::saga::{OrderError, Saga};

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
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(format = Uuid, example = "01936d40-1c5b-7e2a-8f3d-4a5b6c7d8e9f")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Place an order: prices the lines, reserves and confirms their stock.
#[utoipa::path(post, path = "/v1/orders", tag = "orders", operation_id = "placeOrder", request_body = NewOrder,
    params(IdempotencyKey),
    responses((status = 201, body = Order, description = "Placed (or placed before under the same Idempotency-Key)",
                  headers(("Location" = String, description = "`/v1/orders/<id>`"),
                          ("idempotent-replayed" = String, description = "`true` when this is the first order, replayed")),
                  links(
                      ("getOrder" = (operation_id = "getOrder", parameters(("id" = "$response.body#/id")))),
                      ("cancelOrder" = (operation_id = "cancelOrder", parameters(("id" = "$response.body#/id")),
                          description = "Cancel it: its stock goes back")),
                  )),
              (status = 400, response = BadRequest),
              (status = 409, body = Problem, content_type = "application/problem+json",
                  description = "`insufficient-stock`; `request-in-progress`: the key's first request has not finished"),
              (status = 413, response = BodyTooLarge), (status = 415, response = UnsupportedMediaType),
              (status = 422, body = Problem, content_type = "application/problem+json",
                  description = "`validation-failed`: a field is invalid, an item does not exist or repeats an earlier line's, the items' currencies differ, or the total is too large; `idempotency-key-reused`: the key was used with another body"),
              (status = 503, response = Unavailable)))]
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
#[utoipa::path(get, path = "/v1/orders", tag = "orders", operation_id = "listOrders", params(ListParams),
    responses((status = 200, body = OrderPage, description = "A page of orders"),
              (status = 400, response = BadRequest), (status = 422, response = ValidationFailed),
              (status = 503, response = Unavailable)))]
pub async fn list(
    State(saga): State<Saga>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<OrderPage>, Problem> {
    let page = PageRequest::parse(params.limit, params.cursor.as_deref())?;
    let orders = saga
        .store
        .list(page.after, page.rows())
        .await
        .map_err(OrderError::Db)?;
    let (orders, next_cursor) = page.page(orders, |order| order.id);
    Ok(axum::Json(OrderPage {
        orders,
        next_cursor,
    }))
}

/// Get one order.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders", operation_id = "getOrder", params(("id" = Uuid, Path, example = json!("01936d40-1c5b-7e2a-8f3d-4a5b6c7d8e9f"))),
    responses((status = 200, body = Order, description = "The order",
                  links(("cancelOrder" = (operation_id = "cancelOrder", parameters(("id" = "$request.path.id")))))),
              (status = 404, response = NotFound), (status = 503, response = Unavailable)))]
pub async fn get_one(
    State(saga): State<Saga>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Order>, Problem> {
    let order = saga
        .store
        .get(id)
        .await
        .map_err(OrderError::Db)?
        .ok_or(OrderError::NotFound)?;
    Ok(axum::Json(order))
}

/// Cancel a placed order and release its stock; repeating it is harmless.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders", operation_id = "cancelOrder", params(("id" = Uuid, Path, example = json!("01936d40-1c5b-7e2a-8f3d-4a5b6c7d8e9f"))),
    responses((status = 200, body = Order, description = "Cancelled (now or before)"), (status = 404, response = NotFound),
              (status = 409, body = Problem, content_type = "application/problem+json",
                  description = "`order-in-progress`: still being placed; `order-not-placed`: it failed and holds nothing; `order-changed`: retry"),
              (status = 503, response = Unavailable)))]
pub async fn cancel(
    State(saga): State<Saga>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Order>, Problem> {
    Ok(axum::Json(saga.cancel(id, &caller).await?))
}

impl From<OrderError> for Problem {
    fn from(err: OrderError) -> Self {
        match err {
            OrderError::NotFound => Problem::not_found("no order with this id"),
            OrderError::NoSuchItem { line } => {
                invalid_line(line, "item_id", "no such item".to_owned())
            }
            OrderError::MixedCurrency { line, item, order } => invalid_line(
                line,
                "item_id",
                format!("is priced in {item}, the order in {order}; one order has one currency"),
            ),
            OrderError::TotalTooLarge { line } => {
                invalid_line(line, "quantity", "makes the total too large".to_owned())
            }
            OrderError::InsufficientStock {
                line,
                item_id,
                detail,
            } => Problem::conflict(
                "insufficient-stock",
                "Not enough stock",
                format!("item {item_id} (lines[{line}]): {detail}"),
            ),
            OrderError::KeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
            )
            .with_detail("this Idempotency-Key was used for a different request body"),
            OrderError::KeyInUse => Problem::conflict(
                "request-in-progress",
                "A request with this key is in progress",
                "the first request with this Idempotency-Key has not finished; retry shortly",
            ),
            OrderError::StillPlacing => Problem::conflict(
                "order-in-progress",
                "The order is still being placed",
                "retry the cancel shortly",
            ),
            OrderError::NeverPlaced => Problem::conflict(
                "order-not-placed",
                "The order was never placed",
                "a failed order holds no stock",
            ),
            OrderError::Changed => Problem::conflict(
                "order-changed",
                "The order changed meanwhile",
                "fetch it and retry",
            ),
            OrderError::Abandoned => Problem::unavailable(
                "order-abandoned",
                "The order was abandoned",
                "placing took too long and the order was rolled back; retry",
            ),
            OrderError::DeadlinePassed(deadline) => Problem::unavailable(
                "item-service-unavailable",
                "The item service is unavailable",
                format!(
                    "placing the order did not finish within {} ms",
                    deadline.as_millis()
                ),
            ),
            OrderError::ReleasePending => Problem::unavailable(
                "item-service-unavailable",
                "The item service is unavailable",
                "the order is cancelling; its stock will be released when the item service is back",
            ),
            OrderError::ItemService {
                error,
                breaker_open,
            } => (*error).into_problem(breaker_open),
            OrderError::Db(db) => db.to_problem(),
        }
    }
}

/// A 422 for one field of the order line `line`.
fn invalid_line(line: usize, field: &str, message: String) -> Problem {
    Problem::validation(vec![FieldError::new(
        format!("lines[{line}].{field}"),
        message,
    )])
}

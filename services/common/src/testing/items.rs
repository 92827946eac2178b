//! The item service's catalogue and stock, as the suites set them up and
//! read them: item's own, and order's, which runs item's binary and knows
//! it only through this API.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{Api, Reply};

/// Creates an item of `stock` units priced `price_minor` in `currency`;
/// answers its id. Panics, with the problem, unless it is created.
pub async fn create_item(
    api: &Api,
    name: &str,
    price_minor: i64,
    currency: &str,
    stock: i64,
) -> String {
    let reply = api
        .json(
            Method::POST,
            "/v1/items",
            &json!({"name": name, "price_minor": price_minor, "currency": currency, "stock": stock}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json());
    reply.json()["id"]
        .as_str()
        .expect("the item's id")
        .to_owned()
}

/// The units of item `id` in stock now.
pub async fn stock(api: &Api, id: &str) -> i64 {
    api.get(&format!("/v1/items/{id}")).await.json()["stock"]
        .as_i64()
        .expect("stock")
}

/// `PUT /v1/reservations/{key}`: holds `quantity` units of `item`.
pub async fn reserve(api: &Api, key: &str, item: &str, quantity: i64) -> Reply {
    api.json(
        Method::PUT,
        &format!("/v1/reservations/{key}"),
        &json!({"item_id": item, "quantity": quantity}),
    )
    .await
}

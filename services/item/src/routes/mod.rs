//! The item service's HTTP API under `/v1`, and how store outcomes become
//! responses.

pub mod items;
pub mod reservations;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post, put};
use berth_service_kit::Problem;

use crate::store::{Store, StoreError};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    /// How long a reservation holds units unless confirmed or released.
    pub reservation_ttl: Duration,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/items", get(items::list).post(items::create))
        .route(
            "/v1/items/{id}",
            get(items::get)
                .put(items::replace)
                .patch(items::patch)
                .delete(items::delete),
        )
        .route(
            "/v1/reservations/{key}",
            put(reservations::reserve).get(reservations::get),
        )
        .route(
            "/v1/reservations/{key}/confirm",
            post(reservations::confirm),
        )
        .route(
            "/v1/reservations/{key}/release",
            post(reservations::release),
        )
        .with_state(state)
}

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::ItemNotFound => Problem::not_found("no item with this id"),
            StoreError::ReservationNotFound => Problem::not_found("no reservation with this key"),
            StoreError::VersionMismatch { current } => Problem::precondition_failed(format!(
                "the item is at version {current}; fetch it again and retry with If-Match: \"{current}\""
            )),
            StoreError::InsufficientStock {
                available,
                requested,
            } => Problem::conflict(
                "insufficient-stock",
                "Not enough stock",
                format!("{requested} units requested, {available} available"),
            ),
            StoreError::KeyConflict(existing) => Problem::conflict(
                "reservation-key-conflict",
                "Reservation key already used",
                format!(
                    "key {} already reserves {} units of another request; use a new key",
                    existing.key, existing.quantity
                ),
            ),
            StoreError::KeyReleased => Problem::conflict(
                "reservation-released",
                "Reservation key already released",
                "this key was released before anything was reserved under it; use a new key",
            ),
            StoreError::WrongState(r) => Problem::conflict(
                "reservation-not-held",
                "Reservation is no longer held",
                format!("reservation {} is {}", r.key, r.status.as_str()),
            ),
            StoreError::Contended => Problem::unavailable(
                "reservation-contended",
                "Try again",
                "the reservation was changed concurrently; retry",
            ),
            StoreError::Db(db) => db.to_problem(),
        }
    }
}

/// The version an `If-Match` header asks for: `None` when absent or `*`.
/// A value that is not one of our ETags can never match, so it is a 412.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    tag.parse::<i64>().map(Some).map_err(|_| {
        Problem::precondition_failed(format!("If-Match {text:?} is not an ETag of this service"))
    })
}

pub(crate) fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

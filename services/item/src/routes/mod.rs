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
use utoipa::IntoParams;

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

/// The `If-Match` header of the writes, as the document describes it.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read by `if_match`; this type only describes it
pub struct IfMatch {
    /// The ETag the change is based on (`"<version>"`; the bare version is
    /// taken too), or `*`. A stale one is a 412; anything else is a 400.
    #[param(
        rename = "If-Match",
        nullable = false,
        pattern = r#"^(\*|(W/)?"[0-9]{1,18}"|[0-9]{1,18})$"#,
        example = "\"1\""
    )]
    if_match: Option<String>,
}

/// The version an `If-Match` header asks for: `None` when absent or `*`.
/// Anything but one ETag of ours is the client's mistake, not a race, so it
/// is a 400 rather than a 412. A weak tag, and the bare version (which this
/// service has always taken), are taken as the version.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    fn unquote(tag: &str) -> Option<&str> {
        tag.strip_prefix('"')?.strip_suffix('"')
    }
    let digits = match text.strip_prefix("W/") {
        Some(weak) => unquote(weak),
        None => unquote(text).or(Some(text)),
    };
    // At most 18 digits: always an i64.
    let version = digits.filter(|digits| {
        (1..=18).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    });
    match version {
        Some(digits) => Ok(digits.parse().ok()),
        None => Err(Problem::bad_request(
            "invalid-if-match",
            "If-Match is not an ETag",
            format!("If-Match {text:?} is not `*` or an ETag of this service such as \"3\""),
        )),
    }
}

pub(crate) fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

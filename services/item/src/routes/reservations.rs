//! `/v1/reservations/{key}`: stock set aside for a caller (the order
//! service) under a key the caller chooses. `PUT` is idempotent by key, so
//! a retried reserve never takes stock twice; a held reservation expires
//! after the TTL unless confirmed, so a caller that crashed cannot hold stock
//! forever; release works on held and confirmed reservations and is safe to
//! repeat.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use berth_service_kit::Problem;
use berth_service_kit::extract::{Json, Path};

use super::{AppState, created_or_ok};
use crate::model::{Reservation, ReservationInput, validate_reservation_key};
use crate::store::StoreError;

fn checked_key(key: String) -> Result<String, Problem> {
    validate_reservation_key(&key).map_err(|e| Problem::validation(vec![e]))?;
    Ok(key)
}

/// Reserve units of an item under `key`.
#[utoipa::path(put, path = "/v1/reservations/{key}", tag = "reservations", request_body = ReservationInput,
    params(("key" = String, Path, description = "Client-chosen idempotency key")),
    responses((status = 201, body = Reservation, description = "Reserved"),
              (status = 200, body = Reservation, description = "The same request was made before; nothing new reserved"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "Not enough stock, or the key is used otherwise"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn reserve(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Json(input): Json<ReservationInput>,
) -> Result<Response, Problem> {
    let key = checked_key(key)?;
    let errors = input.validate();
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let (reservation, created) = state
        .store
        .reserve(&key, input, state.reservation_ttl)
        .await?;
    Ok((created_or_ok(created), axum::Json(reservation)).into_response())
}

/// Get a reservation.
#[utoipa::path(get, path = "/v1/reservations/{key}", tag = "reservations", params(("key" = String, Path)),
    responses((status = 200, body = Reservation), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<axum::Json<Reservation>, Problem> {
    let key = checked_key(key)?;
    let reservation = state
        .store
        .get_reservation(&key)
        .await?
        .ok_or(StoreError::ReservationNotFound)?;
    Ok(axum::Json(reservation))
}

/// Confirm a held reservation: the units are sold and no longer expire.
#[utoipa::path(post, path = "/v1/reservations/{key}/confirm", tag = "reservations", params(("key" = String, Path)),
    responses((status = 200, body = Reservation), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "Released or expired")))]
pub async fn confirm(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<axum::Json<Reservation>, Problem> {
    let key = checked_key(key)?;
    Ok(axum::Json(state.store.confirm(&key).await?))
}

/// Release a reservation: its units go back to stock.
#[utoipa::path(post, path = "/v1/reservations/{key}/release", tag = "reservations", params(("key" = String, Path)),
    responses((status = 200, body = Reservation)))]
pub async fn release(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<axum::Json<Reservation>, Problem> {
    let key = checked_key(key)?;
    Ok(axum::Json(state.store.release(&key).await?))
}

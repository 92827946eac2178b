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
use berth_service_kit::openapi::{
    BadRequest, BodyTooLarge, NotFound, Unavailable, UnsupportedMediaType, ValidationFailed,
};

use super::{AppState, created_or_ok};
use crate::model::{Reservation, ReservationInput, ReservationKey, validate_reservation_key};
use crate::store::StoreError;

fn checked_key(key: String) -> Result<String, Problem> {
    validate_reservation_key(&key).map_err(|e| Problem::validation(vec![e]))?;
    Ok(key)
}

/// Reserve units of an item under `key`.
#[utoipa::path(put, path = "/v1/reservations/{key}", tag = "reservations", operation_id = "reserve",
    request_body = ReservationInput, params(ReservationKey),
    responses((status = 201, body = Reservation, description = "Reserved", links(
                      ("reserveAgain" = (operation_id = "reserve", parameters(("key" = "$request.path.key")), request_body = "$request.body",
                          description = "The same request again, as a retry sends it: 200, and nothing more is reserved")),
                      ("getReservation" = (operation_id = "getReservation", parameters(("key" = "$request.path.key")))),
                      ("confirmReservation" = (operation_id = "confirmReservation", parameters(("key" = "$request.path.key")))),
                      ("releaseReservation" = (operation_id = "releaseReservation", parameters(("key" = "$request.path.key")))),
                  )),
              (status = 200, body = Reservation, description = "The same request was made before; nothing new reserved", links(
                      ("getReservation" = (operation_id = "getReservation", parameters(("key" = "$request.path.key")))),
                      ("confirmReservation" = (operation_id = "confirmReservation", parameters(("key" = "$request.path.key")))),
                      ("releaseReservation" = (operation_id = "releaseReservation", parameters(("key" = "$request.path.key")))),
                  )),
              (status = 400, response = BadRequest), (status = 404, response = NotFound),
              (status = 409, body = Problem, content_type = "application/problem+json",
                  description = "`insufficient-stock`; `reservation-key-conflict`: the key reserves something else; `reservation-released`: the key was released"),
              (status = 413, response = BodyTooLarge), (status = 415, response = UnsupportedMediaType),
              (status = 422, response = ValidationFailed), (status = 503, response = Unavailable)))]
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
#[utoipa::path(get, path = "/v1/reservations/{key}", tag = "reservations", operation_id = "getReservation",
    params(ReservationKey),
    responses((status = 200, body = Reservation, description = "The reservation"), (status = 404, response = NotFound),
              (status = 422, response = ValidationFailed), (status = 503, response = Unavailable)))]
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
#[utoipa::path(post, path = "/v1/reservations/{key}/confirm", tag = "reservations", operation_id = "confirmReservation",
    params(ReservationKey),
    responses((status = 200, body = Reservation, description = "Confirmed (now or before)",
                  links(("releaseReservation" = (operation_id = "releaseReservation", parameters(("key" = "$request.path.key")))))),
              (status = 404, response = NotFound),
              (status = 409, body = Problem, content_type = "application/problem+json",
                  description = "`reservation-not-held`: released or expired"),
              (status = 422, response = ValidationFailed), (status = 503, response = Unavailable)))]
pub async fn confirm(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<axum::Json<Reservation>, Problem> {
    let key = checked_key(key)?;
    Ok(axum::Json(state.store.confirm(&key).await?))
}

/// Release a reservation: its units go back to stock.
#[utoipa::path(post, path = "/v1/reservations/{key}/release", tag = "reservations", operation_id = "releaseReservation",
    params(ReservationKey),
    responses((status = 200, body = Reservation, description = "Released (now or before); an unknown key is recorded as released"),
              (status = 422, response = ValidationFailed), (status = 503, response = Unavailable)))]
pub async fn release(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<axum::Json<Reservation>, Problem> {
    let key = checked_key(key)?;
    Ok(axum::Json(state.store.release(&key).await?))
}

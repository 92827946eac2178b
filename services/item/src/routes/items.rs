//! `/v1/items`: the catalogue. Writes honour `If-Match` (the ETag is the
//! item's version), so a client that read an old version cannot overwrite a
//! newer one.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_service_kit::extract::{Json, Path, Query};
use berth_service_kit::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{AppState, if_match};
use crate::model::{Item, ItemInput, ItemPatch};
use crate::store::{ListQuery, StoreError};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only items whose name contains this text, ignoring case.
    pub name: Option<String>,
}

/// One page of items.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ItemPage {
    pub items: Vec<Item>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn with_etag(status: StatusCode, item: Item) -> Response {
    let etag = HeaderValue::from_str(&item.etag()).ok();
    let mut response = (status, axum::Json(item)).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

fn validated<T>(value: T, errors: Vec<FieldError>) -> Result<T, Problem> {
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(Problem::validation(errors))
    }
}

/// List items, oldest first.
#[utoipa::path(get, path = "/v1/items", tag = "items", params(ListParams),
    responses((status = 200, body = ItemPage), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<ItemPage>, Problem> {
    let mut errors = Vec::new();
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        errors.push(FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
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
    validated((), errors)?;
    let query = ListQuery {
        limit: limit as usize + 1,
        after,
        name: params.name.filter(|n| !n.is_empty()),
    };
    let mut items = state.store.list_items(&query).await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|item| item.id.to_string())
    } else {
        None
    };
    Ok(axum::Json(ItemPage { items, next_cursor }))
}

/// Create an item.
#[utoipa::path(post, path = "/v1/items", tag = "items", request_body = ItemInput,
    responses((status = 201, body = Item, headers(("ETag" = String), ("Location" = String))),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Json(input): Json<ItemInput>,
) -> Result<Response, Problem> {
    let errors = input.validate();
    let input = validated(input, errors)?;
    let item = state.store.create_item(input).await?;
    let location = HeaderValue::from_str(&format!("/v1/items/{}", item.id)).ok();
    let mut response = with_etag(StatusCode::CREATED, item);
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Get one item.
#[utoipa::path(get, path = "/v1/items/{id}", tag = "items", params(("id" = Uuid, Path)),
    responses((status = 200, body = Item, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<Response, Problem> {
    let item = state
        .store
        .get_item(id)
        .await?
        .ok_or(StoreError::ItemNotFound)?;
    Ok(with_etag(StatusCode::OK, item))
}

/// Replace every field of an item.
#[utoipa::path(put, path = "/v1/items/{id}", tag = "items", request_body = ItemInput,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "ETag the change is based on")),
    responses((status = 200, body = Item), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn replace(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(input): Json<ItemInput>,
) -> Result<Response, Problem> {
    let expected = if_match(&headers)?;
    let errors = input.validate();
    let input = validated(input, errors)?;
    let item = state.store.replace_item(id, input, expected).await?;
    Ok(with_etag(StatusCode::OK, item))
}

/// Change some fields of an item.
#[utoipa::path(patch, path = "/v1/items/{id}", tag = "items", request_body = ItemPatch,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "ETag the change is based on")),
    responses((status = 200, body = Item), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(patch): Json<ItemPatch>,
) -> Result<Response, Problem> {
    let expected = if_match(&headers)?;
    let errors = patch.validate();
    let patch = validated(patch, errors)?;
    // Read, merge, write conditionally on the version read: without If-Match
    // a concurrent change makes us merge again rather than lose it.
    for _ in 0..5 {
        let current = state
            .store
            .get_item(id)
            .await?
            .ok_or(StoreError::ItemNotFound)?;
        if let Some(expected) = expected
            && expected != current.version
        {
            return Err(StoreError::VersionMismatch {
                current: current.version,
            }
            .into());
        }
        match state
            .store
            .replace_item(id, patch.apply_to(&current), Some(current.version))
            .await
        {
            Ok(item) => return Ok(with_etag(StatusCode::OK, item)),
            Err(StoreError::VersionMismatch { .. }) if expected.is_none() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Problem::conflict(
        "contended",
        "Item is changing too fast",
        "the item changed on every attempt; retry",
    ))
}

/// Delete an item.
#[utoipa::path(delete, path = "/v1/items/{id}", tag = "items",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "ETag the delete is based on")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    let expected = if_match(&headers)?;
    state.store.delete_item(id, expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! `/v1/items`: the catalogue. Writes honour `If-Match` (the ETag is the
//! item's version), so a client that read an old version cannot overwrite a
//! newer one.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_service_kit::extract::{Json, Path, Query};
use berth_service_kit::openapi::{
    BadRequest, BodyTooLarge, NotFound, PreconditionFailed, Unavailable, UnsupportedMediaType,
    ValidationFailed,
};
use berth_service_kit::paging::PageRequest;
use berth_service_kit::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{AppState, IfMatch, if_match};
use crate::model::{Item, ItemInput, ItemPatch};
use crate::store::{ListQuery, StoreError};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(format = Uuid, example = "01936d3e-8f2a-7b4c-9d1e-2f3a4b5c6d7e")]
    pub cursor: Option<String>,
    /// Only items whose name contains this text, ignoring case.
    #[param(example = "mug")]
    pub name: Option<String>,
}

/// One page of items.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ItemPage {
    pub items: Vec<Item>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `item` as JSON with its ETag. Public, like [`created`], so the
/// benchmark's floor (`examples/item_floor.rs`) encodes exactly as the
/// routes do.
pub fn with_etag(status: StatusCode, item: Item) -> Response {
    let etag = HeaderValue::from_str(&item.etag()).ok();
    let mut response = (status, axum::Json(item)).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// The answer to a create: 201 with the item, its ETag and its Location.
pub fn created(item: Item) -> Response {
    let location = HeaderValue::from_str(&format!("/v1/items/{}", item.id)).ok();
    let mut response = with_etag(StatusCode::CREATED, item);
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
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
#[utoipa::path(get, path = "/v1/items", tag = "items", operation_id = "listItems", params(ListParams),
    responses((status = 200, body = ItemPage, description = "A page of items"),
              (status = 400, response = BadRequest), (status = 422, response = ValidationFailed),
              (status = 503, response = Unavailable)))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<ItemPage>, Problem> {
    let page = PageRequest::parse(params.limit, params.cursor.as_deref())?;
    let query = ListQuery {
        limit: page.rows(),
        after: page.after,
        name: params.name.filter(|n| !n.is_empty()),
    };
    let items = state.store.list_items(&query).await?;
    let (items, next_cursor) = page.page(items, |item| item.id);
    Ok(axum::Json(ItemPage { items, next_cursor }))
}

/// Create an item.
#[utoipa::path(post, path = "/v1/items", tag = "items", operation_id = "createItem", request_body = ItemInput,
    responses((status = 201, body = Item, description = "Created",
                  headers(("ETag" = String, description = "`\"<version>\"`"), ("Location" = String, description = "`/v1/items/<id>`")),
                  links(
                      ("getItem" = (operation_id = "getItem", parameters(("id" = "$response.body#/id")))),
                      ("replaceItem" = (operation_id = "replaceItem", parameters(("id" = "$response.body#/id"), ("header.If-Match" = "$response.header.ETag")))),
                      ("patchItem" = (operation_id = "patchItem", parameters(("id" = "$response.body#/id"), ("header.If-Match" = "$response.header.ETag")))),
                      ("deleteItem" = (operation_id = "deleteItem", parameters(("id" = "$response.body#/id"), ("header.If-Match" = "$response.header.ETag")))),
                      ("reserve" = (operation_id = "reserve", parameters(("key" = "item-{$response.body#/id}")),
                          request_body = json!({"item_id": "$response.body#/id"}),
                          description = "Set units of this item aside, under a key of the caller's choosing (here one made from the item's id, so it is new)")),
                  )),
              (status = 400, response = BadRequest), (status = 413, response = BodyTooLarge),
              (status = 415, response = UnsupportedMediaType), (status = 422, response = ValidationFailed),
              (status = 503, response = Unavailable)))]
pub async fn create(
    State(state): State<AppState>,
    Json(input): Json<ItemInput>,
) -> Result<Response, Problem> {
    let errors = input.validate();
    let input = validated(input, errors)?;
    let item = state.store.create_item(input).await?;
    Ok(created(item))
}

/// Get one item.
#[utoipa::path(get, path = "/v1/items/{id}", tag = "items", operation_id = "getItem", params(("id" = Uuid, Path, example = json!("01936d3e-8f2a-7b4c-9d1e-2f3a4b5c6d7e"))),
    responses((status = 200, body = Item, description = "The item", headers(("ETag" = String, description = "`\"<version>\"`")),
                  links(
                      ("replaceItem" = (operation_id = "replaceItem", parameters(("id" = "$request.path.id"), ("header.If-Match" = "$response.header.ETag")))),
                      ("patchItem" = (operation_id = "patchItem", parameters(("id" = "$request.path.id"), ("header.If-Match" = "$response.header.ETag")))),
                      ("deleteItem" = (operation_id = "deleteItem", parameters(("id" = "$request.path.id"), ("header.If-Match" = "$response.header.ETag")))),
                  )),
              (status = 404, response = NotFound), (status = 503, response = Unavailable)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<Response, Problem> {
    let item = state
        .store
        .get_item(id)
        .await?
        .ok_or(StoreError::ItemNotFound)?;
    Ok(with_etag(StatusCode::OK, item))
}

/// Replace every field of an item.
#[utoipa::path(put, path = "/v1/items/{id}", tag = "items", operation_id = "replaceItem", request_body = ItemInput,
    params(("id" = Uuid, Path, example = json!("01936d3e-8f2a-7b4c-9d1e-2f3a4b5c6d7e")), IfMatch),
    responses((status = 200, body = Item, description = "Replaced", headers(("ETag" = String, description = "`\"<version>\"`"))),
              (status = 400, response = BadRequest), (status = 404, response = NotFound),
              (status = 412, response = PreconditionFailed), (status = 413, response = BodyTooLarge),
              (status = 415, response = UnsupportedMediaType), (status = 422, response = ValidationFailed),
              (status = 503, response = Unavailable)))]
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
#[utoipa::path(patch, path = "/v1/items/{id}", tag = "items", operation_id = "patchItem", request_body = ItemPatch,
    params(("id" = Uuid, Path, example = json!("01936d3e-8f2a-7b4c-9d1e-2f3a4b5c6d7e")), IfMatch),
    responses((status = 200, body = Item, description = "Changed", headers(("ETag" = String, description = "`\"<version>\"`"))),
              (status = 400, response = BadRequest), (status = 404, response = NotFound),
              (status = 409, body = Problem, content_type = "application/problem+json",
                  description = "`contended`: without `If-Match`, the item changed on every attempt to merge; retry"),
              (status = 412, response = PreconditionFailed), (status = 413, response = BodyTooLarge),
              (status = 415, response = UnsupportedMediaType), (status = 422, response = ValidationFailed),
              (status = 503, response = Unavailable)))]
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
#[utoipa::path(delete, path = "/v1/items/{id}", tag = "items", operation_id = "deleteItem",
    params(("id" = Uuid, Path, example = json!("01936d3e-8f2a-7b4c-9d1e-2f3a4b5c6d7e")), IfMatch),
    responses((status = 204, description = "Deleted"), (status = 400, response = BadRequest),
              (status = 404, response = NotFound), (status = 412, response = PreconditionFailed),
              (status = 503, response = Unavailable)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    let expected = if_match(&headers)?;
    state.store.delete_item(id, expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! The OpenAPI document, generated from the handlers' annotations and the
//! types they use, so it cannot drift from the code.

use berth_service_kit::{FieldError, Problem};
use utoipa::OpenApi;

use crate::model::{Item, ItemInput, ItemPatch, Reservation, ReservationInput, ReservationStatus};
use crate::routes::{items, reservations};

#[derive(OpenApi)]
#[openapi(
    info(title = "item-service", description = "Berth's reference catalogue and stock service."),
    paths(
        items::list, items::create, items::get, items::replace, items::patch, items::delete,
        reservations::reserve, reservations::get, reservations::confirm, reservations::release,
    ),
    components(schemas(Item, ItemInput, ItemPatch, items::ItemPage, Reservation, ReservationInput, ReservationStatus, Problem, FieldError)),
    tags((name = "items", description = "The catalogue"), (name = "reservations", description = "Stock set aside for orders"))
)]
pub struct ApiDoc;

pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
}

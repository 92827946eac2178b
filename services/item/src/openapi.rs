//! The OpenAPI document, generated from the handlers' annotations and the
//! types they use, so it cannot drift from the code; the problem responses
//! come from the kit ([`berth_service_kit::openapi`]).

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
    components(schemas(Item, ItemInput, ItemPatch, items::ItemPage, Reservation, ReservationInput, ReservationStatus)),
    tags((name = "items", description = "The catalogue"), (name = "reservations", description = "Stock set aside for orders"))
)]
pub struct ApiDoc;

pub fn document() -> String {
    berth_service_kit::openapi::render(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::model::*;

    berth_service_kit::openapi_tests!(super::document(), states_the_limits);

    /// Where the document states each limit the validation enforces.
    fn states_the_limits(doc: &Value) {
        let schemas = &doc["components"]["schemas"];
        for body in ["ItemInput", "ItemPatch"] {
            let fields = &schemas[body]["properties"];
            assert_eq!(fields["name"]["maxLength"], MAX_NAME_CHARS, "{body}");
            assert_eq!(fields["name"]["pattern"], NOT_BLANK_PATTERN, "{body}");
            assert_eq!(fields["description"]["maxLength"], MAX_DESCRIPTION_CHARS);
            assert_eq!(fields["price_minor"]["maximum"], MAX_PRICE_MINOR);
            assert_eq!(fields["stock"]["maximum"], MAX_STOCK);
        }
        let quantity = &schemas["ReservationInput"]["properties"]["quantity"];
        assert_eq!(quantity["maximum"], MAX_RESERVATION_QUANTITY);
        let key = &doc["paths"]["/v1/reservations/{key}"]["get"]["parameters"][0]["schema"];
        let max_key = format!("{{0,{}}}$", MAX_RESERVATION_KEY_BYTES - 1);
        assert!(key["pattern"].as_str().unwrap().ends_with(&max_key));
    }
}

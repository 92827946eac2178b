//! The OpenAPI document, generated from the handlers' annotations and the
//! types they use, so it cannot drift from the code; the problem responses
//! come from the kit ([`berth_service_kit::openapi`]).

use utoipa::OpenApi;

use crate::model::{LineInput, NewOrder, Order, OrderLine, OrderStatus};
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "order-service", description = "Berth's reference order service."),
    paths(routes::create, routes::list, routes::get_one, routes::cancel),
    components(schemas(Order, OrderLine, OrderStatus, NewOrder, LineInput, routes::OrderPage)),
    tags((name = "orders", description = "Orders of catalogue items"))
)]
pub struct ApiDoc;

pub fn document() -> String {
    berth_service_kit::openapi::render(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::model::{MAX_LINES, MAX_QUANTITY};

    berth_service_kit::openapi_tests!(super::document(), states_the_limits);

    /// Where the document states each limit the validation enforces.
    fn states_the_limits(doc: &Value) {
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["NewOrder"]["properties"]["lines"]["maxItems"],
            MAX_LINES
        );
        let quantity = &schemas["LineInput"]["properties"]["quantity"];
        assert_eq!(quantity["maximum"], MAX_QUANTITY);
    }
}

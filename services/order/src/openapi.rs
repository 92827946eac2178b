//! The OpenAPI document, generated from the handlers' annotations and the
//! types they use, so it cannot drift from the code.

use berth_service_kit::{FieldError, Problem};
use utoipa::OpenApi;

use crate::model::{LineInput, NewOrder, Order, OrderLine, OrderStatus};
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "order-service", description = "Berth's reference order service."),
    paths(routes::create, routes::list, routes::get_one, routes::cancel),
    components(schemas(Order, OrderLine, OrderStatus, NewOrder, LineInput, routes::OrderPage, Problem, FieldError)),
    tags((name = "orders", description = "Orders of catalogue items"))
)]
pub struct ApiDoc;

pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
}

//! [`openapi_tests!`](crate::openapi_tests): the unit tests every service
//! runs on its OpenAPI document.

/// Generates, in the module it stands in, the two tests of a service's
/// OpenAPI document `$document` (an expression giving the JSON text):
/// `operation_ids_are_unique_and_links_resolve`, which finds none of the
/// [`inconsistencies`](crate::openapi::inconsistencies), and
/// `the_schemas_state_the_limits_the_code_enforces`, which hands the parsed
/// document to the service's function `$limits`. Schema attributes take
/// literals only, so `$limits` compares them with the constants the
/// validation uses.
#[macro_export]
macro_rules! openapi_tests {
    ($document:expr, $limits:path $(,)?) => {
        #[test]
        fn the_schemas_state_the_limits_the_code_enforces() {
            $limits(&$crate::testing::parse_document(&$document));
        }

        #[test]
        fn operation_ids_are_unique_and_links_resolve() {
            let problems = $crate::openapi::inconsistencies(&$document);
            assert!(problems.is_empty(), "{problems:?}");
        }
    };
}

/// A service's OpenAPI document as JSON, for a test to look into.
pub fn parse_document(document: &str) -> serde_json::Value {
    serde_json::from_str(document).expect("the OpenAPI document is JSON")
}

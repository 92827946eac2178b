//! What both services' OpenAPI documents share: the problem schemas and the
//! problem responses the shared extractors and layers answer with, as
//! reusable components that an operation names with `response = ...`.
//! Written once here, so a status the kit produces is described once.

use utoipa::openapi::OpenApi as Document;
use utoipa::{OpenApi, ToResponse};

use crate::problem::{FieldError, Problem};

/// The request does not parse: its JSON body (`malformed-body`), a query
/// parameter (`invalid-query`) or a header (`invalid-if-match`).
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    example = json!({
        "type": "https://berth.dev/problems/malformed-body",
        "title": "The request body is not valid JSON",
        "status": 400,
        "detail": "EOF while parsing an object at line 1 column 15"
    })
)]
pub struct BadRequest(pub Problem);

/// Nothing has this id or key (also an id that is not a UUID).
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    example = json!({
        "type": "https://berth.dev/problems/not-found",
        "title": "Resource not found",
        "status": 404,
        "detail": "no item with this id"
    })
)]
pub struct NotFound(pub Problem);

/// `If-Match` names a version that is no longer current; nothing changed.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    example = json!({
        "type": "https://berth.dev/problems/precondition-failed",
        "title": "The resource has changed",
        "status": 412,
        "detail": "the item is at version 4; fetch it again and retry with If-Match: \"4\""
    })
)]
pub struct PreconditionFailed(pub Problem);

/// The body is larger than `BODY_LIMIT_BYTES`.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    example = json!({
        "type": "https://berth.dev/problems/body-too-large",
        "title": "The request body is too large",
        "status": 413,
        "detail": "the request body is larger than 65536 bytes"
    })
)]
pub struct BodyTooLarge(pub Problem);

/// The body is not sent as `application/json`.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    example = json!({
        "type": "https://berth.dev/problems/unsupported-media-type",
        "title": "Expected a JSON body",
        "status": 415,
        "detail": "send the body with `content-type: application/json`"
    })
)]
pub struct UnsupportedMediaType(pub Problem);

/// Well-formed but not valid; `errors` names each failing field.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    example = json!({
        "type": "https://berth.dev/problems/validation-failed",
        "title": "The request is not valid",
        "status": 422,
        "detail": "currency: must be an ISO 4217 code: three uppercase letters",
        "errors": [{"field": "currency", "message": "must be an ISO 4217 code: three uppercase letters"}]
    })
)]
pub struct ValidationFailed(pub Problem);

/// A dependency is down or slow (the database; for orders also the item
/// service), or a change was contended; retry after `Retry-After` seconds.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait")),
    example = json!({
        "type": "https://berth.dev/problems/database-unavailable",
        "title": "Database unavailable",
        "status": 503,
        "detail": "the database cannot be reached",
        "retry_after": 1
    })
)]
pub struct Unavailable(pub Problem);

#[derive(OpenApi)]
#[openapi(components(
    schemas(Problem, FieldError),
    responses(
        BadRequest,
        NotFound,
        PreconditionFailed,
        BodyTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        Unavailable
    )
))]
struct ProblemComponents;

/// A service's document with the shared components added, as served at
/// `/openapi.json`.
pub fn render(mut document: Document) -> String {
    document.merge(ProblemComponents::openapi());
    document
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
}

/// What a generator of clients or a contract tester trips over that the
/// derive does not check: operation ids that repeat, links to operations
/// that do not exist, parameters and request bodies without an example
/// (the contract test's examples phase sends the examples, and skips an
/// operation that has none).
pub fn inconsistencies(document: &str) -> Vec<String> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(document) else {
        return vec!["the document is not JSON".to_owned()];
    };
    let operations: Vec<&serde_json::Value> = doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(|path| path.as_object())
        .flat_map(|path| path.values())
        .collect();
    let ids: Vec<&str> = operations
        .iter()
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let mut problems = Vec::new();
    if ids.len() != operations.len() {
        problems.push("an operation has no operationId".to_owned());
    }
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            problems.push(format!("operationId {id} repeats"));
        }
    }
    let targets = operations
        .iter()
        .filter_map(|op| op["responses"].as_object())
        .flat_map(|responses| responses.values())
        .filter_map(|response| response["links"].as_object())
        .flat_map(|links| links.values())
        .map(|link| link["operationId"].as_str().unwrap_or_default());
    for target in targets {
        if !ids.contains(&target) {
            problems.push(format!(
                "a link names operation {target:?}, which does not exist"
            ));
        }
    }
    problems.extend(missing_examples(&doc, &operations));
    problems
}

fn missing_examples(doc: &serde_json::Value, operations: &[&serde_json::Value]) -> Vec<String> {
    let has_example = |value: &serde_json::Value| {
        value.get("example").is_some() || value.get("examples").is_some()
    };
    let mut missing = Vec::new();
    for op in operations {
        let id = op["operationId"].as_str().unwrap_or("?");
        let parameters = op["parameters"].as_array().into_iter().flatten();
        for parameter in parameters {
            if !has_example(parameter) && !has_example(&parameter["schema"]) {
                let name = parameter["name"].as_str().unwrap_or("?");
                missing.push(format!("parameter {name} of {id} has no example"));
            }
        }
        let bodies = op["requestBody"]["content"]
            .as_object()
            .into_iter()
            .flatten();
        for (_, body) in bodies {
            let schema = match body["schema"]["$ref"].as_str() {
                Some(reference) => reference
                    .strip_prefix("#/components/schemas/")
                    .map_or(&serde_json::Value::Null, |name| {
                        &doc["components"]["schemas"][name]
                    }),
                None => &body["schema"],
            };
            if !has_example(body) && !has_example(schema) {
                missing.push(format!("the request body of {id} has no example"));
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_bodies_without_examples_are_named() {
        let document = serde_json::json!({
            "paths": {"/v1/things/{id}": {"put": {
                "operationId": "replaceThing",
                "parameters": [
                    {"name": "id", "in": "path", "schema": {"type": "string"}, "example": "a"},
                    {"name": "If-Match", "in": "header", "schema": {"type": "string"}}
                ],
                "requestBody": {"content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Thing"}
                }}},
                "responses": {}
            }}},
            "components": {"schemas": {"Thing": {"type": "object"}}}
        });
        assert_eq!(
            inconsistencies(&document.to_string()),
            [
                "parameter If-Match of replaceThing has no example",
                "the request body of replaceThing has no example"
            ]
        );
    }
}

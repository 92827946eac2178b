//! Extractors that reject with problem+json instead of axum's plain text, so
//! every error a client sees has the same shape: 400 for malformed JSON, 422
//! with the failing field for well-formed JSON of the wrong shape, 413 for
//! oversized bodies, 415 for a wrong content type.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem};

/// A JSON request body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let json_content = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json);
        if !json_content {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Expected a JSON body",
            )
            .with_detail("send the body with `content-type: application/json`"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::body_too_large(None)
            } else {
                Problem::malformed_body(rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// `application/json` or `application/*+json`, parameters ignored.
fn is_json(content_type: &str) -> bool {
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    let (kind, subtype) = mime.split_once('/').unwrap_or_default();
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() >= 5
                && subtype.as_bytes()[subtype.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

/// Parses JSON, classifying failures as malformed (400) or invalid (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    // Most bodies are valid: parse them without the bookkeeping of the path
    // to each value, and parse a failed one again with it, to name the field.
    serde_json::from_slice(bytes).or_else(|_| parse_json_naming_the_field(bytes))
}

fn parse_json_naming_the_field<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." { "body".to_owned() } else { path };
                Problem::validation(vec![FieldError::new(
                    field,
                    strip_position(&inner.to_string()),
                )])
            }
            _ => Problem::malformed_body(inner.to_string()),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| Problem::malformed_body(e.to_string()))?;
    Ok(value)
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Query parameters; a value of the wrong type is a 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|rejection| {
                Problem::bad_request(
                    "invalid-query",
                    "Invalid query parameters",
                    rejection.body_text(),
                )
            })
    }
}

/// Path parameters; one that does not parse (an id that is not a UUID) names
/// nothing that exists, so it is a 404.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|rejection| Problem::not_found(rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        quantity: u32,
    }

    #[test]
    fn syntax_errors_are_malformed_and_shape_errors_name_the_field() {
        let err = parse_json::<Body>(b"{\"quantity\":").unwrap_err();
        assert_eq!(err.status, 400);
        let err = parse_json::<Body>(b"{\"quantity\": -1}").unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(err.errors[0].field, "quantity");
        let err = parse_json::<Body>(b"{}").unwrap_err();
        assert_eq!(err.status, 422);
        let err = parse_json::<Body>(b"{\"quantity\": 1} trailing").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(parse_json::<Body>(b"{\"quantity\": 1}").is_ok());
    }

    #[test]
    fn json_content_types_are_recognised_in_any_case_with_parameters() {
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/problem+json",
            " application/merge-patch+JSON ;x=y",
        ] {
            assert!(is_json(yes), "{yes}");
        }
        for no in ["text/json", "application/jsonx", "json", ""] {
            assert!(!is_json(no), "{no}");
        }
    }
}

//! Request ids: taken from the caller's `x-request-id` when it is sane,
//! generated otherwise, recorded on the request's tracing span (see
//! [`server`](crate::server)), echoed in the response, and available to handlers (the order service forwards it to the
//! item service so one id follows a request across both).

use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderName, HeaderValue, request::Parts};
use axum::response::Response;
use std::convert::Infallible;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    pub fn generate() -> Self {
        Self(fast_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn from_header(value: &HeaderValue) -> Option<Self> {
        let value = value.to_str().ok()?;
        let sane =
            !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic());
        sane.then(|| Self(value.to_owned()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate))
    }
}

/// Takes the caller's id or generates one, and stores it in the request's
/// extensions for handlers.
pub fn assign(req: &mut Request) -> RequestId {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(RequestId::from_header)
        .unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(id.clone());
    id
}

/// Echoes the id in the response.
pub fn echo(response: &mut Response, id: &RequestId) {
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(HEADER, value);
    }
}

/// Random bits from a per-thread generator seeded once from the OS, so an id
/// costs no system call. xorshift64*: plenty for ids that must be unique,
/// not secret (request ids here, trace and span ids in `trace`).
pub(crate) fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
            (a ^ b) | 1
        });
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// A UUIDv7 with [`random_u64`]'s bits.
fn fast_v7() -> uuid::Uuid {
    let next = random_u64;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&next().to_le_bytes());
    random[8..].copy_from_slice(&next().to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_distinct_v7_uuids() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| RequestId::generate().0).collect();
        assert_eq!(ids.len(), 10_000);
        let one = uuid::Uuid::parse_str(ids.iter().next().unwrap()).unwrap();
        assert_eq!(one.get_version_num(), 7);
    }

    #[test]
    fn only_sane_caller_ids_are_kept() {
        assert!(RequestId::from_header(&HeaderValue::from_static("abc-123")).is_some());
        assert!(RequestId::from_header(&HeaderValue::from_static("has space")).is_none());
        assert!(
            RequestId::from_header(&HeaderValue::from_str(&"x".repeat(129)).unwrap()).is_none()
        );
    }
}

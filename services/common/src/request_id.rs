//! Request ids: taken from the caller's `x-request-id` when it is sane,
//! generated otherwise, recorded on the request's tracing span (see
//! [`server`](crate::server)), echoed in the response, and available to handlers (the order service forwards it to the
//! item service so one id follows a request across both).

use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderName, HeaderValue, request::Parts};
use axum::response::Response;
use std::convert::Infallible;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest caller id kept; a longer one is replaced by a new id.
const MAX_LEN: usize = 128;

/// The id of the request being handled. Held inline rather than in a
/// `String`: every request gets one, and it is copied for handlers and
/// echoed, so a heap id would cost allocations on every request.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestId {
    /// Visible ASCII only (checked when made), so always a valid header.
    bytes: [u8; MAX_LEN],
    len: u8,
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

impl RequestId {
    pub fn generate() -> Self {
        let mut bytes = [0u8; MAX_LEN];
        let text = fast_v7().hyphenated().encode_lower(&mut bytes[..36]).len();
        Self {
            bytes,
            len: text as u8,
        }
    }

    pub fn as_str(&self) -> &str {
        // Always ASCII: see `bytes`.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    fn from_header(value: &HeaderValue) -> Option<Self> {
        let value = value.as_bytes();
        let sane =
            !value.is_empty() && value.len() <= MAX_LEN && value.iter().all(u8::is_ascii_graphic);
        sane.then(|| {
            let mut bytes = [0u8; MAX_LEN];
            bytes[..value.len()].copy_from_slice(value);
            Self {
                bytes,
                len: value.len() as u8,
            }
        })
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
    if let Ok(value) = HeaderValue::from_bytes(id.as_str().as_bytes()) {
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
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|_| RequestId::generate().as_str().to_owned())
            .collect();
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

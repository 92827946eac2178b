//! Whom the order service calls the item service for, and what of it goes
//! with each call.

use axum::http::HeaderValue;
use berth_service_kit::{RequestId, Trace};

use super::transport::CallHeaders;

/// Whom a call to item is made for: the request being handled, whose id
/// and trace go with the call (`x-request-id`, `traceparent`), so one order
/// can be followed through both services' logs. Held as the header values
/// the calls send, made once for all of a request's calls.
#[derive(Clone, Debug)]
pub struct Caller {
    request_id: HeaderValue,
    traceparent: HeaderValue,
}

impl Caller {
    pub fn new(request_id: &RequestId, trace: &Trace) -> Self {
        // Both are ASCII by construction (a request id is checked when it
        // arrives, a traceparent is hex and dashes), so neither fails.
        let value =
            |text: &str| HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("invalid"));
        Self {
            request_id: value(request_id.as_str()),
            traceparent: value(&trace.for_call()),
        }
    }

    /// For work no request asked for (the start-up recovery): new ids.
    pub fn background() -> Self {
        Self::new(&RequestId::generate(), &Trace::continue_or_start(None))
    }

    pub(super) fn headers(&self) -> CallHeaders<'_> {
        CallHeaders {
            request_id: &self.request_id,
            traceparent: &self.traceparent,
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::new(
            &RequestId::from_request_parts(parts, state).await?,
            &Trace::from_request_parts(parts, state).await?,
        ))
    }
}

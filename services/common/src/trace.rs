//! W3C Trace Context (`traceparent`): one trace id follows a request across
//! services. A request that arrives with a valid `traceparent` continues its
//! caller's trace; any other starts one. The trace id is recorded on the
//! request's span, so every log line of the request carries it, and calls
//! made while handling it send it on (`traceparent` with this request's span
//! as their parent), so one order can be followed through order's and
//! item's logs. No exporter: the ids are for logs and for whatever tracing
//! backend a proxy or mesh in front of the services reports to.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderName, request::Parts};

pub const HEADER: HeaderName = HeaderName::from_static("traceparent");

/// The trace a request belongs to, and its own span in it. The ids are held
/// as their hex text inline: every request has one, so no heap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// 32 lowercase hex digits, never all zero.
    trace_id: [u8; 32],
    /// 16 lowercase hex digits: this request's span, the parent of its calls.
    span_id: [u8; 16],
    /// The caller's `sampled` flag, passed on unchanged.
    sampled: bool,
}

impl Trace {
    /// Continues the trace of a valid `traceparent`, or starts a new one.
    pub fn continue_or_start(traceparent: Option<&str>) -> Self {
        let (trace_id, sampled) = traceparent.and_then(parse).unwrap_or_else(|| {
            let mut id = [0u8; 32];
            hex(nonzero(), &mut id[..16]);
            hex(nonzero(), &mut id[16..]);
            (id, true)
        });
        let mut span_id = [0u8; 16];
        hex(nonzero(), &mut span_id);
        Self {
            trace_id,
            span_id,
            sampled,
        }
    }

    pub fn trace_id(&self) -> &str {
        // Always hex digits: see the field.
        std::str::from_utf8(&self.trace_id).unwrap_or_default()
    }

    fn span_id(&self) -> &str {
        std::str::from_utf8(&self.span_id).unwrap_or_default()
    }

    /// The `traceparent` for a call made while handling this request.
    pub fn for_call(&self) -> String {
        let flags = if self.sampled { "01" } else { "00" };
        format!("00-{}-{}-{flags}", self.trace_id(), self.span_id())
    }
}

/// Writes `value` as 16 lowercase hex digits into `out`.
fn hex(value: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, digit) in out.iter_mut().enumerate().take(16) {
        *digit = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// `version-traceid-parentid-flags`, version 00 (or a later one, read as 00
/// as the spec asks); returns the trace id and the sampled flag.
fn parse(value: &str) -> Option<([u8; 32], bool)> {
    let mut parts = value.trim().split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace_id, 32)
        && !zero(trace_id)
        && hex(parent_id, 16)
        && !zero(parent_id)
        && hex(flags, 2);
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
    let trace_id: [u8; 32] = trace_id.as_bytes().try_into().ok()?;
    valid.then_some((trace_id, sampled))
}

/// A random non-zero u64 (ids must not be all zero).
fn nonzero() -> u64 {
    crate::request_id::random_u64() | 1
}

/// Continues or starts the request's trace and stores it for handlers.
pub fn assign(req: &mut Request) -> Trace {
    let header = req.headers().get(&HEADER).and_then(|v| v.to_str().ok());
    let trace = Trace::continue_or_start(header);
    req.extensions_mut().insert(trace.clone());
    trace
}

impl<S: Send + Sync> FromRequestParts<S> for Trace {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<Trace>()
            .cloned()
            .unwrap_or_else(|| Trace::continue_or_start(None)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn a_valid_traceparent_is_continued_with_a_span_of_our_own() {
        let incoming = format!("00-{TRACE}-00f067aa0ba902b7-01");
        let trace = Trace::continue_or_start(Some(&incoming));
        assert_eq!(trace.trace_id(), TRACE);
        let outgoing = trace.for_call();
        let parts: Vec<&str> = outgoing.split('-').collect();
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], TRACE);
        assert_ne!(parts[2], "00f067aa0ba902b7", "our span, not the caller's");
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        // What we send, the next service continues.
        let next = Trace::continue_or_start(Some(&outgoing));
        assert_eq!(next.trace_id(), TRACE);
    }

    #[test]
    fn the_sampled_flag_is_passed_on() {
        let trace = Trace::continue_or_start(Some(&format!("00-{TRACE}-00f067aa0ba902b7-00")));
        assert!(trace.for_call().ends_with("-00"));
    }

    #[test]
    fn anything_else_starts_a_new_trace() {
        for bad in [
            "",
            "garbage",
            &format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            &format!("00-{TRACE}-0000000000000000-01"),
            &format!("ff-{TRACE}-00f067aa0ba902b7-01"),
            &format!("00-{}-00f067aa0ba902b7-01", TRACE.to_uppercase()),
            &format!("00-{TRACE}-00f067aa0ba902b7-01-extra"),
            &format!("00-{TRACE}-00f067aa0ba902b7"),
        ] {
            let trace = Trace::continue_or_start(Some(bad));
            assert_ne!(trace.trace_id(), TRACE, "{bad:?}");
            assert_eq!(trace.trace_id().len(), 32, "{bad:?}");
            assert!(
                parse(&trace.for_call()).is_some(),
                "{bad:?}: sends a valid one"
            );
        }
        // A later version is read as 00, its extra fields ignored.
        let later = Trace::continue_or_start(Some(&format!("01-{TRACE}-00f067aa0ba902b7-01-x")));
        assert_eq!(later.trace_id(), TRACE);
    }
}

//! The one layer every request passes: assigns its id and trace, runs it in
//! a span (so every log line carries both), measures it, turns a panic into
//! a 500 problem, logs its completion and echoes the id.
//!
//! One hand-written tower service rather than `middleware::from_fn` plus a
//! `CatchPanicLayer`, because each of those costs on every request: axum
//! boxes every layer added with `Router::layer` into its own route (a clone
//! of everything under it and a boxed future per request), and `from_fn`
//! clones and boxes its inner service again. This one calls the route
//! directly and polls its future in place.

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};
use tracing::Span;

use crate::metrics::{Metrics, RequestTimer};
use crate::problem::{self, Problem};
use crate::request_id::{self, RequestId};
use crate::trace;

/// Wraps each route in [`Observe`].
#[derive(Clone)]
pub struct ObserveLayer {
    pub metrics: Arc<Metrics>,
    /// For the problem of a body over the limit (see [`Observed::poll`]).
    pub body_limit: usize,
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            metrics: self.metrics.clone(),
            body_limit: self.body_limit,
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
    body_limit: usize,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let id = request_id::assign(&mut req);
        let trace = trace::assign(&mut req);
        let timer = self.metrics.start(&req);
        // Disabled (no fields formatted, nothing allocated) unless the log
        // level is info or finer.
        let span = tracing::info_span!(
            "request",
            request_id = %id.as_str(),
            trace_id = %trace.trace_id(),
            method = %req.method(),
            path = %req.uri().path()
        );
        // The inner call happens here, right after our poll_ready passed
        // the inner one's readiness on, so no clone of it is needed.
        let answer = span.in_scope(|| catch_unwind(AssertUnwindSafe(|| self.inner.call(req))));
        Observed {
            answer: answer.map_err(log_panic).ok(),
            span,
            id,
            timer: Some(timer),
            body_limit: self.body_limit,
        }
    }
}

/// A request in flight through [`Observe`].
pub struct Observed<F> {
    /// `None` when calling the route panicked.
    answer: Option<F>,
    span: Span,
    id: RequestId,
    /// Taken when the request completes; dropped unfinished if the request
    /// is cancelled, which still lowers the in-flight gauge.
    timer: Option<RequestTimer>,
    body_limit: usize,
}

impl<F> Future for Observed<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let answered = match &mut this.answer {
            Some(answer) => {
                let _entered = this.span.enter();
                catch_unwind(AssertUnwindSafe(|| Pin::new(answer).poll(cx)))
                    .map_err(log_panic)
                    .ok()
            }
            None => None,
        };
        let mut response = match answered {
            Some(Poll::Pending) => return Poll::Pending,
            Some(Poll::Ready(Ok(response))) => response,
            Some(Poll::Ready(Err(never))) => match never {},
            None => Problem::internal().into_response(),
        };
        this.answer = None;
        // Extractors answer an oversized body with our problem; this catches
        // the limit hit by anything else (e.g. a streaming body).
        if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem(&response) {
            response = Problem::body_too_large(Some(this.body_limit)).into_response();
        }
        let status = response.status().as_u16();
        if let Some(timer) = this.timer.take() {
            let latency = timer.finish(status);
            this.span.in_scope(|| {
                tracing::info!(
                    status,
                    latency_ms = latency.as_secs_f64() * 1e3,
                    "request completed"
                );
            });
        }
        request_id::echo(&mut response, &this.id);
        Poll::Ready(Ok(response))
    }
}

/// Logs a handler's panic (inside the request's span, so with its ids).
fn log_panic(panic: Box<dyn Any + Send>) {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "handler panicked");
}

fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == problem::CONTENT_TYPE.as_bytes())
}

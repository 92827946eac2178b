//! When a kept-alive connection should end. A Service's ClusterIP balances
//! connections, not requests: kube-proxy picks a pod when a connection
//! opens, and a client that keeps it alive stays on that pod. Two moments
//! need the client to open a new one:
//! - the pod is stopping: its place in the Service is gone, but a kept-alive
//!   connection would go on reaching it until the process exits;
//! - the connection is old: pods added since (a scale-up, a rollout) get
//!   none of the existing clients' traffic, however long it flows.
//!
//! In both cases the next answer on the connection carries
//! `Connection: close`, and hyper closes the connection once it is sent: the
//! request itself is served, and the client's next one opens a connection
//! that kube-proxy balances afresh. (nginx's `keepalive_time` and gRPC's
//! `MaxConnectionAge` do the same.)

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tower::Service;

/// Makes one [`Connection`] per accepted connection (what `axum::serve` takes).
#[derive(Clone)]
pub struct Connections {
    pub app: Router,
    /// Connections older than this are closed after their next answer.
    pub max_age: Duration,
    /// Set once the service is stopping.
    pub draining: Arc<AtomicBool>,
}

impl<'a> Service<IncomingStream<'a, TcpListener>> for Connections {
    type Response = Connection;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Connection, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: IncomingStream<'a, TcpListener>) -> Self::Future {
        std::future::ready(Ok(Connection {
            app: self.app.clone(),
            close_after: Instant::now() + self.max_age,
            draining: self.draining.clone(),
        }))
    }
}

/// The app as one connection sees it.
#[derive(Clone)]
pub struct Connection {
    app: Router,
    close_after: Instant,
    draining: Arc<AtomicBool>,
}

impl Service<Request> for Connection {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        <Router as Service<Request>>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        Answer {
            answer: self.app.call(request),
            close_after: self.close_after,
            draining: self.draining.clone(),
        }
    }
}

/// The app's answer to one request on a [`Connection`], polled in place
/// (no box per request).
pub struct Answer {
    answer: RouteFuture<Infallible>,
    close_after: Instant,
    draining: Arc<AtomicBool>,
}

impl Future for Answer {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = ready!(Pin::new(&mut self.answer).poll(cx))?;
        // Decided when the answer is ready: a stop that began while the
        // request ran closes this connection too.
        if self.draining.load(Ordering::Relaxed) || Instant::now() >= self.close_after {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(response))
    }
}

//! Assembles a service: its API routes plus the shared endpoints (`/healthz`,
//! `/readyz`, `/metrics`, `/openapi.json`), problem+json fallbacks, and the
//! layers every request passes through (panic guard, request id and span,
//! body limit, metrics); then serves it until SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::health::{self, Health};
use crate::metrics::{self, Metrics};
use crate::problem::{self, Problem};
use crate::request_id;

/// What the shared endpoints and layers need.
#[derive(Clone)]
pub struct Kit {
    pub metrics: Arc<Metrics>,
    pub health: Health,
    /// The service's OpenAPI document, rendered once at start.
    pub openapi: Arc<String>,
    pub body_limit: usize,
}

/// The whole application router.
pub fn app(api: Router, kit: &Kit) -> Router {
    let openapi = kit.openapi.clone();
    let body_limit = kit.body_limit;
    api.route(
        "/openapi.json",
        get(move || {
            let doc = openapi.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    doc.to_string(),
                )
            }
        }),
    )
    .route("/healthz", get(health::healthz))
    .route(
        "/readyz",
        get(health::readyz).with_state(kit.health.clone()),
    )
    .route(
        "/metrics",
        get(metrics::serve).with_state(kit.metrics.clone()),
    )
    .fallback(problem::route_not_found)
    .method_not_allowed_fallback(problem::method_not_allowed)
    .layer(axum::middleware::from_fn_with_state(
        Observe {
            metrics: kit.metrics.clone(),
            body_limit,
        },
        observe,
    ))
    .layer(DefaultBodyLimit::max(body_limit))
    .layer(CatchPanicLayer::custom(
        |_panic: Box<dyn std::any::Any + Send>| {
            tracing::error!("handler panicked");
            Problem::internal().into_response()
        },
    ))
}

#[derive(Clone)]
struct Observe {
    metrics: Arc<Metrics>,
    body_limit: usize,
}

/// The one middleware every request passes: assigns its id, runs it in a
/// span, measures it, logs its completion and echoes the id. One layer
/// rather than one per concern keeps the per-request cost down.
async fn observe(State(observe): State<Observe>, mut req: Request, next: Next) -> Response {
    let id = request_id::assign(&mut req);
    let timer = observe.metrics.start(&req);
    let span = tracing::info_span!(
        "request",
        request_id = %id.as_str(),
        method = %req.method(),
        path = %req.uri().path()
    );
    let mut response = next.run(req).instrument(span.clone()).await;
    // Extractors answer an oversized body with our problem; this catches the
    // limit hit by anything else (e.g. a streaming body).
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem(&response) {
        response = Problem::body_too_large(Some(observe.body_limit)).into_response();
    }
    let status = response.status().as_u16();
    let latency = timer.finish(status);
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = latency.as_secs_f64() * 1e3,
            "request completed"
        );
    });
    request_id::echo(&mut response, &id);
    response
}

fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == problem::CONTENT_TYPE.as_bytes())
}

/// How a service stops, the Kubernetes way: on SIGTERM it first reports
/// not-ready and keeps serving for `delay`, while the endpoints controller
/// and kube-proxy take it out of the Service; then it stops accepting and
/// lets in-flight requests finish for at most `drain`.
#[derive(Clone, Copy, Debug)]
pub struct Shutdown {
    pub delay: Duration,
    pub drain: Duration,
}

impl Shutdown {
    pub fn of(config: &crate::config::ServerConfig) -> Self {
        Self {
            delay: config.shutdown_delay,
            drain: config.shutdown_timeout,
        }
    }
}

/// Binds `addr`, logs the address actually bound, and serves `app` until
/// SIGTERM; then shuts down as `shutdown` says.
pub async fn serve(
    app: Router,
    addr: SocketAddr,
    health: &Health,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| bind_error(addr, e))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    serve_on(listener, app, health, shutdown, crate::shutdown::signal()).await
}

/// The io::Error of a failed bind says only "Address already in use": name
/// the address and the variables that choose it.
fn bind_error(addr: SocketAddr, error: std::io::Error) -> std::io::Error {
    let reason = if error.kind() == std::io::ErrorKind::AddrInUse {
        "the address is already in use by another process".to_owned()
    } else {
        error.to_string()
    };
    std::io::Error::new(
        error.kind(),
        format!("cannot listen on {addr}: {reason}; choose another port with PORT (address: HOST)"),
    )
}

/// Serves on an already bound listener until `stop` resolves, then shuts
/// down as `shutdown` says.
pub async fn serve_on(
    listener: TcpListener,
    app: Router,
    health: &Health,
    shutdown: Shutdown,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async {
        let _ = rx.await;
    });
    let mut server = tokio::spawn(server.into_future());
    tokio::select! {
        result = &mut server => return result.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        () = stop => {}
    }
    health.draining.store(true, Ordering::Relaxed);
    tracing::info!(
        delay_ms = shutdown.delay.as_millis() as u64,
        "shutting down: not ready, still serving while endpoints move"
    );
    tokio::select! {
        result = &mut server => return result.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        () = tokio::time::sleep(shutdown.delay) => {}
    }
    tracing::info!(
        drain_ms = shutdown.drain.as_millis() as u64,
        "shutting down: no new connections, draining in-flight requests"
    );
    let _ = tx.send(());
    match tokio::time::timeout(shutdown.drain, &mut server).await {
        Ok(result) => result.unwrap_or_else(|e| Err(std::io::Error::other(e)))?,
        Err(_) => {
            tracing::warn!("drain deadline passed; dropping the remaining requests");
            server.abort();
        }
    }
    if let Some(db) = &health.database {
        db.close();
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_named_with_the_variable_that_moves_it() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let health = Health {
            database: None,
            draining: Default::default(),
        };
        let now = Shutdown {
            delay: Duration::ZERO,
            drain: Duration::ZERO,
        };
        let error = serve(Router::new(), addr, &health, now).await.unwrap_err();
        let message = error.to_string();
        assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
        for needle in [&addr.to_string(), "already in use", "PORT"] {
            assert!(message.contains(needle), "{needle:?} missing: {message}");
        }
    }

    /// After the stop signal: `/readyz` says 503 at once, requests are still
    /// served for the delay (new connections included), then the listener
    /// closes.
    #[tokio::test]
    async fn on_stop_it_reports_not_ready_and_keeps_serving_for_the_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health = Health::default();
        let app = Router::new()
            .route("/work", get(|| async { "done" }))
            .route(
                "/readyz",
                get(crate::health::readyz).with_state(health.clone()),
            );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = Shutdown {
            delay: Duration::from_millis(1500),
            drain: Duration::from_secs(5),
        };
        let serving = tokio::spawn({
            let health = health.clone();
            async move {
                serve_on(listener, app, &health, shutdown, async {
                    let _ = stopped.await;
                })
                .await
            }
        });
        // A fresh connection per request, as a client behind kube-proxy opens.
        let status = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head).await?;
            let code = std::str::from_utf8(&head[9..12]).map_err(std::io::Error::other)?;
            code.parse::<u16>().map_err(std::io::Error::other)
        };
        assert_eq!(status("/readyz").await.unwrap(), 200);
        let stopped_at = std::time::Instant::now();
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(status("/readyz").await.unwrap(), 503, "not ready at once");
        assert_eq!(status("/work").await.unwrap(), 200, "still serving");
        serving.await.unwrap().unwrap();
        assert!(
            stopped_at.elapsed() >= shutdown.delay,
            "served out the delay"
        );
        assert!(status("/work").await.is_err(), "closed after the delay");
    }
}

//! Assembles a service: its API routes plus the shared endpoints (`/healthz`,
//! `/readyz`, `/metrics`, `/openapi.json`), problem+json fallbacks, and the
//! layers every request passes through (see [`crate::observe`]: panic guard,
//! request id, trace and span, metrics; and the body limit); then serves it
//! until SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::connection::Connections;
use crate::health::{self, Health};
use crate::metrics::{self, Metrics};
use crate::observe::ObserveLayer;
use crate::problem;

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
    // One `layer` call: axum wraps each call's layers into one more boxed
    // route, paid on every request.
    .layer(
        tower::ServiceBuilder::new()
            .layer(ObserveLayer {
                metrics: kit.metrics.clone(),
                body_limit,
            })
            .layer(DefaultBodyLimit::max(body_limit)),
    )
}

/// How a service serves connections and stops, the Kubernetes way: on
/// SIGTERM it first reports not-ready and keeps serving for `delay`, while
/// the endpoints controller and kube-proxy take it out of the Service; then
/// it stops accepting and lets in-flight requests finish for at most
/// `drain`. Kept-alive connections are closed after their next answer once
/// it is stopping, or once they are `connection_max_age` old (see
/// [`crate::connection`]).
#[derive(Clone, Copy, Debug)]
pub struct Serving {
    pub delay: Duration,
    pub drain: Duration,
    pub connection_max_age: Duration,
}

impl Serving {
    pub fn of(config: &crate::config::ServerConfig) -> Self {
        Self {
            delay: config.shutdown_delay,
            drain: config.shutdown_timeout,
            connection_max_age: config.connection_max_age,
        }
    }
}

/// Binds `addr`, logs the address actually bound, and serves `app` until
/// SIGTERM; then shuts down as `serving` says.
pub async fn serve(
    app: Router,
    addr: SocketAddr,
    health: &Health,
    serving: Serving,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| bind_error(addr, e))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    serve_on(listener, app, health, serving, crate::shutdown::signal()).await
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
/// down as `serving` says.
pub async fn serve_on(
    listener: TcpListener,
    app: Router,
    health: &Health,
    serving: Serving,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let connections = Connections {
        app,
        max_age: serving.connection_max_age,
        draining: health.draining.clone(),
    };
    let server = axum::serve(listener, connections).with_graceful_shutdown(async {
        let _ = rx.await;
    });
    let mut server = tokio::spawn(server.into_future());
    tokio::select! {
        result = &mut server => return result.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        () = stop => {}
    }
    health.draining.store(true, Ordering::Relaxed);
    tracing::info!(
        delay_ms = serving.delay.as_millis() as u64,
        "shutting down: not ready, still serving while endpoints move"
    );
    tokio::select! {
        result = &mut server => return result.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        () = tokio::time::sleep(serving.delay) => {}
    }
    tracing::info!(
        drain_ms = serving.drain.as_millis() as u64,
        "shutting down: no new connections, draining in-flight requests"
    );
    let _ = tx.send(());
    match tokio::time::timeout(serving.drain, &mut server).await {
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
        let now = Serving {
            delay: Duration::ZERO,
            drain: Duration::ZERO,
            connection_max_age: Duration::from_secs(60),
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
        let shutdown = Serving {
            delay: Duration::from_millis(1500),
            drain: Duration::from_secs(5),
            connection_max_age: Duration::from_secs(60),
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

    /// A connection kept alive from before the stop is told to close with its
    /// next answer, and then closed, so its client reconnects (through
    /// kube-proxy, to a pod that stays) instead of meeting a closed socket later.
    #[tokio::test]
    async fn while_stopping_a_kept_alive_connection_is_closed_after_its_next_answer() {
        let (mut stream, stop, serving) = kept_alive(Duration::from_secs(60)).await;
        let before = exchange(&mut stream).await;
        assert!(before.starts_with("http/1.1 200"), "{before}");
        assert!(!before.contains("connection: close"), "{before}");

        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let during = exchange(&mut stream).await;
        assert!(during.starts_with("http/1.1 200"), "still served: {during}");
        assert!(during.contains("connection: close"), "{during}");
        assert_closed(&mut stream).await;
        serving.await.unwrap().unwrap();
    }

    /// An old connection is closed after its next answer too, so clients
    /// spread over pods that were added after they connected.
    #[tokio::test]
    async fn a_connection_older_than_its_max_age_is_closed_after_its_next_answer() {
        let (mut stream, stop, serving) = kept_alive(Duration::from_millis(300)).await;
        let young = exchange(&mut stream).await;
        assert!(!young.contains("connection: close"), "{young}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let old = exchange(&mut stream).await;
        assert!(old.starts_with("http/1.1 200"), "served: {old}");
        assert!(old.contains("connection: close"), "{old}");
        assert_closed(&mut stream).await;
        // A new connection is young again.
        let addr = stream.peer_addr().unwrap();
        let mut fresh = tokio::net::TcpStream::connect(addr).await.unwrap();
        let answer = exchange(&mut fresh).await;
        assert!(!answer.contains("connection: close"), "{answer}");
        stop.send(()).unwrap();
        serving.await.unwrap().unwrap();
    }

    /// The whole app (its layers and [`serve_on`]) on a free port, and one
    /// connection to it.
    async fn kept_alive(
        max_age: Duration,
    ) -> (
        tokio::net::TcpStream,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let kit = Kit {
            metrics: Metrics::new(|_| {}),
            health: Health::default(),
            openapi: Arc::new("{}".into()),
            body_limit: 1024,
        };
        let api = Router::new().route("/work", get(|| async { "done" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = Serving {
            delay: Duration::from_secs(2),
            drain: Duration::from_secs(2),
            connection_max_age: max_age,
        };
        let app = app(api, &kit);
        let server = tokio::spawn(async move {
            serve_on(listener, app, &kit.health, serving, async {
                let _ = stopped.await;
            })
            .await
        });
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        (stream, stop, server)
    }

    /// One keep-alive `GET /work` and its whole answer (headers, then the
    /// 4-byte body), lowercased.
    async fn exchange(stream: &mut tokio::net::TcpStream) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /work HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\ndone") {
            let read = stream.read(&mut byte).await.unwrap();
            let so_far = String::from_utf8_lossy(&answer);
            assert_eq!(read, 1, "closed mid-answer: {so_far:?}");
            answer.push(byte[0]);
        }
        String::from_utf8(answer).unwrap().to_ascii_lowercase()
    }

    /// The server closes the connection, sending nothing more.
    async fn assert_closed(stream: &mut tokio::net::TcpStream) {
        use tokio::io::AsyncReadExt;
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection after that answer")
            .unwrap();
        assert_eq!(read, 0, "nothing after the answer");
    }
}

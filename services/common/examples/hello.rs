//! The benchmark's ceiling: a bare axum (hyper) server with no middleware,
//! no store and no JSON work, answering `GET /hello` and `POST /hello`.
//! Whatever the services reach is compared with what this reaches under the
//! same load on the same core.

use axum::Router;
use axum::body::Bytes;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8090);
    let app = Router::new().route(
        "/hello",
        get(|| async { "hello" }).post(|body: Bytes| async move { body.len().to_string() }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await
}

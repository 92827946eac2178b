//! One HTTP exchange with the item service: a request sent over a pooled
//! keep-alive connection and its whole answer read, under a timeout.
//!
//! Built on hyper's pooled client directly rather than a general-purpose
//! client: every call goes to the same host with a path we build, so the
//! base URL is split into scheme, authority and path once, and an attempt
//! costs a path string, a header map and the exchange itself. No URL
//! parsing, redirect bookkeeping, proxy checks or copied header maps per
//! call: under load the order service makes three calls per order on the
//! same CPU as the item service, and every microsecond of them counts.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Why an exchange gave no answer.
#[derive(Debug)]
pub enum TransportError {
    /// No answer within the timeout.
    Timeout,
    /// No connection could be made.
    Connect,
    /// The connection failed during the exchange.
    Other(String),
}

/// The headers every call carries on behalf of the request being handled.
pub struct CallHeaders<'a> {
    pub request_id: &'a HeaderValue,
    pub traceparent: &'a HeaderValue,
}

/// The item service's address and a pool of keep-alive connections to it.
pub struct Transport {
    http: Client<HttpConnector, Full<Bytes>>,
    scheme: Scheme,
    authority: Authority,
    /// The base URL's path, ending in `/`.
    base_path: String,
    timeout: Duration,
}

impl Transport {
    /// `base_url`: `http://host[:port][/path/]`; `timeout` bounds connecting
    /// and every exchange.
    pub fn new(base_url: &reqwest::Url, timeout: Duration) -> Result<Self, String> {
        let base: Uri = base_url
            .as_str()
            .parse()
            .map_err(|e| format!("ITEM_URL {base_url}: {e}"))?;
        let (Some(scheme), Some(authority)) = (base.scheme(), base.authority()) else {
            return Err(format!("ITEM_URL {base_url}: expected http://host[:port]"));
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(TokioTimer::new())
            .build(connector);
        let mut base_path = base.path().to_owned();
        if !base_path.ends_with('/') {
            base_path.push('/');
        }
        Ok(Self {
            http,
            scheme: scheme.clone(),
            authority: authority.clone(),
            base_path,
            timeout,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The URI of `path` (relative to the base URL; our own ASCII).
    pub fn uri(&self, path: std::fmt::Arguments<'_>) -> Result<Uri, String> {
        use std::fmt::Write;
        let mut full = String::with_capacity(self.base_path.len() + 64);
        full.push_str(&self.base_path);
        let _ = full.write_fmt(path);
        let path = PathAndQuery::try_from(full).map_err(|e| format!("invalid path: {e}"))?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| e.to_string())
    }

    /// Sends one request (a JSON `body` when given) and reads its answer.
    pub async fn exchange(
        &self,
        method: Method,
        uri: Uri,
        body: Option<Bytes>,
        headers: &CallHeaders<'_>,
    ) -> Result<(StatusCode, Bytes), TransportError> {
        let json = body.is_some();
        let mut request = Request::new(Full::new(body.unwrap_or_default()));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let map = request.headers_mut();
        map.insert(
            berth_service_kit::request_id::HEADER,
            headers.request_id.clone(),
        );
        map.insert(
            berth_service_kit::trace::HEADER,
            headers.traceparent.clone(),
        );
        if json {
            map.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                if e.is_connect() {
                    TransportError::Connect
                } else {
                    TransportError::Other(e.to_string())
                }
            })?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| TransportError::Other(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout)?
    }
}

//! [`Api`]: a service's HTTP API as a test calls it, in process or over
//! TCP, with the same calls and the same [`Reply`].

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts that the reply is the problem `slug`, with `status`.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, slug: &str) {
        assert_eq!(self.status, status, "{:?}", self.json());
        assert_eq!(self.problem_slug(), slug);
    }

    /// The problem's type slug, for problem+json replies.
    pub fn problem_slug(&self) -> String {
        self.json()["type"]
            .as_str()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A service's HTTP API as a test calls it.
#[derive(Clone)]
pub enum Api {
    /// The service's router, called without a socket.
    InProcess(Router),
    /// A service listening at this base URL (`http://127.0.0.1:port`).
    Tcp { base: String, http: reqwest::Client },
}

impl Api {
    pub fn in_process(router: Router) -> Self {
        Self::InProcess(router)
    }

    pub fn at(base: impl Into<String>) -> Self {
        Self::Tcp {
            base: base.into(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        match self {
            Self::InProcess(router) => call_router(router, method, uri, headers, body).await,
            Self::Tcp { base, http } => {
                let mut request = http.request(method, format!("{base}{uri}"));
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                if let Some(body) = body {
                    request = request.body(body);
                }
                let response = request.send().await.expect("the service answers");
                Reply {
                    status: response.status(),
                    headers: response.headers().clone(),
                    body: response.bytes().await.expect("body").to_vec(),
                }
            }
        }
    }

    /// A JSON request (`content-type: application/json`).
    pub async fn json(&self, method: Method, uri: &str, body: &serde_json::Value) -> Reply {
        self.json_with_headers(method, uri, &[], body).await
    }

    /// A JSON request with `headers` besides its content type.
    pub async fn json_with_headers(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Reply {
        let mut headers = headers.to_vec();
        headers.push(("content-type", "application/json"));
        self.send(method, uri, &headers, Some(body.to_string().into_bytes()))
            .await
    }

    /// A request whose body is `body` byte for byte, sent as
    /// `content_type`: for bodies a JSON request cannot carry (malformed
    /// JSON, another type).
    pub async fn raw(&self, method: Method, uri: &str, content_type: &str, body: &[u8]) -> Reply {
        self.send(
            method,
            uri,
            &[("content-type", content_type)],
            Some(body.to_vec()),
        )
        .await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(Method::GET, uri, &[], None).await
    }

    /// The page after `page` of the list at `uri` (with its query, such as
    /// `?limit=2`), following its `next_cursor` as the kit's paging does.
    pub async fn next_page(&self, uri: &str, page: &serde_json::Value) -> serde_json::Value {
        let cursor = page["next_cursor"].as_str().expect("a next page");
        self.get(&format!("{uri}&cursor={cursor}")).await.json()
    }

    /// A POST without a body: an action on the resource, such as a cancel.
    pub async fn post(&self, uri: &str) -> Reply {
        self.send(Method::POST, uri, &[], None).await
    }

    /// A DELETE without conditions.
    pub async fn delete(&self, uri: &str) -> Reply {
        self.send(Method::DELETE, uri, &[], None).await
    }
}

/// Asserts the status of a plain GET of each URI.
pub async fn assert_get_statuses(api: &Api, expected: &[(&str, StatusCode)]) {
    for (uri, status) in expected {
        assert_eq!(api.get(uri).await.status, *status, "GET {uri}");
    }
}

async fn call_router(
    router: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Reply {
    use tower::ServiceExt;
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("body")
        .to_vec();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

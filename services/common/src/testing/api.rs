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
        self.send(
            method,
            uri,
            &[("content-type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(Method::GET, uri, &[], None).await
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

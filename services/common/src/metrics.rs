//! Prometheus metrics: the HTTP series every service has (requests by route,
//! method and status; latency histogram; requests in flight) plus whatever a
//! service registers itself, all served as text at `/metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The registry and the HTTP metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    in_flight: Gauge,
}

impl Metrics {
    /// Creates the HTTP metrics; `register` adds the service's own.
    pub fn new(register: impl FnOnce(&mut Registry)) -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let duration: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16)));
        let in_flight = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests handled, by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, by route and method",
            duration.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being handled now",
            in_flight.clone(),
        );
        register(&mut registry);
        Arc::new(Self {
            registry,
            requests,
            duration,
            in_flight,
        })
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Metrics {
    /// Starts measuring a request, under its route template (never the raw
    /// path, which would make one series per id).
    pub fn start(self: &Arc<Self>, req: &Request) -> RequestTimer {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "unmatched".to_owned());
        self.in_flight.inc();
        RequestTimer {
            metrics: self.clone(),
            route,
            method: method_label(req.method()),
            started: Instant::now(),
        }
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// One request being measured; the in-flight gauge goes down when it is
/// dropped, also when the request future is cancelled.
pub struct RequestTimer {
    metrics: Arc<Metrics>,
    route: String,
    method: &'static str,
    started: Instant,
}

impl RequestTimer {
    /// Records the outcome; returns the latency.
    pub fn finish(self, status: u16) -> std::time::Duration {
        let elapsed = self.started.elapsed();
        let labels = RouteLabels {
            route: self.route.clone(),
            method: self.method,
        };
        self.metrics
            .duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        let labels = RequestLabels {
            route: labels.route,
            method: self.method,
            status,
        };
        self.metrics.requests.get_or_create(&labels).inc();
        elapsed
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

/// `GET /metrics`
pub async fn serve(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        metrics.encode(),
    )
}

//! Prometheus metrics: the HTTP series every service has (requests by route,
//! method and status; latency histogram; requests in flight) plus whatever a
//! service registers itself, all served as text at `/metrics`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
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
    /// Each route's series, found once and kept, so that measuring a request
    /// is one lookup by its route template and allocates no labels.
    routes: RwLock<HashMap<Box<str>, Arc<RouteSeries>>>,
}

/// Handles to one route's series (the family's own, shared), by method.
struct RouteSeries {
    route: Box<str>,
    by_method: [OnceLock<MethodSeries>; METHODS.len()],
}

struct MethodSeries {
    duration: Histogram,
    /// A route answers with a handful of statuses: a short list.
    requests: RwLock<Vec<(u16, Counter)>>,
}

/// The method labels; anything else is `OTHER`.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "OTHER",
];

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
            routes: RwLock::default(),
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
            .map_or("unmatched", MatchedPath::as_str);
        self.in_flight.inc();
        RequestTimer {
            metrics: self.clone(),
            series: self.route_series(route),
            method: method_index(req.method()),
            started: Instant::now(),
        }
    }

    fn route_series(&self, route: &str) -> Arc<RouteSeries> {
        let known = self.routes.read().unwrap_or_else(|e| e.into_inner());
        if let Some(series) = known.get(route) {
            return series.clone();
        }
        drop(known);
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        routes
            .entry(route.into())
            .or_insert_with(|| {
                Arc::new(RouteSeries {
                    route: route.into(),
                    by_method: Default::default(),
                })
            })
            .clone()
    }

    fn method_series<'a>(&self, series: &'a RouteSeries, method: usize) -> &'a MethodSeries {
        series.by_method[method].get_or_init(|| MethodSeries {
            duration: self
                .duration
                .get_or_create(&RouteLabels {
                    route: series.route.to_string(),
                    method: METHODS[method],
                })
                .clone(),
            requests: RwLock::default(),
        })
    }
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// One request being measured; the in-flight gauge goes down when it is
/// dropped, also when the request future is cancelled.
pub struct RequestTimer {
    metrics: Arc<Metrics>,
    series: Arc<RouteSeries>,
    method: usize,
    started: Instant,
}

impl RequestTimer {
    /// Records the outcome; returns the latency.
    pub fn finish(self, status: u16) -> std::time::Duration {
        let elapsed = self.started.elapsed();
        let series = self.metrics.method_series(&self.series, self.method);
        series.duration.observe(elapsed.as_secs_f64());
        let counted = series.requests.read().unwrap_or_else(|e| e.into_inner());
        if let Some((_, counter)) = counted.iter().find(|(s, _)| *s == status) {
            counter.inc();
            return elapsed;
        }
        drop(counted);
        let counter = self
            .metrics
            .requests
            .get_or_create(&RequestLabels {
                route: self.series.route.to_string(),
                method: METHODS[self.method],
                status,
            })
            .clone();
        counter.inc();
        let mut counted = series.requests.write().unwrap_or_else(|e| e.into_inner());
        if !counted.iter().any(|(s, _)| *s == status) {
            counted.push((status, counter));
        }
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

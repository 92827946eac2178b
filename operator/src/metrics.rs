//! Prometheus metrics of the operator.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::microservice_metrics::MicroServiceGauges;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub reason: String,
    pub kind: String,
    pub verb: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: String,
    pub verb: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// Every metric the operator exports, registered once.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Counter,
    pub failures: Family<FailureLabels, Counter>,
    pub duration: Histogram,
    pub managed: Gauge,
    /// Writes to the API server by kind and verb (apply, delete, status): a quiet
    /// cluster shows none, which is what the steady-state checks count.
    pub writes: Family<WriteLabels, Counter>,
    /// Children found already up to date, so no apply was sent.
    pub unchanged: Family<KindLabels, Counter>,
    /// Every request sent to the API server (reads, watches and writes), by
    /// verb and resource: counted by the client layer in `client_gate`.
    pub requests: Family<RequestLabels, Counter>,
    /// 1 while this replica holds the leader lease (always 1 without election).
    pub leader: Gauge,
    /// Reconciles running now. kube-runtime keeps its queue to itself, so
    /// this against `--concurrency` is the saturation signal.
    pub in_flight: Gauge,
    /// One series per MicroService, refreshed from the cache at each scrape.
    pub microservices: MicroServiceGauges,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("berth");
        let reconciles = Counter::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let managed = Gauge::default();
        let writes = Family::<WriteLabels, Counter>::default();
        let unchanged = Family::<KindLabels, Counter>::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let leader = Gauge::default();
        let in_flight = Gauge::default();
        let microservices = MicroServiceGauges::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by reason and the kind and verb of the request that failed",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            duration.clone(),
        );
        registry.register(
            "managed_microservices",
            "MicroServices in the operator's cache",
            managed.clone(),
        );
        registry.register(
            "api_writes",
            "Writes sent to the API server, by kind and verb",
            writes.clone(),
        );
        registry.register(
            "children_unchanged",
            "Children found up to date, so not applied",
            unchanged.clone(),
        );
        registry.register(
            "api_requests",
            "Requests sent to the API server, by verb and resource",
            requests.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now (at most --concurrency)",
            in_flight.clone(),
        );
        microservices.register(&mut registry);
        Self {
            registry,
            reconciles,
            failures,
            duration,
            managed,
            writes,
            unchanged,
            requests,
            leader,
            in_flight,
            microservices,
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn failed(&self, labels: crate::error::FailureLabels<'_>) {
        self.failures
            .get_or_create(&FailureLabels {
                reason: labels.reason.into(),
                kind: labels.kind.into(),
                verb: labels.verb.into(),
            })
            .inc();
    }

    pub fn wrote(&self, kind: &str, verb: &str) {
        self.writes
            .get_or_create(&WriteLabels {
                kind: kind.into(),
                verb: verb.into(),
            })
            .inc();
    }

    pub fn requested(&self, verb: &str, resource: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.into(),
                resource: resource.into(),
            })
            .inc();
    }

    pub fn unchanged(&self, kind: &str) {
        self.unchanged
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

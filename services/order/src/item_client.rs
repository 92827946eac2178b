//! The order service's client for the item service, and the fault tolerance
//! around it:
//!
//! - every attempt has a timeout;
//! - failed attempts are retried a bounded number of times with exponential
//!   backoff and jitter (`backon`). Every call this client makes is safe to
//!   repeat: `GET` is safe, and reserve (`PUT` under a key), confirm and
//!   release are idempotent by the item service's contract;
//! - a circuit breaker (`failsafe`) counts consecutive failures (transport
//!   errors, timeouts, 5xx); once open, calls fail at once without touching
//!   the network, and after a pause one trial call decides whether it closes.
//!
//! 4xx answers are the item service working correctly, so they count as
//! successes for the breaker and are never retried.
//!
//! A call's fixed parts are made once: its URI and JSON body before the
//! first attempt, the caller's `x-request-id` and `traceparent` once per
//! request handled (see [`Caller`]); an attempt only sends (see
//! [`transport`]).

mod caller;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri};
use backon::{ExponentialBuilder, Retryable};
use berth_service_kit::Problem;
use failsafe::backoff::Constant;
use failsafe::failure_policy::ConsecutiveFailures;
use failsafe::{Config as BreakerConfig, Instrument, StateMachine};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use caller::Caller;
use transport::{Transport, TransportError};

/// How calls to the item service behave.
#[derive(Debug, Clone)]
pub struct ItemClientConfig {
    /// `ITEM_URL`, e.g. `http://item:8080`.
    pub base_url: reqwest::Url,
    /// `ITEM_TIMEOUT_MS`: per attempt.
    pub timeout: Duration,
    /// `ITEM_RETRIES`: extra attempts after the first.
    pub retries: usize,
    /// `ITEM_RETRY_BASE_MS` / `ITEM_RETRY_MAX_MS`: backoff bounds.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// `ITEM_BREAKER_FAILURES`: consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// `ITEM_BREAKER_OPEN_MS`: how long it stays open before a trial call.
    pub breaker_open: Duration,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: &'static str,
    outcome: &'static str,
}

/// Breaker state as a number for the gauge: 0 closed, 1 open, 2 half-open.
#[derive(Clone)]
struct BreakerGauge(Gauge);

impl Instrument for BreakerGauge {
    fn on_call_rejected(&self) {}
    fn on_open(&self) {
        self.0.set(1);
        tracing::warn!("item-service circuit breaker opened");
    }
    fn on_half_open(&self) {
        self.0.set(2);
        tracing::info!("item-service circuit breaker half-open: trying a call");
    }
    fn on_closed(&self) {
        if self.0.get() != 0 {
            tracing::info!("item-service circuit breaker closed");
        }
        self.0.set(0);
    }
}

/// The client's metrics, registered in the service's registry.
#[derive(Clone, Default)]
pub struct ItemMetrics {
    calls: Family<CallLabels, Counter>,
    breaker_state: Gauge,
}

impl ItemMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "item_calls",
            "Calls (attempts) to the item service, by operation and outcome",
            self.calls.clone(),
        );
        registry.register(
            "item_breaker_state",
            "Item service circuit breaker: 0 closed, 1 open, 2 half-open",
            self.breaker_state.clone(),
        );
    }
}

/// Why a call to the item service did not give an answer we can use.
#[derive(Debug, Clone)]
pub enum ItemError {
    /// The breaker is open: nothing was sent.
    BreakerOpen,
    /// No usable answer after every attempt (down, timing out, 5xx).
    Unavailable(String),
    /// A 4xx answer with the item service's problem body.
    Rejected(Problem),
    /// An answer that is not what the item API promises.
    Unexpected(String),
}

impl ItemError {
    /// The problem our client sees.
    pub fn into_problem(self, breaker_open: Duration) -> Problem {
        match self {
            ItemError::BreakerOpen => Problem::unavailable(
                "item-service-unavailable",
                "The item service is unavailable",
                "the item service failed repeatedly, so calls to it are paused (circuit breaker open); retry shortly",
            )
            .with_retry_after(breaker_open.as_secs().max(1)),
            ItemError::Unavailable(why) => {
                Problem::unavailable("item-service-unavailable", "The item service is unavailable", why)
            }
            ItemError::Rejected(problem) => Problem::new(StatusCode::BAD_GATEWAY, "item-service-error", "The item service refused a call")
                .with_detail(problem.detail.unwrap_or(problem.title)),
            ItemError::Unexpected(why) => {
                Problem::new(StatusCode::BAD_GATEWAY, "item-service-error", "The item service answered unexpectedly").with_detail(why)
            }
        }
    }
}

/// What an attempt did, for the retry policy.
enum Attempt {
    Retryable(String),
    Final(ItemError),
}

/// The fields of an item the order service uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ItemView {
    pub id: Uuid,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
}

/// The fields of a reservation the order service uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ReservationView {
    pub key: String,
    pub status: String,
}

/// The body of a reserve.
#[derive(Serialize)]
struct ReserveBody {
    item_id: Uuid,
    quantity: i64,
}

pub struct ItemClient {
    transport: Transport,
    config: ItemClientConfig,
    breaker: StateMachine<ConsecutiveFailures<Constant>, BreakerGauge>,
    metrics: ItemMetrics,
}

impl ItemClient {
    pub fn new(config: ItemClientConfig, metrics: ItemMetrics) -> Result<Arc<Self>, String> {
        let transport = Transport::new(&config.base_url, config.timeout)?;
        let policy = failsafe::failure_policy::consecutive_failures(
            config.breaker_failures,
            failsafe::backoff::constant(config.breaker_open),
        );
        let breaker = BreakerConfig::new()
            .failure_policy(policy)
            .instrument(BreakerGauge(metrics.breaker_state.clone()))
            .build();
        Ok(Arc::new(Self {
            transport,
            config,
            breaker,
            metrics,
        }))
    }

    pub fn breaker_open_for(&self) -> Duration {
        self.config.breaker_open
    }

    pub async fn get_item(&self, id: Uuid, caller: &Caller) -> Result<Option<ItemView>, ItemError> {
        let uri = self.transport.uri(format_args!("v1/items/{id}"));
        match self
            .call("get_item", Method::GET, uri, None, caller)
            .await?
        {
            (StatusCode::OK, body) => parse(&body).map(Some),
            (StatusCode::NOT_FOUND, _) => Ok(None),
            (status, body) => Err(rejected(status, &body)),
        }
    }

    pub async fn reserve(
        &self,
        key: &str,
        item_id: Uuid,
        quantity: i64,
        caller: &Caller,
    ) -> Result<ReservationView, ItemError> {
        let body = serde_json::to_vec(&ReserveBody { item_id, quantity })
            .map_err(|e| ItemError::Unexpected(e.to_string()))?;
        let uri = self.transport.uri(format_args!("v1/reservations/{key}"));
        match self
            .call("reserve", Method::PUT, uri, Some(Bytes::from(body)), caller)
            .await?
        {
            (StatusCode::OK | StatusCode::CREATED, body) => parse(&body),
            (status, body) => Err(rejected(status, &body)),
        }
    }

    pub async fn confirm(&self, key: &str, caller: &Caller) -> Result<ReservationView, ItemError> {
        let uri = self
            .transport
            .uri(format_args!("v1/reservations/{key}/confirm"));
        match self
            .call("confirm", Method::POST, uri, None, caller)
            .await?
        {
            (StatusCode::OK, body) => parse(&body),
            (status, body) => Err(rejected(status, &body)),
        }
    }

    pub async fn release(&self, key: &str, caller: &Caller) -> Result<ReservationView, ItemError> {
        let uri = self
            .transport
            .uri(format_args!("v1/reservations/{key}/release"));
        match self
            .call("release", Method::POST, uri, None, caller)
            .await?
        {
            (StatusCode::OK, body) => parse(&body),
            (status, body) => Err(rejected(status, &body)),
        }
    }

    /// One logical call: attempts under the breaker, retried with backoff.
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        uri: Result<Uri, String>,
        body: Option<Bytes>,
        caller: &Caller,
    ) -> Result<(StatusCode, Bytes), ItemError> {
        let uri = uri.map_err(ItemError::Unexpected)?;
        let attempt = || self.attempt(operation, method.clone(), uri.clone(), body.clone(), caller);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.retry_base)
            .with_max_delay(self.config.retry_max)
            .with_max_times(self.config.retries)
            .with_jitter();
        attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, Attempt::Retryable(_)))
            .notify(|e, delay| {
                if let Attempt::Retryable(why) = e {
                    tracing::debug!(
                        operation,
                        why,
                        delay_ms = delay.as_millis() as u64,
                        "retrying item-service call"
                    );
                }
            })
            .await
            .map_err(|e| match e {
                Attempt::Retryable(why) => ItemError::Unavailable(why),
                Attempt::Final(e) => e,
            })
    }

    async fn attempt(
        &self,
        operation: &'static str,
        method: Method,
        uri: Uri,
        body: Option<Bytes>,
        caller: &Caller,
    ) -> Result<(StatusCode, Bytes), Attempt> {
        let outcome = |outcome: &'static str| {
            self.metrics
                .calls
                .get_or_create(&CallLabels { operation, outcome })
                .inc()
        };
        if !self.breaker.is_call_permitted() {
            outcome("breaker_open");
            return Err(Attempt::Final(ItemError::BreakerOpen));
        }
        match self
            .transport
            .exchange(method, uri, body, &caller.headers())
            .await
        {
            Ok((status, _)) if status.is_server_error() => {
                self.breaker.on_error();
                outcome("server_error");
                Err(Attempt::Retryable(format!(
                    "the item service answered {status}"
                )))
            }
            Ok((status, bytes)) => {
                self.breaker.on_success();
                outcome(if status.is_client_error() {
                    "client_error"
                } else {
                    "success"
                });
                Ok((status, bytes))
            }
            Err(e) => {
                self.breaker.on_error();
                let (label, why) = match e {
                    TransportError::Timeout => (
                        "timeout",
                        format!(
                            "the item service did not answer within {} ms",
                            self.transport.timeout().as_millis()
                        ),
                    ),
                    TransportError::Connect => (
                        "connect_error",
                        "the item service cannot be reached".to_owned(),
                    ),
                    TransportError::Other(e) => (
                        "transport_error",
                        format!("the call to the item service failed: {e}"),
                    ),
                };
                outcome(label);
                Err(Attempt::Retryable(why))
            }
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ItemError> {
    serde_json::from_slice(body)
        .map_err(|e| ItemError::Unexpected(format!("unreadable item-service answer: {e}")))
}

fn rejected(status: StatusCode, body: &[u8]) -> ItemError {
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) => ItemError::Rejected(problem),
        Err(_) => ItemError::Unexpected(format!("the item service answered {status}")),
    }
}

//! The order service: Berth's reference order service.
//!
//! It places orders against the item service over HTTP: prices each line,
//! reserves and confirms its stock, and compensates when anything fails
//! (see [`saga`]). Calls to the item service have a timeout, bounded retries
//! and a circuit breaker (see [`item_client`]). Orders live in memory by
//! default or in PostgreSQL when `DATABASE_URL` is set.

pub mod item_client;
pub mod model;
pub mod openapi;
pub mod routes;
pub mod saga;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use berth_service_kit::config::{ConfigError, Env, ServerConfig};
use berth_service_kit::health::Health;
use berth_service_kit::metrics::Metrics;
use berth_service_kit::periodic::Periodic;
use berth_service_kit::server::{self, Kit};
use berth_service_kit::start::{self, BoxError, ServiceConfig};

use crate::item_client::{ItemClient, ItemClientConfig, ItemMetrics};
use crate::saga::Saga;
use crate::store::Store;

/// Everything the order service reads from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub item: ItemClientConfig,
    /// `ORDER_DEADLINE_MS`, default 10 s: budget for placing one order.
    pub deadline: Duration,
    /// `RECONCILE_INTERVAL_MS`, default 10 s.
    pub reconcile_interval: Duration,
    /// `RECONCILE_AFTER_MS`, default 60 s: a pending order older than this
    /// was abandoned by a crashed request. Keep it well above the deadline.
    pub reconcile_after: Duration,
}

impl ServiceConfig for Config {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let raw_url = env.raw("ITEM_URL").ok_or_else(|| {
            ConfigError::new(
                "ITEM_URL",
                "",
                "is required: the item service's base URL, e.g. http://127.0.0.1:8081",
            )
        })?;
        let mut base_url = reqwest::Url::parse(&raw_url)
            .map_err(|e| ConfigError::new("ITEM_URL", &raw_url, e.to_string()))?;
        if base_url.scheme() != "http" || base_url.host().is_none() {
            return Err(ConfigError::new(
                "ITEM_URL",
                &raw_url,
                "expected http://host[:port][/path]",
            ));
        }
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        let deadline = env.millis("ORDER_DEADLINE_MS", 10_000, 100..=300_000)?;
        let reconcile_after = env.millis("RECONCILE_AFTER_MS", 60_000, 1_000..=86_400_000)?;
        if reconcile_after <= deadline {
            return Err(ConfigError::new(
                "RECONCILE_AFTER_MS",
                &reconcile_after.as_millis().to_string(),
                "must be greater than ORDER_DEADLINE_MS, or live orders would be rolled back",
            ));
        }
        let retry_base = env.millis("ITEM_RETRY_BASE_MS", 50, 1..=10_000)?;
        let retry_max = env.millis("ITEM_RETRY_MAX_MS", 500, 1..=60_000)?;
        if retry_max < retry_base {
            return Err(ConfigError::new(
                "ITEM_RETRY_MAX_MS",
                &retry_max.as_millis().to_string(),
                "must be at least ITEM_RETRY_BASE_MS",
            ));
        }
        Ok(Self {
            server: ServerConfig::from_env(env, "orders")?,
            item: ItemClientConfig {
                base_url,
                timeout: env.millis("ITEM_TIMEOUT_MS", 1_000, 10..=60_000)?,
                retries: env.number_in("ITEM_RETRIES", 2, 0..=10)?,
                retry_base,
                retry_max,
                breaker_failures: env.number_in("ITEM_BREAKER_FAILURES", 5, 1..=1_000)?,
                breaker_open: env.millis("ITEM_BREAKER_OPEN_MS", 5_000, 10..=600_000)?,
            },
            deadline,
            reconcile_interval: env.millis("RECONCILE_INTERVAL_MS", 10_000, 100..=3_600_000)?,
            reconcile_after,
        })
    }

    fn server(&self) -> &ServerConfig {
        &self.server
    }
}

/// A built service, ready to serve.
pub struct Service {
    pub router: Router,
    pub health: Health,
    pub saga: Saga,
    _reconciler: Periodic,
}

/// Opens the store (migrating PostgreSQL), starts the reconciler and
/// assembles the router.
pub async fn build(config: &Config) -> Result<Service, BoxError> {
    let (store, health) = Store::open(&config.server).await?;
    let item_metrics = ItemMetrics::default();
    let metrics = Metrics::new(|registry| item_metrics.register(registry));
    let items = ItemClient::new(config.item.clone(), item_metrics)?;
    let saga = Saga {
        store: Arc::new(store),
        items,
        deadline: config.deadline,
    };
    let kit = Kit {
        metrics,
        health: health.clone(),
        openapi: Arc::new(openapi::document()),
        body_limit: config.server.body_limit,
    };
    let router = server::app(routes::router(saga.clone()), &kit);
    let reconciler = Periodic::spawn(config.reconcile_interval, {
        let saga = saga.clone();
        let after = config.reconcile_after;
        move || reconcile(saga.clone(), after)
    });
    Ok(Service {
        router,
        health,
        saga,
        _reconciler: reconciler,
    })
}

/// Finishes abandoned orders.
async fn reconcile(saga: Saga, after: Duration) {
    match saga.reconcile(after).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(orders = n, "reconciled unfinished orders"),
        Err(e) => tracing::warn!(error = %e, "reconciling failed; will retry"),
    }
}

/// Runs until SIGTERM.
pub async fn run(config: Config) -> Result<(), BoxError> {
    let service = build(&config).await?;
    tracing::info!(
        store = service.saga.store.kind(),
        item_url = %config.item.base_url,
        "order-service starting"
    );
    start::serve(&config.server, service.router.clone(), &service.health).await?;
    Ok(())
}

//! The item service: Berth's reference catalogue and stock service.
//!
//! Items have a price in exact minor units, a stock count and a version for
//! optimistic concurrency. Orders take stock through reservations: held for a
//! TTL, then confirmed or released, idempotent under the caller's key. Data
//! lives in memory by default or in PostgreSQL when `DATABASE_URL` is set.

pub mod model;
pub mod openapi;
pub mod routes;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use berth_service_kit::config::{ConfigError, Env, ServerConfig};
use berth_service_kit::health::Health;
use berth_service_kit::metrics::Metrics;
use berth_service_kit::periodic::Periodic;
use berth_service_kit::postgres::DbError;
use berth_service_kit::server::{self, Kit};
use berth_service_kit::start::{self, BoxError, ServiceConfig};

use crate::routes::AppState;
use crate::store::Store;

/// Everything the item service reads from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    /// `RESERVATION_TTL_MS`, default 10 minutes.
    pub reservation_ttl: Duration,
    /// `RESERVATION_SWEEP_MS`, default 1 s: how often expired holds are freed.
    pub sweep_interval: Duration,
}

impl ServiceConfig for Config {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, "item")?,
            reservation_ttl: env.millis("RESERVATION_TTL_MS", 600_000, 100..=86_400_000)?,
            sweep_interval: env.millis("RESERVATION_SWEEP_MS", 1_000, 10..=600_000)?,
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
    pub store: Arc<Store>,
    _sweeper: Periodic,
}

/// Opens the store (migrating PostgreSQL), starts the expiry sweeper and
/// assembles the router.
pub async fn build(config: &Config) -> Result<Service, DbError> {
    let (store, health) = Store::open(&config.server).await?;
    let store = Arc::new(store);
    let kit = Kit {
        metrics: Metrics::new(|_| {}),
        health: health.clone(),
        openapi: Arc::new(openapi::document()),
        body_limit: config.server.body_limit,
    };
    let state = AppState {
        store: store.clone(),
        reservation_ttl: config.reservation_ttl,
    };
    let router = server::app(routes::router(state), &kit);
    let sweeper = Periodic::spawn(config.sweep_interval, {
        let store = store.clone();
        move || sweep(store.clone())
    });
    Ok(Service {
        router,
        health,
        store,
        _sweeper: sweeper,
    })
}

/// Frees expired holds.
async fn sweep(store: Arc<Store>) {
    match store.expire_due().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(expired = n, "expired held reservations"),
        Err(e) => tracing::warn!(error = %e, "expiring reservations failed; will retry"),
    }
}

/// Runs until SIGTERM.
pub async fn run(config: Config) -> Result<(), BoxError> {
    let service = build(&config).await?;
    tracing::info!(
        store = service.store.kind(),
        ttl_ms = config.reservation_ttl.as_millis() as u64,
        "item-service starting"
    );
    start::serve(&config.server, service.router.clone(), &service.health).await?;
    Ok(())
}

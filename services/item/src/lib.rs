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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use berth_service_kit::config::{ConfigError, Env, ServerConfig};
use berth_service_kit::health::Health;
use berth_service_kit::metrics::Metrics;
use berth_service_kit::postgres::{Database, DbError};
use berth_service_kit::server::{self, Kit};

use crate::routes::AppState;
use crate::store::{MemoryStore, PgStore, Store};

/// Everything the item service reads from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    /// `RESERVATION_TTL_MS`, default 10 minutes.
    pub reservation_ttl: Duration,
    /// `RESERVATION_SWEEP_MS`, default 1 s: how often expired holds are freed.
    pub sweep_interval: Duration,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, "item")?,
            reservation_ttl: env.millis("RESERVATION_TTL_MS", 600_000, 100..=86_400_000)?,
            sweep_interval: env.millis("RESERVATION_SWEEP_MS", 1_000, 10..=600_000)?,
        })
    }
}

/// A built service, ready to serve.
pub struct Service {
    pub router: Router,
    pub health: Health,
    pub store: Arc<Store>,
    sweeper: tokio::task::JoinHandle<()>,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.sweeper.abort();
    }
}

/// Opens the store (migrating PostgreSQL), starts the expiry sweeper and
/// assembles the router.
pub async fn build(config: &Config) -> Result<Service, DbError> {
    let database = Database::from_config(&config.server, store::MIGRATIONS).await?;
    let store = match &database {
        Some(db) => Store::Postgres(PgStore::new(db.clone())),
        None => Store::Memory(MemoryStore::default()),
    };
    let store = Arc::new(store);
    let health = Health {
        database,
        ..Health::default()
    };
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
    let sweeper = tokio::spawn(sweep(store.clone(), config.sweep_interval));
    Ok(Service {
        router,
        health,
        store,
        sweeper,
    })
}

/// Frees expired holds, forever.
async fn sweep(store: Arc<Store>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.expire_due().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "expired held reservations"),
            Err(e) => tracing::warn!(error = %e, "expiring reservations failed; will retry"),
        }
    }
}

/// Runs until SIGTERM.
pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let service = build(&config).await?;
    let store = match &config.server.database_url {
        Some(_) => "postgres",
        None => "memory",
    };
    tracing::info!(
        store,
        ttl_ms = config.reservation_ttl.as_millis() as u64,
        "item-service starting"
    );
    let addr = SocketAddr::new(config.server.host, config.server.port);
    server::serve(
        service.router.clone(),
        addr,
        &service.health,
        server::Serving::of(&config.server),
    )
    .await?;
    Ok(())
}

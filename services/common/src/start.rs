//! How a service binary starts and ends, the same for every service: its
//! configuration from the environment, logs as that configuration says,
//! then the service until SIGTERM. The exit code tells a bad configuration
//! (2: fix the environment, restarting will not help) from a failure (1).

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;

use crate::config::{ConfigError, Env, ServerConfig};
use crate::health::Health;
use crate::server::{self, Serving};
use crate::telemetry;

/// Whatever stopped a service.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A service's configuration: the settings every service has, and its own.
pub trait ServiceConfig: Sized {
    fn from_env(env: &Env) -> Result<Self, ConfigError>;
    fn server(&self) -> &ServerConfig;
}

/// The body of a service's `main`: `name` is the binary's name, for the
/// messages; `run` serves until SIGTERM.
pub async fn main<C, F>(name: &str, run: impl FnOnce(C) -> F) -> ExitCode
where
    C: ServiceConfig,
    F: Future<Output = Result<(), BoxError>>,
{
    let config = match C::from_env(&Env::process()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = telemetry::init(config.server().log_format) {
        eprintln!("{name}: {e}");
        return ExitCode::from(2);
    }
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{name} failed");
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves a built service's `router` on `HOST`:`PORT` until SIGTERM, then
/// stops as `server` says (see [`Serving`]).
pub async fn serve(server: &ServerConfig, router: Router, health: &Health) -> std::io::Result<()> {
    let addr = SocketAddr::new(server.host, server.port);
    server::serve(router, addr, health, Serving::of(server)).await
}

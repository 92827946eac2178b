//! Configuration from environment variables.
//!
//! Every value has a default that works for a single local replica, and a bad
//! value stops the service at start with a message that names the variable,
//! the value and what was expected, instead of surfacing later as odd
//! behaviour.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::telemetry::LogFormat;

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(name: &str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Where configuration values come from: the process environment, or a fixed
/// map in tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    fixed: Option<HashMap<String, String>>,
}

impl Env {
    /// Reads the process environment.
    pub fn process() -> Self {
        Self { fixed: None }
    }

    /// Uses only the given pairs (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let map = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self { fixed: Some(map) }
    }

    /// The raw value, with empty strings treated as unset.
    pub fn raw(&self, name: &str) -> Option<String> {
        let value = match &self.fixed {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// Parses `name`, or returns `default` when it is unset.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.raw(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::new(name, &raw, e.to_string())),
        }
    }

    /// A whole number within `range`, or `default` when unset.
    pub fn number_in<T>(
        &self,
        name: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let value = self.parse_or(name, default)?;
        if !range.contains(&value) {
            let reason = format!("must be between {} and {}", range.start(), range.end());
            return Err(ConfigError::new(name, &value.to_string(), reason));
        }
        Ok(value)
    }

    /// A duration given in milliseconds, within `range` (milliseconds).
    pub fn millis(
        &self,
        name: &str,
        default_ms: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.number_in(name, default_ms, range)
            .map(Duration::from_millis)
    }
}

/// The settings every service has.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `HOST`, default `0.0.0.0`.
    pub host: IpAddr,
    /// `PORT`, default 8080 (0 picks a free port).
    pub port: u16,
    /// `LOG_FORMAT`: `json` (default) or `text`.
    pub log_format: LogFormat,
    /// `BODY_LIMIT_BYTES`, default 64 KiB; larger request bodies get 413.
    pub body_limit: usize,
    /// `SHUTDOWN_DELAY_MS`, default 5 s: after SIGTERM, how long the service
    /// keeps serving while `/readyz` says 503, so that endpoints move away
    /// before it stops accepting connections.
    pub shutdown_delay: Duration,
    /// `SHUTDOWN_TIMEOUT_MS`, default 20 s: how long in-flight requests may
    /// take to finish once it stops accepting. Kubernetes' 30 s grace
    /// period covers both with room to spare.
    pub shutdown_timeout: Duration,
    /// `CONNECTION_MAX_AGE_MS`, default 10 s: a kept-alive connection older
    /// than this is closed after its next answer, so that clients spread
    /// over pods added since (see `connection`).
    pub connection_max_age: Duration,
    /// `DATABASE_URL`: PostgreSQL when set, the in-memory store otherwise.
    pub database_url: Option<String>,
    /// `DATABASE_SCHEMA`: the schema this service owns.
    pub database_schema: String,
    /// `DATABASE_POOL_SIZE`, default 8.
    pub database_pool_size: usize,
    /// `DATABASE_CONNECT_WAIT_MS`, default 30 s: how long start-up waits for
    /// the database to become reachable.
    pub database_connect_wait: Duration,
}

impl ServerConfig {
    pub fn from_env(env: &Env, default_schema: &str) -> Result<Self, ConfigError> {
        let database_schema = env
            .raw("DATABASE_SCHEMA")
            .unwrap_or_else(|| default_schema.to_owned());
        crate::postgres::validate_schema_name(&database_schema)
            .map_err(|reason| ConfigError::new("DATABASE_SCHEMA", &database_schema, reason))?;
        Ok(Self {
            host: env.parse_or("HOST", IpAddr::from([0, 0, 0, 0]))?,
            port: env.parse_or("PORT", 8080u16)?,
            log_format: env.parse_or("LOG_FORMAT", LogFormat::Json)?,
            body_limit: env.number_in("BODY_LIMIT_BYTES", 64 * 1024, 1024..=16 * 1024 * 1024)?,
            shutdown_delay: env.millis("SHUTDOWN_DELAY_MS", 5_000, 0..=600_000)?,
            shutdown_timeout: env.millis("SHUTDOWN_TIMEOUT_MS", 20_000, 0..=600_000)?,
            connection_max_age: env.millis("CONNECTION_MAX_AGE_MS", 10_000, 1_000..=86_400_000)?,
            database_url: env.raw("DATABASE_URL"),
            database_schema,
            database_pool_size: env.number_in("DATABASE_POOL_SIZE", 8, 1..=256)?,
            database_connect_wait: env.millis("DATABASE_CONNECT_WAIT_MS", 30_000, 0..=600_000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_for_one_local_replica() {
        let config = ServerConfig::from_env(&Env::from_pairs([]), "item").unwrap();
        assert_eq!(config.port, 8080);
        assert!(config.database_url.is_none());
        assert_eq!(config.database_schema, "item");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err =
            ServerConfig::from_env(&Env::from_pairs([("PORT", "eighty")]), "item").unwrap_err();
        assert_eq!(err.name, "PORT");
        assert!(err.to_string().contains("PORT=\"eighty\""), "{err}");
        let err =
            ServerConfig::from_env(&Env::from_pairs([("LOG_FORMAT", "xml")]), "item").unwrap_err();
        assert_eq!(err.name, "LOG_FORMAT");
        let err = ServerConfig::from_env(&Env::from_pairs([("BODY_LIMIT_BYTES", "1")]), "item")
            .unwrap_err();
        assert!(err.reason.contains("between"), "{err}");
        let err = ServerConfig::from_env(&Env::from_pairs([("DATABASE_SCHEMA", "a;drop")]), "item")
            .unwrap_err();
        assert_eq!(err.name, "DATABASE_SCHEMA");
    }
}

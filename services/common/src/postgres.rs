//! PostgreSQL: a connection pool whose connections all use the service's own
//! schema (so two services can share a server yet own their data), and
//! migrations embedded in the binary and applied at start under an advisory
//! lock, so replicas starting together apply each one exactly once.

use std::str::FromStr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::problem::Problem;

/// One step of a service's schema, applied once, in order of `version`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid DATABASE_URL: {0}")]
    Url(String),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i32,
        name: &'static str,
        source: tokio_postgres::Error,
    },
    /// Concurrent requests kept changing the same rows; retrying helps.
    #[error("contended: {0}")]
    Contended(&'static str),
}

impl DbError {
    /// True when the database could not be reached, as opposed to a query
    /// that the database rejected.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Pool(_) => true,
            DbError::Postgres(e) => e.code().is_none(),
            DbError::Url(_) | DbError::Migration { .. } | DbError::Contended(_) => false,
        }
    }

    /// The problem a client sees; the cause is logged, not shown.
    pub fn to_problem(&self) -> Problem {
        if let DbError::Contended(what) = self {
            return Problem::unavailable("contended", "Try again", *what);
        }
        tracing::error!(error = %self, "database error");
        if self.is_unavailable() {
            Problem::unavailable(
                "database-unavailable",
                "Database unavailable",
                "the database cannot be reached",
            )
        } else {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            )
            .with_detail("a database operation failed; it has been logged")
        }
    }
}

/// Schema names are put into SQL text, so only plain identifiers pass.
pub fn validate_schema_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && name.len() <= 63 {
        Ok(())
    } else {
        Err("expected a lowercase identifier: [a-z_][a-z0-9_]*, at most 63 characters".to_owned())
    }
}

/// The pool and what readiness checks against.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    schema: String,
    latest_migration: i32,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// The database `server` asks for (`DATABASE_URL` and friends), connected
    /// and migrated; `None` when no URL is set and the service keeps its data
    /// in memory.
    pub async fn from_config(
        server: &crate::config::ServerConfig,
        migrations: &'static [Migration],
    ) -> Result<Option<Self>, DbError> {
        let Some(url) = &server.database_url else {
            return Ok(None);
        };
        let db = Self::connect(
            url,
            &server.database_schema,
            server.database_pool_size,
            migrations,
            server.database_connect_wait,
        )
        .await?;
        Ok(Some(db))
    }

    /// Connects and migrates, retrying for up to `wait` while the database
    /// is not reachable yet (it may be starting alongside the service).
    pub async fn connect(
        url: &str,
        schema: &str,
        pool_size: usize,
        migrations: &'static [Migration],
        wait: Duration,
    ) -> Result<Self, DbError> {
        validate_schema_name(schema).map_err(DbError::Url)?;
        let mut config =
            tokio_postgres::Config::from_str(url).map_err(|e| DbError::Url(e.to_string()))?;
        config.options(format!("-c search_path={schema}"));
        config.connect_timeout(Duration::from_secs(5));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| DbError::Url(e.to_string()))?;
        let db = Self {
            pool,
            schema: schema.to_owned(),
            latest_migration: migrations.iter().map(|m| m.version).max().unwrap_or(0),
        };
        let started = Instant::now();
        loop {
            match db.migrate(migrations).await {
                Ok(()) => return Ok(db),
                Err(e) if e.is_unavailable() && started.elapsed() < wait => {
                    tracing::warn!(error = %e, "database not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn migrate(&self, migrations: &'static [Migration]) -> Result<(), DbError> {
        let mut client = self.pool.get().await?;
        client
            .execute("SELECT pg_advisory_lock(hashtext($1))", &[&self.schema])
            .await?;
        let result = apply(&mut client, &self.schema, migrations).await;
        client
            .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&self.schema])
            .await?;
        result
    }

    /// A pooled connection.
    pub async fn client(&self) -> Result<Object, DbError> {
        Ok(self.pool.get().await?)
    }

    /// Ready when the database answers and the newest migration is applied.
    pub async fn check_ready(&self) -> Result<(), String> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| format!("database unreachable: {e}"))?;
        let row = client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(|e| format!("database query failed: {e}"))?;
        let applied: i32 = row.get(0);
        if applied < self.latest_migration {
            return Err(format!(
                "migrations applied up to {applied}, expected {}",
                self.latest_migration
            ));
        }
        Ok(())
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Closes the pool: idle connections are dropped, new gets fail.
    pub fn close(&self) {
        self.pool.close();
    }
}

async fn apply(
    client: &mut Object,
    schema: &str,
    migrations: &'static [Migration],
) -> Result<(), DbError> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .await?;
    let applied: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut pending: Vec<&Migration> = migrations
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect();
    pending.sort_by_key(|m| m.version);
    for migration in pending {
        let tx = client.transaction().await?;
        let step = async {
            tx.batch_execute(migration.sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await?;
            tx.commit().await
        };
        step.await.map_err(|source| DbError::Migration {
            version: migration.version,
            name: migration.name,
            source,
        })?;
        tracing::info!(
            schema,
            version = migration.version,
            name = migration.name,
            "migration applied"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_schema_name;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(validate_schema_name("item").is_ok());
        assert!(validate_schema_name("order_test_1").is_ok());
        assert!(validate_schema_name("").is_err());
        assert!(validate_schema_name("1abc").is_err());
        assert!(validate_schema_name("a-b").is_err());
        assert!(validate_schema_name("x; DROP TABLE y").is_err());
    }
}

//! Test support shared by the services' suites (feature `testing`).
//!
//! - [`Backend`] and [`both_stores!`](crate::both_stores): every store test
//!   runs twice, on the in-memory store and on PostgreSQL, each PostgreSQL
//!   run in a fresh schema of `BERTH_TEST_DATABASE_URL`. Without that
//!   variable the PostgreSQL runs skip with a message, except under
//!   `CI=true`, where they fail: CI never silently skips them.
//! - [`Backend::config`]: a service's configuration for a test.
//! - [`Api`]: calls a service's HTTP API, a router in process (no socket)
//!   or a service listening on a port, with the same calls and [`Reply`].
//! - [`openapi_tests!`](crate::openapi_tests): the tests of a service's
//!   OpenAPI document.
//! - [`items`]: the item service's catalogue as suites set it up and read
//!   it (item's own, and order's, which runs item's binary).
//! - [`Process`]: runs a service binary on a loopback port and controls it
//!   with signals (stop, pause, resume, terminate). A suite that needs
//!   another service runs its binary (see [`workspace_binary`]) rather than
//!   linking its crate, so each service is tested only through its API.

mod api;
pub mod items;
mod openapi;
mod process;

use std::sync::atomic::{AtomicU32, Ordering};

pub use api::{Api, Reply, assert_get_statuses};
pub use openapi::parse_document;
pub use process::{Process, free_port, workspace_binary};

use crate::config::Env;
use crate::start::ServiceConfig;

/// Which store a test runs against.
#[derive(Debug, Clone)]
pub enum Backend {
    Memory,
    Postgres { url: String, schema: String },
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A schema name no other test run uses.
pub fn unique_schema(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let prefix: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(24)
        .collect();
    format!(
        "t_{}_{}_{}_{}",
        prefix.to_ascii_lowercase(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

/// `BERTH_TEST_DATABASE_URL`, or `None` after saying why the PostgreSQL
/// run is skipped. Panics under `CI=true` when it is missing.
pub fn postgres_url() -> Option<String> {
    match std::env::var("BERTH_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "BERTH_TEST_DATABASE_URL is not set, and CI=true: the PostgreSQL tests must run in CI (make test-services starts PostgreSQL)"
            )
        }
        _ => {
            eprintln!(
                "SKIPPED PostgreSQL variant: BERTH_TEST_DATABASE_URL is not set; run `eval \"$(scripts/postgres.sh --export)\"` or `make test-services`"
            );
            None
        }
    }
}

impl Backend {
    pub fn postgres(test: &str) -> Option<Self> {
        postgres_url().map(|url| Backend::Postgres {
            url,
            schema: unique_schema(test),
        })
    }

    /// The same backend with another schema (a second service).
    pub fn sibling(&self, test: &str) -> Self {
        match self {
            Backend::Memory => Backend::Memory,
            Backend::Postgres { url, .. } => Backend::Postgres {
                url: url.clone(),
                schema: unique_schema(test),
            },
        }
    }

    /// Environment variables that select this backend.
    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Backend::Memory => Vec::new(),
            Backend::Postgres { url, schema } => vec![
                ("DATABASE_URL".to_owned(), url.clone()),
                ("DATABASE_SCHEMA".to_owned(), schema.clone()),
                ("DATABASE_POOL_SIZE".to_owned(), "4".to_owned()),
            ],
        }
    }

    /// A service's configuration on this backend, with `extra` variables
    /// on top. Panics when the service refuses it.
    pub fn config<C: ServiceConfig>(&self, extra: &[(&str, &str)]) -> C {
        let backend = self.env();
        let pairs = backend
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().copied());
        C::from_env(&Env::from_pairs(pairs)).expect("the test's configuration is valid")
    }
}

/// Generates a memory and a postgres test for each named async fn taking a
/// [`Backend`].
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Memory).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = $crate::testing::Backend::postgres(stringify!($name)) {
                        super::$name(backend).await
                    }
                }
            )*
        }
    };
}

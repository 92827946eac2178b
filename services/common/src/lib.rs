//! The plumbing Berth's reference services share, kept in one place so the
//! item and order services only contain their domain: configuration from the
//! environment, tracing setup, RFC 9457 problem responses and the extractors
//! that produce them, request ids, Prometheus metrics, health endpoints,
//! graceful shutdown, the PostgreSQL pool with embedded migrations, the
//! choice between an in-memory and a PostgreSQL store, keyset paging, and
//! how a binary starts and stops.
//!
//! A service opens its [`store::Store`], builds its API router, hands it to
//! [`server::app`] together with its [`server::Kit`], and runs it with
//! [`start::serve`]; its `main` is [`start::main`].

pub mod config;
pub mod connection;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod paging;
pub mod periodic;
pub mod postgres;
pub mod problem;
pub mod request_id;
pub mod server;
pub mod shutdown;
pub mod start;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;
pub mod whole_number;

pub use problem::{FieldError, Problem};
pub use request_id::RequestId;
pub use trace::Trace;

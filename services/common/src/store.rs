//! The choice every service makes at start: its data in memory (one
//! replica, no setup) or in PostgreSQL (`DATABASE_URL` set; many replicas,
//! migrated at start). A service keeps a [`Store`] of its own two store
//! types, declared with [`service_store!`](crate::service_store), and
//! forwards each operation to the one chosen with
//! [`dispatch!`](crate::dispatch).

use jiff::Timestamp;

use crate::config::ServerConfig;
use crate::health::Health;
use crate::postgres::{Database, DbError, Migration};

/// A service's store: `M` in memory or `P` on PostgreSQL.
pub enum Store<M, P> {
    Memory(M),
    Postgres(P),
}

impl<M: Default, P> Store<M, P> {
    /// The store `server` asks for, and the [`Health`] that watches its
    /// database: with `DATABASE_URL`, PostgreSQL, connected and migrated,
    /// wrapped by `postgres`; otherwise an empty `M`.
    pub async fn open(
        server: &ServerConfig,
        migrations: &'static [Migration],
        postgres: impl FnOnce(Database) -> P,
    ) -> Result<(Self, Health), DbError> {
        let database = Database::from_config(server, migrations).await?;
        let store = match &database {
            Some(db) => Store::Postgres(postgres(db.clone())),
            None => Store::Memory(M::default()),
        };
        let health = Health {
            database,
            ..Health::default()
        };
        Ok((store, health))
    }
}

impl<M, P> Store<M, P> {
    /// `memory` or `postgres`, for the start-up log.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Postgres(_) => "postgres",
        }
    }
}

/// Declares a service's store: a newtype over [`Store`] of the service's
/// in-memory and PostgreSQL store types, with `open` (from the
/// configuration; the PostgreSQL store is made with its `new(Database)`
/// after `migrations` ran) and `kind`. The service adds its operations in
/// an `impl` of its own, each forwarding with [`dispatch!`](crate::dispatch).
/// A macro, not a generic, because those operations need a type of the
/// service's own crate to be declared on.
#[macro_export]
macro_rules! service_store {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            memory: $memory:ty,
            postgres: $postgres:ty,
            migrations: $migrations:expr $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name($crate::store::Store<$memory, $postgres>);

        impl $name {
            /// The store the configuration asks for, and the health of its
            /// database.
            pub async fn open(
                server: &$crate::config::ServerConfig,
            ) -> Result<($name, $crate::health::Health), $crate::postgres::DbError> {
                let (store, health) =
                    $crate::store::Store::open(server, $migrations, <$postgres>::new).await?;
                Ok(($name(store), health))
            }

            /// `memory` or `postgres`.
            pub fn kind(&self) -> &'static str {
                self.0.kind()
            }
        }
    };
}

/// Forwards one operation to the store chosen: `dispatch!(store, s =>
/// s.get(id))` calls the in-memory store's method, which answers at once,
/// or awaits the PostgreSQL store's. Both take the same arguments and return
/// the same type, so a caller never knows which one answered.
#[macro_export]
macro_rules! dispatch {
    ($store:expr, $s:ident => $call:expr) => {
        match $store {
            $crate::store::Store::Memory($s) => $call,
            $crate::store::Store::Postgres($s) => $call.await,
        }
    };
}

/// The current time at the precision both stores keep (microseconds), so
/// a value reads back from PostgreSQL exactly as it was written.
pub fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
}

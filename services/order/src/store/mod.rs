//! Where orders live: in memory for one replica, PostgreSQL for many. Status
//! changes are compare-and-set (`transition` from an expected status), which
//! is how a live request, a cancel and the reconciler agree on who moves an
//! order on.

mod memory;
mod postgres;

use berth_service_kit::dispatch;
use berth_service_kit::postgres::DbError;
use jiff::Timestamp;
use uuid::Uuid;

use crate::model::{Order, OrderStatus, Pricing};

pub use berth_service_kit::store::now;
pub use memory::MemoryStore;
pub use postgres::{MIGRATIONS, PgStore};

/// The result of recording a new pending order.
#[derive(Debug)]
pub enum Inserted {
    New,
    /// An order already holds the idempotency key; with its fingerprint.
    Existing(Order, String),
}

berth_service_kit::service_store! {
    /// The store behind a running service, in memory or on PostgreSQL.
    pub struct Store {
        memory: MemoryStore,
        postgres: PgStore,
        migrations: MIGRATIONS,
    }
}

impl Store {
    /// Records a pending order unless `key` is already taken.
    pub async fn insert_pending(
        &self,
        order: &Order,
        key: Option<&str>,
        fingerprint: &str,
    ) -> Result<Inserted, DbError> {
        dispatch!(&self.0, s => s.insert_pending(order, key, fingerprint))
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Order>, DbError> {
        dispatch!(&self.0, s => s.get(id))
    }

    pub async fn list(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<Order>, DbError> {
        dispatch!(&self.0, s => s.list(after, limit))
    }

    /// Moves the order to `to` if its status is one of `from`, setting the
    /// pricing when given and freeing the idempotency key when asked.
    /// `None` when the order was not in an expected status.
    pub async fn transition(
        &self,
        id: Uuid,
        from: &[OrderStatus],
        to: OrderStatus,
        pricing: Option<&Pricing>,
        free_key: bool,
    ) -> Result<Option<Order>, DbError> {
        dispatch!(&self.0, s => s.transition(id, from, to, pricing, free_key))
    }

    /// Orders the reconciler must finish: pending ones last touched before
    /// `stale_before` (their request died), and every compensating or
    /// cancelling one.
    pub async fn unfinished(&self, stale_before: Timestamp) -> Result<Vec<Order>, DbError> {
        dispatch!(&self.0, s => s.unfinished(stale_before))
    }
}

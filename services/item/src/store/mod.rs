//! Where items and reservations live. The in-memory store serves one replica
//! with no setup; the PostgreSQL store serves many. Both implement the same
//! operations with the same rules, and the test suite runs against each.
//!
//! Every operation that moves stock is atomic: the check ("enough units?")
//! and the change happen under one lock (memory) or in one transaction with
//! a conditional update (PostgreSQL), which is what keeps stock from ever
//! going negative under concurrent orders.

mod memory;
mod postgres;

use std::time::Duration;

use berth_service_kit::dispatch;
use berth_service_kit::postgres::DbError;
use jiff::Timestamp;
use uuid::Uuid;

use crate::model::{Item, ItemInput, Reservation, ReservationInput};

pub use berth_service_kit::store::now;
pub use memory::MemoryStore;
pub use postgres::{MIGRATIONS, PgStore};

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("item not found")]
    ItemNotFound,
    #[error("item is at version {current}")]
    VersionMismatch { current: i64 },
    #[error("{available} units available, {requested} requested")]
    InsufficientStock { available: i64, requested: i64 },
    #[error("reservation not found")]
    ReservationNotFound,
    #[error("the key is already used by a different reservation")]
    KeyConflict(Box<Reservation>),
    #[error("the key was released before anything was reserved under it")]
    KeyReleased,
    #[error("reservation is {0:?}")]
    WrongState(Box<Reservation>),
    #[error("the reservation is being changed concurrently")]
    Contended,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(DbError::Postgres(e))
    }
}

/// One page of `list_items`.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub limit: usize,
    /// Return items with an id after this one.
    pub after: Option<Uuid>,
    /// Case-insensitive substring of the name.
    pub name: Option<String>,
}

berth_service_kit::service_store! {
    /// The store behind a running service, in memory or on PostgreSQL.
    pub struct Store {
        memory: MemoryStore,
        postgres: PgStore,
        migrations: MIGRATIONS,
    }
}

pub(crate) fn expiry(now: Timestamp, ttl: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(ttl)
        .ok()
        .and_then(|ttl| now.checked_add(ttl).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Whether a repeated reserve under `existing`'s key is the same request.
pub(crate) fn same_reservation(
    existing: &Reservation,
    input: &ReservationInput,
) -> Result<(Reservation, bool), StoreError> {
    match existing.item_id {
        None => Err(StoreError::KeyReleased),
        Some(item_id) if item_id == input.item_id && existing.quantity == input.quantity => {
            Ok((existing.clone(), false))
        }
        Some(_) => Err(StoreError::KeyConflict(Box::new(existing.clone()))),
    }
}

impl Store {
    pub async fn create_item(&self, input: ItemInput) -> Result<Item, StoreError> {
        dispatch!(&self.0, s => s.create_item(input))
    }

    pub async fn get_item(&self, id: Uuid) -> Result<Option<Item>, StoreError> {
        dispatch!(&self.0, s => s.get_item(id))
    }

    pub async fn list_items(&self, query: &ListQuery) -> Result<Vec<Item>, StoreError> {
        dispatch!(&self.0, s => s.list_items(query))
    }

    /// Replaces every field; with `expected_version`, only if the item is
    /// still at that version.
    pub async fn replace_item(
        &self,
        id: Uuid,
        input: ItemInput,
        expected_version: Option<i64>,
    ) -> Result<Item, StoreError> {
        dispatch!(&self.0, s => s.replace_item(id, input, expected_version))
    }

    pub async fn delete_item(
        &self,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        dispatch!(&self.0, s => s.delete_item(id, expected_version))
    }

    /// Holds `input.quantity` units for `ttl`. A repeat of the same request
    /// returns the first reservation and `false` (not created).
    pub async fn reserve(
        &self,
        key: &str,
        input: ReservationInput,
        ttl: Duration,
    ) -> Result<(Reservation, bool), StoreError> {
        dispatch!(&self.0, s => s.reserve(key, input, ttl))
    }

    pub async fn get_reservation(&self, key: &str) -> Result<Option<Reservation>, StoreError> {
        dispatch!(&self.0, s => s.get_reservation(key))
    }

    /// Makes a held reservation permanent; confirming twice is fine.
    pub async fn confirm(&self, key: &str) -> Result<Reservation, StoreError> {
        dispatch!(&self.0, s => s.confirm(key))
    }

    /// Returns the units to stock; releasing twice is fine, and releasing an
    /// unknown key records it as released so a late reserve under it fails.
    pub async fn release(&self, key: &str) -> Result<Reservation, StoreError> {
        dispatch!(&self.0, s => s.release(key))
    }

    /// Expires held reservations past their expiry; returns how many.
    pub async fn expire_due(&self) -> Result<u64, StoreError> {
        dispatch!(&self.0, s => s.expire_due())
    }
}

//! The PostgreSQL store. Stock moves in one transaction with a conditional
//! `UPDATE ... WHERE stock >= $n`, so concurrent reserves serialise on the
//! item's row and the check cannot go stale between read and write.

use std::time::Duration;

use berth_service_kit::postgres::{Database, Migration};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::{ListQuery, StoreError, expiry, now, same_reservation};
use crate::model::{Item, ItemInput, Reservation, ReservationInput, ReservationStatus};

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "items",
    sql: include_str!("../../migrations/0001_items.sql"),
}];

const ITEM_COLUMNS: &str =
    "id, name, description, price_minor, currency, stock, version, created_at, updated_at";
const RESERVATION_COLUMNS: &str =
    "key, item_id, quantity, status, expires_at, created_at, updated_at";

pub struct PgStore {
    db: Database,
}

fn item_from(row: &Row) -> Result<Item, StoreError> {
    Ok(Item {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        price_minor: row.try_get("price_minor")?,
        currency: row.try_get("currency")?,
        stock: row.try_get("stock")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn reservation_from(row: &Row) -> Result<Reservation, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(Reservation {
        key: row.try_get("key")?,
        item_id: row.try_get("item_id")?,
        quantity: row.try_get("quantity")?,
        // The column's CHECK constraint admits only the four known values.
        status: ReservationStatus::parse(&status).unwrap_or(ReservationStatus::Released),
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl PgStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub async fn create_item(&self, input: ItemInput) -> Result<Item, StoreError> {
        let client = self.db.client().await?;
        let now = now();
        let sql = format!(
            "INSERT INTO items ({ITEM_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7) RETURNING {ITEM_COLUMNS}"
        );
        let row = client
            .query_one(
                &client.prepare_cached(&sql).await?,
                &[
                    &Uuid::now_v7(),
                    &input.name,
                    &input.description,
                    &input.price_minor,
                    &input.currency,
                    &input.stock,
                    &now,
                ],
            )
            .await?;
        item_from(&row)
    }

    pub async fn get_item(&self, id: Uuid) -> Result<Option<Item>, StoreError> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached(&format!("SELECT {ITEM_COLUMNS} FROM items WHERE id = $1"))
                    .await?,
                &[&id],
            )
            .await?;
        row.as_ref().map(item_from).transpose()
    }

    pub async fn list_items(&self, query: &ListQuery) -> Result<Vec<Item>, StoreError> {
        let client = self.db.client().await?;
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM items
             WHERE ($1::uuid IS NULL OR id > $1)
               AND ($2::text IS NULL OR strpos(lower(name), lower($2)) > 0)
             ORDER BY id LIMIT $3"
        );
        let limit = query.limit as i64;
        let rows = client
            .query(
                &client.prepare_cached(&sql).await?,
                &[&query.after, &query.name, &limit],
            )
            .await?;
        rows.iter().map(item_from).collect()
    }

    /// Tells a missing item from a version mismatch after a conditional
    /// statement touched no row.
    async fn why_unchanged(&self, id: Uuid) -> StoreError {
        let current = async {
            let client = self.db.client().await?;
            let row = client
                .query_opt(
                    &client
                        .prepare_cached("SELECT version FROM items WHERE id = $1")
                        .await?,
                    &[&id],
                )
                .await?;
            Ok::<_, StoreError>(row.map(|r| r.get::<_, i64>(0)))
        };
        match current.await {
            Ok(Some(current)) => StoreError::VersionMismatch { current },
            Ok(None) => StoreError::ItemNotFound,
            Err(e) => e,
        }
    }

    pub async fn replace_item(
        &self,
        id: Uuid,
        input: ItemInput,
        expected_version: Option<i64>,
    ) -> Result<Item, StoreError> {
        let client = self.db.client().await?;
        let sql = format!(
            "UPDATE items SET name = $3, description = $4, price_minor = $5, currency = $6, stock = $7,
                              version = version + 1, updated_at = $8
             WHERE id = $1 AND ($2::bigint IS NULL OR version = $2)
             RETURNING {ITEM_COLUMNS}"
        );
        let row = client
            .query_opt(
                &client.prepare_cached(&sql).await?,
                &[
                    &id,
                    &expected_version,
                    &input.name,
                    &input.description,
                    &input.price_minor,
                    &input.currency,
                    &input.stock,
                    &now(),
                ],
            )
            .await?;
        match row {
            Some(row) => item_from(&row),
            None => {
                drop(client);
                Err(self.why_unchanged(id).await)
            }
        }
    }

    pub async fn delete_item(
        &self,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        let client = self.db.client().await?;
        let deleted = client
            .execute(
                &client
                    .prepare_cached(
                        "DELETE FROM items WHERE id = $1 AND ($2::bigint IS NULL OR version = $2)",
                    )
                    .await?,
                &[&id, &expected_version],
            )
            .await?;
        if deleted == 1 {
            Ok(())
        } else {
            drop(client);
            Err(self.why_unchanged(id).await)
        }
    }

    pub async fn reserve(
        &self,
        key: &str,
        input: ReservationInput,
        ttl: Duration,
    ) -> Result<(Reservation, bool), StoreError> {
        let mut client = self.db.client().await?;
        let now = now();
        let tx = client.transaction().await?;
        // Claiming the key first makes a concurrent reserve under the same
        // key wait here for this transaction, then see its result.
        let insert = format!(
            "INSERT INTO reservations ({RESERVATION_COLUMNS}) VALUES ($1, $2, $3, 'held', $4, $5, $5)
             ON CONFLICT (key) DO NOTHING RETURNING {RESERVATION_COLUMNS}"
        );
        let claimed = tx
            .query_opt(
                &tx.prepare_cached(&insert).await?,
                &[
                    &key,
                    &input.item_id,
                    &input.quantity,
                    &expiry(now, ttl),
                    &now,
                ],
            )
            .await?;
        let Some(row) = claimed else {
            drop(tx);
            drop(client);
            let existing = self
                .get_reservation(key)
                .await?
                .ok_or(StoreError::ReservationNotFound)?;
            return same_reservation(&existing, &input);
        };
        let taken = tx
            .query_opt(
                &tx.prepare_cached(
                    "UPDATE items SET stock = stock - $2, version = version + 1, updated_at = $3
                 WHERE id = $1 AND stock >= $2 RETURNING stock",
                )
                .await?,
                &[&input.item_id, &input.quantity, &now],
            )
            .await?;
        if taken.is_none() {
            let available = tx
                .query_opt(
                    &tx.prepare_cached("SELECT stock FROM items WHERE id = $1")
                        .await?,
                    &[&input.item_id],
                )
                .await?;
            drop(tx);
            return Err(match available {
                None => StoreError::ItemNotFound,
                Some(row) => StoreError::InsufficientStock {
                    available: row.try_get(0)?,
                    requested: input.quantity,
                },
            });
        }
        let reservation = reservation_from(&row)?;
        tx.commit().await?;
        Ok((reservation, true))
    }

    pub async fn get_reservation(&self, key: &str) -> Result<Option<Reservation>, StoreError> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached(&format!(
                        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE key = $1"
                    ))
                    .await?,
                &[&key],
            )
            .await?;
        row.as_ref().map(reservation_from).transpose()
    }

    pub async fn confirm(&self, key: &str) -> Result<Reservation, StoreError> {
        let client = self.db.client().await?;
        // A hold past its expiry is not confirmed even if the sweeper has
        // not returned its units yet.
        let sql = format!(
            "UPDATE reservations SET status = 'confirmed', expires_at = NULL, updated_at = $2
             WHERE key = $1 AND status = 'held' AND expires_at > $2 RETURNING {RESERVATION_COLUMNS}"
        );
        if let Some(row) = client
            .query_opt(&client.prepare_cached(&sql).await?, &[&key, &now()])
            .await?
        {
            return reservation_from(&row);
        }
        drop(client);
        let existing = self
            .get_reservation(key)
            .await?
            .ok_or(StoreError::ReservationNotFound)?;
        match existing.status {
            ReservationStatus::Confirmed => Ok(existing),
            ReservationStatus::Held => Err(StoreError::WrongState(Box::new(Reservation {
                status: ReservationStatus::Expired,
                ..existing
            }))),
            _ => Err(StoreError::WrongState(Box::new(existing))),
        }
    }

    pub async fn release(&self, key: &str) -> Result<Reservation, StoreError> {
        // Two rounds at most: a tombstone insert can lose to a concurrent
        // reserve, and then that reservation is the one to release.
        for _ in 0..2 {
            let mut client = self.db.client().await?;
            let now = now();
            let tx = client.transaction().await?;
            let sql = format!(
                "UPDATE reservations SET status = 'released', expires_at = NULL, updated_at = $2
                 WHERE key = $1 AND status IN ('held', 'confirmed') RETURNING {RESERVATION_COLUMNS}"
            );
            if let Some(row) = tx
                .query_opt(&tx.prepare_cached(&sql).await?, &[&key, &now])
                .await?
            {
                let released = reservation_from(&row)?;
                tx.execute(
                    &tx.prepare_cached("UPDATE items SET stock = stock + $2, version = version + 1, updated_at = $3 WHERE id = $1").await?,
                    &[&released.item_id, &released.quantity, &now],
                )
                .await?;
                tx.commit().await?;
                return Ok(released);
            }
            let tombstone = format!(
                "INSERT INTO reservations ({RESERVATION_COLUMNS}) VALUES ($1, NULL, 0, 'released', NULL, $2, $2)
                 ON CONFLICT (key) DO NOTHING RETURNING {RESERVATION_COLUMNS}"
            );
            if let Some(row) = tx
                .query_opt(&tx.prepare_cached(&tombstone).await?, &[&key, &now])
                .await?
            {
                let released = reservation_from(&row)?;
                tx.commit().await?;
                return Ok(released);
            }
            drop(tx);
            drop(client);
            if let Some(existing) = self.get_reservation(key).await?
                && !matches!(
                    existing.status,
                    ReservationStatus::Held | ReservationStatus::Confirmed
                )
            {
                return Ok(existing);
            }
        }
        Err(StoreError::Contended)
    }

    pub async fn expire_due(&self) -> Result<u64, StoreError> {
        let client = self.db.client().await?;
        // One statement: rows are locked as they are expired, so a replica
        // sweeping at the same time cannot return the same units twice.
        let result = client
            .execute(
                &client.prepare_cached("WITH due AS (
                     UPDATE reservations SET status = 'expired', updated_at = $1
                     WHERE status = 'held' AND expires_at <= $1
                     RETURNING item_id, quantity
                 ), totals AS (
                     SELECT item_id, sum(quantity)::bigint AS quantity FROM due WHERE item_id IS NOT NULL GROUP BY item_id
                 )
                 UPDATE items SET stock = items.stock + totals.quantity, version = items.version + 1, updated_at = $1
                 FROM totals WHERE items.id = totals.item_id").await?,
                &[&now()],
            )
            .await;
        match result {
            Ok(n) => Ok(n),
            // Two sweeps racing on the same rows can deadlock; the loser
            // simply tries again on the next tick.
            Err(e) if e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}

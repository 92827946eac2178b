//! The PostgreSQL order store. The idempotency key is a unique column, so
//! two replicas receiving the same retried request agree on one order.

use berth_service_kit::postgres::{Database, DbError, Migration};
use jiff::Timestamp;
use tokio_postgres::Row;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::{Inserted, now};
use crate::model::{Order, OrderLine, OrderStatus, Pricing};

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "orders",
    sql: include_str!("../../migrations/0001_orders.sql"),
}];

const COLUMNS: &str =
    "id, status, lines, currency, total_minor, created_at, updated_at, fingerprint";

pub struct PgStore {
    db: Database,
}

fn order_from(row: &Row) -> Result<Order, DbError> {
    let status: String = row.try_get("status")?;
    let Json(lines): Json<Vec<OrderLine>> = row.try_get("lines")?;
    Ok(Order {
        id: row.try_get("id")?,
        // The column's CHECK constraint admits only known statuses.
        status: OrderStatus::parse(&status).unwrap_or(OrderStatus::Failed),
        lines,
        currency: row.try_get("currency")?,
        total_minor: row.try_get("total_minor")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl PgStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub async fn insert_pending(
        &self,
        order: &Order,
        key: Option<&str>,
        fingerprint: &str,
    ) -> Result<Inserted, DbError> {
        let client = self.db.client().await?;
        // Twice at most: the holder of the key may free it between our
        // conflicting insert and our read, and then the insert can win.
        for _ in 0..2 {
            let inserted = client
                .execute(
                    &client.prepare_cached("INSERT INTO orders (id, idempotency_key, fingerprint, status, lines, currency, total_minor, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $6)
                     ON CONFLICT (idempotency_key) DO NOTHING").await?,
                    &[&order.id, &key, &fingerprint, &order.status.as_str(), &Json(&order.lines), &order.created_at],
                )
                .await?;
            if inserted == 1 {
                return Ok(Inserted::New);
            }
            let existing = client
                .query_opt(
                    &client
                        .prepare_cached(&format!(
                            "SELECT {COLUMNS} FROM orders WHERE idempotency_key = $1"
                        ))
                        .await?,
                    &[&key],
                )
                .await?;
            if let Some(row) = existing {
                return Ok(Inserted::Existing(
                    order_from(&row)?,
                    row.try_get("fingerprint")?,
                ));
            }
        }
        Err(DbError::Contended(
            "the idempotency key changed hands while this request was recorded; retry",
        ))
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Order>, DbError> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1"))
                    .await?,
                &[&id],
            )
            .await?;
        row.as_ref().map(order_from).transpose()
    }

    pub async fn list(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<Order>, DbError> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                &client.prepare_cached(&format!("SELECT {COLUMNS} FROM orders WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2")).await?,
                &[&after, &(limit as i64)],
            )
            .await?;
        rows.iter().map(order_from).collect()
    }

    pub async fn transition(
        &self,
        id: Uuid,
        from: &[OrderStatus],
        to: OrderStatus,
        pricing: Option<&Pricing>,
        free_key: bool,
    ) -> Result<Option<Order>, DbError> {
        let client = self.db.client().await?;
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let lines = pricing.map(|p| Json(&p.lines));
        let currency = pricing.map(|p| p.currency.as_str());
        let total = pricing.map(|p| p.total_minor);
        let row = client
            .query_opt(
                &client.prepare_cached(&format!(
                    "UPDATE orders SET status = $3, updated_at = $4,
                         lines = coalesce($5, lines), currency = coalesce($6, currency), total_minor = coalesce($7, total_minor),
                         idempotency_key = CASE WHEN $8 THEN NULL ELSE idempotency_key END
                     WHERE id = $1 AND status = ANY($2) RETURNING {COLUMNS}"
                )).await?,
                &[&id, &from, &to.as_str(), &now(), &lines, &currency, &total, &free_key],
            )
            .await?;
        row.as_ref().map(order_from).transpose()
    }

    pub async fn unfinished(&self, stale_before: Timestamp) -> Result<Vec<Order>, DbError> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                &client.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM orders
                     WHERE (status = 'pending' AND updated_at < $1) OR status IN ('compensating', 'cancelling')
                     ORDER BY updated_at LIMIT 500"
                )).await?,
                &[&stale_before],
            )
            .await?;
        rows.iter().map(order_from).collect()
    }
}

//! Placing and cancelling orders across two services without a shared
//! database: a small saga with compensation.
//!
//! Placing: (1) record the order as `pending` (so a crash leaves a trace);
//! (2) read each item's price; (3) reserve each line under a key derived
//! from the order id and line number; (4) confirm each reservation; (5)
//! move the order `pending -> placed`. All forward steps run under one
//! deadline. If any step fails, the order moves `pending -> compensating`,
//! every line's key is released (releasing a key that was never reserved
//! records it as released, so a reserve still in flight cannot land later),
//! and the order ends `failed`.
//!
//! Guarantees:
//! - stock is never oversold: the item service checks and takes stock
//!   atomically;
//! - a placed order has every line reserved and confirmed;
//! - a failed or cancelled order holds nothing once it reaches that status;
//! - a crash at any point leaves nothing held for ever: held reservations
//!   expire in the item service after their TTL, and the reconciler (at
//!   start, then periodically) releases the lines of orders left `pending`
//!   past the grace period or stuck `compensating`/`cancelling`;
//! - status changes are compare-and-set, so when the reconciler and a slow
//!   request race, exactly one of them decides the order's fate.
//!
//! Not guaranteed: that a cancel completes while the item service is down
//! (it answers 503 and the reconciler finishes it later).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_service_kit::postgres::DbError;
use uuid::Uuid;

use crate::item_client::{Caller, ItemClient, ItemError};
use crate::model::{NewOrder, Order, OrderLine, OrderStatus, Pricing};
use crate::store::{Inserted, Store, now};

#[derive(Clone)]
pub struct Saga {
    pub store: Arc<Store>,
    pub items: Arc<ItemClient>,
    /// Budget for the forward steps of placing one order.
    pub deadline: Duration,
}

/// A placed order, and whether it was placed by an earlier request with the
/// same idempotency key.
pub struct Placed {
    pub order: Order,
    pub replayed: bool,
}

/// Why placing or cancelling an order did not happen; the routes say it to
/// the client as a problem. `line` is the index of the order line at fault.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("order not found")]
    NotFound,
    #[error("lines[{line}]: no such item")]
    NoSuchItem { line: usize },
    #[error("lines[{line}]: priced in {item}, the order in {order}")]
    MixedCurrency {
        line: usize,
        item: String,
        order: String,
    },
    #[error("lines[{line}]: the total is too large")]
    TotalTooLarge { line: usize },
    #[error("lines[{line}]: not enough stock of item {item_id}: {detail}")]
    InsufficientStock {
        line: usize,
        item_id: Uuid,
        /// What the item service said.
        detail: String,
    },
    #[error("the idempotency key was used for a different request")]
    KeyReused,
    #[error("the first request with this idempotency key has not finished")]
    KeyInUse,
    #[error("the order is still being placed")]
    StillPlacing,
    #[error("the order was never placed")]
    NeverPlaced,
    #[error("the order changed meanwhile")]
    Changed,
    #[error("the order was rolled back while it was being placed")]
    Abandoned,
    #[error("placing the order did not finish within {} ms", .0.as_millis())]
    DeadlinePassed(Duration),
    #[error("the order is cancelling; its stock could not be released yet")]
    ReleasePending,
    #[error("item service: {error:?}")]
    ItemService {
        /// Boxed: an item service's problem is large, and errors travel
        /// by value through every step.
        error: Box<ItemError>,
        /// How long the circuit breaker stays open: when to retry.
        breaker_open: Duration,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Saga {
    fn item_error(&self, error: ItemError) -> OrderError {
        OrderError::ItemService {
            error: Box::new(error),
            breaker_open: self.items.breaker_open_for(),
        }
    }

    pub async fn place(
        &self,
        input: NewOrder,
        key: Option<String>,
        caller: &Caller,
    ) -> Result<Placed, OrderError> {
        let fingerprint = input.fingerprint();
        let order = Order::pending(&input);
        match self
            .store
            .insert_pending(&order, key.as_deref(), &fingerprint)
            .await?
        {
            Inserted::New => {}
            Inserted::Existing(existing, existing_fingerprint) => {
                return replay(existing, existing_fingerprint == fingerprint);
            }
        }
        tracing::info!(order_id = %order.id, lines = order.lines.len(), "placing order");

        // How many lines a reserve was sent for: only those need releasing.
        let attempted = AtomicUsize::new(0);
        let forward =
            tokio::time::timeout(self.deadline, self.forward(&order, caller, &attempted)).await;
        let failure = match forward {
            Ok(Ok(pricing)) => {
                match self
                    .store
                    .transition(
                        order.id,
                        &[OrderStatus::Pending],
                        OrderStatus::Placed,
                        Some(&pricing),
                        false,
                    )
                    .await
                {
                    Ok(Some(placed)) => {
                        tracing::info!(order_id = %order.id, total_minor = pricing.total_minor, "order placed");
                        return Ok(Placed {
                            order: placed,
                            replayed: false,
                        });
                    }
                    Ok(None) => OrderError::Abandoned,
                    Err(e) => e.into(),
                }
            }
            Ok(Err(e)) => e,
            Err(_) => OrderError::DeadlinePassed(self.deadline),
        };
        tracing::warn!(order_id = %order.id, error = %failure, "placing failed; compensating");
        self.compensate(&order, attempted.load(Ordering::SeqCst), caller)
            .await;
        Err(failure)
    }

    /// Steps 2-4: price, reserve, confirm.
    async fn forward(
        &self,
        order: &Order,
        caller: &Caller,
        attempted: &AtomicUsize,
    ) -> Result<Pricing, OrderError> {
        let mut lines = Vec::with_capacity(order.lines.len());
        let mut currency: Option<String> = None;
        let mut total: i64 = 0;
        for (i, line) in order.lines.iter().enumerate() {
            let item = self
                .items
                .get_item(line.item_id, caller)
                .await
                .map_err(|e| self.item_error(e))?;
            let Some(item) = item else {
                return Err(OrderError::NoSuchItem { line: i });
            };
            match &currency {
                None => currency = Some(item.currency.clone()),
                Some(c) if *c != item.currency => {
                    return Err(OrderError::MixedCurrency {
                        line: i,
                        item: item.currency,
                        order: c.clone(),
                    });
                }
                Some(_) => {}
            }
            let line_total = item.price_minor.checked_mul(line.quantity);
            total = line_total
                .and_then(|t| total.checked_add(t))
                .ok_or(OrderError::TotalTooLarge { line: i })?;
            lines.push(OrderLine {
                item_id: line.item_id,
                quantity: line.quantity,
                name: Some(item.name),
                unit_price_minor: Some(item.price_minor),
                line_total_minor: line_total,
            });
        }
        for (i, line) in order.lines.iter().enumerate() {
            attempted.store(i + 1, Ordering::SeqCst);
            self.items
                .reserve(
                    &order.reservation_key(i),
                    line.item_id,
                    line.quantity,
                    caller,
                )
                .await
                .map_err(|e| match e {
                    ItemError::Rejected(p) if p.slug() == "insufficient-stock" => {
                        OrderError::InsufficientStock {
                            line: i,
                            item_id: line.item_id,
                            detail: p.detail.unwrap_or_default(),
                        }
                    }
                    ItemError::Rejected(p) if p.status == 404 => OrderError::NoSuchItem { line: i },
                    other => self.item_error(other),
                })?;
        }
        for i in 0..order.lines.len() {
            self.items
                .confirm(&order.reservation_key(i), caller)
                .await
                .map_err(|e| self.item_error(e))?;
        }
        Ok(Pricing {
            lines,
            currency: currency.unwrap_or_default(),
            total_minor: total,
        })
    }

    /// Releases the first `lines` lines of a failed placement; the order
    /// ends `failed` when all releases succeed and stays `compensating` (for
    /// the reconciler, which releases every line) otherwise. Safe to run
    /// more than once, concurrently too.
    pub async fn compensate(&self, order: &Order, lines: usize, caller: &Caller) {
        let from = [OrderStatus::Pending, OrderStatus::Compensating];
        if let Err(e) = self
            .store
            .transition(order.id, &from, OrderStatus::Compensating, None, true)
            .await
        {
            tracing::error!(order_id = %order.id, error = %e, "could not mark the order compensating; the reconciler will retry");
            return;
        }
        if self.release_lines(order, lines, caller).await {
            let _ = self
                .store
                .transition(
                    order.id,
                    &[OrderStatus::Compensating],
                    OrderStatus::Failed,
                    None,
                    true,
                )
                .await;
        }
    }

    /// True when the first `lines` lines' reservations are released.
    async fn release_lines(&self, order: &Order, lines: usize, caller: &Caller) -> bool {
        let mut all = true;
        for i in 0..lines.min(order.lines.len()) {
            let key = order.reservation_key(i);
            if let Err(e) = self.items.release(&key, caller).await {
                tracing::warn!(order_id = %order.id, key, error = ?e, "release failed; will retry");
                all = false;
            }
        }
        all
    }

    pub async fn cancel(&self, id: Uuid, caller: &Caller) -> Result<Order, OrderError> {
        let order = self.store.get(id).await?.ok_or(OrderError::NotFound)?;
        match order.status {
            OrderStatus::Cancelled => return Ok(order),
            OrderStatus::Placed | OrderStatus::Cancelling => {}
            OrderStatus::Pending => return Err(OrderError::StillPlacing),
            OrderStatus::Compensating | OrderStatus::Failed => {
                return Err(OrderError::NeverPlaced);
            }
        }
        let from = [OrderStatus::Placed, OrderStatus::Cancelling];
        let Some(order) = self
            .store
            .transition(id, &from, OrderStatus::Cancelling, None, false)
            .await?
        else {
            return Err(OrderError::Changed);
        };
        if !self.release_lines(&order, order.lines.len(), caller).await {
            return Err(OrderError::ReleasePending);
        }
        let done = self
            .store
            .transition(
                id,
                &[OrderStatus::Cancelling],
                OrderStatus::Cancelled,
                None,
                false,
            )
            .await;
        match done? {
            Some(order) => Ok(order),
            None => self.store.get(id).await?.ok_or(OrderError::NotFound),
        }
    }

    /// Finishes what crashed or failed requests left: pending orders older
    /// than `grace`, and every compensating or cancelling order.
    pub async fn reconcile(&self, grace: Duration) -> Result<usize, OrderError> {
        let grace = jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX);
        let stale_before = now().checked_sub(grace).unwrap_or(jiff::Timestamp::MIN);
        let orders = self.store.unfinished(stale_before).await?;
        let caller = Caller::background();
        for order in &orders {
            tracing::info!(order_id = %order.id, status = order.status.as_str(), "reconciling order");
            match order.status {
                OrderStatus::Cancelling => {
                    let _ = self.cancel(order.id, &caller).await;
                }
                _ => self.compensate(order, order.lines.len(), &caller).await,
            }
        }
        Ok(orders.len())
    }
}

fn replay(existing: Order, same_request: bool) -> Result<Placed, OrderError> {
    if !same_request {
        return Err(OrderError::KeyReused);
    }
    match existing.status {
        OrderStatus::Placed | OrderStatus::Cancelling | OrderStatus::Cancelled => Ok(Placed {
            order: existing,
            replayed: true,
        }),
        _ => Err(OrderError::KeyInUse),
    }
}

//! The in-memory order store: one mutex, never held across an await.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use berth_service_kit::postgres::DbError;
use jiff::Timestamp;
use uuid::Uuid;

use super::{Inserted, now};
use crate::model::{Order, OrderStatus, Pricing};

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    orders: BTreeMap<Uuid, (Order, String)>,
    keys: HashMap<String, Uuid>,
}

impl MemoryStore {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert_pending(
        &self,
        order: &Order,
        key: Option<&str>,
        fingerprint: &str,
    ) -> Result<Inserted, DbError> {
        let mut state = self.state();
        if let Some(key) = key {
            if let Some((existing, fp)) = state.keys.get(key).and_then(|id| state.orders.get(id)) {
                return Ok(Inserted::Existing(existing.clone(), fp.clone()));
            }
            state.keys.insert(key.to_owned(), order.id);
        }
        state
            .orders
            .insert(order.id, (order.clone(), fingerprint.to_owned()));
        Ok(Inserted::New)
    }

    pub fn get(&self, id: Uuid) -> Result<Option<Order>, DbError> {
        Ok(self.state().orders.get(&id).map(|(o, _)| o.clone()))
    }

    pub fn list(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<Order>, DbError> {
        let state = self.state();
        let range = match after {
            Some(after) => state
                .orders
                .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => state.orders.range(..),
        };
        Ok(range.take(limit).map(|(_, (o, _))| o.clone()).collect())
    }

    pub fn transition(
        &self,
        id: Uuid,
        from: &[OrderStatus],
        to: OrderStatus,
        pricing: Option<&Pricing>,
        free_key: bool,
    ) -> Result<Option<Order>, DbError> {
        let mut state = self.state();
        let Some((order, _)) = state.orders.get_mut(&id) else {
            return Ok(None);
        };
        if !from.contains(&order.status) {
            return Ok(None);
        }
        order.status = to;
        order.updated_at = now();
        if let Some(pricing) = pricing {
            order.lines = pricing.lines.clone();
            order.currency = Some(pricing.currency.clone());
            order.total_minor = Some(pricing.total_minor);
        }
        let order = order.clone();
        if free_key {
            state.keys.retain(|_, holder| *holder != id);
        }
        Ok(Some(order))
    }

    pub fn unfinished(&self, stale_before: Timestamp) -> Result<Vec<Order>, DbError> {
        Ok(self
            .state()
            .orders
            .values()
            .map(|(o, _)| o)
            .filter(|o| match o.status {
                OrderStatus::Pending => o.updated_at < stale_before,
                OrderStatus::Compensating | OrderStatus::Cancelling => true,
                _ => false,
            })
            .cloned()
            .collect())
    }
}

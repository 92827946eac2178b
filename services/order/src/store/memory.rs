//! The in-memory order store: one mutex, never held across an await.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    orders: BTreeMap<Uuid, Stored>,
    keys: HashMap<String, Uuid>,
    /// The orders still moving (pending, compensating or cancelling): what
    /// the reconciler looks at, without scanning every order ever placed
    /// under the lock.
    unfinished: BTreeSet<Uuid>,
}

struct Stored {
    order: Order,
    fingerprint: String,
    /// Its idempotency key while it holds one.
    key: Option<String>,
}

fn is_unfinished(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Pending | OrderStatus::Compensating | OrderStatus::Cancelling
    )
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
            if let Some(existing) = state.keys.get(key).and_then(|id| state.orders.get(id)) {
                return Ok(Inserted::Existing(
                    existing.order.clone(),
                    existing.fingerprint.clone(),
                ));
            }
            state.keys.insert(key.to_owned(), order.id);
        }
        if is_unfinished(order.status) {
            state.unfinished.insert(order.id);
        }
        let stored = Stored {
            order: order.clone(),
            fingerprint: fingerprint.to_owned(),
            key: key.map(str::to_owned),
        };
        state.orders.insert(order.id, stored);
        Ok(Inserted::New)
    }

    pub fn get(&self, id: Uuid) -> Result<Option<Order>, DbError> {
        Ok(self.state().orders.get(&id).map(|s| s.order.clone()))
    }

    pub fn list(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<Order>, DbError> {
        let state = self.state();
        let range = match after {
            Some(after) => state
                .orders
                .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => state.orders.range(..),
        };
        Ok(range.take(limit).map(|(_, s)| s.order.clone()).collect())
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
        let Some(stored) = state.orders.get_mut(&id) else {
            return Ok(None);
        };
        let order = &mut stored.order;
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
        let freed = if free_key { stored.key.take() } else { None };
        if let Some(key) = freed {
            state.keys.remove(&key);
        }
        if is_unfinished(to) {
            state.unfinished.insert(id);
        } else {
            state.unfinished.remove(&id);
        }
        Ok(Some(order))
    }

    pub fn unfinished(&self, stale_before: Timestamp) -> Result<Vec<Order>, DbError> {
        let state = self.state();
        Ok(state
            .unfinished
            .iter()
            .filter_map(|id| state.orders.get(id))
            .map(|s| &s.order)
            // A pending order may still be being placed: only a stale one.
            .filter(|o| o.status != OrderStatus::Pending || o.updated_at < stale_before)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LineInput, NewOrder};

    fn order() -> Order {
        Order::pending(&NewOrder {
            lines: vec![LineInput {
                item_id: Uuid::now_v7(),
                quantity: 1,
            }],
        })
    }

    /// The reconciler sees exactly the orders still moving, and a freed
    /// idempotency key can name a new order.
    #[test]
    fn unfinished_orders_and_freed_keys_follow_each_transition() {
        let store = MemoryStore::default();
        let stale_after_all = now() + jiff::SignedDuration::from_secs(60);
        let (placed, failed, cancelling) = (order(), order(), order());
        for (o, key) in [(&placed, "a"), (&failed, "b"), (&cancelling, "c")] {
            assert!(matches!(
                store.insert_pending(o, Some(key), "fp").unwrap(),
                Inserted::New
            ));
        }
        let ids = |orders: Vec<Order>| orders.into_iter().map(|o| o.id).collect::<Vec<_>>();
        assert_eq!(store.unfinished(stale_after_all).unwrap().len(), 3);
        assert!(
            ids(store.unfinished(Timestamp::MIN).unwrap()).is_empty(),
            "pending, not stale"
        );

        let pending = [OrderStatus::Pending];
        store
            .transition(placed.id, &pending, OrderStatus::Placed, None, false)
            .unwrap();
        store
            .transition(failed.id, &pending, OrderStatus::Compensating, None, true)
            .unwrap();
        store
            .transition(cancelling.id, &pending, OrderStatus::Placed, None, false)
            .unwrap();
        store
            .transition(
                cancelling.id,
                &[OrderStatus::Placed],
                OrderStatus::Cancelling,
                None,
                false,
            )
            .unwrap();
        let mut moving = ids(store.unfinished(Timestamp::MIN).unwrap());
        moving.sort();
        let mut expected = vec![failed.id, cancelling.id];
        expected.sort();
        assert_eq!(
            moving, expected,
            "compensating and cancelling, stale or not"
        );

        store
            .transition(
                failed.id,
                &[OrderStatus::Compensating],
                OrderStatus::Failed,
                None,
                true,
            )
            .unwrap();
        assert_eq!(
            ids(store.unfinished(stale_after_all).unwrap()),
            [cancelling.id]
        );

        let again = order();
        assert!(
            matches!(
                store.insert_pending(&again, Some("b"), "fp").unwrap(),
                Inserted::New
            ),
            "b was freed"
        );
        match store.insert_pending(&order(), Some("a"), "fp").unwrap() {
            Inserted::Existing(existing, _) => assert_eq!(existing.id, placed.id),
            Inserted::New => panic!("a is still placed's"),
        }
    }
}

//! The in-memory store: one mutex over all state, never held across an
//! await, so every operation is atomic.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use uuid::Uuid;

use super::{ListQuery, StoreError, expiry, now, same_reservation};
use crate::model::{Item, ItemInput, Reservation, ReservationInput, ReservationStatus};

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    items: BTreeMap<Uuid, Item>,
    reservations: HashMap<String, Reservation>,
}

impl State {
    /// Puts a reservation's units back and bumps the item's version.
    fn restock(&mut self, reservation: &Reservation) {
        let now = now();
        if let Some(item) = reservation.item_id.and_then(|id| self.items.get_mut(&id)) {
            item.stock += reservation.quantity;
            item.version += 1;
            item.updated_at = now;
        }
    }

    fn expire(&mut self, key: &str) {
        let now = now();
        let Some(r) = self.reservations.get_mut(key) else {
            return;
        };
        if r.status != ReservationStatus::Held || r.expires_at.is_some_and(|at| at > now) {
            return;
        }
        r.status = ReservationStatus::Expired;
        r.updated_at = now;
        let r = r.clone();
        self.restock(&r);
    }
}

impl MemoryStore {
    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic mid-update elsewhere; the data is
        // still consistent because every update is a few plain assignments.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn create_item(&self, input: ItemInput) -> Result<Item, StoreError> {
        let now = now();
        let item = Item {
            id: Uuid::now_v7(),
            name: input.name,
            description: input.description,
            price_minor: input.price_minor,
            currency: input.currency,
            stock: input.stock,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        self.state().items.insert(item.id, item.clone());
        Ok(item)
    }

    pub fn get_item(&self, id: Uuid) -> Result<Option<Item>, StoreError> {
        Ok(self.state().items.get(&id).cloned())
    }

    pub fn list_items(&self, query: &ListQuery) -> Result<Vec<Item>, StoreError> {
        let state = self.state();
        let needle = query.name.as_ref().map(|n| n.to_lowercase());
        let range = match query.after {
            Some(after) => state
                .items
                .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => state.items.range(..),
        };
        Ok(range
            .map(|(_, item)| item)
            .filter(|item| {
                needle
                    .as_ref()
                    .is_none_or(|n| item.name.to_lowercase().contains(n))
            })
            .take(query.limit)
            .cloned()
            .collect())
    }

    pub fn replace_item(
        &self,
        id: Uuid,
        input: ItemInput,
        expected_version: Option<i64>,
    ) -> Result<Item, StoreError> {
        let mut state = self.state();
        let item = state.items.get_mut(&id).ok_or(StoreError::ItemNotFound)?;
        if expected_version.is_some_and(|v| v != item.version) {
            return Err(StoreError::VersionMismatch {
                current: item.version,
            });
        }
        item.name = input.name;
        item.description = input.description;
        item.price_minor = input.price_minor;
        item.currency = input.currency;
        item.stock = input.stock;
        item.version += 1;
        item.updated_at = now();
        Ok(item.clone())
    }

    pub fn delete_item(&self, id: Uuid, expected_version: Option<i64>) -> Result<(), StoreError> {
        let mut state = self.state();
        let item = state.items.get(&id).ok_or(StoreError::ItemNotFound)?;
        if expected_version.is_some_and(|v| v != item.version) {
            return Err(StoreError::VersionMismatch {
                current: item.version,
            });
        }
        state.items.remove(&id);
        Ok(())
    }

    pub fn reserve(
        &self,
        key: &str,
        input: ReservationInput,
        ttl: Duration,
    ) -> Result<(Reservation, bool), StoreError> {
        let mut state = self.state();
        if let Some(existing) = state.reservations.get(key) {
            return same_reservation(existing, &input);
        }
        let now = now();
        let item = state
            .items
            .get_mut(&input.item_id)
            .ok_or(StoreError::ItemNotFound)?;
        if item.stock < input.quantity {
            return Err(StoreError::InsufficientStock {
                available: item.stock,
                requested: input.quantity,
            });
        }
        item.stock -= input.quantity;
        item.version += 1;
        item.updated_at = now;
        let reservation = Reservation {
            key: key.to_owned(),
            item_id: Some(input.item_id),
            quantity: input.quantity,
            status: ReservationStatus::Held,
            expires_at: Some(expiry(now, ttl)),
            created_at: now,
            updated_at: now,
        };
        state
            .reservations
            .insert(key.to_owned(), reservation.clone());
        Ok((reservation, true))
    }

    pub fn get_reservation(&self, key: &str) -> Result<Option<Reservation>, StoreError> {
        Ok(self.state().reservations.get(key).cloned())
    }

    pub fn confirm(&self, key: &str) -> Result<Reservation, StoreError> {
        let mut state = self.state();
        state.expire(key);
        let r = state
            .reservations
            .get_mut(key)
            .ok_or(StoreError::ReservationNotFound)?;
        match r.status {
            ReservationStatus::Held => {
                r.status = ReservationStatus::Confirmed;
                r.expires_at = None;
                r.updated_at = now();
                Ok(r.clone())
            }
            ReservationStatus::Confirmed => Ok(r.clone()),
            ReservationStatus::Released | ReservationStatus::Expired => {
                Err(StoreError::WrongState(Box::new(r.clone())))
            }
        }
    }

    pub fn release(&self, key: &str) -> Result<Reservation, StoreError> {
        let mut state = self.state();
        let now = now();
        let Some(r) = state.reservations.get_mut(key) else {
            let tombstone = Reservation {
                key: key.to_owned(),
                item_id: None,
                quantity: 0,
                status: ReservationStatus::Released,
                expires_at: None,
                created_at: now,
                updated_at: now,
            };
            state.reservations.insert(key.to_owned(), tombstone.clone());
            return Ok(tombstone);
        };
        if !matches!(
            r.status,
            ReservationStatus::Held | ReservationStatus::Confirmed
        ) {
            return Ok(r.clone());
        }
        r.status = ReservationStatus::Released;
        r.expires_at = None;
        r.updated_at = now;
        let r = r.clone();
        state.restock(&r);
        Ok(r)
    }

    pub fn expire_due(&self) -> Result<u64, StoreError> {
        let mut state = self.state();
        let now = now();
        let due: Vec<String> = state
            .reservations
            .values()
            .filter(|r| {
                r.status == ReservationStatus::Held && r.expires_at.is_some_and(|at| at <= now)
            })
            .map(|r| r.key.clone())
            .collect();
        for key in &due {
            state.expire(key);
        }
        Ok(due.len() as u64)
    }
}

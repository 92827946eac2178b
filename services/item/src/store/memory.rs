//! The in-memory store: one mutex over all state, never held across an
//! await, so every operation is atomic.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
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
    /// Every reservation ever made (a released key stays, so a late
    /// reserve under it is refused). A B-tree, not a hash map: a hash map
    /// of hundreds of thousands grows by rehashing all of it at once under
    /// the lock, and every request waited out that copy (p99 170 ms at
    /// 60 000 reservations a second).
    reservations: BTreeMap<String, Reservation>,
    /// The held reservations by expiry, as PostgreSQL's partial index
    /// `reservations_held_by_expiry`: the sweeper takes what is due from
    /// the front instead of scanning every reservation ever made under the
    /// lock (which, at tens of thousands of reservations a second, stalled
    /// every request for the length of the scan).
    held: BTreeSet<(Timestamp, String)>,
}

/// Takes `reservation` out of the expiry index, when it is in it.
fn unhold(held: &mut BTreeSet<(Timestamp, String)>, reservation: &Reservation) {
    if let Some(at) = reservation.expires_at {
        held.remove(&(at, reservation.key.clone()));
    }
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
        // An expired hold keeps its expiry, as in PostgreSQL.
        unhold(&mut self.held, r);
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
        let expires_at = expiry(now, ttl);
        let reservation = Reservation {
            key: key.to_owned(),
            item_id: Some(input.item_id),
            quantity: input.quantity,
            status: ReservationStatus::Held,
            expires_at: Some(expires_at),
            created_at: now,
            updated_at: now,
        };
        state.held.insert((expires_at, key.to_owned()));
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
        let State {
            reservations, held, ..
        } = &mut *state;
        let r = reservations
            .get_mut(key)
            .ok_or(StoreError::ReservationNotFound)?;
        match r.status {
            ReservationStatus::Held => {
                unhold(held, r);
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
        let State {
            reservations, held, ..
        } = &mut *state;
        let Some(r) = reservations.get_mut(key) else {
            let tombstone = Reservation {
                key: key.to_owned(),
                item_id: None,
                quantity: 0,
                status: ReservationStatus::Released,
                expires_at: None,
                created_at: now,
                updated_at: now,
            };
            reservations.insert(key.to_owned(), tombstone.clone());
            return Ok(tombstone);
        };
        if !matches!(
            r.status,
            ReservationStatus::Held | ReservationStatus::Confirmed
        ) {
            return Ok(r.clone());
        }
        unhold(held, r);
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
            .held
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, key)| key.clone())
            .collect();
        for key in &due {
            state.expire(key);
        }
        Ok(due.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(store: &MemoryStore, stock: i64) -> Uuid {
        let input = ItemInput {
            name: "Kettle".to_owned(),
            description: String::new(),
            price_minor: 3999,
            currency: "GBP".to_owned(),
            stock,
        };
        store.create_item(input).unwrap().id
    }

    /// The expiry index holds exactly the held reservations, whatever
    /// happened to the others, so the sweeper frees exactly those.
    #[test]
    fn the_sweeper_frees_exactly_the_holds_still_held_when_due() {
        let store = MemoryStore::default();
        let id = item(&store, 10);
        let reserve = |key: &str, ttl| {
            let input = ReservationInput {
                item_id: id,
                quantity: 1,
            };
            store.reserve(key, input, ttl).unwrap();
        };
        for i in 0..8 {
            reserve(&format!("due-{i}"), Duration::ZERO);
        }
        reserve("later", Duration::from_secs(3600));
        store.confirm("due-0").unwrap_err(); // already past its expiry
        store.release("due-1").unwrap();
        store.release("never-reserved").unwrap();
        assert_eq!(store.state().held.len(), 7, "due-2..7 and later");

        assert_eq!(store.expire_due().unwrap(), 6, "due-2..7");
        let expired = store.get_reservation("due-2").unwrap().unwrap();
        assert_eq!(expired.status, ReservationStatus::Expired);
        assert!(
            expired.expires_at.is_some(),
            "an expired hold keeps its expiry"
        );
        assert_eq!(store.expire_due().unwrap(), 0, "each hold expires once");
        assert_eq!(
            store.get_item(id).unwrap().unwrap().stock,
            9,
            "later's unit"
        );
        let held: Vec<_> = store.state().held.iter().map(|(_, k)| k.clone()).collect();
        assert_eq!(held, ["later"]);

        store.confirm("later").unwrap();
        assert!(store.state().held.is_empty());
        store.release("later").unwrap();
        assert_eq!(store.get_item(id).unwrap().unwrap().stock, 10);
    }
}

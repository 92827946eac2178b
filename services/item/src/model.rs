//! The item service's data: items, stock reservations, and the request
//! bodies that create or change them, each with its validation.

use berth_service_kit::FieldError;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
pub const MAX_STOCK: i64 = 1_000_000_000;
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000_000;
pub const MAX_RESERVATION_QUANTITY: i64 = 1_000_000;

/// A catalogue item and its available stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Item {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// Price in minor units of `currency` (cents for EUR): exact, never a float.
    pub price_minor: i64,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    /// Units available to reserve (reserved units are not counted).
    pub stock: i64,
    /// Increases on every change; the ETag is this number in quotes.
    pub version: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl Item {
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

/// Body of `POST /v1/items` and `PUT /v1/items/{id}`: every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub price_minor: i64,
    pub currency: String,
    pub stock: i64,
}

/// Body of `PATCH /v1/items/{id}`: only the fields to change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price_minor: Option<i64>,
    pub currency: Option<String>,
    pub stock: Option<i64>,
}

impl ItemInput {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        check_name(&self.name, &mut errors);
        check_description(&self.description, &mut errors);
        check_price(self.price_minor, &mut errors);
        check_currency(&self.currency, &mut errors);
        check_stock(self.stock, &mut errors);
        errors
    }
}

impl ItemPatch {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(name) = &self.name {
            check_name(name, &mut errors);
        }
        if let Some(description) = &self.description {
            check_description(description, &mut errors);
        }
        if let Some(price) = self.price_minor {
            check_price(price, &mut errors);
        }
        if let Some(currency) = &self.currency {
            check_currency(currency, &mut errors);
        }
        if let Some(stock) = self.stock {
            check_stock(stock, &mut errors);
        }
        errors
    }

    /// The full input this patch produces on top of `item`.
    pub fn apply_to(&self, item: &Item) -> ItemInput {
        ItemInput {
            name: self.name.clone().unwrap_or_else(|| item.name.clone()),
            description: self
                .description
                .clone()
                .unwrap_or_else(|| item.description.clone()),
            price_minor: self.price_minor.unwrap_or(item.price_minor),
            currency: self
                .currency
                .clone()
                .unwrap_or_else(|| item.currency.clone()),
            stock: self.stock.unwrap_or(item.stock),
        }
    }
}

fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    if name.trim().is_empty() {
        errors.push(FieldError::new("name", "must not be empty"));
    } else if name.chars().count() > MAX_NAME_CHARS {
        errors.push(FieldError::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
}

fn check_description(description: &str, errors: &mut Vec<FieldError>) {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.push(FieldError::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
}

fn check_price(price: i64, errors: &mut Vec<FieldError>) {
    if !(0..=MAX_PRICE_MINOR).contains(&price) {
        errors.push(FieldError::new(
            "price_minor",
            format!("must be between 0 and {MAX_PRICE_MINOR}"),
        ));
    }
}

fn check_currency(currency: &str, errors: &mut Vec<FieldError>) {
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        errors.push(FieldError::new(
            "currency",
            "must be an ISO 4217 code: three uppercase letters",
        ));
    }
}

fn check_stock(stock: i64, errors: &mut Vec<FieldError>) {
    if !(0..=MAX_STOCK).contains(&stock) {
        errors.push(FieldError::new(
            "stock",
            format!("must be between 0 and {MAX_STOCK}"),
        ));
    }
}

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Units are set aside until `expires_at`.
    Held,
    /// Units are sold; no expiry.
    Confirmed,
    /// Units went back to stock (or the key was released before any reserve).
    Released,
    /// Held past `expires_at`; units went back to stock.
    Expired,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Confirmed => "confirmed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "held" => Some(Self::Held),
            "confirmed" => Some(Self::Confirmed),
            "released" => Some(Self::Released),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// Units of one item set aside under a client-chosen key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reservation {
    pub key: String,
    /// Absent for a key released before anything was reserved under it.
    pub item_id: Option<Uuid>,
    pub quantity: i64,
    pub status: ReservationStatus,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// Body of `PUT /v1/reservations/{key}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationInput {
    pub item_id: Uuid,
    pub quantity: i64,
}

impl ReservationInput {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if !(1..=MAX_RESERVATION_QUANTITY).contains(&self.quantity) {
            errors.push(FieldError::new(
                "quantity",
                format!("must be between 1 and {MAX_RESERVATION_QUANTITY}"),
            ));
        }
        errors
    }
}

/// Reservation keys are chosen by clients and appear in URLs.
pub fn validate_reservation_key(key: &str) -> Result<(), FieldError> {
    let ok = !key.is_empty()
        && key.len() <= 200
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "key",
            "must be 1 to 200 characters of A-Z a-z 0-9 - _ . :",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ItemInput {
        ItemInput {
            name: "Mug".into(),
            description: String::new(),
            price_minor: 1250,
            currency: "EUR".into(),
            stock: 3,
        }
    }

    #[test]
    fn valid_input_has_no_errors() {
        assert!(input().validate().is_empty());
    }

    #[test]
    fn every_bad_field_is_reported() {
        let bad = ItemInput {
            name: " ".into(),
            description: "x".repeat(2001),
            price_minor: -1,
            currency: "eur".into(),
            stock: -5,
        };
        let fields: Vec<_> = bad.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["name", "description", "price_minor", "currency", "stock"]
        );
    }

    #[test]
    fn reservation_keys_are_url_safe() {
        assert!(validate_reservation_key("order:0190:1").is_ok());
        assert!(validate_reservation_key("").is_err());
        assert!(validate_reservation_key("a/b").is_err());
        assert!(validate_reservation_key(&"k".repeat(201)).is_err());
    }
}

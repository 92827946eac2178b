//! The item service's data: items, stock reservations, and the request
//! bodies that create or change them, each with its validation.

use berth_service_kit::{FieldError, whole_number};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
pub const MAX_STOCK: i64 = 1_000_000_000;
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000_000;
pub const MAX_RESERVATION_QUANTITY: i64 = 1_000_000;
pub const MAX_RESERVATION_KEY_BYTES: usize = 200;

// The schema attributes below take literals only, so each constraint is
// written twice: as the constant the validation uses and in the schema.
// `openapi::tests` checks that the two agree.

/// A name must contain a character that is not whitespace, and no NUL
/// anywhere (PostgreSQL text cannot hold one). The whitespace class is
/// exactly Rust's `char::is_whitespace` (what `str::trim` removes), spelled
/// out because `\s` means something else in each regex dialect.
pub const NOT_BLANK_PATTERN: &str = r"^[^\x00]*[^\x00\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00]*$";

/// A catalogue item and its available stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "id": "01936d3e-8f2a-7b4c-9d1e-2f3a4b5c6d7e",
    "name": "Enamel mug",
    "description": "350 ml, white, dishwasher safe",
    "price_minor": 1250,
    "currency": "EUR",
    "stock": 40,
    "version": 3,
    "created_at": "2026-11-30T09:12:00Z",
    "updated_at": "2026-11-30T10:05:42Z"
})))]
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
#[schema(examples(json!({
    "name": "Enamel mug",
    "description": "350 ml, white, dishwasher safe",
    "price_minor": 1250,
    "currency": "EUR",
    "stock": 40
})))]
pub struct ItemInput {
    /// Not only whitespace; no NUL.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00]*[^\x00\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00]*$"
    )]
    pub name: String,
    /// No NUL.
    #[serde(default)]
    #[schema(max_length = 2000, pattern = r"^[^\x00]*$")]
    pub description: String,
    /// Price in minor units of `currency` (cents for EUR).
    #[serde(deserialize_with = "whole_number::deserialize")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub price_minor: i64,
    /// ISO 4217 code: three capital letters.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    #[serde(deserialize_with = "whole_number::deserialize")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub stock: i64,
}

/// Body of `PATCH /v1/items/{id}`: only the fields to change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"price_minor": 1100, "stock": 35})))]
pub struct ItemPatch {
    /// Not only whitespace; no NUL.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00]*[^\x00\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00]*$"
    )]
    pub name: Option<String>,
    /// No NUL.
    #[schema(max_length = 2000, pattern = r"^[^\x00]*$")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "whole_number::option")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub price_minor: Option<i64>,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "whole_number::option")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
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

/// PostgreSQL text cannot hold U+0000, so neither store takes one.
const NUL: char = '\0';

fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    if name.contains(NUL) {
        errors.push(FieldError::new("name", "must not contain NUL (U+0000)"));
    } else if name.trim().is_empty() {
        errors.push(FieldError::new("name", "must not be empty"));
    } else if name.chars().count() > MAX_NAME_CHARS {
        errors.push(FieldError::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
}

fn check_description(description: &str, errors: &mut Vec<FieldError>) {
    if description.contains(NUL) {
        errors.push(FieldError::new(
            "description",
            "must not contain NUL (U+0000)",
        ));
    } else if description.chars().count() > MAX_DESCRIPTION_CHARS {
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
#[schema(examples(json!({
    "key": "order:01936d40-1c5b-7e2a-8f3d-4a5b6c7d8e9f:0",
    "item_id": "01936d3e-8f2a-7b4c-9d1e-2f3a4b5c6d7e",
    "quantity": 2,
    "status": "held",
    "expires_at": "2026-11-30T10:20:42Z",
    "created_at": "2026-11-30T10:05:42Z",
    "updated_at": "2026-11-30T10:05:42Z"
})))]
pub struct Reservation {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")]
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
#[schema(examples(json!({"item_id": "01936d3e-8f2a-7b4c-9d1e-2f3a4b5c6d7e", "quantity": 2})))]
pub struct ReservationInput {
    pub item_id: Uuid,
    #[serde(deserialize_with = "whole_number::deserialize")]
    #[schema(minimum = 1, maximum = 1_000_000)]
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

/// Reservation keys are chosen by clients and appear in URLs. The first
/// character is a letter or digit so that no key is a dot segment (`.`,
/// `..`), which clients and proxies remove from a URL before sending it.
pub fn validate_reservation_key(key: &str) -> Result<(), FieldError> {
    let ok = key.len() <= MAX_RESERVATION_KEY_BYTES
        && key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "key",
            "must be 1 to 200 characters of A-Z a-z 0-9 - _ . :, the first a letter or digit",
        ))
    }
}

/// The `{key}` of the reservation routes, as the document describes it.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // the handlers take the key as a string and check it
pub struct ReservationKey {
    /// Chosen by the caller; the same key names the same reservation.
    #[param(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$",
        example = "order:01936d40-1c5b-7e2a-8f3d-4a5b6c7d8e9f:0"
    )]
    key: String,
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

    /// PostgreSQL text cannot hold NUL: refused in both stores alike (it
    /// was a 500 on PostgreSQL, found by the contract test).
    #[test]
    fn a_nul_is_refused_in_name_and_description() {
        let bad = ItemInput {
            name: "a\0b".into(),
            description: "\0".into(),
            ..input()
        };
        let errors = bad.validate();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "description"]);
        let patch = ItemPatch {
            description: Some("x\0".into()),
            ..ItemPatch::default()
        };
        assert_eq!(patch.validate().len(), 1);
    }

    #[test]
    fn reservation_keys_are_url_safe() {
        assert!(validate_reservation_key("order:0190:1").is_ok());
        assert!(validate_reservation_key("").is_err());
        assert!(validate_reservation_key("..").is_err());
        assert!(validate_reservation_key(".a").is_err());
        assert!(validate_reservation_key(&"k".repeat(200)).is_ok());
        assert!(validate_reservation_key("a/b").is_err());
        assert!(validate_reservation_key(&"k".repeat(201)).is_err());
    }
}

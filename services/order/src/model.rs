//! Orders: what a client asks for, and what the service stores and returns.

use berth_service_kit::store::now;
use berth_service_kit::{FieldError, whole_number};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub const MAX_LINES: usize = 20;
pub const MAX_QUANTITY: i64 = 10_000;

/// Where an order is in the saga that places it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Being placed: stock may be partly reserved.
    Pending,
    /// Placed: every line's stock is reserved and confirmed.
    Placed,
    /// Placing failed; its reservations are being released.
    Compensating,
    /// Placing failed and every reservation was released.
    Failed,
    /// Cancel requested; reservations are being released.
    Cancelling,
    /// Cancelled and every reservation released.
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Placed => "placed",
            Self::Compensating => "compensating",
            Self::Failed => "failed",
            Self::Cancelling => "cancelling",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Placed,
            Self::Compensating,
            Self::Failed,
            Self::Cancelling,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// One line of an order; the item's name and price are the ones seen when
/// the order was placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "item_id": "01936d3e-8f2a-7b4c-9d1e-2f3a4b5c6d7e",
    "quantity": 2,
    "name": "Enamel mug",
    "unit_price_minor": 1250,
    "line_total_minor": 2500
})))]
pub struct OrderLine {
    pub item_id: Uuid,
    pub quantity: i64,
    /// Absent until the order is priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Unit price in minor units of the order's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price_minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_total_minor: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "id": "01936d40-1c5b-7e2a-8f3d-4a5b6c7d8e9f",
    "status": "placed",
    "lines": [{
        "item_id": "01936d3e-8f2a-7b4c-9d1e-2f3a4b5c6d7e",
        "quantity": 2,
        "name": "Enamel mug",
        "unit_price_minor": 1250,
        "line_total_minor": 2500
    }],
    "currency": "EUR",
    "total_minor": 2500,
    "created_at": "2026-11-30T10:05:41Z",
    "updated_at": "2026-11-30T10:05:42Z"
})))]
pub struct Order {
    pub id: Uuid,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    /// Set once the order is priced.
    pub currency: Option<String>,
    /// Sum of the line totals, in minor units; set once priced.
    pub total_minor: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl Order {
    /// A new order of `input`'s lines, `pending`: recorded before anything
    /// is priced or reserved, so a crash from here on leaves a trace.
    pub fn pending(input: &NewOrder) -> Self {
        let now = now();
        Self {
            id: Uuid::now_v7(),
            status: OrderStatus::Pending,
            lines: input
                .lines
                .iter()
                .map(|l| OrderLine {
                    item_id: l.item_id,
                    quantity: l.quantity,
                    name: None,
                    unit_price_minor: None,
                    line_total_minor: None,
                })
                .collect(),
            currency: None,
            total_minor: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The reservation key of line `index`: derived from the order, so a
    /// retry, the compensation and the reconciler all name the same hold.
    pub fn reservation_key(&self, index: usize) -> String {
        format!("order:{}:{index}", self.id)
    }
}

/// What pricing adds to a pending order.
#[derive(Debug, Clone, PartialEq)]
pub struct Pricing {
    pub lines: Vec<OrderLine>,
    pub currency: String,
    pub total_minor: i64,
}

/// Body of `POST /v1/orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "lines": [{"item_id": "01936d3e-8f2a-7b4c-9d1e-2f3a4b5c6d7e", "quantity": 2}]
})))]
pub struct NewOrder {
    /// At most one line per item; the items exist and share one currency.
    #[schema(min_items = 1, max_items = 20)]
    pub lines: Vec<LineInput>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"item_id": "01936d3e-8f2a-7b4c-9d1e-2f3a4b5c6d7e", "quantity": 2})))]
pub struct LineInput {
    pub item_id: Uuid,
    #[serde(deserialize_with = "whole_number::deserialize")]
    #[schema(minimum = 1, maximum = 10_000)]
    pub quantity: i64,
}

impl NewOrder {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.lines.is_empty() || self.lines.len() > MAX_LINES {
            errors.push(FieldError::new(
                "lines",
                format!("must have 1 to {MAX_LINES} lines"),
            ));
        }
        for (i, line) in self.lines.iter().enumerate() {
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                errors.push(FieldError::new(
                    format!("lines[{i}].quantity"),
                    format!("must be between 1 and {MAX_QUANTITY}"),
                ));
            }
            if self.lines[..i]
                .iter()
                .any(|earlier| earlier.item_id == line.item_id)
            {
                errors.push(FieldError::new(
                    format!("lines[{i}].item_id"),
                    "repeats an earlier line's item; combine them",
                ));
            }
        }
        errors
    }

    /// Identifies the request for `Idempotency-Key`: the same key with a
    /// different body is a client error, not a replay.
    pub fn fingerprint(&self) -> String {
        serde_json::to_string(&self.lines).unwrap_or_default()
    }
}

/// The `Idempotency-Key` header of `POST /v1/orders`, as the document
/// describes it.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read by `routes::create`; this type only describes it
pub struct IdempotencyKey {
    /// A retry with the same key returns the first order instead of placing
    /// another; the same key with another body is a 422.
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        pattern = "^[!-~]{1,200}$",
        example = "checkout-7f3a9c2e"
    )]
    idempotency_key: Option<String>,
}

/// Idempotency keys are opaque to us but bounded.
pub fn validate_idempotency_key(key: &str) -> Result<(), FieldError> {
    let ok = !key.is_empty() && key.len() <= 200 && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "Idempotency-Key",
            "must be 1 to 200 visible ASCII characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_each_bad_line() {
        let id = Uuid::now_v7();
        let order = NewOrder {
            lines: vec![
                LineInput {
                    item_id: id,
                    quantity: 0,
                },
                LineInput {
                    item_id: id,
                    quantity: 1,
                },
            ],
        };
        let fields: Vec<_> = order.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["lines[0].quantity", "lines[1].item_id"]);
        assert_eq!(NewOrder { lines: vec![] }.validate()[0].field, "lines");
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            "pending",
            "placed",
            "compensating",
            "failed",
            "cancelling",
            "cancelled",
        ] {
            assert_eq!(OrderStatus::parse(s).map(OrderStatus::as_str), Some(s));
        }
    }
}

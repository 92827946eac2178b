//! Is a live child already what Berth would apply? Answering this without a
//! write is what keeps a quiet cluster quiet: after a restart, or on the
//! periodic resync, nothing is sent for children that are already right.
//!
//! Two checks, both needed: the spec hash annotation says the last apply was
//! of exactly this desired object (so a field Berth stopped setting is not
//! left behind), and a structural subset check says nobody has since changed a
//! field Berth sets (a hand edit is put back).
//!
//! The subset check compares meaning, not spelling, because the API server
//! stores some values differently from how they were sent: quantities in
//! canonical form (`0.5` becomes `500m`, `1024Mi` becomes `1Gi`), and zero
//! values of plain (non-pointer) fields dropped (`initialDelaySeconds: 0`,
//! `value: ""`). Comparing those literally would re-apply on every resync.

use serde_json::Value;

use crate::desired::SPEC_HASH_ANNOTATION;
use crate::quantity;

/// Whether `live` already holds everything in `desired`.
pub fn up_to_date<K: serde::Serialize + kube::Resource>(desired: &K, live: &K) -> bool {
    let hash = |k: &K| {
        k.meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(SPEC_HASH_ANNOTATION))
            .cloned()
    };
    if hash(desired).is_none() || hash(desired) != hash(live) {
        return false;
    }
    match (serde_json::to_value(desired), serde_json::to_value(live)) {
        (Ok(d), Ok(l)) => is_subset(&d, &l),
        _ => false,
    }
}

/// Every field of `desired` is in `live` with the same meaning. Objects may
/// have extra keys in `live` (defaults, other managers' fields, status);
/// lists must have the same length and match element by element. A zero
/// value in `desired` may be absent from `live`.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    matches(desired, live, Place::Other)
}

/// Where a value sits, as far as its meaning depends on it.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// Holds a resource quantity: the values of `resources.limits` and
    /// `.requests`, an emptyDir's `sizeLimit`, a metric target's
    /// `averageValue` and `value`, an HPA scaling rule's `tolerance`.
    Quantity,
    /// The value of a metric `target` (its `value` is a quantity).
    MetricTarget,
    /// The map of `limits` or `requests` (each value is a quantity).
    ResourceList,
    Other,
}

impl Place {
    fn of(parent: Place, key: &str) -> Place {
        match (parent, key) {
            (Place::ResourceList, _) => Place::Quantity,
            (_, "limits" | "requests") => Place::ResourceList,
            (_, "sizeLimit" | "averageValue" | "tolerance") => Place::Quantity,
            (Place::MetricTarget, "value") => Place::Quantity,
            (_, "target") => Place::MetricTarget,
            _ => Place::Other,
        }
    }
}

fn matches(desired: &Value, live: &Value, place: Place) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(key, dv)| match l.get(key) {
            Some(lv) => matches(dv, lv, Place::of(place, key)),
            None => is_zero(dv),
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(dv, lv)| matches(dv, lv, place))
        }
        (Value::Number(d), Value::Number(l)) => d.as_f64() == l.as_f64(),
        (Value::String(d), Value::String(l)) if place == Place::Quantity && d != l => {
            quantity::nanos(d).is_some_and(|d| Some(d) == quantity::nanos(l))
        }
        _ => desired == live,
    }
}

/// A value the API server drops when its field is a plain (non-pointer) one
/// with `omitempty`: Go's zero values, and empty lists and maps.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.values().all(is_zero),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_live_fields_are_fine_missing_or_changed_ones_are_not() {
        let desired = json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}});
        let live = json!({"spec": {"replicas": 2, "paused": false, "ports": [{"port": 80, "protocol": "TCP"}]}, "status": {}});
        assert!(is_subset(&desired, &live));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 3, "ports": [{"port": 80}]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"ports": [{"port": 80}]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 2, "ports": [{"port": 80}, {"port": 81}]}})
        ));
    }

    #[test]
    fn quantities_compare_by_value_where_they_are_quantities() {
        let desired = json!({"resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}},
            "volumes": [{"emptyDir": {"sizeLimit": "64Mi"}}],
            "metrics": [{"pods": {"target": {"type": "AverageValue", "averageValue": "0.5", "value": "1k"}}}],
            "behavior": {"scaleUp": {"tolerance": "0.05"}, "scaleDown": {"tolerance": "5E-1"}}});
        let stored = json!({"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
            "volumes": [{"emptyDir": {"sizeLimit": "65536Ki"}}],
            "metrics": [{"pods": {"target": {"type": "AverageValue", "averageValue": "500m", "value": "1000"}}}],
            "behavior": {"scaleUp": {"tolerance": "50m"}, "scaleDown": {"tolerance": "500e-3"}}});
        assert!(is_subset(&desired, &stored));
        let changed = json!({"resources": {"requests": {"cpu": "600m", "memory": "1Gi"}}});
        assert!(!is_subset(
            &json!({"resources": {"requests": {"cpu": "0.5"}}}),
            &changed
        ));
        // An env var's value is text, even when it looks like a quantity.
        assert!(!is_subset(
            &json!({"env": [{"name": "N", "value": "1k"}]}),
            &json!({"env": [{"name": "N", "value": "1000"}]})
        ));
    }

    #[test]
    fn zero_values_the_api_server_drops_may_be_absent() {
        let desired = json!({"probe": {"initialDelaySeconds": 0, "periodSeconds": 10},
            "env": [{"name": "EMPTY", "value": ""}], "args": [], "stdin": false});
        let stored = json!({"probe": {"periodSeconds": 10}, "env": [{"name": "EMPTY"}]});
        assert!(is_subset(&desired, &stored));
        assert!(!is_subset(
            &json!({"probe": {"initialDelaySeconds": 5}}),
            &json!({"probe": {}})
        ));
        assert!(
            !is_subset(
                &json!({"probe": {"initialDelaySeconds": 0}}),
                &json!({"probe": {"initialDelaySeconds": 5}})
            ),
            "a zero that is there must still match"
        );
    }
}

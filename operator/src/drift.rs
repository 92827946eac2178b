//! Is a live child already what Berth would apply? Answering this without a
//! write is what keeps a quiet cluster quiet: after a restart, or on the
//! periodic resync, nothing is sent for children that are already right.
//!
//! Two checks, both needed: the spec hash annotation says the last apply was
//! of exactly this desired object (so a field Berth stopped setting is not
//! left behind), and a structural subset check says nobody has since changed a
//! field Berth sets (a hand edit is put back).

use serde_json::Value;

use crate::desired::SPEC_HASH_ANNOTATION;

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

/// Every field of `desired` is in `live` with the same value. Objects may
/// have extra keys in `live` (defaults, other managers' fields, status);
/// lists must have the same length and match element by element.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, dv)| l.get(k).is_some_and(|lv| is_subset(dv, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(dv, lv)| is_subset(dv, lv))
        }
        (Value::Number(d), Value::Number(l)) => d.as_f64() == l.as_f64(),
        _ => desired == live,
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
}

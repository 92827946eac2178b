//! Is a live child already what Berth would apply? Answering this without a
//! write is what keeps a quiet cluster quiet: after a restart, or on the
//! periodic resync, nothing is sent for children that are already right.
//!
//! Two checks, both needed: the spec hash annotation says the last apply was
//! of exactly this desired object (so a field Berth stopped setting is not
//! left behind), and a digest says nobody has since changed a field Berth
//! sets (a hand edit is put back).
//!
//! The digest covers exactly the fields Berth's own apply owns: the live
//! object is cut down to the field set of Berth's `managedFields` entry (a
//! field someone else changed has moved to their entry, so it drops out),
//! and compared with the desired object cut the same way. A digest, not the
//! object, is what the cache keeps ([`crate::slim`]): a few bytes instead of
//! a pod template.
//!
//! Both sides are compared by meaning, not spelling, because the API server
//! stores some values differently from how they were sent: quantities in
//! canonical form (`0.5` becomes `500m`, `1024Mi` becomes `1Gi`), and zero
//! values of plain (non-pointer) fields dropped (`initialDelaySeconds: 0`,
//! `value: ""`). Comparing those literally would re-apply on every resync.

use kube::Resource;
use serde_json::{Map, Value};

use crate::apply::is_own_apply;
use crate::desired::SPEC_HASH_ANNOTATION;
use crate::quantity;

/// Where the cache keeps a slimmed child's digest ([`crate::slim`]). Only
/// ever on the cache's copy: nothing is applied from a cached object.
pub const DIGEST_ANNOTATION: &str = "berth.dev/cached-owned-digest";

/// Whether `live` already holds everything in `desired`.
pub fn up_to_date<K: serde::Serialize + Resource>(desired: &K, live: &K) -> bool {
    let hash = |k: &K| {
        k.meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(SPEC_HASH_ANNOTATION))
            .cloned()
    };
    hash(desired).is_some()
        && hash(desired) == hash(live)
        && desired_digest(desired).is_some_and(|d| Some(d) == owned_digest(live))
}

/// The digest of what applying `desired` sets.
pub fn desired_digest<K: serde::Serialize>(desired: &K) -> Option<u64> {
    let mut value = serde_json::to_value(desired).ok()?;
    let object = value.as_object_mut()?;
    // What names the object is not in any field set.
    object.remove("apiVersion");
    object.remove("kind");
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["name", "namespace", "resourceVersion", "uid"] {
            meta.remove(key);
        }
    }
    Some(digest(&value))
}

/// The digest of the fields of `live` that Berth's own apply owns: equal to
/// [`desired_digest`] of the object Berth last applied, as long as nobody
/// has changed one of them since. Read from the cache's annotation on a
/// slimmed object; computed from the fields on a whole one.
pub fn owned_digest<K: serde::Serialize + Resource>(live: &K) -> Option<u64> {
    let meta = live.meta();
    if let Some(cached) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(DIGEST_ANNOTATION))
    {
        return u64::from_str_radix(cached, 16).ok();
    }
    let fields = meta
        .managed_fields
        .iter()
        .flatten()
        .find(|entry| is_own_apply(entry))?
        .fields_v1
        .as_ref()?;
    let value = serde_json::to_value(live).ok()?;
    Some(digest(&owned(&value, fields.0.as_object()?)))
}

/// The digest of `value` by meaning (see [`normalized`]).
fn digest(value: &Value) -> u64 {
    let normal = normalized(value, Place::Other).unwrap_or(Value::Null);
    crate::desired::fnv1a(&serde_json::to_vec(&normal).expect("JSON values serialize"))
}

/// `value` cut down to the fields of a `managedFields` field set (FieldsV1):
/// `f:<name>` is a field, `k:<key json>` a list element by its key fields,
/// `v:<json>` a list element by value, `i:<n>` one by position, and `.` the
/// field itself. A field listed without sub-fields is owned whole.
fn owned(value: &Value, fields: &Map<String, Value>) -> Value {
    if fields.keys().all(|k| k == ".") {
        return value.clone();
    }
    match value {
        Value::Object(object) => Value::Object(
            fields
                .iter()
                .filter_map(|(key, sub)| {
                    let name = key.strip_prefix("f:")?;
                    let field = object.get(name)?;
                    Some((name.to_owned(), owned(field, sub.as_object()?)))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .filter_map(|(index, item)| {
                    let (_, sub) = fields
                        .iter()
                        .find(|(key, _)| is_element(key, index, item))?;
                    Some(owned(item, sub.as_object()?))
                })
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// Whether list element `item` at `index` is the one field-set key `key` names.
fn is_element(key: &str, index: usize, item: &Value) -> bool {
    if let Some(keys) = key.strip_prefix("k:") {
        match serde_json::from_str::<Map<String, Value>>(keys) {
            Ok(keys) => keys.iter().all(|(field, v)| item.get(field) == Some(v)),
            Err(_) => false,
        }
    } else if let Some(literal) = key.strip_prefix("v:") {
        serde_json::from_str::<Value>(literal).is_ok_and(|v| &v == item)
    } else if let Some(position) = key.strip_prefix("i:") {
        position.parse() == Ok(index)
    } else {
        false
    }
}

/// Where a value sits, as far as its meaning depends on it.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// Holds a resource quantity: the values of `resources.limits` and
    /// `.requests`, an emptyDir's `sizeLimit`, a metric target's
    /// `averageValue` and `value`, an HPA scaling rule's `tolerance`, a
    /// `resourceFieldRef`'s `divisor`.
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
            (_, "sizeLimit" | "averageValue" | "tolerance" | "divisor") => Place::Quantity,
            (Place::MetricTarget, "value") => Place::Quantity,
            (_, "target") => Place::MetricTarget,
            _ => Place::Other,
        }
    }
}

/// `value` by meaning: quantities in nano-units, numbers as floats, and
/// zero values (which the API server drops from plain fields) left out;
/// `None` when all of it is zero. A zero list element stays, as `null`, so
/// lists keep their length.
fn normalized(value: &Value, place: Place) -> Option<Value> {
    match value {
        Value::Object(fields) => {
            let kept: Map<String, Value> = fields
                .iter()
                .filter_map(|(key, v)| Some((key.clone(), normalized(v, Place::of(place, key))?)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .map(|v| normalized(v, place).unwrap_or(Value::Null))
                .collect(),
        )),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => None,
            Some(f) => serde_json::Number::from_f64(f).map(Value::Number),
            None => Some(value.clone()),
        },
        Value::String(s) if s.is_empty() => None,
        // A zero quantity is the zero value of a plain `Quantity` field (an
        // unset `resourceFieldRef.divisor` is stored as "0").
        Value::String(s) if place == Place::Quantity => match quantity::nanos(s) {
            Some(0) => None,
            Some(n) => Some(Value::String(format!("{n}n"))),
            None => Some(value.clone()),
        },
        Value::Bool(false) | Value::Null => None,
        _ => Some(value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A field set owning every field of `value` (lists whole).
    fn owning_all(value: &Value) -> Value {
        match value {
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (format!("f:{k}"), owning_all(v)))
                    .collect(),
            ),
            _ => json!({}),
        }
    }

    /// Whether `live`, of which Berth owns `fields`, holds `desired`.
    fn holds(desired: &Value, live: &Value, fields: &Value) -> bool {
        digest(desired) == digest(&owned(live, fields.as_object().unwrap()))
    }

    /// As [`holds`], Berth owning every field it sets.
    fn same(desired: &Value, live: &Value) -> bool {
        holds(desired, live, &owning_all(desired))
    }

    #[test]
    fn fields_berth_does_not_own_are_ignored_owned_ones_must_match() {
        let desired = json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}});
        let fields = json!({"f:spec": {"f:replicas": {}, "f:ports": {}}});
        let live = json!({"spec": {"replicas": 2, "paused": true, "ports": [{"port": 80}]}, "status": {"replicas": 2}});
        assert!(holds(&desired, &live, &fields));
        let changed = json!({"spec": {"replicas": 3, "ports": [{"port": 80}]}});
        assert!(!holds(&desired, &changed, &fields));
        // Someone else's update of spec.replicas moved the field to them.
        let taken = json!({"f:spec": {"f:ports": {}}});
        assert!(!holds(&desired, &live, &taken));
        assert!(!same(
            &desired,
            &json!({"spec": {"replicas": 2, "ports": [{"port": 80}, {"port": 81}]}})
        ));
    }

    #[test]
    fn list_elements_are_found_by_their_keys() {
        let desired = json!({"containers": [{"name": "app", "image": "a:1", "env": [{"name": "X", "value": "1"}]}]});
        let fields = json!({"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {},
            "f:env": {"k:{\"name\":\"X\"}": {".": {}, "f:name": {}, "f:value": {}}}}}});
        // A sidecar someone else injected, and defaults, are not Berth's.
        let live = json!({"containers": [
            {"name": "sidecar", "image": "proxy:1"},
            {"name": "app", "image": "a:1", "imagePullPolicy": "IfNotPresent", "env": [{"name": "X", "value": "1"}]}]});
        assert!(holds(&desired, &live, &fields));
        let edited = json!({"containers": [{"name": "app", "image": "a:2", "env": [{"name": "X", "value": "1"}]}]});
        assert!(!holds(&desired, &edited, &fields));
        assert!(is_element("v:\"x\"", 0, &json!("x")));
        assert!(is_element("i:1", 1, &json!({})));
        assert!(!is_element("k:{\"name\":\"b\"}", 0, &json!({"name": "a"})));
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
        assert!(same(&desired, &stored));
        let changed = json!({"resources": {"requests": {"cpu": "600m", "memory": "1Gi"}}});
        assert!(!same(
            &json!({"resources": {"requests": {"cpu": "0.5"}}}),
            &changed
        ));
        // An env var's value is text, even when it looks like a quantity.
        assert!(!same(
            &json!({"env": [{"name": "N", "value": "1k"}]}),
            &json!({"env": [{"name": "N", "value": "1000"}]})
        ));
    }

    #[test]
    fn zero_values_the_api_server_drops_may_be_absent() {
        let desired = json!({"probe": {"initialDelaySeconds": 0, "periodSeconds": 10},
            "env": [{"name": "EMPTY", "value": ""}], "args": [], "stdin": false});
        let stored = json!({"probe": {"periodSeconds": 10}, "env": [{"name": "EMPTY"}]});
        assert!(same(
            &json!({"valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}),
            &json!({"valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "0"}}})
        ));
        assert!(same(&desired, &stored));
        assert!(!same(
            &json!({"probe": {"initialDelaySeconds": 5}}),
            &json!({"probe": {}})
        ));
        assert!(
            !same(
                &json!({"probe": {"initialDelaySeconds": 0}}),
                &json!({"probe": {"initialDelaySeconds": 5}})
            ),
            "a zero that is there must still match"
        );
    }

    #[test]
    fn a_cached_digest_stands_for_the_fields() {
        use k8s_openapi::api::core::v1::Service;
        let mut live: Service = serde_json::from_value(json!({
            "metadata": {"name": "item", "annotations": {SPEC_HASH_ANNOTATION: "h"}},
            "spec": {"selector": {"app": "item"}}
        }))
        .unwrap();
        let desired = live.clone();
        assert_eq!(owned_digest(&live), None, "no field set, no digest");
        live.metadata.annotations.as_mut().unwrap().insert(
            DIGEST_ANNOTATION.into(),
            format!("{:x}", desired_digest(&desired).unwrap()),
        );
        assert!(up_to_date(&desired, &live));
    }
}

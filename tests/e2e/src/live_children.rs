//! The children Berth made in one namespace, captured as JSON (every
//! Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget and
//! PodMonitor with the label `berth.dev/microservice`), and what changed between two captures:
//! which child, which fields, and whether Berth's own field manager wrote it.
//! The quiet-at-rest tests use it to prove that a reconcile wrote nothing, and
//! to say exactly what changed when one did.

use std::collections::BTreeMap;

use berth_operator::desired::PodMonitor;
use berth_operator::desired::labels::MICROSERVICE_LABEL;
use berth_operator::microservice::MANAGER;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;

/// Children by (kind, name), as the API server returned them.
#[derive(Clone, Debug, Default)]
pub struct LiveChildren {
    pub objects: BTreeMap<(String, String), Value>,
}

/// How one child differs between two captures.
#[derive(Clone, Debug)]
pub struct ChildChange {
    pub kind: String,
    pub name: String,
    /// The MicroService it belongs to (its `berth.dev/microservice` label).
    pub microservice: String,
    /// Created, deleted or recreated (a new uid), or Berth's managedFields entry changed.
    pub by_berth: bool,
    /// `path: before -> after`, one per differing leaf.
    pub fields: Vec<String>,
}

impl LiveChildren {
    /// Lists every labelled child of the five kinds in `namespace`.
    pub async fn capture(client: &Client, namespace: &str) -> anyhow::Result<Self> {
        let mut objects = BTreeMap::new();
        objects.extend(labelled::<Deployment>(client, namespace).await?);
        objects.extend(labelled::<Service>(client, namespace).await?);
        objects.extend(labelled::<HorizontalPodAutoscaler>(client, namespace).await?);
        objects.extend(labelled::<PodDisruptionBudget>(client, namespace).await?);
        objects.extend(labelled::<PodMonitor>(client, namespace).await?);
        Ok(Self { objects })
    }

    /// Whether a child of `kind` named `name` exists.
    pub fn has(&self, kind: &str, name: &str) -> bool {
        self.objects
            .contains_key(&(kind.to_string(), name.to_string()))
    }

    /// Every child whose resourceVersion differs between `self` and `after`,
    /// or that exists in only one of them.
    pub fn changes(&self, after: &Self) -> Vec<ChildChange> {
        let mut keys: Vec<_> = self.objects.keys().chain(after.objects.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|key| {
                let (before, now) = (self.objects.get(key), after.objects.get(key));
                let version =
                    |o: Option<&Value>| o.map(|o| o["metadata"]["resourceVersion"].clone());
                if version(before) == version(now) {
                    return None;
                }
                let either = now.or(before).expect("one side exists");
                let microservice = either["metadata"]["labels"][MICROSERVICE_LABEL]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let by_berth = match (before, now) {
                    (Some(b), Some(n)) => {
                        b["metadata"]["uid"] != n["metadata"]["uid"]
                            || berth_entry(b) != berth_entry(n)
                    }
                    _ => true,
                };
                let mut fields = Vec::new();
                diff(
                    "",
                    &before.cloned().unwrap_or(Value::Null),
                    &now.cloned().unwrap_or(Value::Null),
                    &mut fields,
                );
                Some(ChildChange {
                    kind: key.0.clone(),
                    name: key.1.clone(),
                    microservice,
                    by_berth,
                    fields,
                })
            })
            .collect()
    }
}

/// Every object of kind `K` in `namespace` with Berth's label, by (kind, name).
async fn labelled<K>(
    client: &Client,
    namespace: &str,
) -> anyhow::Result<Vec<((String, String), Value)>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let kind = K::kind(&()).into_owned();
    let lp = ListParams::default().labels(MICROSERVICE_LABEL);
    let list = Api::<K>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await?;
    Ok(list
        .items
        .into_iter()
        .map(|o| {
            let name = o.meta().name.clone().unwrap_or_default();
            let value = serde_json::to_value(o).expect("k8s objects serialize");
            ((kind.clone(), name), value)
        })
        .collect())
}

/// Berth's managedFields entries (apply and status), which change only when Berth writes.
fn berth_entry(object: &Value) -> Vec<Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["manager"] == MANAGER)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Appends `path: before -> after` for every leaf where `a` and `b` differ.
/// `metadata.resourceVersion` is left out: it is why we are here.
pub fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if path == ".metadata.resourceVersion" || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                diff(&format!("{path}.{k}"), va, vb, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ => out.push(format!(
            "{}: {a} -> {b}",
            if path.is_empty() { "." } else { path }
        )),
    }
}

/// Appends `path: desired -> live` for every leaf of `desired` that `live`
/// holds differently: what a literal comparison of Berth's desired child with
/// the stored one sees (spellings, defaults, dropped zero values).
pub fn desired_vs_live(path: &str, desired: &Value, live: &Value, out: &mut Vec<String>) {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (k, v) in d {
                desired_vs_live(
                    &format!("{path}.{k}"),
                    v,
                    l.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(d), Value::Array(l)) if d.len() == l.len() => {
            for (i, (vd, vl)) in d.iter().zip(l).enumerate() {
                desired_vs_live(&format!("{path}[{i}]"), vd, vl, out);
            }
        }
        (d, l) if d != l => out.push(format!("{path}: {d} -> {l}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_names_each_differing_leaf() {
        let mut out = Vec::new();
        diff(
            "",
            &json!({ "spec": { "a": 1, "b": [1, 2] }, "metadata": { "resourceVersion": "1" } }),
            &json!({ "spec": { "a": 2, "b": [1, 3], "c": "x" }, "metadata": { "resourceVersion": "2" } }),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                ".spec.a: 1 -> 2",
                ".spec.b[1]: 2 -> 3",
                ".spec.c: null -> \"x\""
            ]
        );
    }
}

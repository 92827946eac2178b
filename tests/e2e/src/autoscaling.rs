//! What the autoscaling tests read besides the MicroService: who owns a
//! Deployment's replicas, and the CPU use metrics-server reports per pod.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client, ResourceExt};

/// Field managers that own `spec.replicas` of the Deployment, as
/// `manager/operation[/subresource]`: with autoscaling on, the HPA's
/// `kube-controller-manager/Update/scale` and never `berth-operator/...`.
pub fn replicas_owners(d: &Deployment) -> Vec<String> {
    d.managed_fields()
        .iter()
        .filter(|m| {
            m.fields_v1.as_ref().is_some_and(|f| {
                f.0.get("f:spec")
                    .and_then(|s| s.get("f:replicas"))
                    .is_some()
            })
        })
        .map(|m| {
            format!(
                "{}/{}{}",
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
                m.subresource
                    .as_ref()
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

/// CPU use metrics-server reports per pod matching `selector` in `ns`, in millicores.
pub async fn pod_cpu(
    client: &Client,
    ns: &str,
    selector: &str,
) -> anyhow::Result<BTreeMap<String, f64>> {
    let gvk = GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "pods");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let list = api.list(&ListParams::default().labels(selector)).await?;
    Ok(list
        .items
        .iter()
        .map(|m| {
            let millis = m.data["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["usage"]["cpu"].as_str())
                .map(millicores)
                .sum();
            (m.name_any(), millis)
        })
        .collect())
}

/// `250m`, `1`, `12345n` as millicores.
pub fn millicores(q: &str) -> f64 {
    let (number, scale) = match q.as_bytes().last() {
        Some(b'n') => (&q[..q.len() - 1], 1e-6),
        Some(b'u') => (&q[..q.len() - 1], 1e-3),
        Some(b'm') => (&q[..q.len() - 1], 1.0),
        _ => (q, 1000.0),
    };
    number.parse::<f64>().unwrap_or_default() * scale
}

#[test]
fn millicores_of_each_suffix() {
    assert_eq!(millicores("250m"), 250.0);
    assert_eq!(millicores("2"), 2000.0);
    assert_eq!(millicores("1500000n"), 1.5);
    assert_eq!(millicores("1500u"), 1.5);
}

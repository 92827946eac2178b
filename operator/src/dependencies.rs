//! Dependencies between MicroServices: the environment variable each one
//! injects, its in-cluster URL, and whether it exists and is Ready. Pure: the
//! caller passes a lookup into whatever cache it has.

use std::sync::Arc;

use kube::ResourceExt;

use crate::microservice::{DependencyState, DependencyStatus, MicroService};

/// What is known about one dependency; also what the status reports.
pub type ResolvedDependency = DependencyStatus;

/// The in-cluster URL of a MicroService's Service.
pub fn service_url(name: &str, namespace: &str, port: i32) -> String {
    format!("http://{name}.{namespace}.svc.cluster.local:{port}")
}

/// `item` -> `ITEM_URL`, `user-profile` -> `USER_PROFILE_URL`.
pub fn env_var_name(dependency: &str) -> String {
    format!("{}_URL", dependency.to_ascii_uppercase().replace('-', "_"))
}

/// Resolves `ms`'s dependencies against `lookup` (name -> MicroService in the
/// same namespace). A missing dependency still gets a URL, on the default
/// Service port, so the dependent can start and retry; the status says it is missing.
pub fn resolve(
    ms: &MicroService,
    lookup: impl Fn(&str) -> Option<Arc<MicroService>>,
) -> Vec<ResolvedDependency> {
    let namespace = ms.namespace().unwrap_or_default();
    ms.spec
        .dependencies
        .iter()
        .map(|name| {
            let found = lookup(name);
            let port = found.as_ref().map_or(80, |dep| dep.spec.service.port);
            let state = match found.as_deref() {
                None => DependencyState::Missing,
                Some(dep) if dep.is_terminating() => DependencyState::Terminating,
                // Ready at zero replicas is Ready for itself, not for a caller.
                Some(dep) if dep.is_ready() && ready_replicas(dep) == 0 => {
                    DependencyState::ScaledToZero
                }
                Some(dep) if dep.is_ready() => DependencyState::Ready,
                Some(_) => DependencyState::NotReady,
            };
            DependencyStatus {
                name: name.clone(),
                state,
                url: service_url(name, &namespace, port),
            }
        })
        .collect()
}

fn ready_replicas(ms: &MicroService) -> i32 {
    ms.status.as_ref().map_or(0, |s| s.ready_replicas)
}

/// The MicroServices in `candidates` that depend on `changed` (same namespace):
/// they must be reconciled again when it appears, disappears or changes readiness.
pub fn dependents<'a>(
    changed: &MicroService,
    candidates: impl IntoIterator<Item = &'a MicroService>,
) -> Vec<&'a MicroService> {
    let name = changed.name_any();
    let namespace = changed.namespace();
    candidates
        .into_iter()
        .filter(|ms| ms.namespace() == namespace && ms.spec.dependencies.contains(&name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures::{microservice, ready};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn env_var_names_are_upper_snake_case() {
        assert_eq!(env_var_name("item"), "ITEM_URL");
        assert_eq!(env_var_name("user-profile-v2"), "USER_PROFILE_V2_URL");
    }

    #[test]
    fn resolve_reports_missing_not_ready_scaled_to_zero_terminating_and_ready() {
        let mut order = microservice("order");
        order.spec.dependencies = vec![
            "item".into(),
            "payment".into(),
            "stock".into(),
            "till".into(),
            "tax".into(),
        ];
        // Ready as it was asked to be, at zero replicas: nothing to call.
        let mut tax = ready(microservice("tax"));
        tax.spec.replicas = 0;
        if let Some(status) = tax.status.as_mut() {
            status.ready_replicas = 0;
        }
        let tax = Arc::new(tax);
        let mut item = ready(microservice("item"));
        item.spec.service.port = 8081;
        let mut till = ready(microservice("till"));
        till.metadata.deletion_timestamp = Some(Time(crate::desired::fixtures::jiff_epoch()));
        let (item, stock, till) = (
            Arc::new(item),
            Arc::new(microservice("stock")),
            Arc::new(till),
        );
        let deps = resolve(&order, |name| match name {
            "item" => Some(item.clone()),
            "stock" => Some(stock.clone()),
            "till" => Some(till.clone()),
            "tax" => Some(tax.clone()),
            _ => None,
        });
        assert_eq!(
            deps,
            vec![
                DependencyStatus {
                    name: "item".into(),
                    state: DependencyState::Ready,
                    url: "http://item.shop.svc.cluster.local:8081".into()
                },
                DependencyStatus {
                    name: "payment".into(),
                    state: DependencyState::Missing,
                    url: "http://payment.shop.svc.cluster.local:80".into()
                },
                DependencyStatus {
                    name: "stock".into(),
                    state: DependencyState::NotReady,
                    url: "http://stock.shop.svc.cluster.local:80".into()
                },
                DependencyStatus {
                    name: "till".into(),
                    state: DependencyState::Terminating,
                    url: "http://till.shop.svc.cluster.local:80".into()
                },
                DependencyStatus {
                    name: "tax".into(),
                    state: DependencyState::ScaledToZero,
                    url: "http://tax.shop.svc.cluster.local:80".into()
                },
            ]
        );
    }

    #[test]
    fn dependents_are_found_in_the_same_namespace_only() {
        let item = microservice("item");
        let mut order = microservice("order");
        order.spec.dependencies = vec!["item".into()];
        let mut elsewhere = order.clone();
        elsewhere.metadata.namespace = Some("other".into());
        let unrelated = microservice("web");
        let all = [order.clone(), elsewhere, unrelated];
        let found: Vec<_> = dependents(&item, &all)
            .into_iter()
            .map(|m| m.name_any())
            .collect();
        assert_eq!(found, vec!["order".to_string()]);
    }
}

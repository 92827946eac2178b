//! `spec.monitoring` on a cluster with the Prometheus Operator's CRDs (the
//! local cluster installs them with Prometheus, `make prometheus-up`): the
//! pods get the scrape annotations, a PodMonitor selects them, a change moves
//! both, switching it off removes both, and a quiet MicroService causes no
//! write. The cluster without the CRDs is in `faults.rs` (its own cluster).

use berth_e2e::{Env, condition, eventually, wait_deleted, wait_for};
use berth_operator::desired::PodMonitor;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

const ITEM: &str = "image: registry.local/item:1.0.0\nport: 8081";

fn pod_annotations(d: &Deployment) -> std::collections::BTreeMap<String, String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn monitoring_makes_a_pod_monitor_and_annotations_follow_the_spec_and_go_when_off() {
    let env = Env::new("monitoring").await;
    env.apply_microservice("item", ITEM).await.unwrap();
    let ms = env.wait_ready("item").await.unwrap();
    let monitored = condition(&ms, "Monitored").expect("a Monitored condition");
    assert_eq!(
        (monitored.status.as_str(), monitored.reason.as_str()),
        ("True", "PodMonitorReady"),
        "{}",
        monitored.message
    );
    let monitors = env.ns.api::<PodMonitor>();
    let monitor = monitors.get("item").await.unwrap();
    assert!(
        monitor
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == ms.uid().as_ref() && o.controller == Some(true))
    );
    let endpoint = &monitor.spec.pod_metrics_endpoints[0];
    assert_eq!(
        (
            endpoint.port.as_deref(),
            endpoint.path.as_str(),
            endpoint.interval.as_str()
        ),
        (Some("http"), "/metrics", "30s")
    );
    let deployments = env.ns.api::<Deployment>();
    let annotations = pod_annotations(&deployments.get("item").await.unwrap());
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "8081");

    // At rest: another look at the MicroService sends nothing.
    let reconciles = env.operator.reconciles().await.unwrap();
    let writes = env.operator.writes().await.unwrap();
    env.microservices()
        .patch(
            "item",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"touch": "1"}}})),
        )
        .await
        .unwrap();
    env.operator.reconciled(reconciles + 1.0).await.unwrap();
    assert_eq!(
        env.operator.writes().await.unwrap(),
        writes,
        "no write at rest"
    );

    // A metrics port of its own, scraped every 5 s: both ways follow.
    env.apply_microservice(
        "item",
        &format!("{ITEM}\nmonitoring: {{ port: 9100, path: /stats, interval: 5s }}"),
    )
    .await
    .unwrap();
    wait_for(&monitors, "item", |m: Option<&PodMonitor>| {
        m.is_some_and(|m| m.spec.pod_metrics_endpoints[0].port_number == Some(9100))
    })
    .await
    .unwrap();
    let monitor = monitors.get("item").await.unwrap();
    let endpoint = &monitor.spec.pod_metrics_endpoints[0];
    assert_eq!(
        (
            endpoint.port.as_deref(),
            endpoint.path.as_str(),
            endpoint.interval.as_str()
        ),
        (None, "/stats", "5s")
    );
    let d = wait_for(&deployments, "item", |d: Option<&Deployment>| {
        d.is_some_and(|d| {
            pod_annotations(d)
                .get("prometheus.io/port")
                .map(String::as_str)
                == Some("9100")
        })
    })
    .await
    .unwrap();
    assert_eq!(pod_annotations(&d)["prometheus.io/interval"], "5s");

    // Off: no PodMonitor, no annotation, no condition.
    env.apply_microservice("item", &format!("{ITEM}\nmonitoring: {{ enabled: false }}"))
        .await
        .unwrap();
    wait_deleted(&monitors, "item").await.unwrap();
    wait_for(&deployments, "item", |d: Option<&Deployment>| {
        d.is_some_and(|d| !pod_annotations(d).contains_key("prometheus.io/scrape"))
    })
    .await
    .unwrap();
    eventually("the Monitored condition goes", || async {
        let ms = env.microservices().get("item").await?;
        Ok(condition(&ms, "Monitored").is_none().then_some(()))
    })
    .await
    .unwrap();
}

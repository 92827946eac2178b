//! The operator as platform teams run it: installed from its chart, in a pod
//! on the real node, with leader election, watching one namespace. Its pod is
//! the chart's restricted pod, it holds the Lease, and it reconciles a
//! MicroService into owned children that run.

use anyhow::Context as _;
use berth_e2e::{
    HelmRelease, TestNamespace, client, install_crd, is_ready_for_generation, wait_deleted,
    wait_for, workspace_root,
};
use berth_operator::MicroService;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, Resource};
use serde_json::json;

use berth_e2e::apply_microservice;

use crate::support::{
    assert_restricted_spec, assert_runs_on_real_node, http, image_tag, placement,
    require_real_node, send, service_spec, service_url, wait_pod_ready,
};

#[tokio::test]
async fn the_chart_operator_runs_in_cluster_holds_the_lease_and_reconciles() {
    let client = client().await;
    require_real_node(&client, &["berth-operator", "item-service"]).await;
    install_crd(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "node-chart").await;
    let release = format!("berth-{}", ns.name.rsplit('-').next().unwrap());
    let fullname = format!("{release}-berth-operator");

    // Values as a file: node selector keys hold dots, which --set would split.
    let (node_selector, tolerations) = placement();
    let values = json!({
        "image": { "repository": "berth.local/berth-operator", "tag": image_tag(), "pullPolicy": "IfNotPresent" },
        "leaderElection": { "enabled": true },
        "watchNamespace": ns.name,
        "nodeSelector": node_selector,
        "tolerations": tolerations,
        "logFormat": "text",
    });
    let logs = workspace_root().join("target/e2e-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let values_file = logs.join(format!("{}-values.yaml", ns.name));
    std::fs::write(&values_file, values.to_string()).unwrap();
    let chart = workspace_root().join("charts/berth-operator");
    let helm = HelmRelease::install(
        &chart,
        &release,
        &ns.name,
        &["-f", values_file.to_str().unwrap()],
    )
    .unwrap();

    // The operator's pod: on the real node, the chart's restricted pod, running.
    let pods: Api<Pod> = ns.api();
    let selector =
        format!("app.kubernetes.io/instance={release},app.kubernetes.io/name=berth-operator");
    let operator_pods = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap();
    assert_eq!(operator_pods.items.len(), 1, "{:?}", operator_pods.items);
    let pod = operator_pods.items[0].clone();
    let pod_name = pod.metadata.name.clone().unwrap();
    assert_runs_on_real_node(&pod);
    assert_restricted_spec(&pod);
    let pod_sc = pod.spec.as_ref().unwrap().security_context.clone().unwrap();
    assert_eq!(
        (pod_sc.run_as_user, pod_sc.run_as_group),
        (Some(65532), Some(65532))
    );
    assert_eq!(
        pod.spec.as_ref().unwrap().containers[0].image.as_deref(),
        Some(format!("berth.local/berth-operator:{}", image_tag()).as_str())
    );

    // It holds the Lease (in its own namespace, the chart's default).
    let lease = wait_for(&ns.api::<Lease>(), "berth-operator", |l: Option<&Lease>| {
        l.and_then(|l| l.spec.as_ref()?.holder_identity.as_deref()) == Some(pod_name.as_str())
    })
    .await
    .with_context(|| format!("the Lease names the operator pod {pod_name}"))
    .unwrap();
    assert!(lease.spec.unwrap().renew_time.is_some());

    // It reconciles: a MicroService in its namespace becomes Ready, its
    // children owned by it, its pod running on the real node.
    apply_microservice(
        &client,
        &ns.name,
        "item",
        &service_spec("item-service", json!({})),
    )
    .await
    .unwrap();
    let microservices: Api<MicroService> = ns.api();
    let ms = wait_for(&microservices, "item", is_ready_for_generation)
        .await
        .with_context(|| format!("logs: kubectl -n {} logs {pod_name}", ns.name))
        .unwrap();
    let uid = ms.meta().uid.clone().unwrap();
    let owned_by_ms =
        |refs: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>| {
            refs.is_some_and(|refs| {
                refs.iter()
                    .any(|r| r.uid == uid && r.kind == "MicroService" && r.controller == Some(true))
            })
        };
    let deployment = ns.api::<Deployment>().get("item").await.unwrap();
    assert!(
        owned_by_ms(deployment.metadata.owner_references.as_ref()),
        "{:?}",
        deployment.metadata
    );
    let service = ns.api::<Service>().get("item").await.unwrap();
    assert!(
        owned_by_ms(service.metadata.owner_references.as_ref()),
        "{:?}",
        service.metadata
    );
    let item_pod = wait_pod_ready(&pods, "item", None).await.unwrap();
    assert_runs_on_real_node(&item_pod);

    // The writes came from the operator pod: it names itself in its events.
    let events: Api<Event> = ns.api();
    let from_pod = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("berth-operator"))
        .filter(|e| e.reporting_instance.as_deref() == Some(pod_name.as_str()))
        .count();
    assert!(from_pod > 0, "no event reported by operator pod {pod_name}");

    // Its metrics, through its Service: the leader, managing one MicroService.
    let metrics_url = service_url(&client, &ns.name, &format!("{fullname}-metrics"))
        .await
        .unwrap();
    let metrics = send("the operator's /metrics", || {
        http().get(format!("{metrics_url}/metrics"))
    })
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    for line in ["berth_leader 1", "berth_managed_microservices 1"] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in:\n{metrics}"
        );
    }

    helm.uninstall().unwrap();
    wait_deleted(&ns.api::<Deployment>(), &fullname)
        .await
        .unwrap();
}

//! A MicroService's life: children with owner references, pods Ready through
//! kwok, rollouts on spec changes, hand edits reverted, deletions undone, and
//! garbage collection when the MicroService goes.

use berth_e2e::{Env, condition, eventually, wait_deleted, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

const SHOP: &str = "
image: registry.local/item:1.0.0
replicas: 2
port: 8081
health: { liveness: /healthz, readiness: /readyz }
autoscaling: { minReplicas: 2, maxReplicas: 4, targetCPUUtilizationPercentage: 70 }
disruptionBudget: { maxUnavailable: 1 }
resources: { requests: { cpu: 100m, memory: 64Mi } }
";

fn controlled_by<K: Resource>(child: &K, uid: &str) -> bool {
    child
        .owner_references()
        .iter()
        .any(|o| o.uid == uid && o.controller == Some(true) && o.kind == "MicroService")
}

#[tokio::test]
async fn microservice_gets_its_children_and_becomes_ready() {
    let env = Env::new("create").await;
    env.apply_microservice("item", SHOP).await.unwrap();
    let ms = env.wait_ready("item").await.unwrap();
    let uid = ms.uid().unwrap();

    let deployment = env.ns.api::<Deployment>().get("item").await.unwrap();
    let service = env.ns.api::<Service>().get("item").await.unwrap();
    let hpa = env
        .ns
        .api::<HorizontalPodAutoscaler>()
        .get("item")
        .await
        .unwrap();
    let pdb = env
        .ns
        .api::<PodDisruptionBudget>()
        .get("item")
        .await
        .unwrap();
    assert!(controlled_by(&deployment, &uid) && controlled_by(&service, &uid));
    assert!(controlled_by(&hpa, &uid) && controlled_by(&pdb, &uid));
    assert_eq!(hpa.spec.unwrap().max_replicas, 4);
    assert_eq!(service.spec.unwrap().ports.unwrap()[0].port, 80);

    let status = ms.status.unwrap();
    assert_eq!(status.observed_generation, ms.metadata.generation);
    assert_eq!(
        status.ready_replicas,
        deployment.status.unwrap().ready_replicas.unwrap()
    );
    assert!(status.ready_replicas >= 2);
    assert_eq!(
        status.url.as_deref(),
        Some(format!("http://item.{}.svc.cluster.local:80", env.ns.name).as_str())
    );
    assert_eq!(
        status.selector.as_deref(),
        Some("berth.dev/microservice=item")
    );
}

#[tokio::test]
async fn image_change_rolls_and_port_change_moves_deployment_and_service_together() {
    let env = Env::new("rollout").await;
    env.apply_microservice("item", "image: registry.local/item:1.0.0\nport: 8081")
        .await
        .unwrap();
    env.wait_ready("item").await.unwrap();

    env.apply_microservice(
        "item",
        "image: registry.local/item:1.1.0\nport: 9090\nservice: { port: 8080 }",
    )
    .await
    .unwrap();
    let ms = env.wait_ready("item").await.unwrap();
    assert_eq!(ms.metadata.generation, Some(2));
    let deployment = env.ns.api::<Deployment>().get("item").await.unwrap();
    let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.local/item:1.1.0")
    );
    assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 9090);
    let port = env
        .ns
        .api::<Service>()
        .get("item")
        .await
        .unwrap()
        .spec
        .unwrap()
        .ports
        .unwrap()[0]
        .clone();
    assert_eq!(port.port, 8080);
    // The Service targets the container port by name, so both moved together.
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into()))
    );
    let pods = env
        .ns
        .api::<k8s_openapi::api::core::v1::Pod>()
        .list(&Default::default())
        .await
        .unwrap();
    assert!(
        pods.items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .all(|p| {
                p.spec.as_ref().unwrap().containers[0].image.as_deref()
                    == Some("registry.local/item:1.1.0")
            }),
        "every running pod has the new image"
    );
}

#[tokio::test]
async fn hand_edits_are_reverted_and_deleted_children_come_back() {
    let env = Env::new("drift").await;
    env.apply_microservice("item", "image: registry.local/item:1.0.0\nreplicas: 2")
        .await
        .unwrap();
    env.wait_ready("item").await.unwrap();
    let deployments = env.ns.api::<Deployment>();

    // Someone edits a field Berth owns, as a different field manager.
    let edit = json!({"spec": {"template": {"spec": {"containers": [{"name": "item", "image": "evil:latest"}]}}}});
    deployments
        .patch("item", &PatchParams::default(), &Patch::Strategic(&edit))
        .await
        .unwrap();
    wait_for(&deployments, "item", |d: Option<&Deployment>| {
        d.and_then(|d| d.spec.as_ref()).map(|s| {
            s.template.spec.as_ref().unwrap().containers[0]
                .image
                .as_deref()
        }) == Some(Some("registry.local/item:1.0.0"))
    })
    .await
    .expect("the image is put back");

    // Someone deletes the Service.
    let services = env.ns.api::<Service>();
    let old_uid = services.get("item").await.unwrap().uid();
    services
        .delete("item", &DeleteParams::default())
        .await
        .unwrap();
    // At once, not at the resync: a deleted child triggers its owner.
    let recreated = eventually("the Service is recreated", || async {
        Ok(services
            .get_opt("item")
            .await?
            .filter(|s| s.uid() != old_uid))
    });
    tokio::time::timeout(std::time::Duration::from_secs(15), recreated)
        .await
        .expect("the Service is recreated within 15 s")
        .unwrap();
}

#[tokio::test]
async fn deleting_the_microservice_garbage_collects_every_child() {
    let env = Env::new("gc").await;
    env.apply_microservice("item", SHOP).await.unwrap();
    env.wait_ready("item").await.unwrap();
    env.microservices()
        .delete("item", &DeleteParams::foreground())
        .await
        .unwrap();
    wait_deleted(&env.microservices(), "item").await.unwrap();
    wait_deleted(&env.ns.api::<Deployment>(), "item")
        .await
        .unwrap();
    wait_deleted(&env.ns.api::<Service>(), "item")
        .await
        .unwrap();
    wait_deleted(&env.ns.api::<HorizontalPodAutoscaler>(), "item")
        .await
        .unwrap();
    wait_deleted(&env.ns.api::<PodDisruptionBudget>(), "item")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_foreign_object_in_the_way_is_reported_not_clobbered() {
    let env = Env::new("conflict").await;
    let foreign: Service = serde_json::from_value(json!({
        "metadata": { "name": "item" },
        "spec": { "ports": [{ "port": 1234 }], "selector": { "app": "someone-else" } }
    }))
    .unwrap();
    env.ns
        .api::<Service>()
        .create(&Default::default(), &foreign)
        .await
        .unwrap();
    env.apply_microservice("item", "image: registry.local/item:1.0.0")
        .await
        .unwrap();
    let ms = wait_for(
        &env.microservices(),
        "item",
        |ms: Option<&berth_operator::MicroService>| {
            ms.and_then(|ms| condition(ms, "Degraded"))
                .is_some_and(|c| c.status == "True" && c.reason == "ChildConflict")
        },
    )
    .await
    .unwrap();
    assert!(
        condition(&ms, "Degraded")
            .unwrap()
            .message
            .contains("Service")
    );
    let svc = env.ns.api::<Service>().get("item").await.unwrap();
    assert_eq!(svc.spec.unwrap().ports.unwrap()[0].port, 1234, "left alone");
}

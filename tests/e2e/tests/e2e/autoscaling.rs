//! The replicas hand-off between Berth and the HorizontalPodAutoscaler, and
//! the scale subresource.

use std::time::{Duration, Instant};

use berth_e2e::{Env, eventually, kubectl, wait_deleted, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;

fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1)
}

#[tokio::test]
async fn switching_autoscaling_on_keeps_replicas_and_off_deletes_the_autoscaler() {
    let env = Env::new("handoff").await;
    let base = "image: registry.local/item:1.0.0\nresources: { requests: { cpu: 100m } }\ndisruptionBudget: {}\n";
    env.apply_microservice("item", &format!("{base}replicas: 3"))
        .await
        .unwrap();
    env.wait_ready("item").await.unwrap();
    let deployments = env.ns.api::<Deployment>();
    assert_eq!(replicas(&deployments.get("item").await.unwrap()), 3);

    // On: the autoscaler may not go below 3 here, so any lower count would be a reset.
    env.apply_microservice(
        "item",
        &format!("{base}replicas: 3\nautoscaling: {{ minReplicas: 3, maxReplicas: 5 }}"),
    )
    .await
    .unwrap();
    wait_for(
        &env.ns.api::<HorizontalPodAutoscaler>(),
        "item",
        |h: Option<&HorizontalPodAutoscaler>| h.is_some(),
    )
    .await
    .unwrap();
    let window = Instant::now();
    let mut seen = Vec::new();
    while window.elapsed() < Duration::from_secs(20) {
        let d = deployments.get("item").await.unwrap();
        seen.push(replicas(&d));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        seen.iter().all(|&r| r >= 3),
        "replicas dipped during the hand-off: {seen:?}"
    );
    let d = deployments.get("item").await.unwrap();
    let berth_owns_replicas = d.managed_fields().iter().any(|m| {
        m.manager.as_deref() == Some("berth-operator")
            && m.fields_v1.as_ref().is_some_and(|f| {
                f.0.get("f:spec")
                    .and_then(|s| s.get("f:replicas"))
                    .is_some()
            })
    });
    assert!(!berth_owns_replicas, "Berth no longer owns spec.replicas");

    // Off again, with a smaller count, and no disruption budget.
    env.apply_microservice(
        "item",
        "image: registry.local/item:1.0.0\nresources: { requests: { cpu: 100m } }\nreplicas: 2",
    )
    .await
    .unwrap();
    wait_deleted(&env.ns.api::<HorizontalPodAutoscaler>(), "item")
        .await
        .unwrap();
    wait_deleted(&env.ns.api::<PodDisruptionBudget>(), "item")
        .await
        .unwrap();
    wait_for(&deployments, "item", |d: Option<&Deployment>| {
        d.is_some_and(|d| replicas(d) == 2)
    })
    .await
    .unwrap();
    env.wait_ready("item").await.unwrap();
}

#[tokio::test]
async fn kubectl_scale_works_through_the_scale_subresource() {
    let env = Env::new("scale").await;
    env.apply_microservice("item", "image: registry.local/item:1.0.0")
        .await
        .unwrap();
    env.wait_ready("item").await.unwrap();
    let out = kubectl()
        .args(["scale", "ms/item", "--replicas", "3", "-n", &env.ns.name])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl scale: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        &env.ns.api::<Deployment>(),
        "item",
        |d: Option<&Deployment>| d.is_some_and(|d| replicas(d) == 3),
    )
    .await
    .unwrap();
    let ms = eventually("status shows 3 ready replicas", || async {
        let ms = env.microservices().get("item").await?;
        Ok((ms.status.as_ref().map(|s| s.ready_replicas) == Some(3)).then_some(ms))
    })
    .await
    .unwrap();
    assert_eq!(ms.spec.replicas, 3);
    // kubectl reads the scale subresource too.
    let out = kubectl()
        .args([
            "get",
            "--raw",
            &format!(
                "/apis/berth.dev/v1alpha1/namespaces/{}/microservices/item/scale",
                env.ns.name
            ),
        ])
        .output()
        .unwrap();
    let scale: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(scale["status"]["selector"], "berth.dev/microservice=item");
    assert_eq!(scale["status"]["replicas"], 3);
}

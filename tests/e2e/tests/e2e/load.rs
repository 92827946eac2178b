//! Autoscaling shown on the cluster: a MicroService scales up under load and
//! back down after it, with the operator out of the way; `kubectl scale` is
//! refused while autoscaling is on; a metric with no value for any pod shows
//! up as `ScalingActive=False`.
//!
//! What stands in for load: kwok plays the kubelets, so no process runs in
//! the pods and nothing can burn CPU. kwok reports each pod's CPU use from the
//! pod annotation `kwok.x-k8s.io/usage-cpu` (tests/cluster/kwok/
//! usage-from-annotation.yaml), metrics-server scrapes that like a kubelet's
//! resource metrics, and the HPA reads metrics-server. So "load on" means
//! "every pod of the service carries `usage-cpu: 500m`" and "load off" means
//! `5m`. The annotation is put on the running pods directly: changing the
//! MicroService's `podAnnotations` would roll the Deployment, which real load
//! never does. A small loop keeps annotating pods of the selector, because
//! the pods that scale-up creates need the load too.
//!
//! Requests per second have no such stand-in: the custom metrics adapter
//! (tests/cluster/custom-metrics) computes `http_requests_per_second` from
//! each pod's own `http_requests_total` counter, scraped from its `/metrics`,
//! and kwok pods serve nothing. Scaling on real requests is a test on the
//! real node (tests/e2e/tests/node/); here only what a MicroService says when
//! none of its pods has a value.

use std::time::{Duration, Instant};

use berth_e2e::autoscaling::{pod_cpu, replicas_owners};
use berth_e2e::{Env, MICROSERVICE_LABEL, condition, eventually, kubectl, within};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

/// kwok's per-pod CPU usage annotation (read by its ClusterResourceUsage).
const USAGE_CPU: &str = "kwok.x-k8s.io/usage-cpu";
/// Usage under load: 500m on a 100m request is 500 %, ten times the 50 % target.
const LOADED: &str = "500m";
/// Usage without load: 5 % of the request.
const IDLE: &str = "5m";
/// The pods of the MicroService `web`.
fn selector() -> String {
    format!("{MICROSERVICE_LABEL}=web")
}

const SPEC: &str = "\
image: registry.local/web:1.0.0
resources: { requests: { cpu: 100m } }
autoscaling:
  minReplicas: 1
  maxReplicas: 5
  targetCPUUtilizationPercentage: 50
  behavior:
    scaleDown: { stabilizationWindowSeconds: 15 }
";

/// Keeps every pod of [`selector`] annotated with the current CPU use
/// ([`USAGE_CPU`]) until the sender is dropped.
fn drive_load(pods: Api<Pod>, level: watch::Receiver<&'static str>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let want = *level.borrow();
            if let Ok(list) = pods.list(&ListParams::default().labels(&selector())).await {
                for pod in list
                    .items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter(|p| p.annotations().get(USAGE_CPU).map(String::as_str) != Some(want))
                {
                    let patch = json!({ "metadata": { "annotations": { USAGE_CPU: want } } });
                    // A pod deleted meanwhile is fine: scale-down removes pods.
                    let _ = pods
                        .patch(
                            &pod.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await;
                }
            }
            let mut level = level.clone();
            if level.has_changed().is_err() {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), level.changed()).await;
        }
    })
}

fn spec_replicas(d: &Deployment) -> Option<i32> {
    d.spec.as_ref()?.replicas
}

/// Waits until the Deployment asks for `n` replicas, and the MicroService
/// reports the autoscaler wanting `n` with all `n` ready.
async fn wait_scaled_to(env: &Env, n: i32, timeout: Duration) -> anyhow::Result<()> {
    let deployments = env.ns.api::<Deployment>();
    let what = format!("the service runs {n} ready replicas");
    within(timeout, &what, || async {
        let d = deployments.get("web").await?;
        let ms = env.microservices().get("web").await?;
        let status = ms.status.unwrap_or_default();
        let autoscaler = status.autoscaler.clone().unwrap_or_default();
        Ok((spec_replicas(&d) == Some(n)
            && autoscaler.desired_replicas == n
            && autoscaler.current_replicas == n
            && status.desired_replicas == Some(n)
            && status.ready_replicas == n)
            .then_some(()))
    })
    .await
}

#[tokio::test]
async fn scales_up_under_load_and_down_after_it_without_the_operator_touching_replicas() {
    let env = Env::new("load").await;
    env.apply_microservice("web", SPEC).await.unwrap();
    env.wait_ready("web").await.unwrap();
    let deployments = env.ns.api::<Deployment>();
    let hpas = env.ns.api::<HorizontalPodAutoscaler>();
    assert_eq!(
        spec_replicas(&deployments.get("web").await.unwrap()),
        Some(1)
    );
    let (load, level) = watch::channel(IDLE);
    let driver = drive_load(env.ns.api::<Pod>(), level);

    // The HPA has read idle metrics before the load step, so what follows is
    // a reaction to the step, not to the pod's first scrape.
    eventually("the HPA reads the idle CPU metric", || async {
        let hpa = hpas.get("web").await?;
        let active = hpa
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "ScalingActive" && c.status == "True");
        Ok(active.then_some(()))
    })
    .await
    .unwrap();
    let writes_before = env.operator.writes_of("Deployment").await.unwrap();

    let step = Instant::now();
    load.send(LOADED).unwrap();
    let seen = eventually("metrics-server reports the load", || async {
        let cpu = pod_cpu(&env.client, &env.ns.name, &selector()).await?;
        Ok(cpu.values().any(|&m| m >= 400.0).then_some(cpu))
    })
    .await
    .unwrap();
    let reported = step.elapsed();
    eventually("the HPA decides to scale up", || async {
        let hpa = hpas.get("web").await?;
        Ok((hpa.status.map(|s| s.desired_replicas) == Some(5)).then_some(()))
    })
    .await
    .unwrap();
    let decided = step.elapsed();
    wait_scaled_to(&env, 5, Duration::from_secs(90))
        .await
        .unwrap();
    let scaled_up = step.elapsed();
    let ms = env.microservices().get("web").await.unwrap();
    let status = ms.status.clone().unwrap();
    assert!(
        status.autoscaler.unwrap().last_scale_time.is_some(),
        "status.autoscaler.lastScaleTime is set after a scale"
    );
    let active = condition(&ms, "ScalingActive").unwrap();
    assert_eq!(active.status, "True", "{active:?}");
    let d = deployments.get("web").await.unwrap();
    let owners = replicas_owners(&d);
    assert!(
        owners.iter().all(|o| !o.starts_with("berth-operator/")),
        "berth-operator never owns spec.replicas with autoscaling on: {owners:?}"
    );
    // Who scaled is not in managedFields: Berth created the Deployment with
    // spec.replicas unset (a start at one), and the API server records no
    // owner when the scale subresource changes a field nobody owned. That
    // the operator did not is counted below: no Deployment write.

    let removed = Instant::now();
    load.send(IDLE).unwrap();
    // Floor: a scrape (10 s) + the 15 s scale-down stabilization + an HPA sync (5 s).
    wait_scaled_to(&env, 1, Duration::from_secs(90))
        .await
        .unwrap();
    let scaled_down = removed.elapsed();
    // The MicroService's scaleDown.stabilizationWindowSeconds (15) reached the
    // HPA: it holds the count at least that long after the load is gone.
    assert!(
        scaled_down >= Duration::from_secs(15),
        "scaled down after {scaled_down:?}, inside the 15 s stabilization window"
    );
    drop(load);
    driver.await.unwrap();

    assert_eq!(
        env.operator.writes_of("Deployment").await.unwrap(),
        writes_before,
        "the operator wrote the Deployment while the autoscaler scaled it"
    );
    let owners = replicas_owners(&deployments.get("web").await.unwrap());
    assert!(
        owners.iter().all(|o| !o.starts_with("berth-operator/")),
        "berth-operator never owns spec.replicas with autoscaling on: {owners:?}"
    );
    eprintln!(
        "load step -> metrics-server reports it {reported:?} (pods: {seen:?}), HPA wants 5 {decided:?}, \
         5 ready {scaled_up:?}; load removed -> 1 replica {scaled_down:?}"
    );
}

#[tokio::test]
async fn kubectl_scale_is_refused_while_autoscaling_is_on() {
    let env = Env::new("scale-hpa").await;
    env.apply_microservice("web", SPEC).await.unwrap();
    env.wait_ready("web").await.unwrap();
    let out = kubectl()
        .args(["scale", "ms/web", "--replicas", "4", "-n", &env.ns.name])
        .output()
        .expect("kubectl runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "kubectl scale was accepted");
    assert!(
        stderr.contains("spec.replicas cannot change while autoscaling is on"),
        "the refusal says why: {stderr}"
    );
    let ms = env.microservices().get("web").await.unwrap();
    assert_eq!(ms.spec.replicas, 1, "spec.replicas unchanged");

    // Switching autoscaling off and setting replicas in one apply is allowed.
    env.apply_microservice("web", "image: registry.local/web:1.0.0\nreplicas: 2")
        .await
        .unwrap();
    let d = eventually("the Deployment asks for 2", || async {
        let d = env.ns.api::<Deployment>().get("web").await?;
        Ok((spec_replicas(&d) == Some(2)).then_some(d))
    })
    .await
    .unwrap();
    assert_eq!(spec_replicas(&d), Some(2));
    // And with autoscaling off, kubectl scale works again.
    let out = kubectl()
        .args(["scale", "ms/web", "--replicas", "3", "-n", &env.ns.name])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A MicroService scaling on requests per second, on kwok pods: no pod serves
/// a `/metrics`, so no pod has a value. Without the custom metrics API
/// (`make custom-metrics-up`) the HPA cannot fetch the metric; with it, the
/// adapter answers with no pods (it scrapes them and gets nothing) and the
/// HPA finds no metrics returned. Either way the HPA keeps the replica count
/// and the MicroService says why, naming the metric.
#[tokio::test]
async fn requests_per_second_without_a_value_says_why_it_does_not_scale() {
    let env = Env::new("rps").await;
    env.apply_microservice(
        "web",
        "image: registry.local/web:1.0.0\nautoscaling:\n  maxReplicas: 5\n  targetRequestsPerSecond: 20\n",
    )
    .await
    .unwrap();
    let hpa = eventually("the HPA exists", || async {
        Ok(env
            .ns
            .api::<HorizontalPodAutoscaler>()
            .get_opt("web")
            .await?)
    })
    .await
    .unwrap();
    let metric = &hpa.spec.unwrap().metrics.unwrap()[0];
    assert_eq!(
        metric.pods.as_ref().unwrap().metric.name,
        "http_requests_per_second"
    );
    let active = eventually("the MicroService reports ScalingActive", || async {
        let ms = env.microservices().get("web").await?;
        Ok(condition(&ms, "ScalingActive").filter(|c| c.status != "Unknown"))
    })
    .await
    .unwrap();
    assert_eq!(active.status, "False", "{active:?}");
    assert_eq!(active.reason, "FailedGetPodsMetric", "{active:?}");
    assert!(
        active.message.contains("http_requests_per_second"),
        "the message names the metric: {active:?}"
    );
    env.wait_ready("web").await.unwrap();
    assert_eq!(
        spec_replicas(&env.ns.api::<Deployment>().get("web").await.unwrap()),
        Some(1),
        "the HPA kept the replica count"
    );
    eprintln!("no request rate for any pod: the MicroService says {active:?}");
}

//! A rolling update under steady load loses no request: the image changes
//! from one tag to the other while requests flow through the Service's
//! ClusterIP on kept-alive connections, and every one of them gets a 2xx.
//!
//! What makes it work, all Berth's defaults: a new pod gets traffic only once
//! its readiness probe passes; `maxUnavailable: 0` keeps every old pod until
//! its replacement is Ready; a terminating pod keeps serving for
//! `shutdown.drainSeconds` (a preStop sleep) while the endpoints controller
//! and kube-proxy move new connections away; then, on SIGTERM, the service
//! answers with `Connection: close` so kept-alive clients move too, and
//! finishes what is in flight within the grace period.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use berth_e2e::within;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::json;

use crate::under_load::{
    item, list_items, next_image, ready_pods, record_figures, served_by, summary,
};

const REPLICAS: usize = 2;
const RATE: u32 = 50;

#[tokio::test]
async fn a_rolling_update_under_steady_load_fails_no_request() {
    let item = item("node-rollout", json!({ "replicas": REPLICAS })).await;
    let (env, pods, url) = (&item.env, &item.pods, &item.url);
    let mut spec = item.spec.clone();
    let log = env.operator.log.display().to_string();
    let old: Vec<String> = ready_pods(pods, "item")
        .await
        .unwrap()
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(old.len(), REPLICAS, "{old:?}");

    // Steady load first, so connections are open and kept alive to the old pods.
    let load = list_items(url, RATE, Duration::from_secs(180));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let warm = load.so_far();
    assert!(
        warm.sent() > 0 && warm.failed() == 0,
        "before the rollout: {warm}"
    );

    let next = next_image("item-service");
    spec["image"] = json!(next);
    let started = Instant::now();
    env.apply_microservice("item", &spec.to_string())
        .await
        .unwrap();
    let deployments: Api<Deployment> = env.ns.api();
    within(
        Duration::from_secs(150),
        "the rollout completes: only pods of the new image, all Ready",
        || async {
            let d = deployments.get("item").await?;
            let status = d.status.clone().unwrap_or_default();
            let rolled = status.observed_generation >= d.metadata.generation
                && status.updated_replicas == Some(REPLICAS as i32)
                && status.ready_replicas == Some(REPLICAS as i32)
                && status.replicas == Some(REPLICAS as i32);
            // Old pods still terminating are still serving their drain: the
            // rollout is over for the load when they are gone.
            let all = pods.list(&Default::default()).await?;
            let old_left = all
                .items
                .iter()
                .filter(|p| old.contains(p.metadata.name.as_ref().unwrap()))
                .count();
            Ok((rolled && old_left == 0).then_some(()))
        },
    )
    .await
    .with_context(|| format!("operator log: {log}"))
    .unwrap();
    let rollout = started.elapsed();
    // A few more seconds on the new pods alone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = load.stop().await;
    let fresh = ready_pods(pods, "item").await.unwrap();
    let served = served_by(&fresh).await.unwrap();

    record_figures(
        "rollout",
        &json!({
            "replicas": REPLICAS,
            "rate": RATE,
            "from": crate::support::image("item-service"),
            "to": next,
            "rollout_s": rollout.as_secs_f64(),
            "load": summary(&report),
            "served_by_new_pod": served,
        }),
    );
    assert_eq!(
        report.failed(),
        0,
        "no request may fail during a rolling update: {report}; first failures: {:?}",
        report.first_failures(5)
    );
    assert_eq!(
        report.shed, 0,
        "the service kept up with the load: {report}"
    );
    assert!(
        report.sent() as f64 >= 0.9 * f64::from(RATE) * report.duration.as_secs_f64(),
        "the load ran at its rate throughout: {report}"
    );
    for pod in &fresh {
        let image = pod.spec.as_ref().unwrap().containers[0].image.clone();
        assert_eq!(image.as_deref(), Some(next.as_str()));
    }
    assert!(
        served.len() == REPLICAS && served.values().all(|&n| n > 0.0),
        "every new pod took traffic: {served:?}"
    );
}

//! A converged MicroService costs nothing: no writes while nothing changes,
//! and none after an operator restart for objects that are already right.

use std::time::Duration;

use berth_e2e::live_children::LiveChildren;
use berth_e2e::{Env, Operator, condition, eventually, wait_for};
use berth_operator::MicroService;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};

/// How long "quiet" is observed: longer than the debounce and several HPA syncs.
const QUIET: Duration = Duration::from_secs(20);
/// No writes for this long counts as settled: longer than the test cluster's 5 s HPA sync.
const SETTLE: Duration = Duration::from_secs(6);

/// Waits until the operator's write count stops growing for a few seconds.
async fn settled(op: &Operator) -> f64 {
    eventually("the operator stops writing", || async {
        let before = op.writes().await?;
        tokio::time::sleep(SETTLE).await;
        let after = op.writes().await?;
        Ok((before == after).then_some(after))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_converged_microservice_causes_no_writes_even_across_a_restart() {
    let mut env = Env::new("quiet").await;
    let spec = "image: registry.local/item:1.0.0\nresources: { requests: { cpu: 100m } }\nautoscaling: { minReplicas: 2, maxReplicas: 3 }\ndisruptionBudget: {}";
    env.apply_microservice("item", spec).await.unwrap();
    env.wait_ready("item").await.unwrap();
    // The autoscaler reports once metrics exist; that status change is real news.
    wait_for(&env.microservices(), "item", |ms: Option<&MicroService>| {
        ms.and_then(|ms| condition(ms, "ScalingActive"))
            .is_some_and(|c| c.status == "True")
    })
    .await
    .unwrap();
    let before = settled(&env.operator).await;
    let version = env
        .microservices()
        .get("item")
        .await
        .unwrap()
        .resource_version();

    tokio::time::sleep(QUIET).await;
    assert_eq!(
        env.operator.writes().await.unwrap(),
        before,
        "writes during a quiet interval"
    );
    let ms = env.microservices().get("item").await.unwrap();
    assert_eq!(
        ms.resource_version(),
        version,
        "the MicroService (and its status) did not change"
    );

    // A restart re-lists everything and reconciles every object once.
    env.operator.restart().await.unwrap();
    let reconciled = env.operator.reconciled(1.0).await.unwrap();
    assert!(reconciled >= 1.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.operator.writes().await.unwrap(),
        0.0,
        "no writes after a restart for objects already right"
    );
    assert!(
        env.operator
            .metric_sum("berth_children_unchanged_total")
            .await
            .unwrap()
            >= 5.0,
        "Deployment, Service, autoscaler, budget and PodMonitor found unchanged"
    );
}

/// Regression: the API server stores some values in another spelling than
/// the one Berth sends (quantities in canonical form, zero values dropped),
/// and a literal comparison re-applied such children on every reconcile.
#[tokio::test]
async fn values_the_api_server_rewrites_cause_no_writes_when_reconciled_again() {
    let env = Env::new("rewritten").await;
    let spec = r#"image: registry.local/item:1.0.0
resources: { requests: { cpu: "0.5", memory: 1024Mi }, limits: { cpu: "1.0", memory: 1.5Gi } }
env: [ { name: EMPTY, value: "" }, { name: POD, valueFrom: { fieldRef: { fieldPath: metadata.name } } } ]
autoscaling: { minReplicas: 1, maxReplicas: 2, targetCPUUtilizationPercentage: 80 }
disruptionBudget: { maxUnavailable: "50%" }"#;
    env.apply_microservice("item", spec).await.unwrap();
    env.wait_ready("item").await.unwrap();
    // As above: the autoscaler's first report is real news (a status write),
    // and it can come after writes look settled.
    wait_for(&env.microservices(), "item", |ms: Option<&MicroService>| {
        ms.and_then(|ms| condition(ms, "ScalingActive"))
            .is_some_and(|c| c.status == "True")
    })
    .await
    .unwrap();
    let before = settled(&env.operator).await;
    let children = LiveChildren::capture(&env.client, &env.ns.name)
        .await
        .unwrap();
    assert_eq!(children.objects.len(), 5, "every child exists");

    // A no-op change to the MicroService makes the operator look again.
    let reconciles = env.operator.reconciles().await.unwrap();
    let touch = serde_json::json!({"metadata": {"annotations": {"berth.dev/test-touch": "1"}}});
    env.microservices()
        .patch("item", &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .unwrap();
    env.operator.reconciled(reconciles + 1.0).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.operator.writes().await.unwrap(),
        before,
        "no writes when nothing but the spelling differs"
    );
    let after = LiveChildren::capture(&env.client, &env.ns.name)
        .await
        .unwrap();
    let changed = children.changes(&after);
    assert!(changed.is_empty(), "children changed: {changed:#?}");
}

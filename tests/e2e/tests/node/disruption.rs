//! Pods lost under load. A pod deleted the Kubernetes way (and one evicted)
//! costs no request: it drains as a rollout's pods do. A pod whose process is
//! killed outright (SIGKILL, as the OOM killer does) costs the requests it
//! held and those sent to it before the kubelet marks it not Ready: a small,
//! bounded number; the container restarts and the Service recovers with no
//! action. An eviction that would break the PodDisruptionBudget is refused.

use std::process::Command;
use std::time::Duration;

use berth_e2e::{eventually, within};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, EvictParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::container_process;
use crate::under_load::{item, list_items, ready_pods, record_figures, summary};

const REPLICAS: usize = 3;
const RATE: u32 = 50;

#[tokio::test]
async fn pods_lost_under_load_cost_nothing_when_deleted_and_a_bounded_few_when_killed() {
    // Neither budget field: Berth's default budget, maxUnavailable 1.
    let item = item(
        "node-disrupt",
        json!({ "replicas": REPLICAS, "disruptionBudget": {} }),
    )
    .await;
    let (env, pods, url) = (&item.env, &item.pods, &item.url);
    let all_ready = || async {
        let ready = ready_pods(pods, "item").await?;
        Ok((ready.len() == REPLICAS).then_some(ready))
    };
    let ready = eventually("all pods of item are Ready", all_ready)
        .await
        .unwrap();
    let load = list_items(url, RATE, Duration::from_secs(240));
    let at = || load.started().elapsed();

    // 1. A pod deleted: it drains, its replacement starts; nothing fails.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delete_from = at();
    pods.delete(&ready[0].name_any(), &DeleteParams::default())
        .await
        .unwrap();
    let gone = ready[0].name_any();
    let ready = replaced(pods, &gone).await;
    let delete_to = at();

    // 2. The budget allows one voluntary disruption at a time: of two
    // evictions sent together, one is accepted and the other refused.
    let budgets: Api<PodDisruptionBudget> = env.ns.api();
    eventually("the budget allows one disruption", || async {
        let pdb = budgets.get("item").await?;
        let allowed = pdb.status.map_or(0, |s| s.disruptions_allowed);
        Ok((allowed == 1).then_some(()))
    })
    .await
    .unwrap();
    let evict_from = at();
    let (a, b) = (ready[0].name_any(), ready[1].name_any());
    let each = EvictParams::default();
    let evictions: Api<Pod> = Api::namespaced(answers_as_they_are().await, &env.ns.name);
    let (first, second) = tokio::join!(evictions.evict(&a, &each), evictions.evict(&b, &each));
    let (evicted, refused) = match (first, second) {
        (Ok(_), Err(refused)) => (a, refused),
        (Err(refused), Ok(_)) => (b, refused),
        other => panic!("exactly one of two evictions at once fits the budget: {other:?}"),
    };
    match &refused {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 429, "{status:?}");
            assert!(
                status.message.contains("disruption budget"),
                "the refusal names the budget: {status:?}"
            );
        }
        other => panic!("expected 429 from the eviction API, got {other}"),
    }
    let ready = replaced(pods, &evicted).await;
    let evict_to = at();

    // 3. A process killed: the container restarts in place.
    let victim = &ready[0];
    let restarts = restart_count(victim);
    let pid = container_process(victim).unwrap().pid;
    let kill_from = at();
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -KILL {pid}");
    let name = victim.name_any();
    within(
        Duration::from_secs(90),
        "the killed container is restarted and Ready again",
        || async {
            let pod = pods.get(&name).await?;
            let ready = ready_pods(pods, "item").await?.len();
            Ok((restart_count(&pod) > restarts && ready == REPLICAS).then_some(()))
        },
    )
    .await
    .unwrap();
    let kill_to = at();
    // Recovered: the Service is whole again, with no action from anyone.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let report = load.stop().await;

    let deleted = report.window(delete_from, delete_to);
    let evictions = report.window(evict_from, evict_to);
    let kill = report.window(kill_from, kill_to);
    let after = report.window(kill_to, report.duration);
    record_figures(
        "disruption",
        &json!({
            "replicas": REPLICAS,
            "rate": RATE,
            "delete": { "seconds_to_replaced": (delete_to - delete_from).as_secs_f64(), "load": summary(&deleted) },
            "evict": { "seconds_to_replaced": (evict_to - evict_from).as_secs_f64(), "load": summary(&evictions) },
            "sigkill": { "seconds_to_ready": (kill_to - kill_from).as_secs_f64(), "load": summary(&kill) },
            "after": summary(&after),
        }),
    );
    assert_eq!(deleted.failed(), 0, "a deleted pod drains: {deleted}");
    assert_eq!(evictions.failed(), 0, "an evicted pod drains: {evictions}");
    // What a SIGKILL may cost: the requests in flight on the pod, and those
    // that reach it until the kubelet sees the container exit and the pod
    // leaves the endpoints (about a second): a third of ~2 s of load at most.
    let bound = (f64::from(RATE) * 2.0 / REPLICAS as f64).ceil() as usize;
    assert!(
        kill.failed() <= bound,
        "a killed process costs at most {bound} requests: {kill}; first: {:?}",
        kill.first_failures(5)
    );
    assert_eq!(after.failed(), 0, "recovered with no action: {after}");
    assert_eq!(report.shed, 0, "{report}");
}

/// Waits until pod `gone` no longer exists (its drain over) and
/// [`REPLICAS`] pods are Ready again; returns them.
async fn replaced(pods: &Api<Pod>, gone: &str) -> Vec<Pod> {
    within(
        Duration::from_secs(90),
        &format!("{gone} is gone and {REPLICAS} pods are Ready"),
        || async {
            let ready = ready_pods(pods, "item").await?;
            let still_there = pods.get_opt(gone).await?.is_some();
            Ok((ready.len() == REPLICAS && !still_there).then_some(ready))
        },
    )
    .await
    .unwrap()
}

/// A client that reports a 429 as it comes. kube's client retries 429s by
/// default (`Config::default_retry`): a refused eviction would be sent again
/// and accepted a second later, once the first one's replacement is Ready
/// (these pods start in about a second), which hides the refusal.
async fn answers_as_they_are() -> kube::Client {
    let mut config = kube::Config::infer().await.unwrap();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .map_or(0, |c| c.restart_count)
}

//! Faults: two replicas with one leader, the API server and etcd stopped and
//! started, the operator SIGKILLed in the middle of bursts of changes, and
//! another client fighting over fields Berth owns.
//!
//! These tests stop components of the cluster `BERTH_CLUSTER_DIR` names (the
//! default local cluster when unset), so they are their own test binary, run
//! one at a time by `make test-faults` after every other e2e test.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth_e2e::{Env, Operator, TestNamespace, client, cluster_component, install_crd};
use berth_operator::MicroService;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// The cluster's own controllers back off for up to ~30 s (plus jitter) after
/// an API server restart, so pods can take over a minute to be Ready again.
const RECOVERY: Duration = Duration::from_secs(180);
const LABEL: &str = "berth.dev/microservice";

fn spec(image: &str) -> String {
    format!("image: {image}\nreplicas: 1\nresources: {{ requests: {{ cpu: 10m }} }}")
}

/// Polls `check` until it returns `Ok(None)`-free `Some`, failing after `limit`
/// with the last reason `check` gave.
async fn within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < limit {
        match check().await {
            Ok(v) => return v,
            Err(why) => last = why,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{what}: not within {limit:?}; last: {last}");
}

/// The cluster matches `desired` (name -> image) exactly: one MicroService,
/// one Deployment and one Service per name and no others, each Deployment
/// with the desired image, each status written for the current generation
/// and Ready.
async fn converged(
    client: &Client,
    ns: &str,
    desired: &BTreeMap<String, String>,
) -> Result<(), String> {
    let err = |e: kube::Error| e.to_string();
    let ms_api: Api<MicroService> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let labelled = ListParams::default().labels(LABEL);

    let all = ms_api.list(&ListParams::default()).await.map_err(err)?;
    let names: Vec<String> = all.items.iter().map(ResourceExt::name_any).collect();
    let want: Vec<String> = desired.keys().cloned().collect();
    if names != want {
        return Err(format!("MicroServices {names:?}, want {want:?}"));
    }
    for ms in &all.items {
        let status = ms.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if status.observed_generation != ms.metadata.generation || !ready {
            return Err(format!(
                "{} not Ready for its generation: {status:?}",
                ms.name_any()
            ));
        }
    }
    let deps = deployments.list(&labelled).await.map_err(err)?;
    let dep_names: Vec<String> = deps.items.iter().map(ResourceExt::name_any).collect();
    if dep_names != want {
        return Err(format!("Deployments {dep_names:?}, want {want:?}"));
    }
    for d in &deps.items {
        let image = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        if Some(&image) != desired.get(&d.name_any()) {
            return Err(format!("Deployment {} has image {image}", d.name_any()));
        }
    }
    let svcs = services.list(&labelled).await.map_err(err)?;
    let svc_names: Vec<String> = svcs.items.iter().map(ResourceExt::name_any).collect();
    if svc_names != want {
        return Err(format!("Services {svc_names:?}, want {want:?}"));
    }
    Ok(())
}

/// A cheap random number (no RNG dependency): the clock's nanoseconds.
fn random_below(n: u64) -> u64 {
    u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos(),
    ) % n.max(1)
}

async fn apply(env: &Env, name: &str, image: &str) {
    env.apply_microservice(name, &spec(image)).await.unwrap();
}

/// Polls the operator's /readyz in the background; remembers whether it ever failed.
fn watch_readiness(op: &Operator) -> (Arc<AtomicBool>, Arc<AtomicBool>) {
    let url = format!("http://{}/readyz", op.metrics_addr);
    let saw_unready = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, done) = (saw_unready.clone(), stop.clone());
    tokio::spawn(async move {
        while !done.load(Ordering::Relaxed) {
            if let Ok(r) = reqwest::get(&url).await
                && r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
            {
                flag.store(true, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    (saw_unready, stop)
}

/// Stops `component` for 20 s while MicroServices are created and changed
/// around the outage; the same operator process must converge everything.
async fn outage(component: &str) {
    let mut env = Env::new(&format!("outage-{}", &component[..4])).await;
    let mut desired = BTreeMap::new();
    for i in 0..4 {
        let name = format!("svc-{i}");
        apply(&env, &name, "registry.local/app:1").await;
        desired.insert(name, "registry.local/app:1".to_string());
    }
    within(RECOVERY, "converged before the outage", || {
        converged(&env.client, &env.ns.name, &desired)
    })
    .await;

    // A burst of changes the operator is still working through when the outage starts.
    for i in 0..4 {
        let name = format!("svc-{i}");
        apply(&env, &name, "registry.local/app:2").await;
        desired.insert(name, "registry.local/app:2".to_string());
    }
    apply(&env, "svc-new-before", "registry.local/app:1").await;
    desired.insert("svc-new-before".into(), "registry.local/app:1".into());

    let (saw_unready, stop_polling) = watch_readiness(&env.operator);
    cluster_component("stop", component).unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let unready_during_outage = saw_unready.load(Ordering::Relaxed);
    cluster_component("start", component).unwrap();
    let restarted = Instant::now();
    stop_polling.store(true, Ordering::Relaxed);
    assert!(
        unready_during_outage,
        "/readyz reported ready throughout a {component} outage"
    );

    // Changes right after the restart, while watches are still reconnecting.
    apply(&env, "svc-0", "registry.local/app:3").await;
    desired.insert("svc-0".into(), "registry.local/app:3".into());
    apply(&env, "svc-new-after", "registry.local/app:1").await;
    desired.insert("svc-new-after".into(), "registry.local/app:1".into());

    within(
        RECOVERY,
        &format!("converged after the {component} outage"),
        || converged(&env.client, &env.ns.name, &desired),
    )
    .await;
    eprintln!(
        "{component}: converged {:?} after it was started again",
        restarted.elapsed()
    );
    assert!(
        env.operator.alive(),
        "the operator reconnected by itself, without a restart"
    );
    within(Duration::from_secs(60), "/readyz ready again", || async {
        match reqwest::get(format!("http://{}/readyz", env.operator.metrics_addr)).await {
            Ok(r) if r.status().is_success() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

#[tokio::test]
async fn api_server_outage_recovers_without_duplicates() {
    outage("kube-apiserver").await;
}

#[tokio::test]
async fn etcd_outage_recovers_without_duplicates() {
    outage("etcd").await;
}

#[tokio::test]
async fn sigkill_during_bursts_always_converges_to_the_desired_state() {
    let mut env = Env::new("sigkill").await;
    let mut desired: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..5 {
        let name = format!("svc-{i}");
        apply(&env, &name, "registry.local/app:0").await;
        desired.insert(name, "registry.local/app:0".into());
    }
    within(RECOVERY, "initial convergence", || {
        converged(&env.client, &env.ns.name, &desired)
    })
    .await;

    for round in 1..=10 {
        // A burst: change every image, add one, delete one.
        let image = format!("registry.local/app:{round}");
        let names: Vec<String> = desired.keys().cloned().collect();
        for name in &names {
            apply(&env, name, &image).await;
            desired.insert(name.clone(), image.clone());
        }
        let added = format!("svc-r{round}");
        apply(&env, &added, &image).await;
        desired.insert(added, image.clone());
        let victim = names[random_below(names.len() as u64) as usize].clone();
        env.microservices()
            .delete(&victim, &DeleteParams::background())
            .await
            .unwrap();
        desired.remove(&victim);

        // Kill at a random point of the burst's reconciles.
        tokio::time::sleep(Duration::from_millis(random_below(1500))).await;
        env.operator.kill();
        env.operator.restart().await.unwrap();
        let started = Instant::now();
        within(
            RECOVERY,
            &format!("round {round}: converged after SIGKILL"),
            || converged(&env.client, &env.ns.name, &desired),
        )
        .await;
        eprintln!(
            "round {round}: converged {:?} after the restart",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn berth_wins_its_own_fields_and_leaves_others_alone() {
    let env = Env::new("conflict").await;
    let mut desired = BTreeMap::from([("item".to_string(), "registry.local/item:1".to_string())]);
    apply(&env, "item", "registry.local/item:1").await;
    within(RECOVERY, "converged", || {
        converged(&env.client, &env.ns.name, &desired)
    })
    .await;
    let deployments: Api<Deployment> = env.ns.api();

    for round in 0..5 {
        // The MicroService changes (a reconcile is coming) while another
        // client, under its own field manager, takes Berth's image and adds
        // a field of its own.
        let image = format!("registry.local/item:{}", round + 2);
        apply(&env, "item", &image).await;
        desired.insert("item".into(), image.clone());
        let intruder = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "item",
                "annotations": { "intruder.example/note": format!("round {round}") }
            },
            "spec": { "template": { "spec": { "containers": [
                { "name": "item", "image": "registry.local/intruder:evil" }
            ] } } }
        });
        deployments
            .patch(
                "item",
                &PatchParams::apply("intruder").force(),
                &Patch::Apply(&intruder),
            )
            .await
            .unwrap();
        within(RECOVERY, "Berth took its image back", || {
            converged(&env.client, &env.ns.name, &desired)
        })
        .await;
        let d = deployments.get("item").await.unwrap();
        assert_eq!(
            d.annotations()
                .get("intruder.example/note")
                .map(String::as_str),
            Some(format!("round {round}").as_str()),
            "the other manager's field is left alone"
        );
        let image_owners: Vec<String> = d
            .managed_fields()
            .iter()
            .filter(|f| {
                f.fields_v1
                    .as_ref()
                    .is_some_and(|v| v.0.to_string().contains("\"f:image\""))
            })
            .filter_map(|f| f.manager.clone())
            .collect();
        assert_eq!(
            image_owners,
            vec!["berth-operator".to_string()],
            "Berth alone owns the image"
        );
    }
}

#[tokio::test]
async fn two_replicas_one_leader_and_a_takeover_within_the_lease() {
    const LEASE_SECONDS: u64 = 6;
    let client = client().await;
    install_crd(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "leader").await;
    let lease_args = [
        "--leader-elect",
        "--lease-namespace",
        ns.name.as_str(),
        "--lease-duration",
        "6",
        "--lease-grace",
        "2",
    ];
    let mut a = Operator::start_with(&ns.name, &lease_args).await.unwrap();
    let mut b = Operator::start_with(&ns.name, &lease_args).await.unwrap();

    let leader_of = |a: &Operator, b: &Operator| {
        let (a_url, b_url) = (a.metrics_addr.clone(), b.metrics_addr.clone());
        async move {
            let gauge = |url: String| async move {
                let text = reqwest::get(format!("http://{url}/metrics"))
                    .await
                    .map_err(|e| e.to_string())?
                    .text()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<bool, String>(text.lines().any(|l| l == "berth_leader 1"))
            };
            Ok::<(bool, bool), String>((gauge(a_url).await?, gauge(b_url).await?))
        }
    };
    let (a_leads, _) = within(Duration::from_secs(30), "one replica leads", || async {
        match leader_of(&a, &b).await? {
            (true, true) => panic!("both replicas report leading"),
            (false, false) => Err("no leader yet".to_string()),
            other => Ok(other),
        }
    })
    .await;
    let (leader, follower) = if a_leads {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };

    // Watch both processes' write counters for the whole test: never both writing.
    let writes_of = |op: &Operator| {
        let url = op.metrics_addr.clone();
        move || {
            let url = url.clone();
            async move {
                let text = reqwest::get(format!("http://{url}/metrics"))
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                Some(
                    text.lines()
                        .filter(|l| l.starts_with("berth_api_requests_total{"))
                        .filter(|l| {
                            !["\"get\"", "\"list\"", "\"watch\""]
                                .iter()
                                .any(|v| l.contains(&format!("verb={v}")))
                        })
                        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                        .sum::<f64>(),
                )
            }
        }
    };
    let follower_writes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let probe = writes_of(follower);
        let (seen, stop) = (follower_writes.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(n) = probe().await {
                    seen.fetch_max(n as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    let ms_api: Api<MicroService> = ns.api();
    let desired_one = |image: &str| {
        json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "MicroService",
            "metadata": { "name": "item", "namespace": ns.name },
            "spec": serde_yaml::from_str::<serde_json::Value>(&spec(image)).unwrap(),
        })
    };
    ms_api
        .patch(
            "item",
            &PatchParams::apply("berth-e2e").force(),
            &Patch::Apply(&desired_one("registry.local/item:1")),
        )
        .await
        .unwrap();
    let mut desired = BTreeMap::from([("item".to_string(), "registry.local/item:1".to_string())]);
    within(RECOVERY, "the leader converges", || {
        converged(&client, &ns.name, &desired)
    })
    .await;
    assert!(leader.writes().await.unwrap() > 0.0, "the leader wrote");
    assert_eq!(
        follower.writes().await.unwrap(),
        0.0,
        "the follower reconciled nothing"
    );
    assert_eq!(
        follower_writes.load(Ordering::Relaxed),
        0,
        "the follower sent no write request"
    );

    let lease: Api<Lease> = ns.api();
    let holder = |l: Lease| l.spec.and_then(|s| s.holder_identity).unwrap_or_default();
    let first_holder = holder(lease.get("berth-operator").await.unwrap());

    // SIGKILL the leader: the follower takes over within the lease duration.
    leader.kill();
    let killed = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let follower_url = follower.metrics_addr.clone();
    within(
        Duration::from_secs(LEASE_SECONDS * 3),
        "the follower takes over",
        || {
            let url = follower_url.clone();
            async move {
                let text = reqwest::get(format!("http://{url}/metrics"))
                    .await
                    .map_err(|e| e.to_string())?
                    .text()
                    .await
                    .map_err(|e| e.to_string())?;
                if text.lines().any(|l| l == "berth_leader 1") {
                    Ok(())
                } else {
                    Err("not yet".into())
                }
            }
        },
    )
    .await;
    let takeover = killed.elapsed();
    eprintln!("takeover {takeover:?} after SIGKILL (lease {LEASE_SECONDS} s)");
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS + 2),
        "takeover took {takeover:?}, lease is {LEASE_SECONDS} s"
    );
    let second_holder = holder(lease.get("berth-operator").await.unwrap());
    assert_ne!(first_holder, second_holder, "the Lease changed hands");

    // The new leader does the work.
    ms_api
        .patch(
            "item",
            &PatchParams::apply("berth-e2e").force(),
            &Patch::Apply(&desired_one("registry.local/item:2")),
        )
        .await
        .unwrap();
    desired.insert("item".into(), "registry.local/item:2".into());
    within(RECOVERY, "the new leader converges", || {
        converged(&client, &ns.name, &desired)
    })
    .await;
    assert!(
        follower.writes().await.unwrap() > 0.0,
        "the new leader wrote"
    );
    let managers: Vec<String> = Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .get("item")
        .await
        .unwrap()
        .managed_fields()
        .iter()
        .filter_map(|f| f.manager.clone())
        .collect();
    assert!(
        managers
            .iter()
            .all(|m| m == "berth-operator" || m == "kube-controller-manager"),
        "only Berth (and the Deployment controller's status) manage the Deployment: {managers:?}"
    );
}

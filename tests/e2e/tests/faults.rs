//! Faults: two replicas with one leader, the API server and etcd stopped and
//! started, the operator SIGKILLed in the middle of bursts of changes,
//! another client fighting over fields Berth owns, and the Prometheus
//! Operator's CRDs missing, then installed, then removed (this kwok-only
//! cluster is the one without them).
//!
//! These tests stop components of the cluster `BERTH_CLUSTER_DIR` names (the
//! default local cluster when unset), so they are their own test binary, run
//! one at a time by `make test-faults` after every other e2e test.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth_e2e::{
    Env, MICROSERVICE_LABEL, Operator, TestNamespace, client, cluster_component, condition,
    install_crd, kubectl, not_yet, run_command, within, workspace_root,
};
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

fn spec(image: &str) -> String {
    format!("image: {image}\nreplicas: 1\nresources: {{ requests: {{ cpu: 10m }} }}")
}

/// The cluster matches `desired` (name -> image) exactly: one MicroService,
/// one Deployment and one Service per name and no others, each Deployment
/// with the desired image, each status written for the current generation
/// and Ready. Not yet (with the reason) otherwise, API errors included: the
/// API server may be on its way back from an outage.
async fn converged(
    client: &Client,
    ns: &str,
    desired: &BTreeMap<String, String>,
) -> anyhow::Result<Option<()>> {
    compare(client, ns, desired)
        .await
        .map(Some)
        .map_err(not_yet)
}

/// Waits (up to [`RECOVERY`]) until [`converged`].
async fn converge(what: &str, client: &Client, ns: &str, desired: &BTreeMap<String, String>) {
    within(RECOVERY, what, || converged(client, ns, desired))
        .await
        .unwrap();
}

/// `Err(how the cluster differs from desired)`, see [`converged`].
async fn compare(
    client: &Client,
    ns: &str,
    desired: &BTreeMap<String, String>,
) -> Result<(), String> {
    let err = |e: kube::Error| e.to_string();
    let ms_api: Api<MicroService> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let labelled = ListParams::default().labels(MICROSERVICE_LABEL);

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

/// A small seeded random sequence (splitmix64; no RNG dependency), so a
/// failing run of random kills can be replayed with its seed.
struct Random(u64);

impl Random {
    /// The seed of `BERTH_FAULT_SEED`, else one from the clock.
    fn seed() -> u64 {
        std::env::var("BERTH_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64 % 1_000_000)
                    .unwrap_or_default()
            })
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
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
    let (client, ns) = (env.client.clone(), env.ns.name.clone());
    let mut desired = BTreeMap::new();
    for i in 0..4 {
        let name = format!("svc-{i}");
        apply(&env, &name, "registry.local/app:1").await;
        desired.insert(name, "registry.local/app:1".to_string());
    }
    converge("converged before the outage", &client, &ns, &desired).await;

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

    converge(
        &format!("converged after the {component} outage"),
        &client,
        &ns,
        &desired,
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
    let readyz = format!("http://{}/readyz", env.operator.metrics_addr);
    within(Duration::from_secs(60), "/readyz ready again", || async {
        match reqwest::get(&readyz).await {
            Ok(r) if r.status().is_success() => Ok(Some(())),
            other => Err(not_yet(format!("{other:?}"))),
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn api_server_outage_recovers_without_duplicates() {
    outage("kube-apiserver").await;
}

#[tokio::test]
async fn etcd_outage_recovers_without_duplicates() {
    outage("etcd").await;
}

/// Rounds of random kills per series, and series per run: 50 kills, each
/// followed by exact convergence. A run with `BERTH_FAULT_SEED` replays that
/// one series. (Series side by side, one operator each, were no faster on 2
/// cores: the API server became the bottleneck.)
const KILLS_PER_SERIES: u32 = 10;
const SERIES: u64 = 5;

#[tokio::test]
async fn sigkill_during_bursts_always_converges_to_the_desired_state() {
    let replay = std::env::var("BERTH_FAULT_SEED").is_ok();
    let first = Random::seed();
    let series = if replay { 1 } else { SERIES };
    let started = Instant::now();
    for n in 0..series {
        let seed = first + n;
        eprintln!(
            "series {}/{series}: {KILLS_PER_SERIES} kills, replay with BERTH_FAULT_SEED={seed}",
            n + 1
        );
        kill_series(seed).await;
    }
    eprintln!(
        "{} SIGKILLs, exact convergence after each, in {:?}",
        series as u32 * KILLS_PER_SERIES,
        started.elapsed()
    );
}

/// [`KILLS_PER_SERIES`] rounds of: a burst of changes, SIGKILL at a random
/// point of the burst's reconciles, restart, exact convergence. Which
/// MicroService goes and when the kill comes follow `seed`.
async fn kill_series(seed: u64) {
    let mut random = Random(seed);
    let mut env = Env::new(&format!("sigkill-{seed}")).await;
    let (client, ns) = (env.client.clone(), env.ns.name.clone());
    let mut desired: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..5 {
        let name = format!("svc-{i}");
        apply(&env, &name, "registry.local/app:0").await;
        desired.insert(name, "registry.local/app:0".into());
    }
    converge("initial convergence", &client, &ns, &desired).await;

    for round in 1..=KILLS_PER_SERIES {
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
        let victim = names[random.below(names.len() as u64) as usize].clone();
        env.microservices()
            .delete(&victim, &DeleteParams::background())
            .await
            .unwrap();
        desired.remove(&victim);

        // Kill at a random point of the burst's reconciles.
        let kill_after = Duration::from_millis(random.below(1500));
        tokio::time::sleep(kill_after).await;
        env.operator.kill();
        env.operator.restart().await.unwrap();
        let restarted = Instant::now();
        converge(
            &format!("seed {seed}, round {round} (killed {kill_after:?} into the burst, {victim} deleted): converged after SIGKILL"),
            &client,
            &ns,
            &desired,
        )
        .await;
        eprintln!(
            "  seed {seed}, round {round}: killed {kill_after:?} into the burst, converged {:?} after the restart",
            restarted.elapsed()
        );
    }
}

#[tokio::test]
async fn berth_wins_its_own_fields_and_leaves_others_alone() {
    let env = Env::new("conflict").await;
    let (client, ns) = (env.client.clone(), env.ns.name.clone());
    let mut desired = BTreeMap::from([("item".to_string(), "registry.local/item:1".to_string())]);
    apply(&env, "item", "registry.local/item:1").await;
    converge("converged", &client, &ns, &desired).await;
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
        converge("Berth took its image back", &client, &ns, &desired).await;
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

/// How the leader goes away in [`handover`].
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// SIGKILL: a crash; the Lease stays held until it expires.
    Kill,
    /// SIGTERM: a rolling update; the leader releases the Lease on its way out.
    Terminate,
}

#[tokio::test]
async fn two_replicas_one_leader_and_a_takeover_within_the_lease() {
    const LEASE: Duration = Duration::from_secs(6);
    let (takeover, _) = handover(Stop::Kill, LEASE).await;
    assert!(
        takeover <= LEASE + Duration::from_secs(2),
        "takeover took {takeover:?}, lease is {LEASE:?}"
    );
}

#[tokio::test]
async fn sigterm_hands_the_lease_over_at_once() {
    // The chart's default lease: what a rolling update would otherwise wait out.
    const LEASE: Duration = Duration::from_secs(15);
    let (takeover, converged) = handover(Stop::Terminate, LEASE).await;
    assert!(
        takeover <= Duration::from_secs(2),
        "takeover took {takeover:?} after SIGTERM: the Lease was not released (lease {LEASE:?})"
    );
    assert!(
        converged <= LEASE / 2,
        "the new leader converged a change {converged:?} after SIGTERM, lease {LEASE:?}"
    );
}

/// Two replicas with leader election: one leads, the other sends no write;
/// the leader goes (`stop`) and the other takes over and converges the next
/// change. Returns how long after the signal the follower led, and after
/// how long it had converged the change made once it led.
async fn handover(stop: Stop, lease: Duration) -> (Duration, Duration) {
    let client = client().await;
    install_crd(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "leader").await;
    let (duration, grace) = (
        lease.as_secs().to_string(),
        (lease.as_secs() / 3).to_string(),
    );
    let lease_args = [
        "--leader-elect",
        "--lease-namespace",
        ns.name.as_str(),
        "--lease-duration",
        &duration,
        "--lease-grace",
        &grace,
    ];
    let mut a = Operator::start_with(&ns.name, &lease_args).await.unwrap();
    let mut b = Operator::start_with(&ns.name, &lease_args).await.unwrap();

    let a_leads = within(Duration::from_secs(30), "one replica leads", || async {
        match (a.leading().await?, b.leading().await?) {
            (true, true) => panic!("both replicas report leading"),
            (false, false) => Ok(None),
            (a_leads, _) => Ok(Some(a_leads)),
        }
    })
    .await
    .unwrap();
    let (leader, follower) = if a_leads {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };

    // Poll the follower's write counter until it leads: never both writing.
    let follower_writes = Arc::new(AtomicU64::new(0));
    let stop_polling = Arc::new(AtomicBool::new(false));
    {
        let url = format!("http://{}/metrics", follower.metrics_addr);
        let (seen, done) = (follower_writes.clone(), stop_polling.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Some(n) = write_requests(&url).await {
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
    converge("the leader converges", &client, &ns.name, &desired).await;
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

    let leases: Api<Lease> = ns.api();
    let holder = |l: Lease| l.spec.and_then(|s| s.holder_identity).unwrap_or_default();
    let first_holder = holder(leases.get("berth-operator").await.unwrap());

    // The leader goes; the follower takes over.
    let signalled = Instant::now();
    let follower_leads = async {
        within(lease * 3, "the follower takes over", || async {
            Ok(follower.leading().await?.then(|| signalled.elapsed()))
        })
        .await
        .unwrap()
    };
    let takeover = match stop {
        Stop::Kill => {
            leader.kill();
            follower_leads.await
        }
        Stop::Terminate => {
            let (exited, takeover) =
                tokio::join!(leader.terminate(Duration::from_secs(10)), follower_leads);
            let status = exited.unwrap();
            assert!(
                status.success(),
                "the leader exited with {status} after SIGTERM"
            );
            let log = std::fs::read_to_string(&leader.log).unwrap();
            assert!(
                log.contains("released the lease"),
                "the leader released the Lease on its way out (log {})",
                leader.log.display()
            );
            takeover
        }
    };
    stop_polling.store(true, Ordering::Relaxed);
    let second_holder = holder(leases.get("berth-operator").await.unwrap());
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
    converge("the new leader converges", &client, &ns.name, &desired).await;
    let converged = signalled.elapsed();
    eprintln!(
        "handover after {stop:?} (lease {lease:?}): the follower led {takeover:?} after the signal \
         and had converged a change {converged:?} after it"
    );
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
    (takeover, converged)
}

/// The write requests an operator has sent (`berth_api_requests_total`
/// other than get, list and watch), from its /metrics at `url`.
async fn write_requests(url: &str) -> Option<f64> {
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    Some(
        text.lines()
            .filter(|l| l.starts_with("berth_api_requests_total{"))
            .filter(|l| {
                !["\"get\"", "\"list\"", "\"watch\""]
                    .iter()
                    .any(|v| l.contains(&format!("verb={v}")))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// Installs (`apply`) or removes (`delete`) the Prometheus Operator's CRDs
/// (`prometheus.sh crd-files`: the pinned module's) on the cluster this
/// test's own client talks to (`$KUBECONFIG`), whichever it is.
fn monitoring_crds(verb: &str) {
    let mut files =
        std::process::Command::new(workspace_root().join("tests/cluster/prometheus/prometheus.sh"));
    files.arg("crd-files");
    let files = run_command(files).unwrap();
    let mut cmd = kubectl();
    match verb {
        "apply" => cmd.args(["apply", "--server-side", "--force-conflicts"]),
        _ => cmd.args(["delete", "--ignore-not-found", "--wait=true"]),
    };
    for file in files.lines() {
        cmd.args(["-f", file]);
    }
    run_command(cmd).unwrap();
    if verb == "apply" {
        let mut wait = kubectl();
        wait.args(["wait", "--for=condition=Established", "--timeout=60s"]);
        wait.args(["crd/podmonitors.monitoring.coreos.com"]);
        run_command(wait).unwrap();
    }
}

/// The Monitored condition's (status, reason), once it describes the
/// current generation.
async fn monitored(env: &Env) -> anyhow::Result<Option<(String, String, String)>> {
    let ms = env.microservices().get("item").await?;
    Ok(condition(&ms, "Monitored")
        .filter(|c| c.observed_generation == ms.metadata.generation)
        .map(|c| (c.status, c.reason, c.message)))
}

#[tokio::test]
async fn without_the_monitoring_crds_a_microservice_is_ready_and_says_why_until_they_come() {
    monitoring_crds("delete");
    let env = Env::new("nocrds").await;
    env.apply_microservice("item", "image: registry.local/item:1.0.0\nport: 8081")
        .await
        .unwrap();
    env.wait_ready("item").await.unwrap();
    let (status, reason, message) = monitored(&env).await.unwrap().expect("Monitored");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "AnnotationsOnly")
    );
    assert!(
        message.contains("does not serve monitoring.coreos.com/v1 PodMonitor (not found)"),
        "{message}"
    );
    let deployment = env.ns.api::<Deployment>().get("item").await.unwrap();
    let template = deployment.spec.unwrap().template.metadata.unwrap();
    assert_eq!(
        template.annotations.unwrap_or_default()["prometheus.io/scrape"],
        "true"
    );

    // Installed: the watch finds the kind within its 30 s retry, and every
    // MicroService is looked at again.
    monitoring_crds("apply");
    let appeared = Instant::now();
    within(
        Duration::from_secs(90),
        "the PodMonitor and its condition",
        || async {
            Ok(monitored(&env)
                .await?
                .filter(|(_, reason, _)| reason == "PodMonitorReady"))
        },
    )
    .await
    .unwrap();
    println!("PodMonitor created {:?} after the CRDs", appeared.elapsed());
    let pod_monitors: Api<berth_operator::desired::PodMonitor> = env.ns.api();
    assert!(pod_monitors.get_opt("item").await.unwrap().is_some());

    // Removed again (as this cluster was): back to annotations only, Ready throughout.
    monitoring_crds("delete");
    within(
        Duration::from_secs(90),
        "the condition says the kind is gone",
        || async {
            Ok(monitored(&env)
                .await?
                .filter(|(_, reason, _)| reason == "AnnotationsOnly"))
        },
    )
    .await
    .unwrap();
    env.wait_ready("item").await.unwrap();
}

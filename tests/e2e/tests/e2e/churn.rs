//! Status truth under churn: for about a minute, MicroServices among a pool of
//! six names are created, edited (image, replicas, dependencies), deleted
//! (background or foreground, so some linger with a deletionTimestamp) and
//! created again in a random order, so dependencies appear and disappear
//! under their dependents. Within [`SETTLE`] of the churn ending, every
//! MicroService's conditions and `status.dependencies` must say what the
//! cluster holds: which MicroServices exist, which are Ready, which are being
//! deleted, for the current generation.
//!
//! `BERTH_CHURN_SECONDS` sets the churn's length (45 by default, for CI) and
//! `BERTH_CHURN_SEED` replays the order of operations (each run prints its seed;
//! the timing of a replay differs, the sequence does not).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use berth_e2e::generate::{draw, runner, seed_from_env};
use berth_e2e::{Env, apply_microservice, condition};
use berth_operator::MicroService;
use berth_operator::desired::labels::MICROSERVICE_LABEL;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams};
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use serde_json::{Value, json};

const POOL: [&str; 6] = ["ant", "bee", "cat", "dog", "eel", "fox"];
const DEFAULT_CHURN: Duration = Duration::from_secs(45);
/// How soon after the churn every status must be true.
const SETTLE: Duration = Duration::from_secs(20);

#[derive(Clone, Debug)]
enum Op {
    /// Server-side apply of a whole spec (creates, or edits every field).
    Apply {
        name: usize,
        tag: u8,
        replicas: i32,
        deps: Vec<usize>,
    },
    Image {
        name: usize,
        tag: u8,
    },
    Replicas {
        name: usize,
        replicas: i32,
    },
    Dependencies {
        name: usize,
        deps: Vec<usize>,
    },
    Delete {
        name: usize,
        foreground: bool,
    },
}

fn op() -> impl Strategy<Value = (Op, u64)> {
    let name = || 0..POOL.len();
    let deps = || btree_set(0..POOL.len(), 0..3).prop_map(|s| s.into_iter().collect::<Vec<_>>());
    let op = prop_oneof![
        3 => (name(), 0..4u8, 0..3i32, deps())
            .prop_map(|(name, tag, replicas, deps)| Op::Apply { name, tag, replicas, deps }),
        1 => (name(), 0..4u8).prop_map(|(name, tag)| Op::Image { name, tag }),
        1 => (name(), 0..3i32).prop_map(|(name, replicas)| Op::Replicas { name, replicas }),
        2 => (name(), deps()).prop_map(|(name, deps)| Op::Dependencies { name, deps }),
        2 => (name(), any::<bool>()).prop_map(|(name, foreground)| Op::Delete { name, foreground }),
    ];
    // A pause after the operation, in milliseconds: bursts and gaps.
    (
        op,
        prop_oneof![3 => 0..50u64, 2 => 50..400u64, 1 => 400..1500u64],
    )
}

/// The last spec written for each name, which the single-field edits start from.
type Model = BTreeMap<usize, Value>;

fn spec(name: usize, tag: u8, replicas: i32, deps: &[usize]) -> Value {
    let deps: Vec<&str> = deps
        .iter()
        .filter(|d| **d != name)
        .map(|d| POOL[*d])
        .collect();
    json!({
        "image": format!("registry.local/{}:1.{tag}", POOL[name]),
        "replicas": replicas,
        "dependencies": deps,
    })
}

async fn run(env: &Env, model: &mut Model, op: &Op) -> anyhow::Result<()> {
    let (name, body) = match op {
        Op::Apply {
            name,
            tag,
            replicas,
            deps,
        } => (*name, spec(*name, *tag, *replicas, deps)),
        Op::Image { name, tag } => {
            let mut s = model
                .get(name)
                .cloned()
                .unwrap_or_else(|| spec(*name, 0, 1, &[]));
            s["image"] = json!(format!("registry.local/{}:1.{tag}", POOL[*name]));
            (*name, s)
        }
        Op::Replicas { name, replicas } => {
            let mut s = model
                .get(name)
                .cloned()
                .unwrap_or_else(|| spec(*name, 0, 1, &[]));
            s["replicas"] = json!(replicas);
            (*name, s)
        }
        Op::Dependencies { name, deps } => {
            let mut s = model
                .get(name)
                .cloned()
                .unwrap_or_else(|| spec(*name, 0, 1, &[]));
            s["dependencies"] = spec(*name, 0, 0, deps)["dependencies"].clone();
            (*name, s)
        }
        Op::Delete { name, foreground } => {
            let dp = if *foreground {
                DeleteParams::foreground()
            } else {
                DeleteParams::background()
            };
            model.remove(name);
            return match env.microservices().delete(POOL[*name], &dp).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
    };
    apply_microservice(&env.client, &env.ns.name, POOL[name], &body).await?;
    model.insert(name, body);
    Ok(())
}

/// The Deployment says every pod runs the current template and is ready: what `Ready` must say.
fn deployment_ready(d: &Deployment) -> bool {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(s) = d.status.as_ref() else {
        return false;
    };
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas.unwrap_or_default() >= desired
        && s.replicas.unwrap_or_default() <= desired
        && s.available_replicas.unwrap_or_default() >= desired
        && s.ready_replicas.unwrap_or_default() >= desired
}

/// Every way the statuses disagree with the cluster; empty when they all tell the truth.
async fn untruths(env: &Env) -> anyhow::Result<Vec<String>> {
    let all: BTreeMap<String, MicroService> = env
        .microservices()
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|ms| (ms.name_any(), ms))
        .collect();
    let deployments: BTreeMap<String, Deployment> = env
        .ns
        .api::<Deployment>()
        .list(&ListParams::default().labels(MICROSERVICE_LABEL))
        .await?
        .items
        .into_iter()
        .map(|d| (d.name_any(), d))
        .collect();
    let mut wrong = Vec::new();
    for (name, d) in &deployments {
        if !all.contains_key(name) {
            wrong.push(format!(
                "Deployment {name} outlives its MicroService ({:?})",
                d.metadata.deletion_timestamp
            ));
        }
    }
    let ready = |ms: &MicroService| condition(ms, "Ready").is_some_and(|c| c.status == "True");
    for (name, ms) in &all {
        if ms.metadata.deletion_timestamp.is_some() {
            continue; // going away: its status no longer matters, its dependents' does
        }
        let status = ms.status.clone().unwrap_or_default();
        if status.observed_generation != ms.metadata.generation {
            wrong.push(format!(
                "{name}: observedGeneration {:?}, generation {:?}",
                status.observed_generation, ms.metadata.generation
            ));
            continue;
        }
        for c in &status.conditions {
            if c.observed_generation != ms.metadata.generation {
                wrong.push(format!(
                    "{name}: condition {} of generation {:?}",
                    c.type_, c.observed_generation
                ));
            }
        }
        let expect_ready = deployments.get(name).is_some_and(deployment_ready);
        if ready(ms) != expect_ready {
            wrong.push(format!(
                "{name}: Ready={} but its Deployment says {expect_ready}: {:?}",
                ready(ms),
                deployments.get(name).and_then(|d| d.status.clone())
            ));
        }
        let reported: Vec<(String, String)> = status
            .dependencies
            .iter()
            .map(|d| (d.name.clone(), format!("{:?}", d.state)))
            .collect();
        let names: Vec<&String> = reported.iter().map(|(n, _)| n).collect();
        let wanted: Vec<&String> = ms.spec.dependencies.iter().collect();
        if names != wanted {
            wrong.push(format!(
                "{name}: status.dependencies {names:?}, spec.dependencies {wanted:?}"
            ));
            continue;
        }
        let (mut missing, mut not_ready) = (false, false);
        for (dep, state) in &reported {
            let allowed: &[&str] = match all.get(dep) {
                None => &["Missing"],
                Some(d) if d.metadata.deletion_timestamp.is_some() => &["Terminating"],
                Some(d) if ready(d) && d.status.as_ref().is_some_and(|s| s.ready_replicas == 0) => {
                    &["ScaledToZero"]
                }
                Some(d) if ready(d) => &["Ready"],
                Some(_) => &["NotReady"],
            };
            if !allowed.contains(&state.as_str()) {
                let truth = match all.get(dep) {
                    None => "does not exist".to_string(),
                    Some(d) => format!(
                        "exists, Ready={}, deleting={}",
                        ready(d),
                        d.metadata.deletion_timestamp.is_some()
                    ),
                };
                wrong.push(format!(
                    "{name}: dependency {dep} reported {state} but it {truth}"
                ));
            }
            missing |= state == "Missing";
            not_ready |= ["NotReady", "ScaledToZero", "Terminating"].contains(&state.as_str());
        }
        let (want_status, want_reason) = match (reported.is_empty(), missing, not_ready) {
            (true, _, _) => ("True", "NoDependencies"),
            (false, true, _) => ("False", "DependenciesMissing"),
            (false, false, true) => ("False", "DependenciesNotReady"),
            (false, false, false) => ("True", "AllDependenciesReady"),
        };
        match condition(ms, "DependenciesReady") {
            Some(c) if c.status == want_status && c.reason == want_reason => {}
            other => wrong.push(format!(
                "{name}: DependenciesReady {:?}, expected {want_status}/{want_reason} from {reported:?}",
                other.map(|c| (c.status, c.reason, c.message))
            )),
        }
        if let Some(c) = condition(ms, "Degraded").filter(|c| c.status == "True") {
            wrong.push(format!("{name}: Degraded {} {}", c.reason, c.message));
        }
    }
    Ok(wrong)
}

#[tokio::test]
async fn statuses_tell_the_truth_after_churn() {
    let seed = seed_from_env("BERTH_CHURN_SEED");
    let churn = std::env::var("BERTH_CHURN_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(DEFAULT_CHURN, Duration::from_secs);
    eprintln!("churn: {churn:?}, seed {seed} (replay: BERTH_CHURN_SEED={seed})");
    // More operations than the churn has time for; it stops at its deadline.
    let ops = draw(vec(op(), 2000), &mut runner(seed));
    let env = Env::new("churn").await;
    let mut model = Model::new();
    let mut done = Vec::new();
    let started = Instant::now();
    for (op, pause) in &ops {
        if started.elapsed() >= churn {
            break;
        }
        run(&env, &mut model, op)
            .await
            .unwrap_or_else(|e| panic!("{op:?}: {e:#}"));
        done.push(op.clone());
        tokio::time::sleep(Duration::from_millis(*pause)).await;
    }
    eprintln!(
        "churn: {} operations in {:?}",
        done.len(),
        started.elapsed()
    );

    let wrong = settled_truth(&env, "the churn").await;
    let wrong = if wrong.is_empty() {
        // The churn keeps every MicroService busy, and a busy one is
        // reconciled for its own reasons, which can hide a missed trigger.
        // So end with the case that needs one: the cluster is quiet, and
        // the MicroServices others depend on are deleted.
        let deleted = dependencies_to_delete(&model);
        tokio::time::sleep(Duration::from_secs(3)).await;
        for name in &deleted {
            let op = Op::Delete {
                name: POOL.iter().position(|p| p == name).expect("a pool name"),
                foreground: false,
            };
            run(&env, &mut model, &op).await.unwrap();
            done.push(op);
        }
        eprintln!("churn: then, quiet, deleted {deleted:?}");
        settled_truth(&env, "deleting what others depend on").await
    } else {
        wrong
    };
    let last: Vec<String> = done
        .iter()
        .rev()
        .take(30)
        .rev()
        .map(|op| format!("{op:?}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "seed {seed} (BERTH_CHURN_SEED={seed}), {} operations; {SETTLE:?} after the last one the statuses still said:\n  {}\n\nlast operations (indices into {POOL:?}):\n  {}\noperator log {}",
        done.len(),
        wrong.join("\n  "),
        last.join("\n  "),
        env.operator.log.display()
    );
}

/// Polls until every status tells the truth or [`SETTLE`] has passed since
/// `what` ended; returns what was still untrue.
async fn settled_truth(env: &Env, what: &str) -> Vec<String> {
    let ended = Instant::now();
    let wrong = loop {
        let wrong = untruths(env).await.unwrap();
        if wrong.is_empty() || ended.elapsed() > SETTLE {
            break wrong;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("churn: statuses checked {:?} after {what}", ended.elapsed());
    wrong
}

/// MicroServices that others depend on, chosen so that each keeps at least
/// one dependent that is not deleted too (someone must notice).
fn dependencies_to_delete(model: &Model) -> Vec<String> {
    let deps = |i: &usize| -> Vec<String> {
        model[i]["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str().map(str::to_owned))
            .collect()
    };
    let (mut delete, mut keep) = (Vec::new(), std::collections::BTreeSet::new());
    for candidate in model.keys().map(|i| POOL[*i].to_string()) {
        if keep.contains(&candidate) {
            continue;
        }
        let dependents: Vec<String> = model
            .keys()
            .filter(|i| deps(i).contains(&candidate))
            .map(|i| POOL[*i].to_string())
            .filter(|d| !delete.contains(d))
            .collect();
        if !dependents.is_empty() {
            delete.push(candidate);
            keep.extend(dependents);
        }
    }
    delete
}

//! Zero writes at rest, for any valid spec: a batch of generated MicroServices
//! (`berth_e2e::generate`) plus the fixed cases in `generated_regressions.yaml`
//! converge, and then a no-op annotation on each of them and an operator
//! restart make the operator reconcile every one again without writing a
//! single child or status, and every child keeps its resourceVersion.
//!
//! `BERTH_GENERATED_SPECS=<n>` sets the batch size (20 by default, for CI) and
//! `BERTH_GENERATED_SEED=<seed>` replays a run (every run prints its seed).
//! Also here: a pure property over the same generators, the children Berth
//! computes for any spec (runs without a cluster).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_e2e::generate::{GeneratedSpec, batch, draw, runner, seed_from_env};
use berth_e2e::live_children::{ChildChange, LiveChildren, desired_vs_live, diff};
use berth_e2e::{Env, Operator, apply_microservice, condition};
use berth_operator::desired::labels::MICROSERVICE_LABEL;
use berth_operator::desired::{self, SPEC_HASH_ANNOTATION};
use berth_operator::microservice::MANAGER;
use berth_operator::{MicroService, MicroServiceSpec, dependencies};
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams};
use proptest::prelude::*;
use serde_json::{Value, json};

const DEFAULT_SPECS: usize = 20;
/// Batch creation to convergence: every status current, every child there.
const CONVERGE: Duration = Duration::from_secs(150);
/// No operator write for this long counts as settled (several 5 s HPA syncs).
const QUIET: Duration = Duration::from_secs(10);
/// How long [`settle`] waits for a quiet interval.
const SETTLE_LIMIT: Duration = Duration::from_secs(40);
/// Pods start, metrics-server scrapes them (10 s) and the HPAs report: real
/// news for the status, so the baseline is taken after it.
const METRICS_ARRIVE: Duration = Duration::from_secs(25);
/// After the reconcile counter shows every MicroService was looked at: the
/// time a write caused by those reconciles takes to show in the counters.
const GRACE: Duration = Duration::from_secs(3);

fn regressions() -> Vec<GeneratedSpec> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/generated_regressions.yaml"
    );
    let cases: Vec<Value> = serde_yaml::from_str(&std::fs::read_to_string(path).expect(path))
        .expect("generated_regressions.yaml parses");
    cases
        .into_iter()
        .map(|c| GeneratedSpec {
            name: c["name"].as_str().expect("a case has a name").into(),
            spec: c["spec"].clone(),
            can_be_ready: c["canBeReady"].as_bool().unwrap_or(true),
        })
        .collect()
}

/// The spec as a regression case, ready to paste into generated_regressions.yaml.
fn as_case(spec: &GeneratedSpec) -> String {
    serde_yaml::to_string(&json!([{ "name": spec.name, "spec": spec.spec }])).unwrap_or_default()
}

/// `berth_api_writes_total` by (kind, verb).
async fn writes(op: &Operator) -> anyhow::Result<BTreeMap<(String, String), f64>> {
    let label = |line: &str, key: &str| -> String {
        line.split(&format!("{key}=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_string()
    };
    Ok(op
        .metrics()
        .await?
        .lines()
        .filter(|l| l.starts_with("berth_api_writes_total{"))
        .filter_map(|l| {
            let n = l.rsplit(' ').next()?.parse::<f64>().ok()?;
            Some(((label(l, "kind"), label(l, "verb")), n))
        })
        .collect())
}

/// The writes the operator logged (children applied or deleted, replicas
/// handed over, statuses) after byte `from` of its log; moves `from` to the end.
fn logged_writes(op: &Operator, from: &mut u64) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read(&op.log)?;
    let start = (*from as usize).min(text.len());
    *from = text.len() as u64;
    let mut plain = String::new();
    let mut in_escape = false;
    for c in String::from_utf8_lossy(&text[start..]).chars() {
        match c {
            '\u{1b}' => in_escape = true,
            'm' if in_escape => in_escape = false,
            _ if in_escape => {}
            _ => plain.push(c),
        }
    }
    Ok(plain
        .lines()
        .filter(|l| {
            [
                "applied child",
                "deleted child",
                "handed spec.replicas",
                "status updated",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .map(|l| {
            l.split_once(" INFO ")
                .map_or(l, |(_, rest)| rest)
                .trim()
                .to_string()
        })
        .collect())
}

/// Whether `ms` asks for monitoring (on unless `monitoring.enabled: false`).
fn monitored(ms: &MicroService) -> bool {
    ms.spec.monitoring.clone().unwrap_or_default().enabled()
}

/// For a child the operator applied although nothing changed: every field
/// where the child Berth computes differs from the stored one.
fn explain(kind: &str, name: &str, after: &Snapshot) -> String {
    let Some(ms) = after.microservices.get(name) else {
        return format!("{name}: no such MicroService");
    };
    let deps = dependencies::resolve(ms, |dep| after.microservices.get(dep).cloned());
    let Ok(children) = desired::children(ms, &deps) else {
        return format!("{name}: desired::children failed");
    };
    let desired = match kind {
        "Deployment" => serde_json::to_value(&children.deployment).ok(),
        "Service" => serde_json::to_value(&children.service).ok(),
        "HorizontalPodAutoscaler" => serde_json::to_value(&children.autoscaler).ok(),
        "PodDisruptionBudget" => serde_json::to_value(&children.disruption_budget).ok(),
        "PodMonitor" => serde_json::to_value(&children.pod_monitor).ok(),
        _ => None,
    }
    .unwrap_or_default();
    let live = after
        .children
        .objects
        .get(&(kind.to_string(), name.to_string()))
        .cloned()
        .unwrap_or_default();
    let mut fields = Vec::new();
    desired_vs_live("", &desired["spec"], &live["spec"], &mut fields);
    if fields.is_empty() {
        fields.push("(no difference in spec)".into());
    }
    format!(
        "{kind}/{name}, desired -> stored:\n  {}",
        fields.join("\n  ")
    )
}

/// The operator's state and the cluster's, at one moment.
struct Snapshot {
    writes: BTreeMap<(String, String), f64>,
    microservices: BTreeMap<String, Arc<MicroService>>,
    /// What the operator logged it wrote since the previous snapshot.
    logged: Vec<String>,
    children: LiveChildren,
    statuses: BTreeMap<String, Value>,
}

impl Snapshot {
    async fn take(env: &Env, log_from: &mut u64) -> anyhow::Result<Self> {
        let microservices: BTreeMap<String, Arc<MicroService>> = env
            .microservices()
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|ms| (ms.name_any(), Arc::new(ms)))
            .collect();
        let statuses = microservices
            .iter()
            .map(|(name, ms)| {
                (
                    name.clone(),
                    serde_json::to_value(&ms.status).unwrap_or_default(),
                )
            })
            .collect();
        Ok(Self {
            writes: writes(&env.operator).await?,
            microservices,
            logged: logged_writes(&env.operator, log_from)?,
            children: LiveChildren::capture(&env.client, &env.ns.name).await?,
            statuses,
        })
    }
}

/// What went wrong between two snapshots, as a report; empty when nothing did.
/// `fresh`: the operator restarted in between, so its counters start at zero.
fn check(
    phase: &str,
    before: &Snapshot,
    after: &Snapshot,
    fresh: bool,
    specs: &BTreeMap<String, GeneratedSpec>,
) -> Vec<String> {
    let mut report = Vec::new();
    let delta = |kind: &str, verb: &str| {
        let key = (kind.to_string(), verb.to_string());
        let now = after.writes.get(&key).copied().unwrap_or_default();
        now - if fresh {
            0.0
        } else {
            before.writes.get(&key).copied().unwrap_or_default()
        }
    };
    let keys: std::collections::BTreeSet<_> =
        before.writes.keys().chain(after.writes.keys()).collect();
    let child_writes: Vec<String> = keys
        .iter()
        .filter(|(kind, verb)| !(kind == "MicroService" && verb == "status") && kind != "Event")
        .filter_map(|(kind, verb)| {
            let n = delta(kind, verb);
            (n > 0.0).then(|| format!("{kind} {verb}: {n}"))
        })
        .collect();
    if !child_writes.is_empty() {
        report.push(format!(
            "{phase}: the operator wrote children: {}",
            child_writes.join(", ")
        ));
        let mut seen = std::collections::BTreeSet::new();
        let applied = after
            .logged
            .iter()
            .filter_map(|l| l.split_once("applied child"));
        for (_, line) in applied {
            let field = |key: &str| {
                line.split(&format!("{key}="))
                    .nth(1)
                    .and_then(|v| v.split_whitespace().next())
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string()
            };
            let (kind, name) = (field("kind"), field("name"));
            if seen.insert((kind.clone(), name.clone())) {
                let spec = specs.get(&name).map(as_case).unwrap_or_default();
                let why = explain(&kind, &name, after);
                report.push(format!(
                    "{phase}: applied {why}\nof the MicroService\n{spec}"
                ));
            }
        }
    }

    let changes = before.children.changes(&after.children);
    let touched: std::collections::BTreeSet<&str> =
        changes.iter().map(|c| c.microservice.as_str()).collect();
    for change in &changes {
        let ChildChange {
            kind,
            name,
            by_berth,
            fields,
            microservice,
        } = change;
        let spec = specs.get(microservice).map(as_case).unwrap_or_default();
        if *by_berth {
            report.push(format!(
                "{phase}: Berth changed {kind}/{name}:\n  {}\nof the MicroService\n{spec}",
                fields.join("\n  ")
            ));
        } else {
            eprintln!(
                "{phase}: {kind}/{name} changed, not by Berth (news for its status):\n  {}",
                fields.join("\n  ")
            );
        }
    }

    // A status write is right only when there was news: a child that changed
    // by someone else's hand (an HPA reporting metrics for the first time).
    let mut excused = 0.0;
    for (name, status) in &after.statuses {
        let previous = before.statuses.get(name).cloned().unwrap_or_default();
        if &previous == status {
            continue;
        }
        let mut fields = Vec::new();
        diff("", &previous, status, &mut fields);
        if touched.contains(name.as_str()) {
            excused += 1.0;
            eprintln!(
                "{phase}: status of {name} changed with its children: {}",
                fields.join("; ")
            );
        } else {
            let spec = specs.get(name).map(as_case).unwrap_or_default();
            report.push(format!(
                "{phase}: status of {name} changed with no change of its children:\n  {}\nof the MicroService\n{spec}",
                fields.join("\n  ")
            ));
        }
    }
    let status_writes = delta("MicroService", "status");
    if status_writes > excused {
        let logged: Vec<&str> = after
            .logged
            .iter()
            .filter(|l| l.contains("status updated"))
            .map(String::as_str)
            .collect();
        report.push(format!(
            "{phase}: statuses written:\n  {}",
            logged.join("\n  ")
        ));
        report.push(format!(
            "{phase}: {status_writes} status writes, {excused} of them for a status that changed with its children"
        ));
    }
    report
}

/// Waits until every MicroService's status describes its generation, its
/// children exist, and those that can be Ready are; fails at once, with the
/// spec, when one is refused (a generator bug or a finding).
async fn converge(env: &Env, specs: &BTreeMap<String, GeneratedSpec>) -> anyhow::Result<()> {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let all = env
            .microservices()
            .list(&ListParams::default())
            .await?
            .items;
        let children = LiveChildren::capture(&env.client, &env.ns.name).await?;
        let mut waiting = Vec::new();
        for ms in &all {
            let name = ms.name_any();
            let Some(spec) = specs.get(&name) else {
                continue;
            };
            if let Some(c) = condition(ms, "Degraded").filter(|c| c.status == "True")
                && (c.reason == "InvalidChild" || c.reason == "ChildConflict")
            {
                bail!(
                    "{name} is Degraded ({}): {}\n{}",
                    c.reason,
                    c.message,
                    as_case(spec)
                );
            }
            let status = ms.status.as_ref();
            let mut missing = Vec::new();
            if status.and_then(|s| s.observed_generation) != ms.metadata.generation {
                missing.push("observedGeneration".to_string());
            }
            let mut kinds = vec!["Deployment", "Service"];
            if ms.spec.autoscaling.is_some() {
                kinds.push("HorizontalPodAutoscaler");
            }
            if ms.spec.disruption_budget.is_some() {
                kinds.push("PodDisruptionBudget");
            }
            if monitored(ms) {
                kinds.push("PodMonitor");
            }
            missing.extend(
                kinds
                    .into_iter()
                    .filter(|k| !children.has(k, &name))
                    .map(String::from),
            );
            let ready = condition(ms, "Ready").is_some_and(|c| c.status == "True");
            if spec.can_be_ready && !ready {
                missing.push("Ready".into());
            }
            if !missing.is_empty() {
                waiting.push(format!("{name} ({})", missing.join(", ")));
            }
        }
        if all.len() >= specs.len() && waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not converged after {CONVERGE:?}: {}", waiting.join("; "));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until the operator has written nothing for [`QUIET`], for at most
/// [`SETTLE_LIMIT`]: an operator that never stops writing is not waited out,
/// the checks that follow say what it keeps writing.
async fn settle(op: &Operator) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    while Instant::now() < deadline {
        let before = writes(op).await?;
        tokio::time::sleep(QUIET).await;
        if writes(op).await? == before {
            return Ok(());
        }
    }
    eprintln!("the operator kept writing for {SETTLE_LIMIT:?}; checking anyway");
    Ok(())
}

/// Waits until the operator's reconcile counter reaches `target`, then for
/// the writes those reconciles might send.
async fn reconciled(op: &Operator, target: f64) -> anyhow::Result<()> {
    op.reconciled(target).await?;
    tokio::time::sleep(GRACE).await;
    Ok(())
}

#[tokio::test]
async fn generated_specs_cause_no_writes_at_rest() {
    let seed = seed_from_env("BERTH_GENERATED_SEED");
    let size = std::env::var("BERTH_GENERATED_SPECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SPECS);
    eprintln!(
        "generated specs: {size}, seed {seed} (replay: BERTH_GENERATED_SEED={seed} BERTH_GENERATED_SPECS={size})"
    );
    let mut generated = draw(batch("g", size), &mut runner(seed));
    generated.extend(regressions());
    let specs: BTreeMap<String, GeneratedSpec> =
        generated.into_iter().map(|s| (s.name.clone(), s)).collect();

    let mut env = Env::new("generated").await;
    let started = Instant::now();
    for spec in specs.values() {
        apply_microservice(&env.client, &env.ns.name, &spec.name, &spec.spec)
            .await
            .with_context(|| {
                format!(
                    "the API server refused a generated spec (a generator bug):\n{}",
                    as_case(spec)
                )
            })
            .unwrap();
    }
    converge(&env, &specs).await.unwrap();
    eprintln!("converged in {:?}", started.elapsed());
    tokio::time::sleep(METRICS_ARRIVE.saturating_sub(QUIET)).await;
    settle(&env.operator).await.unwrap();
    let n = specs.len() as f64;
    let mut report = Vec::new();

    // (a) A no-op annotation: a new event for every MicroService, generation unchanged.
    let mut log_from = 0;
    let before = Snapshot::take(&env, &mut log_from).await.unwrap();
    let reconciles = env
        .operator
        .metric_sum("berth_reconciles_total")
        .await
        .unwrap();
    for name in specs.keys() {
        let patch =
            json!({ "metadata": { "annotations": { "berth.dev/e2e-poke": seed.to_string() } } });
        env.microservices()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    reconciled(&env.operator, reconciles + n).await.unwrap();
    let poked = Snapshot::take(&env, &mut log_from).await.unwrap();
    report.extend(check(
        "after a no-op annotation",
        &before,
        &poked,
        false,
        &specs,
    ));

    // (b) A restart: a new process lists everything and reconciles each once.
    env.operator.restart().await.unwrap();
    reconciled(&env.operator, n).await.unwrap();
    let restarted = Snapshot::take(&env, &mut log_from).await.unwrap();
    report.extend(check(
        "after an operator restart",
        &poked,
        &restarted,
        true,
        &specs,
    ));
    eprintln!("generated specs: done in {:?}", started.elapsed());

    assert!(
        report.is_empty(),
        "seed {seed} (BERTH_GENERATED_SEED={seed} BERTH_GENERATED_SPECS={size}); operator log {}:\n\n{}",
        env.operator.log.display(),
        report.join("\n\n")
    );
}

/// For any generated spec, the pure builders give children that carry Berth's
/// labels, owner reference and spec hash, select the service's pods, inject
/// every dependency's URL, and include the optional children exactly when asked.
#[test]
fn desired_children_of_any_generated_spec_are_berths() {
    let config = ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    };
    proptest!(config, |(specs in batch("p", 4))| {
        let batch: BTreeMap<String, Arc<MicroService>> = specs
            .iter()
            .map(|s| {
                let spec: MicroServiceSpec = serde_json::from_value(s.spec.clone())
                    .map_err(|e| TestCaseError::fail(format!("{e}: {}", s.spec)))?;
                let mut ms = MicroService::new(&s.name, spec);
                ms.metadata.namespace = Some("shop".into());
                ms.metadata.uid = Some(format!("uid-{}", s.name));
                Ok((s.name.clone(), Arc::new(ms)))
            })
            .collect::<Result<_, TestCaseError>>()?;
        for ms in batch.values() {
            let deps = dependencies::resolve(ms, |name| batch.get(name).cloned());
            let children = desired::children(ms, &deps)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let name = ms.name_any();
            let metas = [
                Some(&children.deployment.metadata),
                Some(&children.service.metadata),
                children.autoscaler.as_ref().map(|h| &h.metadata),
                children.disruption_budget.as_ref().map(|p| &p.metadata),
                children.pod_monitor.as_ref().map(|p| &p.metadata),
            ];
            for meta in metas.into_iter().flatten() {
                let labels = meta.labels.clone().unwrap_or_default();
                prop_assert_eq!(labels.get(MICROSERVICE_LABEL), Some(&name));
                prop_assert_eq!(labels.get("app.kubernetes.io/managed-by").map(String::as_str), Some(MANAGER));
                let owner = &meta.owner_references.as_ref().expect("owner reference")[0];
                prop_assert_eq!(owner.uid.as_str(), ms.uid().unwrap_or_default());
                prop_assert_eq!(owner.controller, Some(true));
                prop_assert!(meta.annotations.as_ref().is_some_and(|a| a.contains_key(SPEC_HASH_ANNOTATION)));
            }
            let spec = children.deployment.spec.as_ref().expect("deployment spec");
            let pod_labels = spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
            prop_assert_eq!(pod_labels.get(MICROSERVICE_LABEL), Some(&name));
            prop_assert_eq!(spec.selector.match_labels.as_ref().and_then(|l| l.get(MICROSERVICE_LABEL)), Some(&name));
            prop_assert_eq!(spec.replicas.is_none(), ms.spec.autoscaling.is_some());
            let env = spec.template.spec.as_ref().expect("pod spec").containers[0].env.clone().unwrap_or_default();
            for dep in &ms.spec.dependencies {
                let var = dependencies::env_var_name(dep);
                prop_assert!(env.iter().any(|e| e.name == var), "{} has no {}", name, var);
            }
            prop_assert_eq!(children.autoscaler.is_some(), ms.spec.autoscaling.is_some());
            prop_assert_eq!(children.disruption_budget.is_some(), ms.spec.disruption_budget.is_some());
            prop_assert_eq!(children.pod_monitor.is_some(), monitored(ms));
            let again = desired::children(ms, &deps).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(again, children, "the builders are deterministic");
        }
    });
}

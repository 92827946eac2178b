//! Generated MicroService specs: proptest strategies that cover the whole
//! schema of `operator/src/microservice.rs` with inputs the API server accepts
//! (its CEL rules and the children's own validation), spelled in every way a
//! person may write them: quantities as `0.5`, `500m`, `1`, `1000m`, `1e3`,
//! `1024Mi`, `1.5Gi` or a bare integer; env from values and from
//! Secret/ConfigMap/field/resource references; probes; autoscaling with
//! behaviours; budgets as numbers and percentages; dependencies on other specs
//! of the same batch and on names that do not exist.
//!
//! Specs are JSON exactly as applied, not the operator's Rust types, so a
//! spelling survives until the API server sees it. The tests draw from the
//! strategies with a seeded [`TestRunner`] (printed, and settable, so a run
//! can be replayed) rather than through `proptest!`: one case is a whole batch
//! on the cluster, too costly to shrink automatically, so a failure prints the
//! spec to keep as a fixed case instead.

use std::collections::BTreeSet;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value, json};

/// One generated MicroService: its name, its spec as applied, and whether its
/// pods can become Ready on the kwok nodes (an unsatisfiable nodeSelector
/// legitimately keeps them Pending).
#[derive(Clone, Debug)]
pub struct GeneratedSpec {
    pub name: String,
    pub spec: Value,
    pub can_be_ready: bool,
}

/// A spec before its dependencies are tied to the names of its batch.
#[derive(Clone, Debug)]
struct Draft {
    spec: Map<String, Value>,
    dependencies: Vec<Dependency>,
    /// An env entry named like a dependency's `<NAME>_URL`, overriding the injected one.
    overrides_dependency_url: bool,
    can_be_ready: bool,
}

#[derive(Clone, Debug)]
enum Dependency {
    /// Another spec of the batch, by index (modulo the batch size).
    Batch(usize),
    /// A name no spec of the batch has.
    Missing(String),
}

/// The seed of a run: `$var` when set (decimal), else a fresh one.
pub fn seed_from_env(var: &str) -> u64 {
    match std::env::var(var) {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var} must be a decimal u64, not {s:?}")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

/// A deterministic runner: the same seed draws the same values.
pub fn runner(seed: u64) -> TestRunner {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes(),
        );
    }
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// Draws one value of `strategy` (no shrinking).
pub fn draw<S: Strategy>(strategy: S, runner: &mut TestRunner) -> S::Value {
    strategy
        .new_tree(runner)
        .expect("the strategies never reject")
        .current()
}

/// `size` specs named `<prefix>-<i>-<word>`, depending on each other and on missing names.
pub fn batch(prefix: &str, size: usize) -> impl Strategy<Value = Vec<GeneratedSpec>> {
    let prefix = prefix.to_string();
    (vec(draft(), size), vec("[a-z]{1,8}", size)).prop_map(move |(drafts, words)| {
        let names: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{prefix}-{i}-{w}"))
            .collect();
        drafts
            .into_iter()
            .enumerate()
            .map(|(i, draft)| tie(draft, i, &names))
            .collect()
    })
}

/// Resolves a draft's dependencies against the names of its batch.
fn tie(draft: Draft, index: usize, names: &[String]) -> GeneratedSpec {
    let mut spec = draft.spec;
    let mut deps = BTreeSet::new();
    for dep in draft.dependencies {
        match dep {
            Dependency::Batch(i) if i % names.len() != index => {
                deps.insert(names[i % names.len()].clone());
            }
            Dependency::Batch(_) => {}
            Dependency::Missing(name) => {
                deps.insert(name);
            }
        }
    }
    if !deps.is_empty() {
        let deps: Vec<String> = deps.into_iter().collect();
        if draft.overrides_dependency_url {
            let var = format!("{}_URL", deps[0].to_ascii_uppercase().replace('-', "_"));
            let env = spec.entry("env").or_insert_with(|| json!([]));
            let list = env.as_array_mut().expect("env is a list");
            if !list.iter().any(|e| e["name"] == var.as_str()) {
                list.push(json!({ "name": var, "value": "http://override.example:1" }));
            }
        }
        spec.insert("dependencies".into(), json!(deps));
    }
    GeneratedSpec {
        name: names[index].clone(),
        spec: Value::Object(spec),
        can_be_ready: draft.can_be_ready,
    }
}

fn draft() -> impl Strategy<Value = Draft> {
    let container = (
        image(),
        option::of(select(vec!["Always", "IfNotPresent", "Never"])),
        option::of(vec("[a-z/-]{1,12}", 1..3)),
        option::of(vec("--[a-z]{1,8}(=[a-z0-9]{0,4})?", 0..3)),
        prop_oneof![Just(None), (0..4i32).prop_map(Some)],
        option::of(1..=65535i32),
        option::of(service()),
        resources(),
    );
    let environment = (env(), env_from(), any::<bool>());
    let behaviour = (
        option::of(health()),
        option::of(autoscaling()),
        option::of(budget()),
        option::of(rolling_update()),
        option::of(shutdown()),
        option::of(monitoring()),
    );
    let pod = (
        option::of(Just("default")),
        vec("[a-z]{1,10}", 0..2),
        pod_labels(),
        btree_map("(example\\.com/)?[a-z]{1,10}", "[ -~é☃]{0,20}", 0..3),
        node_selector(),
        vec(toleration(), 0..3),
        option::of(security_contexts()),
        vec(dependency(), 0..4),
    );
    (container, environment, behaviour, pod).prop_map(
        |(
            (image, pull, command, args, replicas, port, service, resources),
            (env, env_from, overrides_dependency_url),
            (health, autoscaling, budget, rolling_update, shutdown, monitoring),
            (
                account,
                pull_secrets,
                labels,
                annotations,
                (node_selector, schedulable),
                tolerations,
                security,
                dependencies,
            ),
        )| {
            let mut spec = Map::new();
            spec.insert("image".into(), json!(image));
            let mut set = |key: &str, value: Option<Value>| {
                if let Some(value) = value {
                    spec.insert(key.into(), value);
                }
            };
            set("imagePullPolicy", pull.map(Value::from));
            set("command", command.map(Value::from));
            set("args", args.map(Value::from));
            set("replicas", replicas.map(Value::from));
            set("port", port.map(Value::from));
            set("service", service);
            set("resources", resources);
            set("env", (!env.is_empty()).then_some(Value::Array(env)));
            set(
                "envFrom",
                (!env_from.is_empty()).then_some(Value::Array(env_from)),
            );
            set("health", health);
            set("autoscaling", autoscaling);
            set("disruptionBudget", budget);
            set("rollingUpdate", rolling_update);
            set("shutdown", shutdown);
            set("monitoring", monitoring);
            set("serviceAccountName", account.map(Value::from));
            set(
                "imagePullSecrets",
                (!pull_secrets.is_empty())
                    .then(|| pull_secrets.iter().map(|n| json!({ "name": n })).collect()),
            );
            set("podLabels", (!labels.is_empty()).then(|| json!(labels)));
            set(
                "podAnnotations",
                (!annotations.is_empty()).then(|| json!(annotations)),
            );
            set(
                "nodeSelector",
                (!node_selector.is_empty()).then(|| json!(node_selector)),
            );
            set(
                "tolerations",
                (!tolerations.is_empty()).then_some(Value::Array(tolerations)),
            );
            if let Some((container, pod)) = security {
                set("securityContext", container);
                set("podSecurityContext", pod);
            }
            Draft {
                spec,
                dependencies,
                overrides_dependency_url,
                can_be_ready: schedulable,
            }
        },
    )
}

fn image() -> impl Strategy<Value = String> {
    prop_oneof![
        "registry\\.local/[a-z]{1,10}:[0-9]\\.[0-9]{1,2}\\.[0-9]",
        "[a-z]{1,10}",
        "[a-z]{1,10}:latest",
        "registry\\.local:5000/team/[a-z]{1,8}:v[0-9]-[a-z]{1,4}",
        "[a-z]{1,8}@sha256:[0-9a-f]{64}",
    ]
}

fn service() -> impl Strategy<Value = Value> {
    (
        option::of(select(vec!["ClusterIP", "NodePort", "LoadBalancer"])),
        option::of(1..=65535i32),
    )
        .prop_map(|(type_, port)| {
            let mut s = Map::new();
            if let Some(t) = type_ {
                s.insert("type".into(), json!(t));
            }
            if let Some(p) = port {
                s.insert("port".into(), json!(p));
            }
            Value::Object(s)
        })
}

/// Every legal spelling of a non-negative quantity given in thousandths of
/// its unit (millicores, millibytes): `500m`, `0.5`, `.5`, `5e-1`, `500e-3`,
/// `1`, `1000m`, `1e3`, `1k`, `1Ki`, `1.5Gi`, `1024Mi`, or a bare integer.
pub fn spellings(milli: u64) -> Vec<Value> {
    let mut out = vec![json!(format!("{milli}m"))];
    if milli > 0 {
        let (mantissa, zeros) = strip_zeros(milli);
        out.push(json!(format!("{mantissa}e{}", zeros as i64 - 3)));
        out.push(json!(format!("{mantissa}E{}", zeros as i64 - 3)));
    }
    if milli.is_multiple_of(1000) {
        let n = milli / 1000;
        out.push(json!(n));
        out.push(json!(n.to_string()));
        out.push(json!(format!("+{n}")));
        for (i, suffix) in ["k", "M", "G", "T"].iter().enumerate() {
            let unit = 1000u64.pow(i as u32 + 1);
            if n >= unit && n.is_multiple_of(unit) {
                out.push(json!(format!("{}{suffix}", n / unit)));
            }
        }
        for (i, suffix) in ["Ki", "Mi", "Gi", "Ti"].iter().enumerate() {
            let unit = 1024u64.pow(i as u32 + 1);
            if n >= unit / 2 && (n * 1000).is_multiple_of(unit) {
                out.push(json!(format!("{}{suffix}", decimal(n * 1000 / unit))));
            }
        }
    } else {
        out.push(json!(decimal(milli)));
        if milli < 1000 {
            out.push(json!(decimal(milli).trim_start_matches('0').to_string()));
        }
    }
    out
}

/// `thousandths` as a decimal number with at most three fraction digits: 1500 -> "1.5".
fn decimal(thousandths: u64) -> String {
    let (whole, frac) = (thousandths / 1000, thousandths % 1000);
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{}", format!("{frac:03}").trim_end_matches('0'))
    }
}

fn strip_zeros(mut n: u64) -> (u64, u32) {
    let mut zeros = 0;
    while n.is_multiple_of(10) {
        n /= 10;
        zeros += 1;
    }
    (n, zeros)
}

/// A quantity of `milli` thousandths, in one of its spellings.
fn quantity(milli: impl Strategy<Value = u64>) -> impl Strategy<Value = Value> {
    milli.prop_flat_map(|m| select(spellings(m)))
}

/// A quantity of exactly `milli` thousandths in one of its spellings, or none.
fn maybe_quantity(milli: Option<u64>) -> BoxedStrategy<Option<Value>> {
    match milli {
        Some(m) => quantity(Just(m)).prop_map(Some).boxed(),
        None => Just(None).boxed(),
    }
}

const MI: u64 = 1024 * 1024;

/// Requests that fit many pods on the kwok nodes, and limits at least as large.
fn resources() -> impl Strategy<Value = Option<Value>> {
    let cpu_request = option::of(select(vec![10u64, 100, 250, 500, 1000]));
    let memory_request = option::of(select(vec![
        1000u64,
        64 * MI,
        123 * MI,
        128_974_848,
        129_000_000,
        256 * MI,
        1024 * MI,
    ]));
    (
        cpu_request,
        memory_request,
        0..4u64,
        0..4u64,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(
            |(cpu, memory, cpu_factor, memory_factor, cpu_limit, memory_limit)| {
                // A limit without a request becomes the request, so it must fit too.
                let cpu_limit = cpu_limit.then(|| match cpu {
                    Some(_) if cpu_factor == 3 => 1_000_000_000, // 1e3 cores
                    Some(r) => r * (cpu_factor + 1),
                    None => 500,
                });
                let memory_limit = memory_limit.then(|| match memory {
                    Some(_) if memory_factor == 3 => 1536 * MI, // 1.5Gi
                    Some(r) => r * (memory_factor + 1),
                    None => 1024 * MI,
                });
                let memory_limit = match (memory, memory_limit) {
                    (Some(r), Some(l)) => Some(l.max(r)),
                    (_, l) => l,
                };
                (
                    maybe_quantity(cpu),
                    maybe_quantity(memory.map(|b| b * 1000)),
                    maybe_quantity(cpu_limit),
                    maybe_quantity(memory_limit.map(|b| b * 1000)),
                )
            },
        )
        .prop_map(|(cpu, memory, cpu_limit, memory_limit)| {
            let list = |cpu: Option<Value>, memory: Option<Value>| {
                let mut m = Map::new();
                if let Some(c) = cpu {
                    m.insert("cpu".into(), c);
                }
                if let Some(b) = memory {
                    m.insert("memory".into(), b);
                }
                (!m.is_empty()).then_some(Value::Object(m))
            };
            let mut r = Map::new();
            if let Some(requests) = list(cpu, memory) {
                r.insert("requests".into(), requests);
            }
            if let Some(limits) = list(cpu_limit, memory_limit) {
                r.insert("limits".into(), limits);
            }
            (!r.is_empty()).then_some(Value::Object(r))
        })
}

fn env_name() -> impl Strategy<Value = String> {
    "[A-Z][A-Z0-9_]{0,10}"
}

fn env() -> impl Strategy<Value = Vec<Value>> {
    btree_map(env_name(), env_source(), 0..5).prop_map(|m| {
        m.into_iter()
            .map(|(name, mut source)| {
                source["name"] = json!(name);
                source
            })
            .collect()
    })
}

fn key_ref() -> impl Strategy<Value = Value> {
    (
        "[a-z]{1,10}",
        "[a-z][a-z._-]{0,9}",
        option::of(any::<bool>()),
    )
        .prop_map(|(name, key, optional)| {
            let mut r = json!({ "name": name, "key": key });
            if let Some(o) = optional {
                r["optional"] = json!(o);
            }
            r
        })
}

fn env_source() -> impl Strategy<Value = Value> {
    let field = (
        select(vec![
            "metadata.name",
            "metadata.namespace",
            "status.podIP",
            "spec.nodeName",
        ]),
        any::<bool>(),
    )
        .prop_map(|(path, version)| {
            let mut r = json!({ "fieldPath": path });
            if version {
                r["apiVersion"] = json!("v1");
            }
            json!({ "valueFrom": { "fieldRef": r } })
        });
    let resource = (
        select(vec![
            "limits.cpu",
            "requests.cpu",
            "limits.memory",
            "requests.memory",
        ]),
        any::<bool>(),
    )
        .prop_flat_map(|(resource, with_divisor)| {
            // The API server takes a divisor only in these spellings (it compares strings).
            let divisors = if resource.ends_with("cpu") {
                vec![json!("1m"), json!("1"), json!(1)]
            } else {
                ["1", "1k", "1M", "1Ki", "1Mi", "1Gi"]
                    .iter()
                    .map(|d| json!(d))
                    .chain([json!(1)])
                    .collect()
            };
            let divisor = if with_divisor {
                select(divisors).prop_map(Some).boxed()
            } else {
                Just(None).boxed()
            };
            (Just(resource), divisor)
        })
        .prop_map(|(resource, divisor)| {
            let mut r = json!({ "resource": resource });
            if let Some(d) = divisor {
                r["divisor"] = d;
            }
            json!({ "valueFrom": { "resourceFieldRef": r } })
        });
    prop_oneof![
        3 => "[ -~éß☃]{0,16}".prop_map(|v| json!({ "value": v })),
        1 => Just(json!({ "value": "" })),
        1 => key_ref().prop_map(|r| json!({ "valueFrom": { "secretKeyRef": r } })),
        1 => key_ref().prop_map(|r| json!({ "valueFrom": { "configMapKeyRef": r } })),
        1 => field,
        1 => resource,
    ]
}

fn env_from() -> impl Strategy<Value = Vec<Value>> {
    vec(
        (
            any::<bool>(),
            "[a-z]{1,10}",
            option::of("[A-Z]{1,4}_"),
            option::of(any::<bool>()),
        )
            .prop_map(|(secret, name, prefix, optional)| {
                let mut r = json!({ "name": name });
                if let Some(o) = optional {
                    r["optional"] = json!(o);
                }
                let kind = if secret { "secretRef" } else { "configMapRef" };
                let mut e = json!({ kind: r });
                if let Some(p) = prefix {
                    e["prefix"] = json!(p);
                }
                e
            }),
        0..3,
    )
}

fn health() -> impl Strategy<Value = Value> {
    let path = || option::of("/[a-z]{0,10}");
    let timing = || option::of(1..=30i32);
    (
        path(),
        path(),
        path(),
        timing(),
        timing(),
        timing(),
        option::of(1..=600i32),
    )
        .prop_map(
            |(liveness, readiness, startup, period, timeout, failures, startup_timeout)| {
                let mut h = Map::new();
                for (key, v) in [
                    ("liveness", liveness),
                    ("readiness", readiness),
                    ("startup", startup),
                ] {
                    if let Some(v) = v {
                        h.insert(key.into(), json!(v));
                    }
                }
                for (key, v) in [
                    ("periodSeconds", period),
                    ("timeoutSeconds", timeout),
                    ("failureThreshold", failures),
                    ("startupTimeoutSeconds", startup_timeout),
                ] {
                    if let Some(v) = v {
                        h.insert(key.into(), json!(v));
                    }
                }
                Value::Object(h)
            },
        )
}

fn autoscaling() -> impl Strategy<Value = Value> {
    // CPU and memory targets of 20 % and more: pods on kwok use 1m and 1Mi,
    // so the autoscaler keeps its minimum instead of scaling during the test.
    (
        option::of(1..=3i32),
        0..3i32,
        option::of(20..=100i32),
        option::of(20..=100i32),
        option::of(1..=1000i32),
        option::of(behavior()),
    )
        .prop_map(|(min, extra, cpu, memory, rps, behavior)| {
            let mut a = Map::new();
            if let Some(m) = min {
                a.insert("minReplicas".into(), json!(m));
            }
            a.insert("maxReplicas".into(), json!(min.unwrap_or(1) + extra));
            for (key, v) in [
                ("targetCPUUtilizationPercentage", cpu),
                ("targetMemoryUtilizationPercentage", memory),
                ("targetRequestsPerSecond", rps),
            ] {
                if let Some(v) = v {
                    a.insert(key.into(), json!(v));
                }
            }
            if let Some(b) = behavior {
                a.insert("behavior".into(), b);
            }
            Value::Object(a)
        })
}

fn behavior() -> impl Strategy<Value = Value> {
    let rules = || {
        (
            option::of(select(vec![0i32, 15, 60, 300])),
            option::of(select(vec!["Max", "Min", "Disabled"])),
            option::of(vec(
                (select(vec!["Pods", "Percent"]), 1..=100i32, 1..=1800i32)
                    .prop_map(|(t, v, p)| json!({ "type": t, "value": v, "periodSeconds": p })),
                1..3,
            )),
            option::of(quantity(select(vec![0u64, 10, 50, 100, 500]))),
        )
            .prop_map(|(window, select_policy, policies, tolerance)| {
                let mut r = Map::new();
                if let Some(w) = window {
                    r.insert("stabilizationWindowSeconds".into(), json!(w));
                }
                if let Some(s) = select_policy {
                    r.insert("selectPolicy".into(), json!(s));
                }
                if let Some(p) = policies {
                    r.insert("policies".into(), json!(p));
                }
                if let Some(t) = tolerance {
                    r.insert("tolerance".into(), t);
                }
                Value::Object(r)
            })
    };
    (option::of(rules()), option::of(rules())).prop_map(|(up, down)| {
        let mut b = Map::new();
        if let Some(u) = up {
            b.insert("scaleUp".into(), u);
        }
        if let Some(d) = down {
            b.insert("scaleDown".into(), d);
        }
        Value::Object(b)
    })
}

/// A number or a percentage.
fn int_or_percent(max: i32) -> impl Strategy<Value = Value> {
    prop_oneof![
        (0..=max).prop_map(|n| json!(n)),
        (0..=100i32).prop_map(|p| json!(format!("{p}%")))
    ]
}

fn budget() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        int_or_percent(3).prop_map(|v| json!({ "minAvailable": v })),
        int_or_percent(3).prop_map(|v| json!({ "maxUnavailable": v })),
    ]
}

/// Either field, both or neither; a drain of 0 (no preStop) included.
fn shutdown() -> impl Strategy<Value = Value> {
    (option::of(0..=300i32), option::of(1..=3600i32)).prop_map(|(drain, timeout)| {
        let mut s = Map::new();
        if let Some(d) = drain {
            s.insert("drainSeconds".into(), json!(d));
        }
        if let Some(t) = timeout {
            s.insert("timeoutSeconds".into(), json!(t));
        }
        Value::Object(s)
    })
}

/// Any subset of the fields: off, another port or path, intervals in each unit.
fn monitoring() -> impl Strategy<Value = Value> {
    (
        option::of(any::<bool>()),
        option::of(1..=65535i32),
        option::of("/[a-z]{0,8}(/[a-z0-9]{1,4})?"),
        option::of((1..=600u32, select(vec!["ms", "s", "m", "h"]))),
    )
        .prop_map(|(enabled, port, path, interval)| {
            let mut m = Map::new();
            if let Some(e) = enabled {
                m.insert("enabled".into(), json!(e));
            }
            if let Some(p) = port {
                m.insert("port".into(), json!(p));
            }
            if let Some(p) = path {
                m.insert("path".into(), json!(p));
            }
            if let Some((n, unit)) = interval {
                m.insert("interval".into(), json!(format!("{n}{unit}")));
            }
            Value::Object(m)
        })
}

fn rolling_update() -> impl Strategy<Value = Value> {
    (option::of(int_or_percent(3)), option::of(int_or_percent(3))).prop_map(
        |(surge, unavailable)| {
            let zero = |v: &Value| v == &json!(0) || v == &json!("0%");
            let mut r = Map::new();
            if let Some(s) = &surge {
                r.insert("maxSurge".into(), s.clone());
            }
            if let Some(u) = unavailable {
                // Both zero leaves a rollout no room to move: the API server refuses it.
                let both_zero = zero(&u) && surge.as_ref().is_some_and(zero);
                r.insert(
                    "maxUnavailable".into(),
                    if both_zero { json!(1) } else { u },
                );
            }
            Value::Object(r)
        },
    )
}

fn pod_labels() -> impl Strategy<Value = std::collections::BTreeMap<String, String>> {
    btree_map(
        "(example\\.com/)?[a-z]([a-z0-9-]{0,8}[a-z0-9])?",
        prop_oneof![
            Just(String::new()),
            "[a-zA-Z0-9]([a-zA-Z0-9._-]{0,10}[a-zA-Z0-9])?"
        ],
        0..4,
    )
}

/// A nodeSelector and whether the kwok nodes satisfy it.
fn node_selector() -> impl Strategy<Value = (std::collections::BTreeMap<String, String>, bool)> {
    prop_oneof![
        6 => Just((Default::default(), true)),
        1 => Just(([("type".to_string(), "kwok".to_string())].into(), true)),
        1 => Just(([("kubernetes.io/os".to_string(), "linux".to_string())].into(), true)),
        1 => Just(([("berth.dev/e2e-pool".to_string(), "none".to_string())].into(), false)),
    ]
}

/// Tolerations of taints other than the real node's, so pods stay on kwok.
fn toleration() -> impl Strategy<Value = Value> {
    (
        select(vec![
            "example.com/dedicated",
            "example.com/gpu",
            "node.kubernetes.io/unreachable",
        ]),
        option::of("[a-z]{1,6}"),
        select(vec!["", "NoSchedule", "PreferNoSchedule", "NoExecute"]),
        option::of(0..=600i64),
    )
        .prop_map(|(key, value, effect, seconds)| {
            let mut t = json!({ "key": key });
            match value {
                Some(v) => {
                    t["operator"] = json!("Equal");
                    t["value"] = json!(v);
                }
                None => t["operator"] = json!("Exists"),
            }
            if !effect.is_empty() {
                t["effect"] = json!(effect);
            }
            if effect == "NoExecute"
                && let Some(s) = seconds
            {
                t["tolerationSeconds"] = json!(s);
            }
            t
        })
}

/// A container and a pod security context replacing Berth's restricted ones.
fn security_contexts() -> impl Strategy<Value = (Option<Value>, Option<Value>)> {
    (
        option::of((1000..=65535i64, any::<bool>()).prop_map(|(uid, ro)| {
            json!({
                "runAsUser": uid, "runAsNonRoot": true, "readOnlyRootFilesystem": ro,
                "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] },
            })
        })),
        option::of(
            (1000..=65535i64, option::of(1000..=65535i64)).prop_map(|(group, fs)| {
                let mut p =
                    json!({ "runAsGroup": group, "seccompProfile": { "type": "RuntimeDefault" } });
                if let Some(fs) = fs {
                    p["fsGroup"] = json!(fs);
                }
                p
            }),
        ),
    )
}

fn dependency() -> impl Strategy<Value = Dependency> {
    prop_oneof![
        3 => any::<usize>().prop_map(Dependency::Batch),
        1 => "missing-[a-z]{1,6}".prop_map(Dependency::Missing),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_half_a_core_and_a_gibibyte() {
        let half: Vec<String> = spellings(500).iter().map(Value::to_string).collect();
        for s in ["\"500m\"", "\"0.5\"", "\".5\"", "\"5e-1\""] {
            assert!(half.contains(&s.to_string()), "{s} in {half:?}");
        }
        let gib: Vec<String> = spellings(1024 * MI * 1000)
            .iter()
            .map(Value::to_string)
            .collect();
        for s in ["\"1Gi\"", "\"1024Mi\"", "1073741824", "\"1048576Ki\""] {
            assert!(gib.contains(&s.to_string()), "{s} in {gib:?}");
        }
        let big: Vec<String> = spellings(1_000_000).iter().map(Value::to_string).collect();
        assert!(
            big.contains(&"\"1e3\"".to_string()) && big.contains(&"\"1k\"".to_string()),
            "{big:?}"
        );
    }
}

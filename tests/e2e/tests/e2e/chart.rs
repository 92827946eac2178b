//! The Helm chart (`charts/berth-operator`): lint, what it renders (RBAC rules,
//! security context, probes, schema errors), install, upgrade and uninstall
//! on the cluster, and its RBAC at work: the operator running with the
//! token of the chart's ServiceAccount manages its namespace in scoped mode,
//! leaves the others alone, and fails with Forbidden when a rule is missing.
//!
//! The whole e2e suite with the cluster-wide chart RBAC is `make test-chart`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, ensure};
use berth_e2e::{
    HelmRelease, Operator, TestNamespace, client, eventually, helm, helm_uninstall, install_crd,
    is_ready_for_generation, kubectl, run_command as run, wait_deleted, wait_for, workspace_root,
};
use berth_operator::MicroService;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role};
use kube::{Api, Client};
use serde_json::{Value, json};

/// The rules the operator needs, as (apiGroup, resource, verbs): what the
/// chart must render, no more and no less.
const RULES: &[(&str, &str, &[&str])] = &[
    ("berth.dev", "microservices", &["list", "watch"]),
    ("berth.dev", "microservices/status", &["patch"]),
    (
        "apps",
        "deployments",
        &["get", "list", "watch", "create", "patch"],
    ),
    ("", "services", &["get", "list", "watch", "create", "patch"]),
    (
        "autoscaling",
        "horizontalpodautoscalers",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    (
        "policy",
        "poddisruptionbudgets",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    (
        "monitoring.coreos.com",
        "podmonitors",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    ("events.k8s.io", "events", &["create", "patch"]),
];

fn chart_dir() -> PathBuf {
    workspace_root().join("charts/berth-operator")
}

/// `helm template` with `--set` values, parsed into its documents.
fn template(sets: &[&str]) -> anyhow::Result<Vec<Value>> {
    let mut cmd = helm();
    cmd.args(["template", "berth", "--namespace", "berth-system"])
        .arg(chart_dir());
    for set in sets {
        cmd.args(["--set", set]);
    }
    documents(&run(cmd)?)
}

fn documents(yaml: &str) -> anyhow::Result<Vec<Value>> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = Value::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// A role's rules as apiGroup/resource -> verbs, failing on wildcards.
fn rules_of(role: &Value) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut rules = BTreeMap::new();
    for rule in role["rules"].as_array().context("rules")? {
        let strings = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let all: Vec<String> = ["apiGroups", "resources", "verbs", "resourceNames"]
            .iter()
            .flat_map(|k| strings(k))
            .collect();
        ensure!(
            !all.iter().any(|s| s.contains('*')),
            "wildcard in rule {rule}"
        );
        ensure!(
            rule.get("nonResourceURLs").is_none(),
            "nonResourceURLs in {rule}"
        );
        for group in strings("apiGroups") {
            for resource in strings("resources") {
                let names = strings("resourceNames");
                let key = if names.is_empty() {
                    format!("{group}/{resource}")
                } else {
                    format!("{group}/{resource}{names:?}")
                };
                ensure!(!rules.contains_key(&key), "{key} appears in two rules");
                rules.insert(key, strings("verbs"));
            }
        }
    }
    Ok(rules)
}

fn expected_rules() -> BTreeMap<String, Vec<String>> {
    RULES
        .iter()
        .map(|(g, r, verbs)| {
            (
                format!("{g}/{r}"),
                verbs.iter().map(|v| v.to_string()).collect(),
            )
        })
        .collect()
}

#[test]
fn chart_lints_clean_and_ships_the_committed_crd() {
    let mut lint = helm();
    lint.args(["lint", "--strict"]).arg(chart_dir());
    let out = run(lint).unwrap();
    assert!(
        !out.contains("[WARNING]") && !out.contains("[ERROR]"),
        "helm lint: {out}"
    );
    let mut show = helm();
    show.args(["show", "crds"]).arg(chart_dir());
    let shipped = run(show).unwrap();
    let committed =
        std::fs::read_to_string(workspace_root().join("crds/microservice.yaml")).unwrap();
    // `helm show crds` starts each file with a document separator.
    let shipped = shipped.trim().trim_start_matches("---").trim();
    assert!(
        shipped == committed.trim(),
        "the chart's CRD differs from crds/microservice.yaml: \
         charts/berth-operator/crds/microservice.yaml must stay a symlink to it"
    );
}

#[test]
fn rendered_rbac_is_exactly_what_the_operator_uses() {
    // Cluster-wide by default.
    let docs = template(&[]).unwrap();
    let roles = find(&docs, "ClusterRole");
    assert_eq!(roles.len(), 1);
    assert_eq!(rules_of(roles[0]).unwrap(), expected_rules());
    assert!(
        find(&docs, "Role").is_empty(),
        "no Role without leader election"
    );
    let binding = find(&docs, "ClusterRoleBinding")[0];
    assert_eq!(binding["roleRef"]["name"], roles[0]["metadata"]["name"]);
    assert_eq!(
        binding["subjects"],
        json!([{ "kind": "ServiceAccount", "name": "berth-operator", "namespace": "berth-system" }])
    );

    // One namespace: a Role and RoleBinding there, nothing cluster-wide.
    let docs = template(&["watchNamespace=shop"]).unwrap();
    assert!(find(&docs, "ClusterRole").is_empty() && find(&docs, "ClusterRoleBinding").is_empty());
    let role = find(&docs, "Role")[0];
    assert_eq!(role["metadata"]["namespace"], "shop");
    assert_eq!(rules_of(role).unwrap(), expected_rules());
    let binding = find(&docs, "RoleBinding")[0];
    assert_eq!(binding["metadata"]["namespace"], "shop");
    assert_eq!(binding["subjects"][0]["namespace"], "berth-system");
    let env = &find(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .contains(&json!({ "name": "BERTH_NAMESPACE", "value": "shop" }))
    );

    // Leader election: one more Role, for the one Lease, in the lease namespace.
    let docs = template(&["leaderElection.enabled=true", "replicaCount=2"]).unwrap();
    let lease_role = find(&docs, "Role")[0];
    assert_eq!(lease_role["metadata"]["namespace"], "berth-system");
    assert_eq!(
        lease_role["rules"],
        json!([
            { "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"] },
            { "apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
              "resourceNames": ["berth-operator"], "verbs": ["get", "list", "watch", "patch"] },
        ])
    );
    rules_of(lease_role).unwrap();

    // Clusters with OwnerReferencesPermissionEnforcement: one extra rule, only when asked.
    let docs = template(&["rbac.ownerReferencesPermissionEnforcement=true"]).unwrap();
    let rules = rules_of(find(&docs, "ClusterRole")[0]).unwrap();
    assert_eq!(rules["berth.dev/microservices/finalizers"], vec!["update"]);
    assert_eq!(rules.len(), RULES.len() + 1);
}

#[test]
fn rendered_deployment_is_restricted_and_probed() {
    let docs = template(&["logFormat=text", "logLevel=debug"]).unwrap();
    let deployment = find(&docs, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"], "berth/berth-operator:0.1.0",
        "tag defaults to appVersion"
    );
    assert_eq!(pod["serviceAccountName"], "berth-operator");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let sc = &container["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    let env = container["env"].as_array().unwrap();
    for (name, value) in [
        ("BERTH_LOG_FORMAT", "text"),
        ("RUST_LOG", "debug"),
        ("BERTH_METRICS_ADDR", "0.0.0.0:8080"),
    ] {
        assert!(
            env.contains(&json!({ "name": name, "value": value })),
            "{name}={value}"
        );
    }
    assert!(env.contains(&json!({ "name": "POD_NAME",
        "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } })));
    assert!(
        !env.iter().any(|e| e["name"] == "BERTH_NAMESPACE"),
        "all namespaces by default"
    );
    let service = find(&docs, "Service")[0];
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    assert!(
        find(&docs, "ServiceMonitor").is_empty() && find(&docs, "PodDisruptionBudget").is_empty()
    );

    let docs = template(&[
        "metrics.serviceMonitor.enabled=true",
        "podDisruptionBudget.enabled=true",
        "leaderElection.enabled=true",
        "replicaCount=2",
    ])
    .unwrap();
    assert_eq!(find(&docs, "ServiceMonitor").len(), 1);
    assert_eq!(find(&docs, "PodDisruptionBudget").len(), 1);
    let args = &find(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(
        args,
        &json!([
            "run",
            "--leader-elect",
            "--lease-name=berth-operator",
            "--lease-namespace=berth-system"
        ])
    );
}

/// The monitoring the chart ships, off by default: the rules file as a
/// PrometheusRule (the same file, not a copy) and one ConfigMap per
/// dashboard for Grafana's sidecar; the API server (with the Prometheus
/// Operator's CRDs, `make prometheus-up`) accepts them.
#[test]
fn monitoring_objects_render_from_the_shipped_files_and_the_api_server_takes_them() {
    let docs = template(&[]).unwrap();
    assert!(find(&docs, "PrometheusRule").is_empty() && find(&docs, "ConfigMap").is_empty());
    let pod = &find(&docs, "Deployment")[0]["spec"]["template"]["metadata"];
    assert_eq!(pod["annotations"]["prometheus.io/scrape"], "true");
    assert_eq!(pod["annotations"]["prometheus.io/port"], "8080");

    let docs = template(&[
        "metrics.prometheusRule.enabled=true",
        "dashboards.enabled=true",
        "metrics.serviceMonitor.enabled=true",
    ])
    .unwrap();
    let rule = find(&docs, "PrometheusRule")[0];
    let file: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart_dir().join("rules/berth.rules.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(rule["spec"], file, "the PrometheusRule is the rules file");
    let dashboards = find(&docs, "ConfigMap");
    assert_eq!(dashboards.len(), 2);
    for cm in &dashboards {
        assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
        let (name, json) = cm["data"].as_object().unwrap().iter().next().unwrap();
        let shipped = std::fs::read_to_string(chart_dir().join("dashboards").join(name)).unwrap();
        assert_eq!(json.as_str().unwrap().trim(), shipped.trim(), "{name}");
    }
    assert_eq!(
        find(&docs, "ServiceMonitor")[0]["spec"]["endpoints"][0]["honorLabels"],
        true,
        "the per-MicroService gauges keep their namespace label"
    );

    let mut objects = String::new();
    for doc in [rule].into_iter().chain(dashboards) {
        // Into `default`: the release namespace need not exist for a dry run.
        let mut doc = doc.clone();
        doc["metadata"].as_object_mut().unwrap().remove("namespace");
        objects.push_str("---\n");
        objects.push_str(&serde_yaml::to_string(&doc).unwrap());
    }
    let path = std::env::temp_dir().join(format!("berth-monitoring-{}.yaml", std::process::id()));
    std::fs::write(&path, objects).unwrap();
    let mut cmd = kubectl();
    cmd.args(["apply", "--dry-run=server", "-n", "default", "-f"])
        .arg(&path);
    let applied = run(cmd);
    let _ = std::fs::remove_file(&path);
    let applied = applied.unwrap();
    assert!(
        applied.contains("prometheusrule.monitoring.coreos.com/berth-operator created"),
        "{applied}"
    );
}

#[test]
fn wrong_values_fail_with_a_message_naming_them() {
    for (set, message) in [
        (
            "logFormat=yaml",
            "at '/logFormat': value must be one of 'text', 'json'",
        ),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy'"),
        ("watchNamespace=Not_A_Namespace", "at '/watchNamespace'"),
        (
            "resources.limits.memory=lots",
            "at '/resources/limits/memory'",
        ),
        ("replicas=2", "additional properties 'replicas' not allowed"),
        (
            "replicaCount=2",
            "replicaCount > 1 needs leaderElection.enabled=true",
        ),
    ] {
        let mut cmd = helm();
        cmd.args(["template", "berth"])
            .arg(chart_dir())
            .args(["--set", set]);
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(stderr.contains(message), "{set}: {stderr}");
    }
}

/// `helm install`/`upgrade` of the chart as `release` into `namespace`.
fn helm_install(verb: &str, release: &str, namespace: &str, sets: &[&str]) -> anyhow::Result<()> {
    let args: Vec<&str> = sets.iter().flat_map(|set| ["--set", set]).collect();
    berth_e2e::helm_install(verb, &chart_dir(), release, namespace, &args)
}

fn env_value(deployment: &Deployment, name: &str) -> Option<String> {
    berth_e2e::container_env(deployment.spec.as_ref()?.template.spec.as_ref()?, name)
}

/// Rolled out: the controller saw the newest spec and every replica runs it, Ready.
fn rolled_out(d: Option<&Deployment>) -> bool {
    d.is_some_and(|d| {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        d.status.as_ref().is_some_and(|s| {
            s.observed_generation == d.metadata.generation
                && s.updated_replicas == Some(want)
                && s.ready_replicas == Some(want)
                && s.replicas == Some(want)
        })
    })
}

#[tokio::test]
async fn install_upgrade_and_uninstall_on_the_cluster() {
    let client = client().await;
    install_crd(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "chart").await;
    let release = format!("berth-{}", ns.name.rsplit('-').next().unwrap());
    let name = format!("{release}-berth-operator");

    // Uninstalled when the test fails half-way: its ClusterRole and
    // ClusterRoleBinding would outlive the test namespace.
    let installed_release = HelmRelease::install(&chart_dir(), &release, &ns.name, &[]).unwrap();
    let deployments: Api<Deployment> = ns.api();
    let installed = wait_for(&deployments, &name, rolled_out).await.unwrap();
    assert_eq!(
        env_value(&installed, "BERTH_LOG_FORMAT").as_deref(),
        Some("json")
    );
    ns.api::<ServiceAccount>().get(&name).await.unwrap();
    ns.api::<Service>()
        .get(&format!("{name}-metrics"))
        .await
        .unwrap();
    let cluster_role = Api::<ClusterRole>::all(client.clone())
        .get(&name)
        .await
        .unwrap();
    let rules = serde_json::to_value(&cluster_role).unwrap();
    assert_eq!(rules_of(&rules).unwrap(), expected_rules());

    helm_install(
        "upgrade",
        &release,
        &ns.name,
        &[
            "logFormat=text",
            "resources.limits.memory=512Mi",
            "podDisruptionBudget.enabled=true",
        ],
    )
    .unwrap();
    let upgraded = wait_for(&deployments, &name, |d: Option<&Deployment>| {
        rolled_out(d) && d.and_then(|d| env_value(d, "BERTH_LOG_FORMAT")).as_deref() == Some("text")
    })
    .await
    .unwrap();
    let limits = upgraded.spec.unwrap().template.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(limits["memory"].0, "512Mi");
    ns.api::<PodDisruptionBudget>().get(&name).await.unwrap();

    installed_release.uninstall().unwrap();
    wait_deleted(&deployments, &name).await.unwrap();
    for gone in [
        ns.api::<ServiceAccount>()
            .get_opt(&name)
            .await
            .unwrap()
            .is_none(),
        ns.api::<Service>()
            .get_opt(&format!("{name}-metrics"))
            .await
            .unwrap()
            .is_none(),
        ns.api::<PodDisruptionBudget>()
            .get_opt(&name)
            .await
            .unwrap()
            .is_none(),
        Api::<ClusterRole>::all(client.clone())
            .get_opt(&name)
            .await
            .unwrap()
            .is_none(),
        Api::<ClusterRoleBinding>::all(client.clone())
            .get_opt(&name)
            .await
            .unwrap()
            .is_none(),
    ] {
        assert!(gone, "helm uninstall left an object of the release behind");
    }
}

/// Installs the chart watching `ns` only and writes a kubeconfig for its ServiceAccount.
fn install_scoped(ns: &str, sets: &[&str]) -> anyhow::Result<(String, PathBuf)> {
    let release = format!("berth-{}", ns.rsplit('-').next().unwrap_or("x"));
    let watch = format!("watchNamespace={ns}");
    helm_install("install", &release, ns, &[&[watch.as_str()], sets].concat())?;
    let sa = format!("{release}-berth-operator");
    let kubeconfig = workspace_root().join(format!("target/e2e-logs/{ns}.kubeconfig"));
    let mut cmd = Command::new(workspace_root().join("tests/chart/sa-kubeconfig.sh"));
    cmd.args([ns, &sa]).arg(&kubeconfig).args(["1h"]);
    run(cmd)?;
    Ok((sa, kubeconfig))
}

fn can_i(sa_namespace: &str, sa: &str, verb: &str, resource: &str, ns: &str) -> bool {
    let mut cmd = kubectl();
    cmd.args(["auth", "can-i", verb, resource, "-n", ns, "--as"])
        .arg(format!("system:serviceaccount:{sa_namespace}:{sa}"));
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

async fn apply(client: &Client, ns: &str, name: &str, spec: Value) -> anyhow::Result<()> {
    berth_e2e::apply_microservice(client, ns, name, &spec)
        .await
        .map(drop)
}

#[tokio::test]
async fn scoped_chart_rbac_manages_its_namespace_and_leaves_others_alone() {
    let client = client().await;
    install_crd(&client).await.unwrap();
    let mine = TestNamespace::new(&client, "scoped").await;
    let other = TestNamespace::new(&client, "other").await;
    let (sa, kubeconfig) = install_scoped(&mine.name, &[]).unwrap();
    assert!(can_i(
        &mine.name,
        &sa,
        "list",
        "microservices.berth.dev",
        &mine.name
    ));
    assert!(!can_i(
        &mine.name,
        &sa,
        "list",
        "microservices.berth.dev",
        &other.name
    ));
    assert!(!can_i(
        &mine.name,
        &sa,
        "patch",
        "deployments.apps",
        &other.name
    ));

    let operator = Operator::start_as(&kubeconfig, &mine.name, &[])
        .await
        .unwrap();
    let spec = json!({ "image": "registry.local/item:1.0.0", "port": 8081 });
    apply(&client, &other.name, "item", spec.clone())
        .await
        .unwrap();
    apply(&client, &mine.name, "item", spec.clone())
        .await
        .unwrap();
    let ours: Api<MicroService> = mine.api();
    wait_for(&ours, "item", is_ready_for_generation)
        .await
        .with_context(|| format!("operator log: {}", operator.log.display()))
        .unwrap();
    // Created after the other namespace's: once it is Ready, the other one
    // has long had its chance to be (wrongly) picked up.
    apply(&client, &mine.name, "order", spec).await.unwrap();
    wait_for(&ours, "order", is_ready_for_generation)
        .await
        .unwrap();

    let theirs = other.api::<MicroService>().get("item").await.unwrap();
    assert!(
        theirs.status.is_none(),
        "status written outside the watched namespace"
    );
    assert!(
        other
            .api::<Deployment>()
            .get_opt("item")
            .await
            .unwrap()
            .is_none()
    );
    helm_uninstall(
        &format!("berth-{}", mine.name.rsplit('-').next().unwrap()),
        &mine.name,
    )
    .unwrap();
}

#[tokio::test]
async fn a_missing_rule_fails_with_forbidden_and_the_chart_rule_fixes_it() {
    let client = client().await;
    install_crd(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "forbidden").await;
    let (sa, kubeconfig) = install_scoped(&ns.name, &[]).unwrap();

    // Take `create` away from PodDisruptionBudgets: the watch still works,
    // creating the budget does not.
    let roles: Api<Role> = ns.api();
    let mut role = roles.get(&sa).await.unwrap();
    for rule in role.rules.iter_mut().flatten() {
        if rule
            .resources
            .as_ref()
            .is_some_and(|r| r.contains(&"poddisruptionbudgets".into()))
        {
            rule.verbs.retain(|v| v != "create");
        }
    }
    role.metadata.managed_fields = None;
    roles
        .replace(&sa, &Default::default(), &role)
        .await
        .unwrap();
    assert!(!can_i(
        &ns.name,
        &sa,
        "create",
        "poddisruptionbudgets.policy",
        &ns.name
    ));

    let operator = Operator::start_as(&kubeconfig, &ns.name, &[])
        .await
        .unwrap();
    let spec = json!({
        "image": "registry.local/item:1.0.0", "port": 8081,
        "disruptionBudget": { "maxUnavailable": 1 },
    });
    apply(&client, &ns.name, "item", spec).await.unwrap();
    eventually("the operator reports a forbidden reconcile", || async {
        let metrics = operator.metrics().await?;
        Ok(metrics
            .lines()
            .any(|l| l.starts_with("berth_reconcile_failures_total") && l.contains("forbidden"))
            .then_some(()))
    })
    .await
    .unwrap();
    let log = std::fs::read_to_string(&operator.log).unwrap();
    assert!(
        log.contains("cannot create resource \\\"poddisruptionbudgets\\\"")
            || log.contains("cannot create resource \"poddisruptionbudgets\""),
        "the log names the missing permission"
    );
    let ms = ns.api::<MicroService>().get("item").await.unwrap();
    assert!(!is_ready_for_generation(Some(&ms)));
    assert!(
        ns.api::<PodDisruptionBudget>()
            .get_opt("item")
            .await
            .unwrap()
            .is_none()
    );

    // The chart's rule back (helm takes its fields back from the hand edit):
    // the operator gets there on its next retry.
    let release = format!("berth-{}", ns.name.rsplit('-').next().unwrap());
    helm_install(
        "upgrade",
        &release,
        &ns.name,
        &[&format!("watchNamespace={}", ns.name)],
    )
    .unwrap();
    assert!(
        can_i(
            &ns.name,
            &sa,
            "create",
            "poddisruptionbudgets.policy",
            &ns.name
        ),
        "helm upgrade did not restore the Role: {:?}",
        roles.get(&sa).await.unwrap().rules
    );
    wait_for(&ns.api::<MicroService>(), "item", is_ready_for_generation)
        .await
        .with_context(|| format!("operator log: {}", operator.log.display()))
        .unwrap();
    ns.api::<PodDisruptionBudget>().get("item").await.unwrap();
    helm_uninstall(&release, &ns.name).unwrap();
}

#[tokio::test]
async fn leader_election_runs_on_the_chart_lease_rules() {
    let client = client().await;
    install_crd(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "lease").await;
    let (_, kubeconfig) = install_scoped(&ns.name, &["leaderElection.enabled=true"]).unwrap();
    let lease_args = [
        "--leader-elect",
        "--lease-name",
        "berth-operator",
        "--lease-namespace",
    ];
    let args: Vec<&str> = lease_args
        .iter()
        .copied()
        .chain([ns.name.as_str()])
        .collect();
    let operator = Operator::start_as(&kubeconfig, &ns.name, &args)
        .await
        .unwrap();
    // Only the lease holder writes: a Ready MicroService means the lease was won.
    let spec = json!({ "image": "registry.local/item:1.0.0", "port": 8081 });
    apply(&client, &ns.name, "item", spec).await.unwrap();
    wait_for(&ns.api::<MicroService>(), "item", is_ready_for_generation)
        .await
        .with_context(|| format!("operator log: {}", operator.log.display()))
        .unwrap();
    let lease = ns.api::<Lease>().get("berth-operator").await.unwrap();
    assert!(lease.spec.and_then(|s| s.holder_identity).is_some());
    let log = std::fs::read_to_string(&operator.log).unwrap();
    assert!(
        !log.contains("forbidden"),
        "a lease call was forbidden: {log}"
    );
    helm_uninstall(
        &format!("berth-{}", ns.name.rsplit('-').next().unwrap()),
        &ns.name,
    )
    .unwrap();
}

#[tokio::test]
async fn services_chart_runs_item_and_order_with_secret_references() {
    let client = client().await;
    install_crd(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "services").await;
    let _operator = Operator::start(&ns.name).await.unwrap();
    for service in ["item", "order"] {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": { "name": format!("{service}-postgres") },
            "stringData": { "url": format!("postgres://{service}:secret@db:5432/{service}") },
        }))
        .unwrap();
        ns.api::<Secret>()
            .create(&Default::default(), &secret)
            .await
            .unwrap();
    }
    let chart = workspace_root().join("charts/berth-services");
    let mut template = helm();
    template.args(["template", "shop"]).arg(&chart);
    let rendered = run(template).unwrap();
    assert!(
        !rendered.contains("postgres://"),
        "a connection URL is inlined"
    );

    let mut install = helm();
    install.args(["install", "shop"]).arg(&chart).args([
        "--namespace",
        &ns.name,
        "--wait",
        "--timeout",
        "90s",
    ]);
    run(install).unwrap();
    let microservices: Api<MicroService> = ns.api();
    for name in ["item", "order"] {
        wait_for(&microservices, name, is_ready_for_generation)
            .await
            .unwrap();
    }
    let order = ns.api::<Deployment>().get("order").await.unwrap();
    let env = &order.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let url = env.iter().find(|e| e.name == "DATABASE_URL").unwrap();
    let secret_ref = url
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (secret_ref.name.as_str(), secret_ref.key.as_str()),
        ("order-postgres", "url")
    );
    assert!(
        env.iter().any(|e| e.name == "ITEM_URL"),
        "order depends on item"
    );

    helm_uninstall("shop", &ns.name).unwrap();
    for name in ["item", "order"] {
        wait_deleted(&microservices, name).await.unwrap();
    }
}

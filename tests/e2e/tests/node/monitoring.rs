//! What Berth ships for monitoring, against the real Prometheus of the
//! local cluster (`make prometheus-up`) after real load: the pods are found
//! through the scrape annotations Berth puts on them (no extra YAML), the
//! operator through its registration, and every query of every dashboard
//! panel and every rule (an alert's by the signal it watches) returns data
//! for this test's services and operator.

use std::time::Duration;

use berth_e2e::{
    eventually, is_ready_for_generation, not_yet, run_command, wait_for, within, workspace_root,
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::PostParams;
use serde_json::{Value, json};

use crate::support::{create_item, http, send, service_spec, service_url};
use crate::under_load::{item, list_items};

/// Where the local cluster's Prometheus answers (`BERTH_PROMETHEUS_URL`).
fn prometheus() -> String {
    std::env::var("BERTH_PROMETHEUS_URL").unwrap_or_else(|_| "http://127.0.0.1:9090".into())
}

fn prometheus_sh(args: &[&str]) -> anyhow::Result<String> {
    let mut cmd =
        std::process::Command::new(workspace_root().join("tests/cluster/prometheus/prometheus.sh"));
    cmd.args(args);
    run_command(cmd)
}

/// A host-process operator scraped as job `berth-operator` while this lives.
struct Registered(String);

impl Registered {
    fn new(name: &str, addr: &str) -> Self {
        prometheus_sh(&["register", name, addr]).expect("register with Prometheus");
        Self(name.into())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let _ = prometheus_sh(&["unregister", &self.0]);
    }
}

/// The series an instant query returns (`data.result`).
async fn query(expr: &str) -> anyhow::Result<Vec<Value>> {
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/query", prometheus()),
        [("query", expr)],
    )?;
    let body: Value = http().get(url).send().await?.json().await?;
    anyhow::ensure!(body["status"] == "success", "{expr}: {body}");
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// Every query a dashboard panel runs, with the dashboard's variables set
/// as a user looking at this test's namespace would set them.
fn dashboard_queries(namespace: &str) -> Vec<(String, String)> {
    let dir = workspace_root().join("charts/berth-operator/dashboards");
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"]
                    .as_str()
                    .unwrap()
                    .replace("$namespace", namespace)
                    .replace("$microservice", ".+")
                    .replace("$__rate_interval", "1m");
                assert!(!expr.contains('$'), "{file}: an unknown variable in {expr}");
                queries.push((format!("{file}: {}", panel["title"]), expr));
            }
        }
    }
    queries
}

/// Every rule's expression: a recording rule's as it is, an alert's by the
/// signal it watches (`<signal> <op> <number>` or `absent(<signal>)`, the two
/// shapes the rules file promises), since the alert itself is quiet on a
/// healthy system.
fn rule_queries() -> Vec<(String, String)> {
    let path = workspace_root().join("charts/berth-operator/rules/berth.rules.yaml");
    let rules: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queries = Vec::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let expr = rule["expr"].as_str().unwrap().trim().to_string();
            match (rule["record"].as_str(), rule["alert"].as_str()) {
                (Some(record), _) => queries.push((format!("record {record}"), expr)),
                (None, Some(alert)) => queries.push((format!("alert {alert}"), signal(&expr))),
                _ => panic!("a rule that neither records nor alerts: {rule}"),
            }
        }
    }
    queries
}

/// The signal an alert expression watches; panics on any other shape.
fn signal(expr: &str) -> String {
    if let Some(inner) = expr
        .strip_prefix("absent(")
        .and_then(|e| e.strip_suffix(')'))
    {
        return inner.to_string();
    }
    let mut tokens = expr.rsplitn(3, char::is_whitespace);
    let (number, op, signal) = (tokens.next(), tokens.next(), tokens.next());
    match (number.map(str::parse::<f64>), op, signal) {
        (Some(Ok(_)), Some(">" | "<" | ">=" | "<="), Some(signal)) => signal.trim().to_string(),
        _ => panic!(
            "alert expression `{expr}` is neither `<signal> <op> <number>` nor `absent(<signal>)`"
        ),
    }
}

/// Whether a query's result speaks of this test: a series of its namespace,
/// of its operator (by instance), or an aggregate with neither label.
fn about_this_test(result: &[Value], namespace: &str, operator: &str) -> bool {
    result.iter().any(|series| {
        let labels = &series["metric"];
        labels["namespace"] == namespace
            || labels["instance"] == operator
            || (labels.get("namespace").is_none() && labels.get("instance").is_none())
    })
}

#[tokio::test]
async fn prometheus_scrapes_what_berth_set_up_and_every_dashboard_and_rule_query_has_data() {
    // item autoscaled (so the replica range has series), scraped every 5 s.
    let item = item(
        "monitoring",
        json!({
            "monitoring": { "interval": "5s" },
            "resources": { "requests": { "cpu": "50m" } },
            "autoscaling": { "minReplicas": 1, "maxReplicas": 2, "targetCPUUtilizationPercentage": 80 },
        }),
    )
    .await;
    let env = &item.env;
    let ns = env.ns.name.clone();
    let operator = env.operator.metrics_addr.clone();
    let _registered = Registered::new(&ns, &operator);

    // order calls item; both scraped the same way.
    let order = service_spec(
        "order-service",
        json!({ "dependencies": ["item"], "monitoring": { "interval": "5s" } }),
    );
    env.apply_microservice("order", &order.to_string())
        .await
        .unwrap();
    wait_for(&env.microservices(), "order", is_ready_for_generation)
        .await
        .unwrap();
    // A MicroService whose Deployment's name is taken by someone else's: a
    // reconcile failure, retried, for the failure panels and rules to count.
    let squatter: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "blocked" },
        "spec": {
            "replicas": 0,
            "selector": { "matchLabels": { "app": "blocked" } },
            "template": {
                "metadata": { "labels": { "app": "blocked" } },
                "spec": { "containers": [{ "name": "c", "image": "registry.local/none:1" }] }
            }
        }
    }))
    .unwrap();
    env.ns
        .api::<Deployment>()
        .create(&PostParams::default(), &squatter)
        .await
        .unwrap();
    env.apply_microservice("blocked", "image: registry.local/blocked:1")
        .await
        .unwrap();

    // Real load: item's list route at 40/s for 40 s, and orders through order.
    let http = http();
    let stocked = create_item(
        &http,
        &item.url,
        &json!({ "name": "monitored widget", "price_minor": 100, "currency": "EUR", "stock": 1000 }),
    )
    .await;
    let load = list_items(&item.url, 40, Duration::from_secs(40));
    let order_url = service_url(&env.client, &ns, "order").await.unwrap();
    for n in 0..40 {
        let response = send("an order through order's Service", || {
            http.post(format!("{order_url}/v1/orders"))
                .header("Idempotency-Key", format!("{ns}-{n}"))
                .json(&json!({ "lines": [{ "item_id": stocked["id"], "quantity": 1 }] }))
        })
        .await
        .unwrap();
        assert_eq!(response.status().as_u16(), 201, "order {n}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let report = load.finish().await;
    assert_eq!(report.failed(), 0, "item's load: {report:?}");

    // Found through the annotations Berth put on the pods.
    for ms in ["item", "order"] {
        let up = format!(r#"up{{namespace="{ns}", microservice="{ms}"}} == 1"#);
        eventually(&format!("Prometheus scrapes {ms}"), || async {
            Ok((!query(&up).await?.is_empty()).then_some(()))
        })
        .await
        .unwrap();
    }

    // Every query has data about this test (rate windows fill within a few scrapes).
    let queries: Vec<(String, String)> = dashboard_queries(&ns)
        .into_iter()
        .chain(rule_queries())
        .collect();
    assert!(queries.len() > 30, "{} queries", queries.len());
    within(Duration::from_secs(120), "every query has data", || async {
        let mut empty = Vec::new();
        for (what, expr) in &queries {
            if !about_this_test(&query(expr).await?, &ns, &operator) {
                empty.push(format!("{what}: {expr}"));
            }
        }
        if empty.is_empty() {
            Ok(Some(()))
        } else {
            Err(not_yet(format!("no data yet:\n{}", empty.join("\n"))))
        }
    })
    .await
    .unwrap();
    println!("{} dashboard and rule queries have data", queries.len());
}

#[test]
fn an_alert_is_queried_by_the_signal_it_watches() {
    assert_eq!(signal("absent(berth_leader == 1)"), "berth_leader == 1");
    assert_eq!(signal("a:b:rate5m > 0.05"), "a:b:rate5m");
    assert_eq!(signal("(x - y) >= 0"), "(x - y)");
}

//! What the real-load scenarios share: one scenario at a time (each loads
//! the node's two cores on purpose; two at once would measure each other),
//! the image a rollout changes to, a load through a Service, and the
//! request counters the pods themselves keep.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use berth_e2e::load::{Load, MakeRequest, Report, Running};
use berth_e2e::{Env, MICROSERVICE_LABEL, client};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};

use crate::support::{
    http, image_tag, is_ready, require_real_node, send, service_spec, service_url, wait_pod_ready,
};

/// Held by a scenario for as long as it sends load.
async fn exclusive() -> MutexGuard<'static, ()> {
    // tokio's Mutex needs no runtime of its own, so one static serves the
    // tests' separate runtimes.
    static LOAD: Mutex<()> = Mutex::const_new(());
    LOAD.lock().await
}

/// What a load scenario starts from: item on the real node, Ready, with the
/// node to itself until this is dropped.
pub struct Item {
    pub env: Env,
    /// The MicroService spec applied (a scenario may change and reapply it).
    pub spec: Value,
    pub pods: Api<Pod>,
    /// item's Service, `http://<clusterIP>:80`.
    pub url: String,
    /// Dropped last: the namespace goes before the next scenario starts.
    _one_at_a_time: MutexGuard<'static, ()>,
}

/// Applies item (`service_spec` with `extra`) in a namespace of its own,
/// waits for a Ready pod and a Ready MicroService, and finds its Service.
pub async fn item(prefix: &str, extra: Value) -> Item {
    require_real_node(&client().await, &["item-service"]).await;
    let one_at_a_time = exclusive().await;
    let env = Env::new(prefix).await;
    let log = env.operator.log.display().to_string();
    let spec = service_spec("item-service", extra);
    env.apply_microservice("item", &spec.to_string())
        .await
        .unwrap();
    let pods: Api<Pod> = env.ns.api();
    wait_pod_ready(&pods, "item", None)
        .await
        .with_context(|| format!("operator log: {log}"))
        .unwrap();
    env.wait_ready("item").await.unwrap();
    let url = service_url(&env.client, &env.ns.name, "item")
        .await
        .unwrap();
    // Ready pods are not yet a routed Service: kube-proxy writes the
    // ClusterIP's rules a moment later, and until then connections are
    // refused. A scenario's load starts once the Service answers.
    let response = send("item's Service answers", || {
        http().get(format!("{url}/v1/items?limit=1"))
    })
    .await
    .unwrap();
    assert_eq!(response.status(), 200, "{response:?}");
    Item {
        env,
        spec,
        pods,
        url,
        _one_at_a_time: one_at_a_time,
    }
}

/// `berth.local/<name>:<second tag>`: the image a rollout changes to. `make
/// test-node` loads two tags of each image (BERTH_IMAGE_TAG="v v-next").
pub fn next_image(name: &str) -> String {
    let tags = std::env::var("BERTH_IMAGE_TAG").unwrap_or_default();
    let next = tags
        .split_whitespace()
        .nth(1)
        .map_or_else(|| format!("{}-next", image_tag()), String::from);
    format!("berth.local/{name}:{next}")
}

/// `GET <url>/v1/items?limit=1` at `rate` per second: a route every item pod
/// answers the same whatever its (in-memory) data.
pub fn list_items(url: &str, rate: u32, limit: Duration) -> Running {
    let url = format!("{url}/v1/items?limit=1");
    let make: Arc<MakeRequest> = Arc::new(move |client, _| client.get(&url));
    Load::at(rate).start(limit, make)
}

/// The running, Ready pods of MicroService `ms` that are not being deleted.
pub async fn ready_pods(pods: &Api<Pod>, ms: &str) -> anyhow::Result<Vec<Pod>> {
    let selector = ListParams::default().labels(&format!("{MICROSERVICE_LABEL}={ms}"));
    Ok(pods
        .list(&selector)
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
        .collect())
}

/// API requests pod `pod` has counted itself (its `/metrics`), by pod name:
/// `http_requests_total` over every route but the probes and `/metrics`.
pub async fn served_by(pods: &[Pod]) -> anyhow::Result<BTreeMap<String, f64>> {
    let http = crate::support::http();
    let mut served = BTreeMap::new();
    for pod in pods {
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .with_context(|| format!("pod {} has no IP", pod.name_any()))?;
        let text = http
            .get(format!("http://{ip}:8080/metrics"))
            .send()
            .await?
            .text()
            .await?;
        served.insert(pod.name_any(), api_requests(&text));
    }
    Ok(served)
}

/// The sum of `http_requests_total` in a Prometheus text exposition, without
/// the probes' and the scrapes' own requests.
pub fn api_requests(exposition: &str) -> f64 {
    const NOT_API: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
    exposition
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter(|l| {
            !NOT_API
                .iter()
                .any(|route| l.contains(&format!("route=\"{route}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Writes a scenario's figures as `<name>.json` under `BERTH_BENCH_OUT`
/// (bench/autoscaling/real-load.sh sets it), and prints them either way.
pub fn record_figures(name: &str, figures: &serde_json::Value) {
    println!("{name}: {figures:#}");
    let Some(dir) = std::env::var_os("BERTH_BENCH_OUT") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = serde_json::to_string_pretty(figures).unwrap();
    std::fs::write(dir.join(format!("{name}.json")), text).unwrap();
}

/// A load's figures as JSON: counts by kind and latency percentiles (ms).
pub fn summary(report: &Report) -> serde_json::Value {
    let ms = |q: f64| (report.latency(q).as_secs_f64() * 1e4).round() / 10.0;
    serde_json::json!({
        "sent": report.sent(),
        "failed": report.failed(),
        "by_kind": report.by_kind(),
        "shed": report.shed,
        "seconds": (report.duration.as_secs_f64() * 10.0).round() / 10.0,
        "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99), "max_ms": ms(1.0),
    })
}

#[test]
fn api_requests_leave_out_probes_and_scrapes() {
    let text = "\
# TYPE http_requests counter
http_requests_total{route=\"/v1/items\",method=\"GET\",status=\"200\"} 41
http_requests_total{route=\"/v1/items/{id}\",method=\"GET\",status=\"404\"} 1
http_requests_total{route=\"/readyz\",method=\"GET\",status=\"200\"} 9
http_requests_total{route=\"/metrics\",method=\"GET\",status=\"200\"} 2
http_request_duration_seconds_count{route=\"/v1/items\",method=\"GET\"} 41
";
    assert_eq!(api_requests(text), 42.0);
}

//! What the real-node tests share: the node and its images (checked before a
//! test starts, so a missing piece fails with the command that provides it),
//! the placement a pod needs to land there, waiting for a pod to run, the
//! restricted security context as the kernel and the API see it, and HTTP to a
//! Service's ClusterIP from this process.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use berth_e2e::{Env, MICROSERVICE_LABEL, eventually, not_yet, within};
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use kube::api::{ListParams, LogParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// The one node with a kubelet and a container runtime.
pub const NODE: &str = "berth-node-0";
/// Its label and taint key; the value is `real`.
const NODE_KEY: &str = "berth.dev/node";
/// How to get a cluster with the real node.
const NODE_HINT: &str = "start the local cluster with its real node: `BERTH_NODE=1 make cluster-up` \
     (a cluster first started without it keeps NODE=0 in ~/.cache/berth/cluster/config.env: \
     `make cluster-wipe` first)";

/// Tag of the images `make images` loads into the node: the first of
/// `BERTH_IMAGE_TAG` (scripts/images.sh takes several), else the workspace
/// version, which is also the charts' appVersion.
pub fn image_tag() -> String {
    std::env::var("BERTH_IMAGE_TAG")
        .ok()
        .and_then(|tags| tags.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").into())
}

/// `berth.local/<name>:<tag>`, as loaded into the node's containerd.
pub fn image(name: &str) -> String {
    format!("berth.local/{name}:{}", image_tag())
}

/// `nodeSelector` and `tolerations` that put a pod on the real node (and only there).
pub fn placement() -> (Value, Value) {
    (
        json!({ NODE_KEY: "real" }),
        json!([{ "key": NODE_KEY, "operator": "Equal", "value": "real", "effect": "NoSchedule" }]),
    )
}

/// A MicroService spec for one of the reference services on the real node,
/// probed on `/readyz` and `/healthz`, with `extra` merged in at the top level.
pub fn service_spec(image_name: &str, extra: Value) -> Value {
    let (node_selector, tolerations) = placement();
    let mut spec = json!({
        "image": image(image_name),
        "imagePullPolicy": "IfNotPresent",
        "replicas": 1,
        "port": 8080,
        "nodeSelector": node_selector,
        "tolerations": tolerations,
        // A short period keeps the tests quick; the paths are what matters.
        "health": { "readiness": "/readyz", "liveness": "/healthz", "periodSeconds": 2 },
        "env": [{ "name": "LOG_FORMAT", "value": "text" }],
    });
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    spec
}

/// Fails unless the real node is Ready, labelled and tainted as the tests
/// expect, and its container runtime has every image in `images` (names as
/// given to [`image`]). Retried for a minute: the kubelet lists its images
/// every 30 s and reports them with its next status update, so images that
/// `make images` has just loaded show up in the Node only after up to ~40 s.
pub async fn require_real_node(client: &Client, images: &[&str]) {
    within(
        Duration::from_secs(60),
        "the real node is usable",
        || async {
            match check_real_node(client, images).await {
                Ok(()) => Ok(Some(())),
                Err(e) => Err(not_yet(format!("{e:#}"))),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
}

async fn check_real_node(client: &Client, images: &[&str]) -> anyhow::Result<()> {
    let node = Api::<Node>::all(client.clone())
        .get_opt(NODE)
        .await?
        .with_context(|| format!("no node {NODE} in the cluster: {NODE_HINT}"))?;
    let status = node.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    ensure!(
        ready,
        "node {NODE} is not Ready ({:?}): check its kubelet and containerd \
         (`make cluster-status`, logs under ~/.cache/berth/cluster/logs)",
        status.conditions
    );
    let labels = node.metadata.labels.clone().unwrap_or_default();
    ensure!(
        labels.get(NODE_KEY).map(String::as_str) == Some("real"),
        "node {NODE} lacks the label {NODE_KEY}=real: {NODE_HINT}"
    );
    let tainted = node
        .spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .any(|t| {
            t.key == NODE_KEY && t.value.as_deref() == Some("real") && t.effect == "NoSchedule"
        });
    ensure!(
        tainted,
        "node {NODE} lacks the taint {NODE_KEY}=real:NoSchedule: {NODE_HINT}"
    );
    let present: Vec<String> = status
        .images
        .iter()
        .flatten()
        .flat_map(|i| i.names.iter().flatten().cloned())
        .collect();
    let tag = image_tag();
    for name in images {
        let wanted = image(name);
        ensure!(
            present.contains(&wanted),
            "image {wanted} is not in {NODE}'s containerd: run `make images IMAGE_TAGS={tag}` \
             (the tests take the tag from BERTH_IMAGE_TAG; the node has {present:?})"
        );
    }
    Ok(())
}

/// The pods' PostgreSQL URL (`BERTH_NODE_DATABASE_URL`), after checking from
/// here that its address accepts connections.
pub async fn pods_database_url() -> String {
    let hint = "run `make test-node`, or export \
                BERTH_NODE_DATABASE_URL=$(scripts/postgres.sh --pods-url)";
    let url = std::env::var("BERTH_NODE_DATABASE_URL")
        .unwrap_or_else(|_| panic!("BERTH_NODE_DATABASE_URL is not set: {hint}"));
    let address = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("BERTH_NODE_DATABASE_URL={url} has no host:port"))
        .to_string();
    let connect = tokio::net::TcpStream::connect(&address);
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(_)) => url,
        outcome => panic!(
            "PostgreSQL at {address} (BERTH_NODE_DATABASE_URL) does not accept connections \
             ({outcome:?}): {hint}"
        ),
    }
}

/// Waiting reasons after which a container will not start without help.
const STUCK: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Waits until a pod of MicroService `ms` (other than `not_uid`, and not being
/// deleted) is Ready, and returns it. Fails at once when its container is
/// stuck (image missing, crash loop), with the reason and its last log lines.
pub async fn wait_pod_ready(
    pods: &Api<Pod>,
    ms: &str,
    not_uid: Option<&str>,
) -> anyhow::Result<Pod> {
    let selector = ListParams::default().labels(&format!("{MICROSERVICE_LABEL}={ms}"));
    let ready = eventually(&format!("a pod of {ms} is Ready"), || async {
        for pod in pods.list(&selector).await? {
            if pod.metadata.deletion_timestamp.is_some()
                || (not_uid.is_some() && pod.metadata.uid.as_deref() == not_uid)
            {
                continue;
            }
            fail_if_stuck(pods, &pod).await?;
            if is_ready(&pod) {
                return Ok(Some(pod));
            }
        }
        Ok(None)
    })
    .await;
    match ready {
        Ok(pod) => Ok(pod),
        Err(e) => Err(e.context(format!(
            "pods of {ms}: {}",
            describe_pods(pods, &selector).await
        ))),
    }
}

async fn describe_pods(pods: &Api<Pod>, selector: &ListParams) -> String {
    match pods.list(selector).await {
        Ok(list) => format!(
            "{:?}",
            list.items
                .iter()
                .map(|p| (
                    p.metadata.name.clone(),
                    p.spec.as_ref().and_then(|s| s.node_name.clone()),
                    p.status.clone()
                ))
                .collect::<Vec<_>>()
        ),
        Err(e) => format!("(could not list them: {e})"),
    }
}

async fn fail_if_stuck(pods: &Api<Pod>, pod: &Pod) -> anyhow::Result<()> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let statuses = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten());
    for status in statuses {
        let Some(waiting) = status.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = waiting.reason.clone().unwrap_or_default();
        if !STUCK.contains(&reason.as_str()) {
            continue;
        }
        let hint = if reason.contains("Image") {
            format!(
                "is {} loaded into {NODE}'s containerd? run `make images`",
                status.image
            )
        } else {
            let params = LogParams {
                previous: status.restart_count > 0,
                tail_lines: Some(20),
                ..LogParams::default()
            };
            let logs = pods
                .logs(&name, &params)
                .await
                .unwrap_or_else(|e| format!("(no logs: {e})"));
            format!(
                "last state {:?}; log:\n{logs}",
                status
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
            )
        };
        bail!(
            "container {} of pod {name} is stuck in {reason}: {} — {hint}",
            status.name,
            waiting.message.clone().unwrap_or_default()
        );
    }
    Ok(())
}

/// The pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Asserts that `pod` runs on the real node and that its only container was
/// really started by the runtime, is ready, and never restarted.
pub fn assert_runs_on_real_node(pod: &Pod) {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref().expect("pod spec");
    assert_eq!(
        spec.node_name.as_deref(),
        Some(NODE),
        "pod {name} is not on {NODE}"
    );
    let status = pod.status.as_ref().expect("pod status");
    assert_eq!(
        status.phase.as_deref(),
        Some("Running"),
        "pod {name}: {status:?}"
    );
    let containers = status.container_statuses.clone().unwrap_or_default();
    assert_eq!(containers.len(), 1, "pod {name}: {containers:?}");
    let c = &containers[0];
    assert!(c.ready, "container of {name} not ready: {c:?}");
    assert_eq!(
        c.started,
        Some(true),
        "container of {name} not started: {c:?}"
    );
    assert_eq!(c.restart_count, 0, "container of {name} restarted: {c:?}");
    assert!(
        c.state.as_ref().and_then(|s| s.running.as_ref()).is_some(),
        "container of {name} is not running: {c:?}"
    );
    assert!(
        c.container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("containerd://")),
        "container of {name} was not started by containerd: {c:?}"
    );
}

/// Asserts the restricted security context Berth (and the operator chart)
/// sets, as the API server stored it on the running pod.
pub fn assert_restricted_spec(pod: &Pod) {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref().expect("pod spec");
    let pod_sc = spec.security_context.clone().unwrap_or_default();
    assert_eq!(pod_sc.run_as_non_root, Some(true), "pod {name}: {pod_sc:?}");
    assert_eq!(
        pod_sc.seccomp_profile.map(|p| p.type_).as_deref(),
        Some("RuntimeDefault"),
        "pod {name}"
    );
    assert_eq!(spec.containers.len(), 1);
    let sc = spec.containers[0]
        .security_context
        .clone()
        .unwrap_or_default();
    assert_eq!(
        sc.run_as_non_root,
        Some(true),
        "container of {name}: {sc:?}"
    );
    assert_eq!(
        sc.read_only_root_filesystem,
        Some(true),
        "container of {name}: {sc:?}"
    );
    assert_eq!(
        sc.allow_privilege_escalation,
        Some(false),
        "container of {name}: {sc:?}"
    );
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()]),
        "container of {name}: {sc:?}"
    );
    assert_eq!(
        sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault"),
        "container of {name}: {sc:?}"
    );
}

/// What the kernel says about the container's main process: it runs on this
/// machine (the real node is this host), so `/proc` shows whether the security
/// context was enforced, not only stored.
#[derive(Debug)]
pub struct ProcessFacts {
    pub pid: u32,
    pub uid: u32,
    pub effective_capabilities: u64,
    /// Capabilities the process could ever gain (0 after `drop: [ALL]`; a
    /// non-root process has no effective ones even without the drop).
    pub bounding_capabilities: u64,
    pub no_new_privs: bool,
    /// 2: a seccomp filter is installed (RuntimeDefault).
    pub seccomp_mode: u32,
    pub root_read_only: bool,
}

/// Finds the container's process by its containerd id in `/proc/*/cgroup`.
pub fn container_process(pod: &Pod) -> anyhow::Result<ProcessFacts> {
    let id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.container_id.clone())
        .context("the pod has no container id")?;
    let id = id.trim_start_matches("containerd://").to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if cgroup.contains(&id) {
            pids.push(pid);
        }
    }
    // The container's cgroup holds only its own processes; the oldest (lowest
    // pid, no pid wrap on a test run) is the entrypoint.
    let pid = *pids.iter().min().with_context(|| {
        format!("no process of container {id} on this host (is {NODE} this machine?)")
    })?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |key: &str| -> anyhow::Result<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .with_context(|| format!("{key} missing from /proc/{pid}/status"))
    };
    let uid = field("Uid:")?
        .split_whitespace()
        .nth(1)
        .context("effective uid")?
        .parse()?;
    let effective_capabilities = u64::from_str_radix(&field("CapEff:")?, 16)?;
    let bounding_capabilities = u64::from_str_radix(&field("CapBnd:")?, 16)?;
    let no_new_privs = field("NoNewPrivs:")? == "1";
    let seccomp_mode = field("Seccomp:")?.parse()?;
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
    // Fields: id parent major:minor root mount-point options ...; the last "/" line is the one in force.
    let root_options = mountinfo
        .lines()
        .rev()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .and_then(|l| l.split_whitespace().nth(5).map(String::from))
        .context("no root mount in mountinfo")?;
    Ok(ProcessFacts {
        pid,
        uid,
        effective_capabilities,
        bounding_capabilities,
        no_new_privs,
        seccomp_mode,
        root_read_only: root_options.split(',').any(|o| o == "ro"),
    })
}

/// An HTTP client for Services and pods: no proxy, short timeouts.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// `http://<clusterIP>:<port>` of Service `name`: reached from this process
/// through kube-proxy's rules, as a pod would.
pub async fn service_url(client: &Client, ns: &str, name: &str) -> anyhow::Result<String> {
    let service = Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    let spec = service.spec.context("service spec")?;
    let ip = spec.cluster_ip.context("service has no ClusterIP")?;
    let port = spec
        .ports
        .iter()
        .flatten()
        .next()
        .context("service has no port")?
        .port;
    Ok(format!("http://{ip}:{port}"))
}

/// How long a Service or pod that should answer may refuse connections.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends the request `make` builds until something answers: a new Service or
/// a new pod may refuse connections for a moment. Only connection failures
/// are retried (the request never reached a server, so a POST is safe to
/// repeat); any HTTP answer, whatever its status, is returned.
pub async fn send(
    what: &str,
    make: impl Fn() -> reqwest::RequestBuilder,
) -> anyhow::Result<reqwest::Response> {
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    loop {
        match make().send().await {
            Ok(response) => return Ok(response),
            Err(e) if e.is_connect() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("{what}: no answer")),
        }
    }
}

/// The response's status and JSON body.
pub async fn json_of(response: reqwest::Response) -> anyhow::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, body))
}

/// The value of environment variable `name` in the pod's container spec.
pub fn env_value(pod: &Pod, name: &str) -> Option<String> {
    berth_e2e::container_env(pod.spec.as_ref()?, name)
}

/// A name unique to this run, usable in DNS labels and SQL identifiers.
pub fn unique_suffix() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}{:06}", now.as_secs(), now.subsec_micros())
}

/// item, and order depending on it, on the real node under a per-test
/// operator: the two tests that start both share this setup.
pub async fn item_and_order(prefix: &str) -> Env {
    require_real_node(
        &berth_e2e::client().await,
        &["item-service", "order-service"],
    )
    .await;
    let env = Env::new(prefix).await;
    env.apply_microservice("item", &service_spec("item-service", json!({})).to_string())
        .await
        .unwrap();
    let order = service_spec("order-service", json!({ "dependencies": ["item"] }));
    env.apply_microservice("order", &order.to_string())
        .await
        .unwrap();
    env
}

/// Creates an item through item's Service at `item_url` (retrying until the
/// Service answers) and returns it, failing unless the answer is 201.
pub async fn create_item(http: &reqwest::Client, item_url: &str, item: &Value) -> Value {
    let response = send("create an item through item's Service", || {
        http.post(format!("{item_url}/v1/items")).json(item)
    })
    .await
    .unwrap();
    let (code, created) = json_of(response).await.unwrap();
    assert_eq!(code, 201, "POST {item_url}/v1/items: {created}");
    created
}

/// A schema of the pods' PostgreSQL (`BERTH_NODE_DATABASE_URL`) that one
/// service of one test keeps its data in, with the Secret `<service>-postgres`
/// holding the URL; the schema is dropped when this is dropped (best effort:
/// the database is a throwaway test cluster, and a failure here must not hide
/// the test's own).
pub struct PostgresSchema {
    pub url: String,
    pub schema: String,
    pub secret: String,
}

impl PostgresSchema {
    /// Creates the Secret in the test's namespace and names a fresh schema
    /// `node_<service>_<unique>` (the service creates it at start).
    pub async fn create(env: &Env, database_url: &str, service: &str) -> Self {
        let schema = Self {
            url: database_url.to_string(),
            schema: format!("node_{service}_{}", unique_suffix()),
            secret: format!("{service}-postgres"),
        };
        let secret: Secret = serde_json::from_value(json!({
            "metadata": { "name": schema.secret },
            "stringData": { "url": database_url },
        }))
        .expect("Secret JSON");
        env.ns
            .api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await
            .unwrap_or_else(|e| panic!("create Secret {}: {e}", schema.secret));
        schema
    }

    /// The container env that puts the service on this schema (the URL from
    /// the Secret, at most `pool_size` connections per pod), with text logs.
    pub fn env(&self, pool_size: u32) -> Value {
        json!([
            { "name": "LOG_FORMAT", "value": "text" },
            { "name": "DATABASE_URL", "valueFrom": { "secretKeyRef": { "name": self.secret, "key": "url" } } },
            { "name": "DATABASE_SCHEMA", "value": self.schema },
            { "name": "DATABASE_POOL_SIZE", "value": pool_size.to_string() },
        ])
    }
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        let psql = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|v| v.path().join("bin/psql"))
            .find(|p| p.exists())
            .unwrap_or_else(|| "psql".into());
        let dropped = std::process::Command::new(psql)
            .arg(&self.url)
            .args([
                "-qc",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
            ])
            .output();
        if !dropped.is_ok_and(|o| o.status.success()) {
            eprintln!("could not drop schema {}", self.schema);
        }
    }
}

/// The sum of every sample of counter `name` in Prometheus text `metrics`
/// whose labels include every `label="value"` pair of `labels`.
pub fn metric_sum(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

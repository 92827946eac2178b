//! Harness for end-to-end tests against a real cluster (`$KUBECONFIG`): each
//! test gets its own namespace and its own operator process scoped to it, so
//! tests run in parallel without seeing each other, and a test can kill and
//! restart "its" operator or count the writes it made.
//!
//! There is no skipping: without a reachable cluster every test fails, which
//! is what CI needs. `make test-e2e` brings the local cluster up first.

pub mod autoscaling;
pub mod generate;
pub mod live_children;
pub mod load;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_operator::MicroService;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Api, Client, Resource};
use serde_json::json;

/// How long any single wait may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// The label that ties pods and children to their MicroService: the operator's own constant.
pub use berth_operator::desired::labels::MICROSERVICE_LABEL;

/// The workspace root (for the committed CRD and the operator binary).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A client for `$KUBECONFIG`; fails loudly when there is no cluster.
pub async fn client() -> Client {
    let client = Client::try_default()
        .await
        .expect("no cluster: set KUBECONFIG (make cluster-up prints it) — e2e tests never skip");
    client
        .apiserver_version()
        .await
        .expect("the cluster in KUBECONFIG does not answer");
    client
}

/// Installs (or updates) the CRD from `crds/microservice.yaml` and waits until it is Established.
pub async fn install_crd(client: &Client) -> anyhow::Result<()> {
    let path = workspace_root().join("crds/microservice.yaml");
    let crd: CustomResourceDefinition = serde_yaml::from_str(&std::fs::read_to_string(&path)?)
        .context("parsing the committed CRD")?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().context("CRD has a name")?;
    api.patch(
        &name,
        &PatchParams::apply("berth-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await?;
    wait_for(&api, &name, conditions::is_crd_established()).await?;
    Ok(())
}

/// Waits until `cond` holds for the object `name`, failing after [`TIMEOUT`].
pub async fn wait_for<K>(api: &Api<K>, name: &str, cond: impl Condition<K>) -> anyhow::Result<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    match tokio::time::timeout(TIMEOUT, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(obj))) => Ok(obj),
        Ok(Ok(None)) => bail!("{name} was deleted while waiting for a condition"),
        Ok(Err(e)) => bail!("watching {name}: {e}"),
        Err(_) => bail!(
            "timed out after {TIMEOUT:?} waiting for a condition on {name}: {:?}",
            api.get_opt(name).await.ok().flatten()
        ),
    }
}

/// Waits until `name` no longer exists.
pub async fn wait_deleted<K>(api: &Api<K>, name: &str) -> anyhow::Result<()>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    eventually(&format!("{name} is deleted"), || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

/// Polls `check` until it returns `Some`, failing after [`TIMEOUT`]; see [`within`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    within(TIMEOUT, what, check).await
}

/// A check's "not yet, because ...": [`within`] polls again and, if time
/// runs out, says the last reason. Every other error ends the wait at once.
#[derive(Debug)]
pub struct NotYet(pub String);

impl std::fmt::Display for NotYet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotYet {}

/// `Err(not_yet(why))` from a check: poll again (see [`NotYet`]).
pub fn not_yet(why: impl std::fmt::Display) -> anyhow::Error {
    NotYet(why.to_string()).into()
}

/// Polls `check` every 250 ms until it returns `Some`, failing after `limit`.
/// `Ok(None)` and a [`NotYet`] error mean "not yet"; any other error ends the
/// wait. The failure names `what` and the last reason a check gave.
pub async fn within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    loop {
        let attempt = tokio::time::timeout(limit.saturating_sub(started.elapsed()), check()).await;
        match attempt {
            Ok(Ok(Some(v))) => return Ok(v),
            Ok(Ok(None)) => last = "not yet".into(),
            Ok(Err(e)) if e.is::<NotYet>() => last = e.to_string(),
            Ok(Err(e)) => return Err(e.context(format!("waiting until {what}"))),
            Err(_) => {}
        }
        if started.elapsed() >= limit {
            bail!("timed out after {limit:?} waiting until {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A namespace of one test, deleted (without waiting) when dropped.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn new(client: &Client, prefix: &str) -> Self {
        let suffix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() % 100_000)
            .unwrap_or_default();
        let name = format!("e2e-{prefix}-{suffix}");
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": { "name": name, "labels": { "berth.dev/e2e": "true" } }
        }))
        .expect("namespace JSON");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        Self {
            name,
            client: client.clone(),
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // The test's runtime is blocked in this drop, and a kube Client runs
        // its request buffer on the runtime that made it: so a thread with its
        // own runtime and its own client deletes the namespace. The cluster
        // finishes the deletion in the background.
        let name = self.name.clone();
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = Client::try_default().await?;
                Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(deleted, Ok(Ok(()))) {
            eprintln!("could not delete test namespace {}", self.name);
        }
    }
}

/// The operator binary, built by `cargo build -p berth-operator` before the tests.
pub fn operator_binary() -> PathBuf {
    if let Ok(path) = std::env::var("BERTH_OPERATOR_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    target.join("debug/berth-operator")
}

/// An operator process watching one namespace. Stopped (SIGKILL) when dropped.
/// The one way the tests start the operator binary.
pub struct Operator {
    child: Option<Child>,
    pub namespace: String,
    pub metrics_addr: String,
    pub log: PathBuf,
    /// Extra command-line arguments (see [`Operator::start_with`]).
    extra_args: Vec<String>,
    /// Credentials other than the tests' own (see [`Operator::start_as`]).
    kubeconfig: Option<PathBuf>,
}

impl Operator {
    /// Starts the operator for `namespace` and waits until `/readyz` says ready.
    /// `BERTH_E2E_OPERATOR_KUBECONFIG` runs it with other credentials (the
    /// chart's ServiceAccount, to prove its RBAC); by default `$KUBECONFIG`.
    pub async fn start(namespace: &str) -> anyhow::Result<Self> {
        Self::start_with(namespace, &[]).await
    }

    /// Like [`Operator::start`], with extra arguments (`--leader-elect`, ...).
    /// Each process logs to its own file, named after its metrics port.
    pub async fn start_with(namespace: &str, args: &[&str]) -> anyhow::Result<Self> {
        Self::launch(namespace, args, None).await
    }

    /// Like [`Operator::start_with`], logged in with `kubeconfig` only (a
    /// ServiceAccount's token, to prove the chart's RBAC); `$KUBECONFIG` is not passed on.
    pub async fn start_as(
        kubeconfig: &Path,
        namespace: &str,
        args: &[&str],
    ) -> anyhow::Result<Self> {
        Self::launch(namespace, args, Some(kubeconfig.to_path_buf())).await
    }

    async fn launch(
        namespace: &str,
        args: &[&str],
        kubeconfig: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let metrics_addr = format!("127.0.0.1:{port}");
        let logs = workspace_root().join("target/e2e-logs");
        std::fs::create_dir_all(&logs)?;
        let log = if args.is_empty() {
            logs.join(format!("operator-{namespace}.log"))
        } else {
            logs.join(format!("operator-{namespace}-{port}.log"))
        };
        let mut op = Self {
            child: None,
            namespace: namespace.into(),
            metrics_addr,
            log,
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            kubeconfig,
        };
        op.spawn()?;
        op.wait_ready().await?;
        Ok(op)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(operator_binary());
        cmd.args([
            "run",
            "--namespace",
            &self.namespace,
            "--metrics-addr",
            &self.metrics_addr,
        ])
        .env(
            "RUST_LOG",
            std::env::var("BERTH_E2E_LOG").unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .args(&self.extra_args)
        .stdout(Stdio::null())
        .stderr(log);
        if let Some(kubeconfig) = &self.kubeconfig {
            cmd.arg("--kubeconfig")
                .arg(kubeconfig)
                .env_remove("KUBECONFIG");
        } else if let Ok(kubeconfig) = std::env::var("BERTH_E2E_OPERATOR_KUBECONFIG") {
            cmd.args(["--kubeconfig", &kubeconfig]);
        }
        let child = cmd.spawn().with_context(|| {
            format!(
                "starting {} (run cargo build -p berth-operator)",
                operator_binary().display()
            )
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits for `/readyz` to answer 200.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let url = format!("http://{}/readyz", self.metrics_addr);
        eventually("the operator is ready", || async {
            Ok(match reqwest::get(&url).await {
                Ok(r) if r.status().is_success() => Some(()),
                _ => None,
            })
        })
        .await
        .with_context(|| format!("operator log: {}", self.log.display()))
    }

    /// Kills the process with SIGKILL (no graceful shutdown) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM (a graceful shutdown, as a rolling update does) and waits
    /// for the process to exit; fails if it does not within `limit`.
    pub async fn terminate(&mut self, limit: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("the operator is not running");
        };
        run_command({
            let mut kill = Command::new("kill");
            kill.args(["-TERM", &child.id().to_string()]);
            kill
        })?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the operator did not exit within {limit:?} of SIGTERM (log: {})",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process reports itself the leader (`berth_leader 1`).
    pub async fn leading(&self) -> anyhow::Result<bool> {
        Ok(self.metrics().await?.lines().any(|l| l == "berth_leader 1"))
    }

    /// Starts the process again after [`Operator::kill`] and waits until ready.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()?;
        self.wait_ready().await
    }

    /// The operator's `/metrics` text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(
            reqwest::get(format!("http://{}/metrics", self.metrics_addr))
                .await?
                .text()
                .await?,
        )
    }

    /// Sum of every sample of a metric (all label sets).
    pub async fn metric_sum(&self, name: &str) -> anyhow::Result<f64> {
        let text = self.metrics().await?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Whether the process is still running (it has not exited by itself).
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Requests the operator sent with one of `verbs` (from `berth_api_requests_total`).
    pub async fn requests(&self, verbs: &[&str]) -> anyhow::Result<f64> {
        let text = self.metrics().await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("berth_api_requests_total{"))
            .filter(|l| verbs.iter().any(|v| l.contains(&format!("verb=\"{v}\""))))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Writes the operator has sent to the API server so far (applies, deletes, status, events).
    pub async fn writes(&self) -> anyhow::Result<f64> {
        self.metric_sum("berth_api_writes_total").await
    }

    /// Writes of one kind of object so far (`berth_api_writes_total{kind}`).
    pub async fn writes_of(&self, kind: &str) -> anyhow::Result<f64> {
        let text = self.metrics().await?;
        let kind = format!("kind=\"{kind}\"");
        Ok(text
            .lines()
            .filter(|l| l.starts_with("berth_api_writes_total{") && l.contains(&kind))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Reconciles run so far (`berth_reconciles_total`).
    pub async fn reconciles(&self) -> anyhow::Result<f64> {
        self.metric_sum("berth_reconciles_total").await
    }

    /// Waits until this process has run at least `target` reconciles; returns the count.
    pub async fn reconciled(&self, target: f64) -> anyhow::Result<f64> {
        eventually(
            &format!("the operator reconciled {target} times"),
            || async {
                let n = self.reconciles().await?;
                Ok((n >= target).then_some(n))
            },
        )
        .await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Applies a MicroService server-side as field manager `berth-e2e` (as
/// `kubectl apply --server-side --force-conflicts` would).
pub async fn apply_microservice(
    client: &Client,
    ns: &str,
    name: &str,
    spec: &serde_json::Value,
) -> anyhow::Result<MicroService> {
    let body = json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "MicroService",
        "metadata": { "name": name, "namespace": ns }, "spec": spec,
    });
    Api::<MicroService>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("berth-e2e").force(),
            &Patch::Apply(&body),
        )
        .await
        .with_context(|| format!("applying MicroService {ns}/{name}"))
}

/// A test's namespace, with the CRD installed and an operator watching it.
pub struct Env {
    pub client: Client,
    pub ns: TestNamespace,
    pub operator: Operator,
}

impl Env {
    pub async fn new(prefix: &str) -> Self {
        let client = client().await;
        install_crd(&client).await.expect("install the CRD");
        let ns = TestNamespace::new(&client, prefix).await;
        let operator = Operator::start(&ns.name).await.expect("start the operator");
        Self {
            client,
            ns,
            operator,
        }
    }

    pub fn microservices(&self) -> Api<MicroService> {
        self.ns.api()
    }

    /// Applies a MicroService given as YAML (the spec part), like `kubectl apply --server-side`.
    pub async fn apply_microservice(
        &self,
        name: &str,
        spec_yaml: &str,
    ) -> anyhow::Result<MicroService> {
        let spec: serde_json::Value = serde_yaml::from_str(spec_yaml)?;
        apply_microservice(&self.client, &self.ns.name, name, &spec).await
    }

    /// Waits until the MicroService reports Ready=True for its current generation.
    pub async fn wait_ready(&self, name: &str) -> anyhow::Result<MicroService> {
        wait_for(&self.microservices(), name, is_ready_for_generation).await
    }
}

/// Condition: status describes the current generation and says Ready=True.
pub fn is_ready_for_generation(ms: Option<&MicroService>) -> bool {
    ms.is_some_and(|ms| {
        let status = ms.status.as_ref();
        status.and_then(|s| s.observed_generation) == ms.metadata.generation
            && status
                .map(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
                .unwrap_or(false)
    })
}

/// The status condition `type_` of a MicroService, if present.
pub fn condition(
    ms: &MicroService,
    type_: &str,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    ms.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// Runs `tests/cluster/component.sh <action> <name>` on the cluster
/// `BERTH_CLUSTER_DIR` names (the default local cluster when unset): for fault
/// tests that stop and start the API server or etcd.
pub fn cluster_component(action: &str, name: &str) -> anyhow::Result<()> {
    let script = workspace_root().join("tests/cluster/component.sh");
    let out = Command::new(&script).args([action, name]).output()?;
    if !out.status.success() {
        bail!(
            "component.sh {action} {name} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The cluster's kubectl: `$KUBECTL`, else the one the local cluster built.
pub fn kubectl() -> Command {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/berth/bin/kubectl")
    });
    Command::new(bin)
}

/// The cluster's helm: `$HELM`, else the one the local cluster built.
pub fn helm() -> Command {
    let bin = std::env::var("HELM").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/berth/bin/helm")
    });
    Command::new(bin)
}

/// Runs `cmd` to completion: its stdout, or an error with its stdout and stderr.
pub fn run_command(mut cmd: Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("{cmd:?} failed:\n{stdout}\n{stderr}");
    }
    Ok(stdout)
}

/// A Helm release a test installed. Dropping it uninstalls it (without
/// waiting), so a test that fails half-way leaves no release behind;
/// [`HelmRelease::uninstall`] is the checked, waited-for uninstall at its end.
pub struct HelmRelease {
    pub name: String,
    pub namespace: String,
    installed: bool,
}

/// `helm VERB NAME CHART -n NAMESPACE --wait` (VERB `install` or `upgrade`)
/// plus `args` (`--set`, `-f`). `--force-conflicts`: the CRD is shared by
/// every test (`install_crd` applies the same file first); this takes its
/// fields over whatever other manager last applied it.
pub fn helm_install(
    verb: &str,
    chart: &Path,
    name: &str,
    namespace: &str,
    args: &[&str],
) -> anyhow::Result<()> {
    let mut cmd = helm();
    cmd.args([verb, name])
        .arg(chart)
        .args(["--namespace", namespace, "--wait", "--timeout", "90s"])
        .arg("--force-conflicts")
        .args(args);
    run_command(cmd).map(drop)
}

/// `helm uninstall --wait`: every object of the release is gone when it returns.
pub fn helm_uninstall(name: &str, namespace: &str) -> anyhow::Result<()> {
    let mut cmd = helm();
    cmd.args(["uninstall", name, "--namespace", namespace])
        .args(["--wait", "--timeout", "90s"]);
    run_command(cmd).map(drop)
}

impl HelmRelease {
    /// [`helm_install`] of a new release, uninstalled when dropped.
    pub fn install(
        chart: &Path,
        name: &str,
        namespace: &str,
        args: &[&str],
    ) -> anyhow::Result<Self> {
        // Dropped on failure too: `--wait` may time out after creating objects.
        let release = Self {
            name: name.into(),
            namespace: namespace.into(),
            installed: true,
        };
        helm_install("install", chart, name, namespace, args)?;
        Ok(release)
    }

    /// [`helm_uninstall`], checked.
    pub fn uninstall(mut self) -> anyhow::Result<()> {
        self.installed = false;
        helm_uninstall(&self.name, &self.namespace)
    }
}

impl Drop for HelmRelease {
    fn drop(&mut self) {
        if self.installed {
            let _ = helm()
                .args(["uninstall", &self.name, "--namespace", &self.namespace])
                .output();
        }
    }
}

/// The plain value of environment variable `name` in a pod spec's first container.
pub fn container_env(spec: &k8s_openapi::api::core::v1::PodSpec, name: &str) -> Option<String> {
    spec.containers[0]
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .clone()
}

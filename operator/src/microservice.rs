//! The `MicroService` custom resource: what a service owner writes, and what
//! Berth reports back. Defaults live in the schema (the API server fills them
//! in, so `kubectl get -o yaml` shows what is in force) and validation lives in
//! CEL rules, so a bad manifest is refused at `kubectl apply` with a message a
//! person understands instead of failing later in the controller.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, LocalObjectReference, PodSecurityContext, ResourceRequirements,
    SecurityContext, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Field manager and `app.kubernetes.io/managed-by` value for everything Berth writes.
pub const MANAGER: &str = "berth-operator";
/// API group of the resource.
pub const GROUP: &str = "berth.dev";

/// The desired state of one microservice: its container, how it is exposed,
/// how it scales and what it depends on.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "berth.dev",
    version = "v1alpha1",
    kind = "MicroService",
    plural = "microservices",
    shortname = "ms",
    category = "berth",
    namespaced,
    status = "MicroServiceStatus",
    derive = "PartialEq",
    doc = "A microservice: one container image that Berth runs as a Deployment with a Service, and optionally a HorizontalPodAutoscaler and a PodDisruptionBudget.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".status.desiredReplicas", description = "Replicas the Deployment is asked for (by spec.replicas or the autoscaler)"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Min", type_ = "integer", json_path = ".spec.autoscaling.minReplicas", description = "Autoscaling minimum"),
    printcolumn(name = "Max", type_ = "integer", json_path = ".spec.autoscaling.maxReplicas", description = "Autoscaling maximum"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", priority = 1),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("!has(self.spec.dependencies) || !(self.metadata.name in self.spec.dependencies)").message("spec.dependencies must not name the MicroService itself").field_path(".spec.dependencies"),
    validation = Rule::new("!has(self.spec.autoscaling) || !has(oldSelf.spec.autoscaling) || self.spec.replicas == oldSelf.spec.replicas").message("spec.replicas cannot change while autoscaling is on: the HorizontalPodAutoscaler owns the replica count. Change spec.autoscaling.minReplicas/maxReplicas instead, or remove spec.autoscaling to set replicas by hand").field_path(".spec.replicas").reason(kube::core::Reason::FieldValueForbidden),
    validation = Rule::new("size(self.metadata.name) <= 63").message("a MicroService name must be at most 63 characters: it becomes the Service's DNS name")
)]
#[serde(rename_all = "camelCase")]
pub struct MicroServiceSpec {
    /// Container image, e.g. `registry.example.com/item:1.4.2`.
    #[x_kube(validation = Rule::new("size(self) > 0").message("image must not be empty"))]
    #[schemars(length(max = 512))]
    pub image: String,

    /// When the kubelet pulls the image (Always, IfNotPresent, Never). Kubernetes' default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Overrides the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,

    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,

    /// Number of pods when autoscaling is off. While `autoscaling` stays set it cannot be
    /// changed (`kubectl scale` is refused): the autoscaler owns the count.
    #[serde(default = "default_replicas")]
    #[x_kube(validation = Rule::new("self >= 0").message("replicas must not be negative"))]
    pub replicas: i32,

    /// Port the container listens on.
    #[serde(default = "default_port")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port must be between 1 and 65535"))]
    pub port: i32,

    /// How the Kubernetes Service exposes the container port.
    #[serde(default)]
    pub service: ServiceExposure,

    /// Environment variables (`value`, or `valueFrom` a Secret or ConfigMap key), as in a Pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Vec<EnvVar>,

    /// Whole Secrets or ConfigMaps to expose as environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,

    /// CPU and memory requests and limits of the container. Autoscaling on utilization needs requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// HTTP health checks of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,

    /// Horizontal autoscaling. When set, a HorizontalPodAutoscaler owns the replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,

    /// Names of other MicroServices in this namespace that this one calls. Each injects
    /// `<NAME>_URL` (e.g. `ITEM_URL=http://item.<ns>.svc.cluster.local:80`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 63)))]
    #[x_kube(
        merge_strategy = ListMerge::Set,
        validation = Rule::new("self.all(d, d.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))").message("each dependency must be the name of a MicroService: a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)")
    )]
    pub dependencies: Vec<String>,

    /// A PodDisruptionBudget for voluntary disruptions (node drains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_budget: Option<DisruptionBudget>,

    /// Rolling update settings of the Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,

    /// How a pod stops: how long it keeps serving while traffic moves away,
    /// and how long its process then has before it is killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<Shutdown>,

    /// How Prometheus finds the pods' metrics. On by default: the pods carry the
    /// `prometheus.io/*` scrape annotations, and a PodMonitor is created where
    /// the cluster has the Prometheus Operator's CRDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Monitoring>,

    /// ServiceAccount the pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// Secrets used to pull the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Extra labels on the pods. `berth.dev/microservice` is reserved for the selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("!('berth.dev/microservice' in self)").message("podLabels must not set berth.dev/microservice: Berth selects the service's pods with it"))]
    pub pod_labels: BTreeMap<String, String>,

    /// Extra annotations on the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,

    /// Node labels the pods must be scheduled on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Replaces Berth's restricted container security context (non-root, read-only root
    /// filesystem, no privilege escalation, all capabilities dropped, seccomp RuntimeDefault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,

    /// Replaces Berth's pod security context (runAsNonRoot, seccomp RuntimeDefault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
}

fn default_replicas() -> i32 {
    1
}
fn default_port() -> i32 {
    8080
}

/// When the kubelet pulls the image.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// How the Service exposes the container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceExposure {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Port the Service listens on; traffic goes to the container `port`.
    #[serde(default = "default_service_port")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("service.port must be between 1 and 65535"))]
    pub port: i32,
}

impl Default for ServiceExposure {
    fn default() -> Self {
        Self {
            type_: ServiceType::default(),
            port: default_service_port(),
        }
    }
}

fn default_service_port() -> i32 {
    80
}

/// Kubernetes Service types Berth supports.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

/// HTTP probes by path. Each set path becomes an HTTP GET probe on the container port.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Liveness probe path, e.g. `/healthz`: the container is restarted when it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("health.liveness must be an HTTP path starting with '/'"))]
    #[schemars(length(max = 256))]
    pub liveness: Option<String>,
    /// Readiness probe path, e.g. `/readyz`: the pod gets traffic only while it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("health.readiness must be an HTTP path starting with '/'"))]
    #[schemars(length(max = 256))]
    pub readiness: Option<String>,
    /// Startup probe path: liveness and readiness wait until it passes once (slow starters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("health.startup must be an HTTP path starting with '/'"))]
    #[schemars(length(max = 256))]
    pub startup: Option<String>,
    /// Seconds between probes (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("health.periodSeconds must be at least 1"))]
    pub period_seconds: Option<i32>,
    /// Seconds before a probe times out (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("health.timeoutSeconds must be at least 1"))]
    pub timeout_seconds: Option<i32>,
    /// Consecutive failures before liveness restarts or readiness removes the pod (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("health.failureThreshold must be at least 1"))]
    pub failure_threshold: Option<i32>,
    /// How long the startup probe may take in total, in seconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("health.startupTimeoutSeconds must be at least 1"))]
    pub startup_timeout_seconds: Option<i32>,
}

/// Horizontal autoscaling, realised as an `autoscaling/v2` HorizontalPodAutoscaler.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not be greater than autoscaling.maxReplicas"))]
pub struct Autoscaling {
    /// Fewest pods (default 1).
    #[serde(default = "default_min_replicas")]
    #[x_kube(validation = Rule::new("self >= 1").message("autoscaling.minReplicas must be at least 1"))]
    pub min_replicas: i32,
    /// Most pods.
    #[x_kube(validation = Rule::new("self >= 1").message("autoscaling.maxReplicas must be at least 1"))]
    pub max_replicas: i32,
    /// Target average CPU use as a percentage of the CPU request. Default 80 when no target is set.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "targetCPUUtilizationPercentage"
    )]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("autoscaling.targetCPUUtilizationPercentage must be between 1 and 100"))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// Target average memory use as a percentage of the memory request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("autoscaling.targetMemoryUtilizationPercentage must be between 1 and 100"))]
    pub target_memory_utilization_percentage: Option<i32>,
    /// Target average HTTP requests per second per pod. The HPA reads it as the
    /// `Pods` metric `http_requests_per_second` from the custom metrics API
    /// (`custom.metrics.k8s.io`, e.g. prometheus-adapter over the services'
    /// `http_requests_total` counters); without such an API the HPA reports
    /// `ScalingActive=False` and so does the MicroService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("autoscaling.targetRequestsPerSecond must be at least 1"))]
    pub target_requests_per_second: Option<i32>,
    /// Scale-up and scale-down policies and stabilization windows, passed to the HPA as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

fn default_min_replicas() -> i32 {
    1
}

/// A PodDisruptionBudget. Set at most one field; neither means `maxUnavailable: 1`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.minAvailable) && has(self.maxUnavailable))").message("set at most one of disruptionBudget.minAvailable and disruptionBudget.maxUnavailable"))]
pub struct DisruptionBudget {
    /// Pods (number or percentage) that must stay available during a disruption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    /// Pods (number or percentage) that may be unavailable during a disruption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// Rolling update settings. Berth's defaults keep every pod serving until its
/// replacement is Ready: `maxSurge: 25%` and `maxUnavailable: 0` (1 when
/// `maxSurge` is 0, since a rollout needs room on one side).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdate {
    /// Extra pods (number or percentage) allowed above the desired count during a rollout (default 25%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Pods (number or percentage) that may be unavailable during a rollout (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// How a pod stops. Kubernetes removes a terminating pod from its Service's
/// endpoints at the same moment it starts stopping the pod, and kube-proxy
/// on every node needs a moment to follow; a pod that stopped serving at
/// once would refuse the requests still on their way. So the pod first keeps
/// running for `drainSeconds` (a preStop sleep, done by the kubelet: the
/// image needs no `sleep` binary), then gets SIGTERM and has
/// `timeoutSeconds` to finish its requests before SIGKILL. The pod's
/// `terminationGracePeriodSeconds` is the sum.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Shutdown {
    /// Seconds a terminating pod keeps serving before SIGTERM, while traffic moves away (default 5; 0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 300").message("shutdown.drainSeconds must be between 0 and 300"))]
    pub drain_seconds: Option<i32>,
    /// Seconds the process has after SIGTERM to finish before SIGKILL (default 30, Kubernetes' own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 3600").message("shutdown.timeoutSeconds must be between 1 and 3600"))]
    pub timeout_seconds: Option<i32>,
}

impl Shutdown {
    /// Default of `drainSeconds`.
    pub const DRAIN_SECONDS: i32 = 5;
    /// Default of `timeoutSeconds`.
    pub const TIMEOUT_SECONDS: i32 = 30;

    pub fn drain_seconds(&self) -> i32 {
        self.drain_seconds.unwrap_or(Self::DRAIN_SECONDS)
    }

    pub fn timeout_seconds(&self) -> i32 {
        self.timeout_seconds.unwrap_or(Self::TIMEOUT_SECONDS)
    }
}

/// How Prometheus finds a MicroService's metrics. Two ways, both kept so any
/// Prometheus setup finds the pods without extra YAML: the conventional
/// `prometheus.io/scrape`, `/port`, `/path` and `/interval` pod annotations
/// (read by a Prometheus that discovers pods itself), and a PodMonitor
/// (`monitoring.coreos.com/v1`, read by the Prometheus Operator) when the
/// cluster serves that kind. A PodMonitor rather than a ServiceMonitor: it
/// reaches every pod on any port, so the metrics port need not be in the Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Monitoring {
    /// Whether the pods are made scrapeable (default true). false: no annotations, no PodMonitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Port of the metrics endpoint (default: `port`, the container's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("monitoring.port must be between 1 and 65535"))]
    pub port: Option<i32>,
    /// Path of the metrics endpoint (default `/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("monitoring.path must start with '/', e.g. /metrics"))]
    pub path: Option<String>,
    /// How often Prometheus scrapes, as Prometheus writes a duration (default `30s`; e.g. `15s`, `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.matches('^[1-9][0-9]*(ms|s|m|h)$')").message("monitoring.interval must be a Prometheus duration such as 15s, 1m or 500ms"))]
    pub interval: Option<String>,
}

impl Monitoring {
    /// Default of `path`.
    pub const PATH: &str = "/metrics";
    /// Default of `interval`.
    pub const INTERVAL: &str = "30s";

    pub fn enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    /// `self` if monitoring is on.
    pub fn enabled_then(self) -> Option<Self> {
        self.enabled().then_some(self)
    }

    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or(Self::PATH)
    }

    pub fn interval(&self) -> &str {
        self.interval.as_deref().unwrap_or(Self::INTERVAL)
    }
}

/// What Berth observed, written by the controller only.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MicroServiceStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods of the Deployment (the scale subresource's status replicas).
    #[serde(default)]
    pub replicas: i32,
    /// Replicas the Deployment is asked for: `spec.replicas`, or the autoscaler's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// Pods passing their readiness probe.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods running the current pod template.
    #[serde(default)]
    pub updated_replicas: i32,
    /// Pods available (ready for at least minReadySeconds).
    #[serde(default)]
    pub available_replicas: i32,
    /// Label selector of the pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// In-cluster URL of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The autoscaler's view, when autoscaling is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerStatus>,
    /// Each dependency and whether it exists and is Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<DependencyStatus>,
    /// `Ready`, `Progressing`, `Degraded` and `DependenciesReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The HorizontalPodAutoscaler's view of the service.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerStatus {
    /// Replicas the autoscaler last saw.
    #[serde(default)]
    pub current_replicas: i32,
    /// Replicas the autoscaler wants.
    #[serde(default)]
    pub desired_replicas: i32,
    /// When the autoscaler last changed the replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
}

/// Whether one dependency exists and is Ready.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DependencyStatus {
    /// The dependency's MicroService name.
    pub name: String,
    /// `Ready`, `NotReady`, `ScaledToZero`, `Terminating` or `Missing`.
    pub state: DependencyState,
    /// The URL injected into this service's environment.
    pub url: String,
}

/// The state of one dependency.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DependencyState {
    Ready,
    NotReady,
    /// Ready for itself at `replicas: 0`, but nothing answers at its URL.
    ScaledToZero,
    /// Being deleted: it will be gone soon, so it is not Ready whatever its
    /// last status says.
    Terminating,
    Missing,
}

/// Condition types a MicroService reports.
pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const DEPENDENCIES_READY: &str = "DependenciesReady";
/// Mirrors the HPA's own `ScalingActive`: False when it cannot read its metrics.
pub const SCALING_ACTIVE: &str = "ScalingActive";
/// Whether Prometheus can find the pods: a PodMonitor exists, or why not.
/// Reported only while monitoring is on.
pub const MONITORED: &str = "Monitored";

impl MicroService {
    /// Whether it reports `Ready=True`.
    pub fn is_ready(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY))
            .is_some_and(|c| c.status == "True")
    }

    /// Whether it is being deleted (it has a `deletionTimestamp`).
    pub fn is_terminating(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }
}

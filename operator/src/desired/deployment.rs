//! The Deployment that runs a MicroService's pods.
//!
//! Replicas: with autoscaling on, `spec.replicas` is left out of what Berth
//! applies, so the HorizontalPodAutoscaler owns it and the two never fight
//! (the hand-over itself is in `apply`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, Lifecycle,
    LifecycleHandler, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecurityContext, SleepAction, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{DesiredError, child_meta, labels, with_spec_hash};
use crate::dependencies::{ResolvedDependency, env_var_name};
use crate::microservice::{
    Autoscaling, Health, ImagePullPolicy, MicroService, RollingUpdate, Shutdown,
};

/// Name of the container port; probes and the Service refer to it by name.
pub const CONTAINER_PORT_NAME: &str = "http";

/// Where the writable scratch volume is mounted, since the root filesystem is read-only.
const TMP_MOUNT: &str = "/tmp";

/// The Deployment `ms` asks for.
pub fn desired_deployment(
    ms: &MicroService,
    deps: &[ResolvedDependency],
) -> Result<Deployment, DesiredError> {
    let spec = &ms.spec;
    let replicas = spec.autoscaling.is_none().then_some(spec.replicas);
    let strategy = Some(strategy(spec.rolling_update.as_ref()));
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels::pod(ms)),
            annotations: non_empty_map(pod_annotations(ms)),
            ..ObjectMeta::default()
        }),
        spec: Some(pod_spec(ms, deps)),
    };
    Ok(with_spec_hash(Deployment {
        metadata: ObjectMeta {
            labels: Some(labels::versioned(ms)),
            ..child_meta(ms)?
        },
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(labels::selector(ms)),
                match_expressions: None,
            },
            strategy,
            template,
            ..DeploymentSpec::default()
        }),
        status: None,
    }))
}

/// The user's pod annotations over the `prometheus.io/*` scrape annotations
/// (a user who sets one of those keeps their value).
fn pod_annotations(ms: &MicroService) -> BTreeMap<String, String> {
    let mut annotations = super::monitoring::scrape_annotations(ms);
    annotations.extend(ms.spec.pod_annotations.clone());
    annotations
}

fn non_empty_map(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

/// A rolling update that never takes a serving pod away before its
/// replacement is Ready, unless the user says otherwise.
fn strategy(user: Option<&RollingUpdate>) -> DeploymentStrategy {
    let user = user.cloned().unwrap_or_default();
    let is_zero = |v: &IntOrString| match v {
        IntOrString::Int(n) => *n == 0,
        IntOrString::String(s) => s.trim_end_matches('%') == "0",
    };
    let max_surge = user
        .max_surge
        .unwrap_or_else(|| IntOrString::String("25%".into()));
    // Both zero leaves a rollout no room to move, and the API server refuses it.
    let max_unavailable = user
        .max_unavailable
        .unwrap_or(IntOrString::Int(if is_zero(&max_surge) { 1 } else { 0 }));
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(max_surge),
            max_unavailable: Some(max_unavailable),
        }),
    }
}

/// Sets the replicas of a Deployment about to be created with autoscaling on:
/// `spec.replicas` kept within the autoscaler's range. A start at one needs
/// nothing: that is Kubernetes' default for an unset count, and leaving it
/// unset spares the hand-over (two more writes) on the next pass.
pub fn start_within_autoscaling_range(
    deployment: Deployment,
    autoscaling: &Autoscaling,
    replicas: i32,
) -> Deployment {
    let max = autoscaling.max_replicas.max(autoscaling.min_replicas);
    let start = replicas.clamp(autoscaling.min_replicas, max);
    if start == 1 {
        return deployment;
    }
    let mut deployment = deployment;
    if let Some(spec) = deployment.spec.as_mut() {
        spec.replicas = Some(start);
    }
    // The hash must say that this apply set replicas, so the next pass sees a
    // difference and hands them over.
    with_spec_hash(deployment)
}

fn pod_spec(ms: &MicroService, deps: &[ResolvedDependency]) -> PodSpec {
    let spec = &ms.spec;
    let shutdown = spec.shutdown.clone().unwrap_or_default();
    let container = Container {
        name: ms.name_any(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| pull_policy(p).into()),
        command: spec.command.clone(),
        args: spec.args.clone(),
        ports: Some(vec![ContainerPort {
            name: Some(CONTAINER_PORT_NAME.into()),
            container_port: spec.port,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: non_empty(environment(ms, deps)),
        env_from: non_empty(spec.env_from.clone()),
        resources: spec.resources.clone(),
        liveness_probe: spec.health.as_ref().and_then(liveness_probe),
        readiness_probe: Some(readiness_probe(spec.health.as_ref())),
        lifecycle: pre_stop(&shutdown),
        startup_probe: spec.health.as_ref().and_then(startup_probe),
        security_context: Some(
            spec.security_context
                .clone()
                .unwrap_or_else(restricted_container_security_context),
        ),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".into(),
            mount_path: TMP_MOUNT.into(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    PodSpec {
        containers: vec![container],
        termination_grace_period_seconds: Some(i64::from(
            shutdown.drain_seconds() + shutdown.timeout_seconds(),
        )),
        service_account_name: spec.service_account_name.clone(),
        image_pull_secrets: non_empty(spec.image_pull_secrets.clone()),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: non_empty(spec.tolerations.clone()),
        security_context: Some(
            spec.pod_security_context
                .clone()
                .unwrap_or_else(restricted_pod_security_context),
        ),
        volumes: Some(vec![Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        }]),
        ..PodSpec::default()
    }
}

/// The user's `env`, then one `<DEP>_URL` per dependency the user did not set themselves.
fn environment(ms: &MicroService, deps: &[ResolvedDependency]) -> Vec<EnvVar> {
    let mut env = ms.spec.env.clone();
    // A `fieldRef` is owned whole (an atomic struct), so the API server's
    // default inside it would read as a change Berth did not make: say it.
    for field_ref in env
        .iter_mut()
        .filter_map(|e| e.value_from.as_mut()?.field_ref.as_mut())
    {
        field_ref.api_version.get_or_insert_with(|| "v1".into());
    }
    for dep in deps {
        let name = env_var_name(&dep.name);
        if !env.iter().any(|e| e.name == name) {
            env.push(EnvVar {
                name,
                value: Some(dep.url.clone()),
                value_from: None,
            });
        }
    }
    env
}

fn pull_policy(p: ImagePullPolicy) -> &'static str {
    match p {
        ImagePullPolicy::Always => "Always",
        ImagePullPolicy::IfNotPresent => "IfNotPresent",
        ImagePullPolicy::Never => "Never",
    }
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

const DEFAULT_PERIOD_SECONDS: i32 = 10;
const DEFAULT_TIMEOUT_SECONDS: i32 = 2;
const DEFAULT_FAILURE_THRESHOLD: i32 = 3;
const DEFAULT_STARTUP_TIMEOUT_SECONDS: i32 = 300;
/// Liveness grace when there is no startup probe to hold it back.
const LIVENESS_DELAY_WITHOUT_STARTUP: i32 = 10;

fn http_probe(health: &Health, path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(CONTAINER_PORT_NAME.into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        ..timed_probe(health)
    }
}

/// A probe's timing, as `health` says or by default; the check itself is the caller's.
fn timed_probe(health: &Health) -> Probe {
    Probe {
        period_seconds: Some(health.period_seconds.unwrap_or(DEFAULT_PERIOD_SECONDS)),
        timeout_seconds: Some(health.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS)),
        failure_threshold: Some(
            health
                .failure_threshold
                .unwrap_or(DEFAULT_FAILURE_THRESHOLD),
        ),
        success_threshold: Some(1),
        ..Probe::default()
    }
}

fn liveness_probe(health: &Health) -> Option<Probe> {
    let path = health.liveness.as_deref()?;
    // The API server drops a zero delay, so "none" is written as absent: a
    // zero here would make the live object look different from the desired one.
    let delay = health
        .startup
        .is_none()
        .then_some(LIVENESS_DELAY_WITHOUT_STARTUP);
    Some(Probe {
        initial_delay_seconds: delay,
        ..http_probe(health, path)
    })
}

/// The readiness path when one is given; otherwise the port accepting
/// connections, so that a pod gets traffic only once it listens (and a
/// rollout waits for that) whatever the image.
fn readiness_probe(health: Option<&Health>) -> Probe {
    let default = Health::default();
    let health = health.unwrap_or(&default);
    match health.readiness.as_deref() {
        Some(path) => http_probe(health, path),
        None => Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String(CONTAINER_PORT_NAME.into()),
                host: None,
            }),
            ..timed_probe(health)
        },
    }
}

/// The drain before SIGTERM, as a preStop sleep (see `Shutdown`).
fn pre_stop(shutdown: &Shutdown) -> Option<Lifecycle> {
    let seconds = shutdown.drain_seconds();
    (seconds > 0).then(|| Lifecycle {
        pre_stop: Some(LifecycleHandler {
            sleep: Some(SleepAction {
                seconds: i64::from(seconds),
            }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    })
}

/// The startup probe gets as many attempts as fit in `startupTimeoutSeconds`.
fn startup_probe(health: &Health) -> Option<Probe> {
    let probe = http_probe(health, health.startup.as_deref()?);
    let period = probe
        .period_seconds
        .unwrap_or(DEFAULT_PERIOD_SECONDS)
        .max(1);
    let timeout = health
        .startup_timeout_seconds
        .unwrap_or(DEFAULT_STARTUP_TIMEOUT_SECONDS);
    Some(Probe {
        failure_threshold: Some(((timeout + period - 1) / period).max(1)),
        ..probe
    })
}

/// The "restricted" Pod Security Standard, container part.
pub fn restricted_container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

/// The "restricted" Pod Security Standard, pod part.
pub fn restricted_pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..PodSecurityContext::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}

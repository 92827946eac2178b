//! Status: a pure function from the MicroService and what was observed of its
//! children to the status to report. Conditions keep their
//! `lastTransitionTime` unless their status flips, so computing the same
//! status twice gives an equal value and the reconciler can skip the write.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

use crate::dependencies::service_url;
use crate::desired::labels;
use crate::microservice::{
    AutoscalerStatus, DependencyState, DependencyStatus, MicroService, MicroServiceStatus,
    Monitoring,
};

pub use crate::microservice::{
    DEGRADED, DEPENDENCIES_READY, MONITORED, PROGRESSING, READY, SCALING_ACTIVE,
};

/// A reason the controller could not realise the spec, shown as `Degraded`.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub reason: FailureReason,
    pub message: String,
}

/// Why the spec could not be realised; the condition's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// A child's name is taken by an object Berth does not control.
    ChildConflict,
    /// The API server refused a child as invalid.
    InvalidChild,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ChildConflict => "ChildConflict",
            FailureReason::InvalidChild => "InvalidChild",
        }
    }
}

/// What the reconciler saw of the world this pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observed<'a> {
    pub deployment: Option<&'a Deployment>,
    pub autoscaler: Option<&'a HorizontalPodAutoscaler>,
    pub dependencies: &'a [DependencyStatus],
    pub failure: Option<&'a Failure>,
    pub monitor: MonitorObserved<'a>,
}

/// What was seen of the PodMonitor this pass.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum MonitorObserved<'a> {
    /// The cluster serves the kind; whether Berth's PodMonitor exists.
    Served { exists: bool },
    /// The cluster does not serve the kind (no Prometheus Operator CRDs), and why.
    NotServed(&'a str),
    /// Not known yet (only before the caches have synced).
    #[default]
    Unknown,
}

/// The status `ms` should report, given what was observed, at time `now`.
pub fn compute(ms: &MicroService, observed: Observed<'_>, now: &Time) -> MicroServiceStatus {
    let generation = ms.metadata.generation;
    let previous = ms.status.as_ref();
    let rollout = Rollout::of(ms, observed.deployment);
    let autoscaler = observed
        .autoscaler
        .and_then(|hpa| hpa.status.as_ref())
        .map(|s| AutoscalerStatus {
            current_replicas: s.current_replicas.unwrap_or_default(),
            desired_replicas: s.desired_replicas,
            last_scale_time: s.last_scale_time.clone(),
        });

    let mut conditions = vec![
        ready_condition(&rollout, observed.failure),
        progressing_condition(&rollout),
        degraded_condition(&rollout, observed.failure),
        dependencies_condition(observed.dependencies),
    ];
    if ms.spec.autoscaling.is_some() {
        conditions.push(scaling_active_condition(observed.autoscaler));
    }
    if let Some(monitoring) = ms
        .spec
        .monitoring
        .clone()
        .unwrap_or_default()
        .enabled_then()
    {
        conditions.push(monitored_condition(ms, &monitoring, observed.monitor));
    }
    let conditions = conditions
        .into_iter()
        .map(|(type_, status, reason, message)| {
            let last_transition_time = previous
                .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
                .filter(|c| c.status == status)
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
            Condition {
                type_: type_.into(),
                status: status.into(),
                reason,
                message,
                last_transition_time,
                observed_generation: generation,
            }
        })
        .collect();

    MicroServiceStatus {
        observed_generation: generation,
        replicas: rollout.replicas,
        desired_replicas: Some(rollout.desired),
        ready_replicas: rollout.ready,
        updated_replicas: rollout.updated,
        available_replicas: rollout.available,
        selector: Some(labels::selector_string(ms)),
        url: Some(service_url(
            &ms.name_any(),
            &ms.namespace().unwrap_or_default(),
            ms.spec.service.port,
        )),
        autoscaler,
        dependencies: observed.dependencies.to_vec(),
        conditions,
    }
}

/// The Deployment's progress, reduced to what the conditions need.
struct Rollout {
    exists: bool,
    desired: i32,
    replicas: i32,
    ready: i32,
    updated: i32,
    available: i32,
    /// The Deployment controller has seen the latest template.
    observed: bool,
    /// Deployment condition that says it is stuck, if any: (reason, message).
    stuck: Option<(String, String)>,
}

impl Rollout {
    fn of(ms: &MicroService, deployment: Option<&Deployment>) -> Self {
        let desired = deployment
            .and_then(|d| d.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(ms.spec.replicas);
        let status = deployment.and_then(|d| d.status.as_ref());
        let observed = match (deployment, status) {
            (Some(d), Some(s)) => s.observed_generation >= d.metadata.generation,
            _ => false,
        };
        let stuck = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|conditions| {
                conditions.iter().find_map(|c| {
                    let deadline = c.type_ == "Progressing" && c.status == "False";
                    let failure = c.type_ == "ReplicaFailure" && c.status == "True";
                    (deadline || failure).then(|| {
                        (
                            c.reason.clone().unwrap_or_else(|| c.type_.clone()),
                            c.message.clone().unwrap_or_default(),
                        )
                    })
                })
            });
        Self {
            exists: deployment.is_some(),
            desired,
            replicas: status.and_then(|s| s.replicas).unwrap_or_default(),
            ready: status.and_then(|s| s.ready_replicas).unwrap_or_default(),
            updated: status.and_then(|s| s.updated_replicas).unwrap_or_default(),
            available: status
                .and_then(|s| s.available_replicas)
                .unwrap_or_default(),
            observed,
            stuck,
        }
    }

    /// Every pod runs the current template, no old pod is left, and all are available.
    fn complete(&self) -> bool {
        self.exists
            && self.observed
            && self.updated >= self.desired
            && self.replicas <= self.desired
            && self.available >= self.desired
    }
}

type ConditionParts = (&'static str, &'static str, String, String);

fn ready_condition(rollout: &Rollout, failure: Option<&Failure>) -> ConditionParts {
    if let Some(failure) = failure {
        return (
            READY,
            "False",
            failure.reason.as_str().into(),
            failure.message.clone(),
        );
    }
    if !rollout.exists {
        return (
            READY,
            "False",
            "DeploymentMissing".into(),
            "the Deployment does not exist yet".into(),
        );
    }
    if rollout.complete() && rollout.ready >= rollout.desired {
        let reason = if rollout.desired == 0 {
            "ScaledToZero"
        } else {
            "AllReplicasReady"
        };
        let message = format!("{}/{} pods ready", rollout.ready, rollout.desired);
        return (READY, "True", reason.into(), message);
    }
    let message = format!(
        "{}/{} pods ready, {}/{} updated",
        rollout.ready, rollout.desired, rollout.updated, rollout.desired
    );
    (READY, "False", "ReplicasNotReady".into(), message)
}

fn progressing_condition(rollout: &Rollout) -> ConditionParts {
    if rollout.complete() {
        (
            PROGRESSING,
            "False",
            "RolloutComplete".into(),
            "the Deployment is up to date".into(),
        )
    } else {
        let message = format!("{}/{} pods updated", rollout.updated, rollout.desired);
        (PROGRESSING, "True", "RollingOut".into(), message)
    }
}

fn degraded_condition(rollout: &Rollout, failure: Option<&Failure>) -> ConditionParts {
    if let Some(failure) = failure {
        return (
            DEGRADED,
            "True",
            failure.reason.as_str().into(),
            failure.message.clone(),
        );
    }
    if let Some((reason, message)) = &rollout.stuck {
        return (DEGRADED, "True", reason.clone(), message.clone());
    }
    (DEGRADED, "False", "AsExpected".into(), String::new())
}

fn dependencies_condition(deps: &[DependencyStatus]) -> ConditionParts {
    let names = |state: DependencyState| -> Vec<&str> {
        deps.iter()
            .filter(|d| d.state == state)
            .map(|d| d.name.as_str())
            .collect()
    };
    let missing = names(DependencyState::Missing);
    // The other states that are not Ready, each with how the message says it.
    let unready = [
        (DependencyState::NotReady, "not ready"),
        (DependencyState::ScaledToZero, "scaled to zero"),
        (DependencyState::Terminating, "being deleted"),
    ];
    if deps.is_empty() {
        return (
            DEPENDENCIES_READY,
            "True",
            "NoDependencies".into(),
            String::new(),
        );
    }
    if deps.iter().all(|d| d.state == DependencyState::Ready) {
        return (
            DEPENDENCIES_READY,
            "True",
            "AllDependenciesReady".into(),
            String::new(),
        );
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing: {}", missing.join(", ")));
    }
    for (state, said) in unready {
        let these = names(state);
        if !these.is_empty() {
            parts.push(format!("{said}: {}", these.join(", ")));
        }
    }
    let reason = if missing.is_empty() {
        "DependenciesNotReady"
    } else {
        "DependenciesMissing"
    };
    (DEPENDENCIES_READY, "False", reason.into(), parts.join("; "))
}

fn scaling_active_condition(hpa: Option<&HorizontalPodAutoscaler>) -> ConditionParts {
    let hpa_condition = hpa
        .and_then(|h| h.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == SCALING_ACTIVE));
    let workload = hpa.and_then(|h| h.metadata.name.as_deref()).unwrap_or("");
    let message = |c: &k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerCondition| {
        without_pod_names(c.message.as_deref().unwrap_or_default(), workload)
    };
    match hpa_condition {
        Some(c) if c.status == "True" => (
            SCALING_ACTIVE,
            "True",
            c.reason
                .clone()
                .unwrap_or_else(|| "ValidMetricFound".into()),
            message(c),
        ),
        Some(c) => (
            SCALING_ACTIVE,
            "False",
            c.reason.clone().unwrap_or_else(|| "ScalingInactive".into()),
            message(c),
        ),
        None => (
            SCALING_ACTIVE,
            "Unknown",
            "AutoscalerPending".into(),
            "the HorizontalPodAutoscaler has not reported yet".into(),
        ),
    }
}

/// Whether Prometheus can find the pods, and how. The annotations are always
/// there; the PodMonitor only where the cluster has the kind. Without it the
/// condition stays True (a Prometheus that discovers pods finds them) and
/// says why there is no PodMonitor; only a PodMonitor that should exist but
/// does not is False.
fn monitored_condition(
    ms: &MicroService,
    monitoring: &Monitoring,
    seen: MonitorObserved<'_>,
) -> ConditionParts {
    let port = monitoring.port.unwrap_or(ms.spec.port);
    let scrape = format!(
        "port {port}, path {}, every {}",
        monitoring.path(),
        monitoring.interval()
    );
    match seen {
        MonitorObserved::Served { exists: true } => (
            MONITORED,
            "True",
            "PodMonitorReady".into(),
            format!(
                "PodMonitor {} and the pods' prometheus.io annotations: {scrape}",
                ms.name_any()
            ),
        ),
        MonitorObserved::Served { exists: false } => (
            MONITORED,
            "False",
            "PodMonitorMissing".into(),
            format!("the PodMonitor {} does not exist yet", ms.name_any()),
        ),
        MonitorObserved::NotServed(why) => (
            MONITORED,
            "True",
            "AnnotationsOnly".into(),
            format!(
                "the pods carry prometheus.io annotations ({scrape}); no PodMonitor: the cluster does not serve \
                 monitoring.coreos.com/v1 PodMonitor ({why}). Install the Prometheus Operator's CRDs to get one"
            ),
        ),
        MonitorObserved::Unknown => (
            MONITORED,
            "Unknown",
            "MonitoringPending".into(),
            "not yet known whether the cluster serves PodMonitors".into(),
        ),
    }
}

/// Some HPA messages name one pod ("missing request for memory in container
/// web of Pod web-6d8f5bf5d9-x9vqf"), and which pod changes from one HPA
/// sync to the next. Pods of `workload` (named `<workload>-<hash>-<id>`) are
/// written as `<workload>-…`, so the condition, and with it the status,
/// changes only when what it says changes: a quiet cluster stays quiet.
fn without_pod_names(message: &str, workload: &str) -> String {
    if workload.is_empty() {
        return message.to_owned();
    }
    let prefix = format!("{workload}-");
    let is_pod_suffix = |rest: &str| {
        let mut parts = rest.split('-');
        let (hash, id) = (parts.next(), parts.next());
        parts.next().is_none()
            && [hash, id].iter().all(|p| {
                p.is_some_and(|p| {
                    !p.is_empty()
                        && p.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                })
            })
    };
    message
        .split(' ')
        .map(|word| {
            let name = word.trim_end_matches([',', '.', ':', ';', ')', '"', '\'']);
            match name.strip_prefix(&prefix) {
                Some(rest) if is_pod_suffix(rest) => {
                    format!("{prefix}…{}", &word[name.len()..])
                }
                _ => word.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;

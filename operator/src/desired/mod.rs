//! Desired state: pure functions from a `MicroService` (and what is known about
//! its dependencies) to the child objects it asks for. No IO happens here, so
//! every rule about what the cluster should contain is unit-tested without a
//! cluster. The reconciler applies what [`children`] returns and deletes the
//! optional children that came back `None`.

mod autoscaler;
mod deployment;
mod disruption_budget;
pub mod labels;
mod monitoring;
mod service;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::dependencies::ResolvedDependency;
use crate::microservice::MicroService;

pub use autoscaler::desired_autoscaler;
pub use deployment::{CONTAINER_PORT_NAME, desired_deployment, start_within_autoscaling_range};
pub use disruption_budget::desired_disruption_budget;
pub use monitoring::{MICROSERVICE_TARGET_LABEL, PodMonitor, desired_pod_monitor};
pub use service::desired_service;

/// Annotation holding a hash of everything Berth asked for in a child, so the
/// reconciler can tell "already applied" from "needs applying" without a write.
pub const SPEC_HASH_ANNOTATION: &str = "berth.dev/spec-hash";

/// Everything one MicroService asks the cluster to contain.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    pub deployment: Deployment,
    pub service: Service,
    /// `None` when autoscaling is off: an existing autoscaler must be deleted.
    pub autoscaler: Option<HorizontalPodAutoscaler>,
    /// `None` when no disruption budget is asked for: an existing one must be deleted.
    pub disruption_budget: Option<PodDisruptionBudget>,
    /// `None` when monitoring is off. Applied only where the cluster serves
    /// the kind (the Prometheus Operator's CRDs); the reconciler decides.
    pub pod_monitor: Option<PodMonitor>,
}

/// Why desired state could not be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DesiredError {
    #[error("MicroService has no {0} yet (not persisted by the API server)")]
    MissingMetadata(&'static str),
}

/// The children `ms` asks for, given what is known of its dependencies.
pub fn children(ms: &MicroService, deps: &[ResolvedDependency]) -> Result<Children, DesiredError> {
    Ok(Children {
        deployment: desired_deployment(ms, deps)?,
        service: desired_service(ms)?,
        autoscaler: desired_autoscaler(ms)?,
        disruption_budget: desired_disruption_budget(ms)?,
        pod_monitor: desired_pod_monitor(ms)?,
    })
}

/// Metadata every child shares: same name and namespace as the MicroService,
/// Berth's labels, and a controller owner reference so deleting the
/// MicroService garbage-collects the child.
pub(crate) fn child_meta(ms: &MicroService) -> Result<ObjectMeta, DesiredError> {
    let namespace = ms
        .namespace()
        .ok_or(DesiredError::MissingMetadata("namespace"))?;
    Ok(ObjectMeta {
        name: Some(ms.name_any()),
        namespace: Some(namespace),
        labels: Some(labels::common(ms)),
        owner_references: Some(vec![owner_reference(ms)?]),
        ..ObjectMeta::default()
    })
}

/// The controller reference from a child to its MicroService.
pub fn owner_reference(ms: &MicroService) -> Result<OwnerReference, DesiredError> {
    let uid = ms.uid().ok_or(DesiredError::MissingMetadata("uid"))?;
    Ok(OwnerReference {
        api_version: MicroService::api_version(&()).into_owned(),
        kind: MicroService::kind(&()).into_owned(),
        name: ms.name_any(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Stamps `obj` with a hash of its own serialized form (taken before the
/// annotation is added). FNV-1a, so the value is stable across builds and
/// toolchains: an operator upgrade does not look like a spec change.
pub(crate) fn with_spec_hash<K: Resource + serde::Serialize>(mut obj: K) -> K {
    // A re-stamp after a change must not hash the previous stamp.
    if let Some(annotations) = obj.meta_mut().annotations.as_mut() {
        annotations.remove(SPEC_HASH_ANNOTATION);
        if annotations.is_empty() {
            obj.meta_mut().annotations = None;
        }
    }
    let hash = fnv1a(&serde_json::to_vec(&obj).expect("k8s objects serialize"));
    obj.annotations_mut()
        .insert(SPEC_HASH_ANNOTATION.into(), format!("{hash:016x}"));
    obj
}

/// FNV-1a, 64 bits: a stable hash of `bytes` (the same in every build, unlike
/// std's hasher), for the spec hash and the drift digests.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

//! What the cache keeps of each watched object: the fields the reconciler
//! reads, and, in place of the fields Berth applies, their digest
//! ([`crate::drift`]). A cached Deployment is its name, owner, counts and
//! conditions, not its pod template; this is what keeps the operator's memory
//! flat per MicroService at scale.
//!
//! The reconciler reads of a child: its owner reference (whose it is), the
//! spec hash and the digest (is it up to date), whether Berth's apply owns
//! `spec.replicas` and what it is (the hand-over to the autoscaler), its
//! generation and status (the MicroService's status). Of a MicroService:
//! everything but its `managedFields` and `kubectl apply`'s copy of itself.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ObjectMeta};
use kube::Resource;

use crate::apply::{is_own_apply, sets_replicas};
use crate::desired::{PodMonitor, SPEC_HASH_ANNOTATION};
use crate::drift::{DIGEST_ANNOTATION, owned_digest};
use crate::microservice::MicroService;

/// An object as the cache keeps it.
pub trait Slim {
    /// Drops what the reconciler does not read.
    fn slim(&mut self);
}

impl Slim for Deployment {
    fn slim(&mut self) {
        slim_child(self);
        // `spec.replicas`: the hand-over, and the desired count in the status.
        self.spec = self.spec.take().map(|spec| DeploymentSpec {
            replicas: spec.replicas,
            ..DeploymentSpec::default()
        });
    }
}

impl Slim for HorizontalPodAutoscaler {
    fn slim(&mut self) {
        slim_child(self);
        self.spec = None;
    }
}

impl Slim for Service {
    fn slim(&mut self) {
        slim_child(self);
        self.spec = None;
        self.status = None;
    }
}

impl Slim for PodDisruptionBudget {
    fn slim(&mut self) {
        slim_child(self);
        self.spec = None;
        self.status = None;
    }
}

impl Slim for PodMonitor {
    fn slim(&mut self) {
        slim_child(self);
        self.spec = Default::default();
    }
}

impl Slim for MicroService {
    fn slim(&mut self) {
        self.metadata.managed_fields = None;
        if let Some(annotations) = self.metadata.annotations.as_mut() {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
}

/// A child's metadata cut to what is read, with the digest of the fields
/// Berth owns taken while they are still there.
fn slim_child<K: Resource<DynamicType = ()> + serde::Serialize>(child: &mut K) {
    let digest = owned_digest(child);
    let meta = child.meta_mut();
    let spec_hash = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(SPEC_HASH_ANNOTATION))
        .cloned();
    let mut annotations = BTreeMap::new();
    if let Some(hash) = spec_hash {
        annotations.insert(SPEC_HASH_ANNOTATION.to_owned(), hash);
    }
    if let Some(digest) = digest {
        annotations.insert(DIGEST_ANNOTATION.to_owned(), format!("{digest:x}"));
    }
    // Berth's own apply entry, reduced to whether it owns spec.replicas.
    let own = meta
        .managed_fields
        .take()
        .into_iter()
        .flatten()
        .find(is_own_apply)
        .map(|mut entry| {
            entry.fields_v1 = Some(FieldsV1(if sets_replicas(&entry) {
                serde_json::json!({"f:spec": {"f:replicas": {}}})
            } else {
                serde_json::json!({})
            }));
            entry
        });
    *meta = ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        uid: meta.uid.take(),
        resource_version: meta.resource_version.take(),
        generation: meta.generation.take(),
        deletion_timestamp: meta.deletion_timestamp.take(),
        owner_references: meta.owner_references.take(),
        annotations: (!annotations.is_empty()).then_some(annotations),
        managed_fields: own.map(|entry| vec![entry]),
        ..ObjectMeta::default()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::owns_replicas;
    use crate::desired::fixtures::{microservice, stored_by_berth};
    use crate::drift::up_to_date;

    fn stored(desired: &Deployment) -> Deployment {
        let body = serde_json::to_value(desired).unwrap();
        serde_json::from_value(stored_by_berth(&body)).unwrap()
    }

    #[test]
    fn a_slim_child_still_answers_everything_the_reconciler_asks() {
        let ms = microservice("item");
        let desired = crate::desired::desired_deployment(&ms, &[]).unwrap();
        let mut cached = stored(&desired);
        assert!(up_to_date(&desired, &cached), "the whole object");
        cached.slim();
        assert!(up_to_date(&desired, &cached), "the slim object");
        assert!(owns_replicas(&cached));
        assert_eq!(cached.spec.as_ref().unwrap().replicas, Some(1));
        assert!(cached.spec.as_ref().unwrap().template.spec.is_none());
        assert!(cached.metadata.labels.is_none());
        assert_eq!(
            cached.metadata.owner_references,
            desired.metadata.owner_references
        );

        // A changed desired object is not up to date with the slim one.
        let mut other = microservice("item");
        other.spec.image = "registry.local/item:2".into();
        let changed = crate::desired::desired_deployment(&other, &[]).unwrap();
        assert!(!up_to_date(&changed, &cached));

        // A field Berth owns, changed (by another forced apply): the digest
        // taken from the fields says so.
        let mut edited = stored(&desired);
        edited
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("someone/else:1".into());
        edited.slim();
        assert!(!up_to_date(&desired, &edited));
    }
}

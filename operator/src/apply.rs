//! Getting children into the cluster: server-side apply under Berth's field
//! manager when a child is missing or differs, deletion of children the spec
//! no longer asks for, and the hand-over of `spec.replicas` to the autoscaler.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::Stores;
use crate::context::Context;
use crate::drift::up_to_date;
use crate::error::Error;
use crate::microservice::{Autoscaling, MANAGER, MicroService};

/// Field manager of the one-off apply that hands `spec.replicas` to the autoscaler.
pub const HANDOFF_MANAGER: &str = "berth-operator-handoff";

/// What happened to one child this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Created,
    Updated,
    Deleted,
    Absent,
}

/// A child after [`ensure`]: the object as the API server has it, and what was done.
pub struct Ensured<K> {
    pub object: Arc<K>,
    pub outcome: Outcome,
}

/// The kinds Berth watches, applies and deletes: its children, and the
/// MicroService itself.
pub trait Child:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}
impl<K> Child for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// Whether `live` carries a controller reference to `ms`.
pub fn controlled_by<K: Resource>(live: &K, ms: &MicroService) -> bool {
    let uid = ms.uid();
    live.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
}

/// A `resourceVersion` no stored object has. An apply that carries it
/// creates the object when it is absent (a create ignores the field) and is
/// refused with 409 Conflict when any object of that name exists (an update
/// must match it): a create-only apply, in one request.
const NO_OBJECT_HAS_THIS_VERSION: &str = "1";

/// Makes the cluster hold `desired`: nothing is sent when the cached child is
/// already up to date; otherwise a forced server-side apply.
pub async fn ensure<K: Child>(
    ctx: &Context,
    ms: &MicroService,
    store: &Store<K>,
    desired: K,
) -> Result<Ensured<K>, Error> {
    let (name, namespace) = (desired.name_any(), desired.namespace().unwrap_or_default());
    let kind = K::kind(&()).into_owned();
    let full_name = format!("{namespace}/{name}");
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    // The caches only hold objects carrying Berth's label, so a miss does not
    // mean the name is free: an unlabeled object of that name belongs to
    // someone else and must not be taken over by a forced apply. The miss is
    // tried as a create-only apply; only a refusal (something is there, or
    // the cache lags behind Berth's own create) costs a GET to see whose.
    let live = match Stores::child(store, &name, &namespace) {
        Some(live) => Some(live),
        None => match create_only(&api, &desired).await {
            Ok(created) => {
                ctx.metrics.wrote(&kind, "apply");
                tracing::info!(%kind, %namespace, %name, "created child");
                return Ok(Ensured {
                    object: Arc::new(created),
                    outcome: Outcome::Created,
                });
            }
            Err(kube::Error::Api(status)) if status.code == 409 => api
                .get_opt(&name)
                .await
                .map_err(Error::api("get", &kind, &full_name))?
                .map(Arc::new),
            Err(error) => return Err(Error::api("apply", &kind, &full_name)(error)),
        },
    };
    if let Some(live) = &live {
        if !controlled_by(live.as_ref(), ms) {
            return Err(Error::ChildConflict {
                kind,
                name: full_name,
            });
        }
        if up_to_date(&desired, live.as_ref()) {
            ctx.metrics.unchanged(&kind);
            return Ok(Ensured {
                object: live.clone(),
                outcome: Outcome::Unchanged,
            });
        }
    }
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
        .map_err(Error::api("apply", &kind, &full_name))?;
    ctx.metrics.wrote(&kind, "apply");
    let outcome = if live.is_some() {
        Outcome::Updated
    } else {
        Outcome::Created
    };
    tracing::info!(%kind, %namespace, %name, ?outcome, "applied child");
    Ok(Ensured {
        object: Arc::new(applied),
        outcome,
    })
}

/// Applies `desired` only if no object of its name exists (see
/// [`NO_OBJECT_HAS_THIS_VERSION`]).
async fn create_only<K: Child>(api: &Api<K>, desired: &K) -> Result<K, kube::Error> {
    let mut desired = desired.clone();
    desired.meta_mut().resource_version = Some(NO_OBJECT_HAS_THIS_VERSION.into());
    api.patch(
        &desired.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&desired),
    )
    .await
}

/// Deletes the child `name` of kind `K` if it exists and is ours. The uid
/// precondition makes sure it is exactly the object we looked at.
pub async fn ensure_absent<K: Child>(
    ctx: &Context,
    ms: &MicroService,
    store: &Store<K>,
    name: &str,
) -> Result<Outcome, Error> {
    let namespace = ms.namespace().unwrap_or_default();
    let Some(live) = Stores::child(store, name, &namespace) else {
        return Ok(Outcome::Absent);
    };
    if !controlled_by(live.as_ref(), ms) {
        // Not ours: leave it alone. Not applying it is enough.
        return Ok(Outcome::Absent);
    }
    let kind = K::kind(&()).into_owned();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: live.uid(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => {}
        // Already gone, or replaced by another object of that name: nothing of ours to delete.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Ok(Outcome::Absent),
        Err(e) => {
            return Err(Error::api("delete", &kind, &format!("{namespace}/{name}"))(
                e,
            ));
        }
    }
    ctx.metrics.wrote(&kind, "delete");
    tracing::info!(%kind, %namespace, %name, "deleted child the spec no longer asks for");
    Ok(Outcome::Deleted)
}

/// Whether `entry` is Berth's own apply of an object (not of its status):
/// the fields Berth sets. The cache keeps only this entry.
pub fn is_own_apply(entry: &ManagedFieldsEntry) -> bool {
    entry.manager.as_deref() == Some(MANAGER)
        && entry.operation.as_deref() == Some("Apply")
        && entry.subresource.is_none()
}

/// Whether Berth's own apply currently owns `spec.replicas` of `live`.
pub fn owns_replicas(live: &Deployment) -> bool {
    live.managed_fields()
        .iter()
        .any(|entry| is_own_apply(entry) && sets_replicas(entry))
}

/// Whether the field set of `entry` holds `spec.replicas`.
pub fn sets_replicas(entry: &ManagedFieldsEntry) -> bool {
    entry
        .fields_v1
        .as_ref()
        .and_then(|f| f.0.get("f:spec"))
        .and_then(|spec| spec.get("f:replicas"))
        .is_some()
}

/// The replica count to hand to the autoscaler: the current one, kept within
/// the autoscaler's range, so switching autoscaling on causes no dip or spike.
pub fn handoff_replicas(live: &Deployment, autoscaling: &Autoscaling) -> i32 {
    let current = live
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(autoscaling.min_replicas);
    current.clamp(
        autoscaling.min_replicas,
        autoscaling.max_replicas.max(autoscaling.min_replicas),
    )
}

/// Hands `spec.replicas` over before Berth's apply stops setting it. Dropping
/// a field from an apply deletes it when nobody else owns it, and the
/// Deployment would fall back to one replica; so a separate field manager
/// first applies the current count (the transfer described in the Kubernetes
/// server-side apply docs), and the autoscaler takes it from there.
pub async fn hand_replicas_to_autoscaler(
    ctx: &Context,
    live: &Deployment,
    autoscaling: &Autoscaling,
) -> Result<(), Error> {
    let (name, namespace) = (live.name_any(), live.namespace().unwrap_or_default());
    let replicas = handoff_replicas(live, autoscaling);
    let patch = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "namespace": namespace },
        "spec": { "replicas": replicas },
    });
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    api.patch(
        &name,
        &PatchParams::apply(HANDOFF_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::api(
        "handoff",
        "Deployment",
        &format!("{namespace}/{name}"),
    ))?;
    ctx.metrics.wrote("Deployment", "handoff");
    tracing::info!(%namespace, %name, replicas, "handed spec.replicas to the autoscaler");
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        FieldsV1, ManagedFieldsEntry, ObjectMeta,
    };

    use super::*;

    fn deployment(replicas: i32, manager: &str, fields: serde_json::Value) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some(manager.into()),
                    operation: Some("Apply".into()),
                    fields_v1: Some(FieldsV1(fields)),
                    ..ManagedFieldsEntry::default()
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..DeploymentSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn replicas_ownership_is_read_from_managed_fields() {
        let ours = deployment(
            3,
            MANAGER,
            serde_json::json!({"f:spec": {"f:replicas": {}, "f:template": {}}}),
        );
        assert!(owns_replicas(&ours));
        let without = deployment(
            3,
            MANAGER,
            serde_json::json!({"f:spec": {"f:template": {}}}),
        );
        assert!(!owns_replicas(&without));
        let theirs = deployment(
            3,
            "kube-controller-manager",
            serde_json::json!({"f:spec": {"f:replicas": {}}}),
        );
        assert!(!owns_replicas(&theirs));
    }

    #[test]
    fn handoff_keeps_the_current_count_within_the_autoscaling_range() {
        let range: Autoscaling =
            serde_json::from_value(serde_json::json!({"minReplicas": 2, "maxReplicas": 6}))
                .unwrap();
        let at = |n| handoff_replicas(&deployment(n, MANAGER, serde_json::json!({})), &range);
        assert_eq!(at(4), 4, "no dip, no spike");
        assert_eq!(at(1), 2, "raised to the minimum");
        assert_eq!(at(9), 6, "lowered to the maximum");
    }
}

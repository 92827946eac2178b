//! One reconcile of one MicroService: resolve dependencies, compute the
//! desired children, ensure them (apply what differs, delete what is no longer
//! asked for), then write status if it changed. Everything that decides
//! *what* lives in pure modules; this file only sequences the IO.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};

use crate::apply::{
    Child, Outcome, controlled_by, ensure, ensure_absent, hand_replicas_to_autoscaler,
    owns_replicas,
};
use crate::cache::{Availability, Stores};
use crate::context::Context;
use crate::error::Error;
use crate::microservice::{MANAGER, MicroService, MicroServiceStatus};
use crate::status::{self, FailureReason, MonitorObserved, Observed};
use crate::{dependencies, desired};

/// How often a MicroService is looked at again with no event, by default
/// (`Settings::resync`). Cheap: nothing is written for children that are
/// already right.
pub const RESYNC: Duration = Duration::from_secs(600);
/// How soon a MicroService whose Deployment was just written is looked at
/// again if the Deployment's status news has not triggered a pass before.
pub const DEPLOYMENT_NEWS_WAIT: Duration = Duration::from_secs(5);
/// How soon a MicroService blocked by someone else's object is looked at again.
const CONFLICT_RETRY: Duration = Duration::from_secs(30);

/// When to look again at a MicroService whose spec cannot be realised.
fn retry_after(reason: FailureReason, resync: Duration) -> Duration {
    match reason {
        // A conflicting object carries no Berth label, so its removal
        // triggers nothing: look again soon.
        FailureReason::ChildConflict => CONFLICT_RETRY,
        // A refused child waits for a spec change, which triggers a reconcile.
        FailureReason::InvalidChild => resync,
    }
}

/// The controller's reconcile function.
pub async fn reconcile(ms: Arc<MicroService>, ctx: Arc<Context>) -> Result<Action, Error> {
    // The status says how the pods are scraped, which needs this answer.
    ctx.stores.pod_monitor_kind_known().await;
    let started = Instant::now();
    ctx.metrics.in_flight.inc();
    let result = reconcile_inner(&ms, &ctx).await;
    ctx.metrics.in_flight.dec();
    ctx.metrics.reconciled(started.elapsed());
    if result.is_ok() {
        ctx.reset_backoff(&ObjectRef::from(ms.as_ref()));
    }
    result
}

/// Transient failures are retried with per-object exponential backoff.
pub fn error_policy(ms: Arc<MicroService>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(error.metric_labels());
    let delay = ctx.next_backoff(&ObjectRef::from(ms.as_ref()));
    tracing::warn!(name = %ms.name_any(), namespace = ?ms.namespace(), %error, ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

#[tracing::instrument(skip_all, fields(namespace = ms.namespace().unwrap_or_default(), name = ms.name_any()))]
async fn reconcile_inner(ms: &MicroService, ctx: &Context) -> Result<Action, Error> {
    if ms.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the children.
        return Ok(Action::await_change());
    }
    let namespace = ms.namespace().unwrap_or_default();
    let stores = &ctx.stores;
    let deps = dependencies::resolve(ms, |name| {
        Stores::child(&stores.microservices, name, &namespace)
    });

    match realize(ms, ctx, &deps).await {
        // A Deployment created or changed this pass has no status for it
        // yet: what a status written now would say (no pod, or the old
        // rollout) is out of date within a second, when the Deployment
        // controller's news triggers the next pass. Waiting for that news
        // saves a write per new or changed MicroService; the requeue bounds
        // the wait if the news never comes.
        Ok(observed_children) if observed_children.deployment_written => {
            Ok(Action::requeue(DEPLOYMENT_NEWS_WAIT))
        }
        Ok(observed_children) => {
            let kind = stores.pod_monitors_served();
            let observed = Observed {
                deployment: observed_children.deployment.as_deref(),
                autoscaler: observed_children.autoscaler.as_deref(),
                dependencies: &deps,
                failure: None,
                monitor: monitor_observed(&kind, observed_children.pod_monitor),
            };
            write_status(ms, ctx, observed).await?;
            Ok(Action::requeue(ctx.resync))
        }
        Err(error) => match error.as_failure() {
            // Retrying cannot help until the spec (or the conflicting object)
            // changes, and either change triggers a reconcile: report and wait.
            Some(failure) => {
                ctx.metrics.failed(error.metric_labels());
                let name = ms.name_any();
                let deployment = Stores::child(&stores.deployments, &name, &namespace);
                let autoscaler = Stores::child(&stores.autoscalers, &name, &namespace);
                let kind = stores.pod_monitors_served();
                let pod_monitor = Stores::child(&stores.pod_monitors, &name, &namespace).is_some();
                let observed = Observed {
                    deployment: deployment.as_deref(),
                    autoscaler: autoscaler.as_deref(),
                    dependencies: &deps,
                    failure: Some(&failure),
                    monitor: monitor_observed(&kind, pod_monitor),
                };
                if write_status(ms, ctx, observed).await? {
                    publish(
                        ctx,
                        ms,
                        EventType::Warning,
                        failure.reason.as_str(),
                        "Reconcile",
                        &failure.message,
                    )
                    .await;
                }
                Ok(Action::requeue(retry_after(failure.reason, ctx.resync)))
            }
            None => Err(error),
        },
    }
}

/// What the status says of the PodMonitor, given whether the cluster serves
/// the kind and whether Berth's PodMonitor exists.
fn monitor_observed(kind: &Availability, exists: bool) -> MonitorObserved<'_> {
    match kind {
        Availability::Served => MonitorObserved::Served { exists },
        Availability::NotServed(why) => MonitorObserved::NotServed(why),
        Availability::Unknown => MonitorObserved::Unknown,
    }
}

/// The children as the cluster has them after this pass.
struct Realized {
    deployment: Option<Arc<Deployment>>,
    /// The Deployment was created or changed this pass.
    deployment_written: bool,
    autoscaler: Option<Arc<HorizontalPodAutoscaler>>,
    pod_monitor: bool,
}

async fn realize(
    ms: &MicroService,
    ctx: &Context,
    deps: &[dependencies::ResolvedDependency],
) -> Result<Realized, Error> {
    // What changed is told even when a later child fails.
    let mut changed = Changed::default();
    let realized = realize_children(ms, ctx, deps, &mut changed).await;
    for (reason, action, note) in changed.events(&ms.name_any()) {
        publish(ctx, ms, EventType::Normal, reason, action, &note).await;
    }
    realized
}

async fn realize_children(
    ms: &MicroService,
    ctx: &Context,
    deps: &[dependencies::ResolvedDependency],
    changed: &mut Changed,
) -> Result<Realized, Error> {
    let stores = &ctx.stores;
    let children = desired::children(ms, deps)?;
    let name = ms.name_any();
    let namespace = ms.namespace().unwrap_or_default();

    let mut desired_deployment = children.deployment;
    if let Some(autoscaling) = &ms.spec.autoscaling {
        match Stores::child(&stores.deployments, &name, &namespace) {
            Some(live) if owns_replicas(&live) && controlled_by(live.as_ref(), ms) => {
                hand_replicas_to_autoscaler(ctx, &live, autoscaling).await?;
            }
            Some(_) => {}
            // A new Deployment starts inside the autoscaler's range rather than
            // at Kubernetes' default of one; the next pass hands the count over.
            None => {
                desired_deployment = desired::start_within_autoscaling_range(
                    desired_deployment,
                    autoscaling,
                    ms.spec.replicas,
                );
            }
        }
    }
    // One line per child kind; each is applied if it differs, deleted if the
    // spec no longer asks for it, and reported as an event when it changed.
    let deployment = sync(
        ctx,
        ms,
        changed,
        &stores.deployments,
        Some(desired_deployment),
    )
    .await?;
    sync(ctx, ms, changed, &stores.services, Some(children.service)).await?;
    let autoscaler = sync(ctx, ms, changed, &stores.autoscalers, children.autoscaler).await?;
    sync(
        ctx,
        ms,
        changed,
        &stores.disruption_budgets,
        children.disruption_budget,
    )
    .await?;
    // Only where the cluster serves the kind; otherwise the status says so.
    let pod_monitor = match stores.pod_monitors_served() {
        Availability::Served => sync(ctx, ms, changed, &stores.pod_monitors, children.pod_monitor)
            .await?
            .is_some(),
        Availability::NotServed(_) | Availability::Unknown => false,
    };
    Ok(Realized {
        deployment,
        deployment_written: [&changed.created, &changed.updated].iter().any(|kinds| {
            kinds
                .iter()
                .any(|k| k == <Deployment as k8s_openapi::Resource>::KIND)
        }),
        autoscaler,
        pod_monitor,
    })
}

/// Makes the cluster hold `desired`, or no child of this kind when `None`,
/// and notes what changed. Returns the child as it is now.
async fn sync<K: Child>(
    ctx: &Context,
    ms: &MicroService,
    changed: &mut Changed,
    store: &Store<K>,
    desired: Option<K>,
) -> Result<Option<Arc<K>>, Error> {
    let kind = K::kind(&());
    match desired {
        Some(child) => {
            let ensured = ensure(ctx, ms, store, child).await?;
            changed.note(&kind, ensured.outcome);
            Ok(Some(ensured.object))
        }
        None => {
            let outcome = ensure_absent(ctx, ms, store, &ms.name_any()).await?;
            changed.note(&kind, outcome);
            Ok(None)
        }
    }
}

/// Writes the status computed from `observed` when it differs from the
/// current one. Returns whether it wrote.
async fn write_status(
    ms: &MicroService,
    ctx: &Context,
    observed: Observed<'_>,
) -> Result<bool, Error> {
    let now = Time(
        k8s_openapi::jiff::Timestamp::now()
            .round(k8s_openapi::jiff::Unit::Second)
            .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now()),
    );
    let status = status::compute(ms, observed, &now);
    if ms.status.as_ref() == Some(&status) {
        return Ok(false);
    }
    let api: Api<MicroService> =
        Api::namespaced(ctx.client.clone(), &ms.namespace().unwrap_or_default());
    let patch = status_patch(&status);
    api.patch_status(
        &ms.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::api(
        "apply-status",
        "MicroService",
        &format!("{}/{}", ms.namespace().unwrap_or_default(), ms.name_any()),
    ))?;
    ctx.metrics.wrote("MicroService", "status");
    let ready = status.conditions.iter().find(|c| c.type_ == status::READY);
    tracing::info!(
        ready = ready.map(|c| c.status.as_str()),
        reason = ready.map(|c| c.reason.as_str()),
        replicas = status.replicas,
        ready_replicas = status.ready_replicas,
        "status updated"
    );
    Ok(true)
}

/// The server-side apply body for a status write.
pub fn status_patch(status: &MicroServiceStatus) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": MicroService::api_version(&()),
        "kind": MicroService::kind(&()),
        "status": status,
    })
}

/// The children one pass created, updated and deleted, told as at most one
/// event for each ("Deployment, Service and PodMonitor item created"), not
/// one per child: a new MicroService costs one Event create, not four.
#[derive(Debug, Default, PartialEq)]
struct Changed {
    created: Vec<String>,
    updated: Vec<String>,
    deleted: Vec<String>,
}

impl Changed {
    fn note(&mut self, kind: &str, outcome: Outcome) {
        let list = match outcome {
            Outcome::Created => &mut self.created,
            Outcome::Updated => &mut self.updated,
            Outcome::Deleted => &mut self.deleted,
            Outcome::Unchanged | Outcome::Absent => return,
        };
        list.push(kind.to_owned());
    }

    /// (reason, action, note) of each event to publish, for MicroService `name`.
    fn events(&self, name: &str) -> Vec<(&'static str, &'static str, String)> {
        [
            ("Created", "Apply", "created", &self.created),
            ("Updated", "Apply", "updated", &self.updated),
            ("Deleted", "Delete", "deleted", &self.deleted),
        ]
        .into_iter()
        .filter(|(_, _, _, kinds)| !kinds.is_empty())
        .map(|(reason, action, verb, kinds)| {
            (reason, action, format!("{} {name} {verb}", listed(kinds)))
        })
        .collect()
    }
}

/// "A", "A and B", "A, B and C".
fn listed(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Publishes an event; a failure to do so is logged, never fails the reconcile.
async fn publish(
    ctx: &Context,
    ms: &MicroService,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.into()),
        action: action.into(),
        secondary: None,
    };
    match ctx
        .recorder(type_)
        .publish(&event, &ms.object_ref(&()))
        .await
    {
        Ok(()) => ctx.metrics.wrote("Event", "create"),
        Err(error) => tracing::warn!(%error, reason, "could not publish event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_kind_of_change_names_every_child() {
        let mut changed = Changed::default();
        for kind in ["Deployment", "Service", "PodMonitor"] {
            changed.note(kind, Outcome::Created);
        }
        changed.note("HorizontalPodAutoscaler", Outcome::Unchanged);
        changed.note("PodDisruptionBudget", Outcome::Deleted);
        assert_eq!(
            changed.events("item"),
            vec![
                (
                    "Created",
                    "Apply",
                    "Deployment, Service and PodMonitor item created".to_string()
                ),
                (
                    "Deleted",
                    "Delete",
                    "PodDisruptionBudget item deleted".to_string()
                ),
            ]
        );
        assert!(
            Changed::default().events("item").is_empty(),
            "no change, no event"
        );
    }
}

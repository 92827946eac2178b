//! Wiring: the watches, the controller's triggers, and the run loop with
//! graceful shutdown. A MicroService is reconciled when it changes, when one
//! of its children changes (so hand edits and deletions are put right), and
//! when a MicroService it depends on changes (appears, disappears, readiness).
//! With leader election, every replica watches but only the leader reconciles;
//! a replica that becomes leader reconciles everything once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::runtime::Controller;
use kube::runtime::controller::{Action, Config};
use kube::runtime::reflector::ObjectRef;

use crate::cache::{self, WatchHealth};
use crate::context::Context;
use crate::dependencies::dependents;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::reconcile::{error_policy, reconcile};

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch one namespace, or all when `None`.
    pub namespace: Option<String>,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// Quiet time before a burst of events for one object becomes one reconcile.
    pub debounce: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: None,
            concurrency: 8,
            debounce: Duration::from_millis(500),
        }
    }
}

/// What the HTTP endpoints read: readiness and metrics.
#[derive(Clone)]
pub struct Probe {
    pub synced: Arc<AtomicBool>,
    pub watches: WatchHealth,
    pub metrics: Arc<Metrics>,
    pub stores: Option<cache::Stores>,
}

impl Probe {
    /// Ready once every cache has its first list, and while every watch is connected.
    pub fn ready(&self) -> Result<(), &'static str> {
        if !self.synced.load(Ordering::Relaxed) {
            return Err("caches not yet synced");
        }
        if !self.watches.healthy() {
            return Err("a watch of the API server is failing");
        }
        Ok(())
    }
}

/// Starts the watches and returns what the HTTP endpoints need, plus the
/// future that runs the controller until `shutdown` resolves and in-flight
/// reconciles have finished.
pub fn start(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    leadership: Leadership,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> (Probe, impl Future<Output = ()>) {
    let watches = WatchHealth::default();
    let (stores, triggers, drivers) =
        cache::start(&client, settings.namespace.as_deref(), watches.clone());
    let synced = Arc::new(AtomicBool::new(false));
    let probe = Probe {
        synced: synced.clone(),
        watches,
        metrics: metrics.clone(),
        stores: Some(stores.clone()),
    };
    let ctx = Arc::new(Context::new(client, stores.clone(), metrics));

    let all = stores.microservices.clone();
    // Each time this replica becomes leader, everything is looked at once.
    let became_leader = futures::stream::unfold(leadership.changes(), |mut rx| async move {
        loop {
            rx.changed().await.ok()?;
            if *rx.borrow_and_update() {
                return Some(((), rx));
            }
        }
    });
    let reconcile_if_leader = move |ms, ctx| {
        let leading = leadership.leading();
        async move {
            if !leading {
                return Ok(Action::await_change());
            }
            reconcile(ms, ctx).await
        }
    };
    let controller =
        Controller::for_shared_stream(triggers.microservices, stores.microservices.clone())
            .owns_shared_stream(triggers.deployments)
            .owns_shared_stream(triggers.services)
            .owns_shared_stream(triggers.autoscalers)
            .owns_shared_stream(triggers.disruption_budgets)
            .watches_shared_stream(triggers.dependencies, move |changed| {
                let state = all.state();
                dependents(&changed, state.iter().map(Arc::as_ref))
                    .into_iter()
                    .map(ObjectRef::from)
                    .collect::<Vec<_>>()
            })
            .with_config(
                Config::default()
                    .concurrency(settings.concurrency)
                    .debounce(settings.debounce),
            )
            .reconcile_all_on(became_leader)
            .graceful_shutdown_on(shutdown)
            .run(reconcile_if_leader, error_policy, ctx)
            .for_each(|result| async move {
                match result {
                    Ok((obj, _)) => tracing::debug!(%obj, "reconciled"),
                    Err(error) => tracing::debug!(%error, "reconcile did not complete"),
                }
            });

    let run = async move {
        let mark_synced = async move {
            stores.wait_until_ready().await;
            synced.store(true, Ordering::Relaxed);
            tracing::info!("caches synced; reconciling");
        };
        // The controller finishes on shutdown; the watches run until then.
        tokio::select! {
            () = async { futures::join!(controller, mark_synced); } => {}
            () = drivers => tracing::error!("watches ended unexpectedly"),
        }
    };
    (probe, run)
}

//! Wiring: the watches, the controller's triggers, and the run loop with
//! graceful shutdown. A MicroService is reconciled when it changes, when one
//! of its children changes or is deleted (so hand edits and deletions are put
//! right), and when a MicroService it depends on changes (appears, is
//! deleted, changes readiness).
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

use crate::cache::{self, Change, WatchHealth};
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
    /// Cut cached objects' managedFields down to Berth's entry (off only to
    /// measure what that saves).
    pub trim_cache: bool,
    /// How often every MicroService is looked at again with no event.
    pub resync: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: None,
            concurrency: 8,
            debounce: Duration::from_millis(500),
            trim_cache: true,
            resync: crate::reconcile::RESYNC,
        }
    }
}

/// What the HTTP endpoints read: readiness and metrics.
#[derive(Clone)]
pub struct Probe {
    pub synced: Arc<AtomicBool>,
    pub watches: WatchHealth,
    /// The API server's own `/readyz` answered 200 at the last check. Watches
    /// stay connected through an etcd outage (the API server serves them from
    /// its cache), so only asking the API server shows that writes would fail.
    pub api_server: Arc<AtomicBool>,
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
        if !self.api_server.load(Ordering::Relaxed) {
            return Err("the API server is not ready");
        }
        Ok(())
    }
}

/// How often the API server's `/readyz` is asked, and how long it may take.
const API_CHECK_EVERY: Duration = Duration::from_secs(2);
const API_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Keeps `ready` equal to whether the API server's `/readyz` (which includes
/// its etcd check) answers 200. Needs no RBAC: `system:public-info-viewer`
/// grants `/readyz` to everyone.
async fn check_api_server(client: Client, ready: Arc<AtomicBool>) {
    loop {
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .expect("a static request");
        let answer = tokio::time::timeout(API_CHECK_TIMEOUT, client.request_text(request)).await;
        let now = matches!(answer, Ok(Ok(_)));
        if now != ready.swap(now, Ordering::Relaxed) {
            if now {
                tracing::info!("the API server is ready again");
            } else {
                tracing::warn!(?answer, "the API server is not ready");
            }
        }
        tokio::time::sleep(API_CHECK_EVERY).await;
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
    let (stores, triggers, drivers) = cache::start(
        &client,
        settings.namespace.as_deref(),
        watches.clone(),
        settings.trim_cache,
    );
    let synced = Arc::new(AtomicBool::new(false));
    let api_server = Arc::new(AtomicBool::new(true));
    let probe = Probe {
        synced: synced.clone(),
        api_server: api_server.clone(),
        watches,
        metrics: metrics.clone(),
        stores: Some(stores.clone()),
    };
    let client_for_checks = client.clone();
    let mut ctx = Context::new(client, stores.clone(), metrics);
    ctx.resync = settings.resync;
    let ctx = Arc::new(ctx);

    let all = stores.microservices.clone();
    let bookkeeping = ctx.clone();
    // A change to a MicroService, deletion included, is a reason to look
    // again at the MicroServices that depend on it.
    let dependents_of_changes = triggers.microservice_changes.flat_map(move |change| {
        if let Change::Deleted(gone) = &change {
            bookkeeping.reset_backoff(&ObjectRef::from(gone.as_ref()));
        }
        let state = all.state();
        let refs: Vec<_> = dependents(change.object(), state.iter().map(Arc::as_ref))
            .into_iter()
            .map(ObjectRef::from)
            .collect();
        futures::stream::iter(refs)
    });
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
            .reconcile_on(triggers.owners)
            .reconcile_on(dependents_of_changes)
            .with_config(
                Config::default()
                    .concurrency(settings.concurrency)
                    .debounce(settings.debounce),
            )
            .reconcile_all_on(became_leader)
            .reconcile_all_on(triggers.pod_monitor_kind_changed)
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
            () = check_api_server(client_for_checks, api_server) => {}
        }
    };
    (probe, run)
}

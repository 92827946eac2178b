//! The operator's view of the cluster: one watch per kind, each feeding an
//! in-memory store (read by the reconciler) and a stream of [`Change`]s (the
//! controller's triggers). One watch serves both, so nothing is watched twice.
//!
//! Deletions are triggers too. kube's shared reflector streams only pass on
//! objects that are still in the store, so a deleted object never reached a
//! subscriber: a deleted dependency left its dependents "Ready", and a deleted
//! child waited for the resync to be recreated. Here every watch event becomes
//! a change, and a relist (after a watch gap) is compared with the store it
//! replaces, so an object deleted while the watch was down is reported too.
//!
//! Objects are cached slim ([`crate::slim`]): what the reconciler reads, and
//! in place of the fields Berth applies a digest of them, enough to tell
//! whether a child is already what Berth would apply; memory stays low at
//! scale.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt, future::BoxFuture};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};
use kube::{Api, Client, Resource};

use crate::apply::Child;
use crate::desired::PodMonitor;
use crate::desired::labels::MICROSERVICE_LABEL;
use crate::microservice::MicroService;
use crate::slim::Slim;

/// Buffer of each change stream: how far a slow subscriber may lag before the
/// watch waits for it.
const SUBSCRIBER_BUFFER: usize = 1024;
/// Objects per list page when a watch (re)starts.
const PAGE_SIZE: u32 = 100;
/// Watch retry delays: kube's default grows to 30 s, so after a 20 s API
/// server outage (plus the `410 Expired` every watch gets from a restarted
/// API server's empty watch cache) the caches stayed stale for half a minute
/// more. Five watches retrying every 5 s at most costs the API server nothing.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Retry cap of a watch of a kind the cluster may not serve.
const RETRY_MAX_OPTIONAL: Duration = Duration::from_secs(30);

/// What a watch saw happen to one object.
#[derive(Debug)]
pub enum Change<K> {
    /// Created or changed (also every object of a fresh list).
    Applied(Arc<K>),
    /// Deleted: the object as it was last seen.
    Deleted(Arc<K>),
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Applied(obj) => Change::Applied(obj.clone()),
            Change::Deleted(obj) => Change::Deleted(obj.clone()),
        }
    }
}

impl<K> Change<K> {
    pub fn object(&self) -> &Arc<K> {
        match self {
            Change::Applied(obj) | Change::Deleted(obj) => obj,
        }
    }
}

/// Stores of everything the reconciler reads.
#[derive(Clone)]
pub struct Stores {
    pub microservices: Store<MicroService>,
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub autoscalers: Store<HorizontalPodAutoscaler>,
    pub disruption_budgets: Store<PodDisruptionBudget>,
    /// Only meaningful while [`Stores::pod_monitors_served`] says the kind exists.
    pub pod_monitors: Store<PodMonitor>,
    pub pod_monitor_kind: tokio::sync::watch::Receiver<Availability>,
}

/// Whether the cluster serves a kind Berth can do without (the Prometheus
/// Operator's PodMonitor), learned from that kind's own watch: a list that
/// succeeds says served; a 404 (no such CRD) or 403 (RBAC) says not, and why.
/// Other errors (an API server restart) change nothing, so a fault does not
/// flip every MicroService's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    /// No answer yet.
    Unknown,
    Served,
    NotServed(String),
}

impl Availability {
    /// What a failed watch says about the kind, if anything.
    fn after(error: &watcher::Error) -> Option<Self> {
        let status = match error {
            watcher::Error::InitialListFailed(kube::Error::Api(status))
            | watcher::Error::WatchStartFailed(kube::Error::Api(status))
            | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.as_ref(),
            watcher::Error::WatchError(status) => status.as_ref(),
            _ => return None,
        };
        // By code: a missing resource type is a bare "404 page not found",
        // whose unparsed reason makes kube's `is_not_found()` say false.
        match status.code {
            404 => Some(Self::NotServed("not found".into())),
            403 => Some(Self::NotServed(format!("forbidden: {}", status.message))),
            _ => None,
        }
    }
}

impl Stores {
    /// The cached child `name` of kind `K` in `namespace`, if any.
    pub fn child<K>(store: &Store<K>, name: &str, namespace: &str) -> Option<Arc<K>>
    where
        K: Resource<DynamicType = ()> + Clone,
    {
        store.get(&ObjectRef::new(name).within(namespace))
    }

    /// Resolves once every store has its initial list.
    pub async fn wait_until_ready(&self) {
        let _ = futures::join!(
            self.microservices.wait_until_ready(),
            self.deployments.wait_until_ready(),
            self.services.wait_until_ready(),
            self.autoscalers.wait_until_ready(),
            self.disruption_budgets.wait_until_ready(),
            self.pod_monitor_kind_known(),
        );
    }

    /// Resolves once the PodMonitor watch has said whether the kind exists.
    pub async fn pod_monitor_kind_known(&self) {
        let mut kind = self.pod_monitor_kind.clone();
        let _ = kind.wait_for(|a| *a != Availability::Unknown).await;
    }

    /// Whether PodMonitors can be read and applied.
    pub fn pod_monitors_served(&self) -> Availability {
        self.pod_monitor_kind.borrow().clone()
    }
}

/// The controller's triggers.
pub struct Triggers {
    /// MicroServices created or changed.
    pub microservices: BoxStream<'static, Arc<MicroService>>,
    /// Every change to a MicroService, deletions included: what its
    /// dependents and the per-object bookkeeping react to.
    pub microservice_changes: BoxStream<'static, Change<MicroService>>,
    /// The owner of every child that was created, changed or deleted.
    pub owners: BoxStream<'static, ObjectRef<MicroService>>,
    /// The PodMonitor kind appeared or went away after the first answer:
    /// every MicroService has something to create or to report.
    pub pod_monitor_kind_changed: BoxStream<'static, ()>,
}

/// Whether every watch is currently connected: false from a watch error until
/// that watch delivers events again. Readiness reports it.
#[derive(Clone, Default)]
pub struct WatchHealth {
    failing: Arc<std::sync::Mutex<Vec<Arc<AtomicBool>>>>,
}

impl WatchHealth {
    pub fn healthy(&self) -> bool {
        let failing = self.failing.lock().expect("watch health lock");
        failing.iter().all(|f| !f.load(Ordering::Relaxed))
    }

    /// A flag for one more watch, counted by [`WatchHealth::healthy`].
    fn register(&self) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.failing
            .lock()
            .expect("watch health lock")
            .push(flag.clone());
        flag
    }
}

/// Starts the watches. Returns the stores, the triggers and one future that
/// drives all watches; it must be polled for the stores to fill.
///
/// The child kinds are listed here once each: a watch filtered by Berth's
/// label, a store, and the owners of its changes as triggers.
pub fn start(
    client: &Client,
    namespace: Option<&str>,
    health: WatchHealth,
    trim: bool,
) -> (Stores, Triggers, BoxFuture<'static, ()>) {
    let watches = Watches {
        client: client.clone(),
        namespace: namespace.map(str::to_owned),
        health,
        trim,
    };
    let mut microservices = watches.watch::<MicroService>(watcher::Config::default());
    let ms_applied = microservices.subscribe().filter_map(|change| async move {
        match change {
            Change::Applied(ms) => Some(ms),
            Change::Deleted(_) => None,
        }
    });
    let ms_changes = microservices.subscribe();
    let (deployments, dep_owners, dep_driver) = watches.child::<Deployment>();
    let (services, svc_owners, svc_driver) = watches.child::<Service>();
    let (autoscalers, hpa_owners, hpa_driver) = watches.child::<HorizontalPodAutoscaler>();
    let (disruption_budgets, pdb_owners, pdb_driver) = watches.child::<PodDisruptionBudget>();
    let (kind_tx, pod_monitor_kind) = tokio::sync::watch::channel(Availability::Unknown);
    let (pod_monitors, pm_owners, pm_driver) = watches.optional_child::<PodMonitor>(kind_tx);
    let pod_monitor_kind_changed = futures::stream::unfold(
        (pod_monitor_kind.clone(), Availability::Unknown),
        |(mut rx, mut last)| async move {
            loop {
                rx.changed().await.ok()?;
                let now = rx.borrow_and_update().clone();
                let first = last == Availability::Unknown;
                if std::mem::replace(&mut last, now.clone()) != now && !first {
                    return Some(((), (rx, last)));
                }
            }
        },
    );

    let stores = Stores {
        microservices: microservices.store.clone(),
        deployments,
        services,
        autoscalers,
        disruption_budgets,
        pod_monitors,
        pod_monitor_kind,
    };
    let triggers = Triggers {
        microservices: ms_applied.boxed(),
        microservice_changes: ms_changes.boxed(),
        owners: futures::stream::select_all([
            dep_owners, svc_owners, hpa_owners, pdb_owners, pm_owners,
        ])
        .boxed(),
        pod_monitor_kind_changed: pod_monitor_kind_changed.boxed(),
    };
    let ms_driver = microservices.run();
    let drivers = async move {
        futures::join!(
            ms_driver, dep_driver, svc_driver, hpa_driver, pdb_driver, pm_driver
        );
    };
    (stores, triggers, Box::pin(drivers))
}

/// What every watch shares.
struct Watches {
    client: Client,
    namespace: Option<String>,
    health: WatchHealth,
    trim: bool,
}

impl Watches {
    fn watch<K: Child + Slim>(&self, config: watcher::Config) -> Watched<K> {
        let api = match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        Watched::new(api, config.page_size(PAGE_SIZE), &self.health, self.trim)
    }

    /// A child kind the cluster may not serve: as [`Watches::child`], but the
    /// watch reports whether the kind exists instead of counting against
    /// readiness while it does not.
    fn optional_child<K: Child + Slim>(
        &self,
        availability: tokio::sync::watch::Sender<Availability>,
    ) -> (
        Store<K>,
        BoxStream<'static, ObjectRef<MicroService>>,
        BoxFuture<'static, ()>,
    ) {
        let mut watched = self.watch::<K>(watcher::Config::default().labels(MICROSERVICE_LABEL));
        watched.availability = Some(availability);
        let owners = watched
            .subscribe()
            .filter_map(|change| async move { controller_of(change.object().as_ref()) })
            .boxed();
        (watched.store.clone(), owners, watched.run())
    }

    /// A child kind: found by Berth's label (anything without it is not ours
    /// to read); its changes trigger the MicroService that controls it.
    fn child<K: Child + Slim>(
        &self,
    ) -> (
        Store<K>,
        BoxStream<'static, ObjectRef<MicroService>>,
        BoxFuture<'static, ()>,
    ) {
        let mut watched = self.watch::<K>(watcher::Config::default().labels(MICROSERVICE_LABEL));
        let owners = watched
            .subscribe()
            .filter_map(|change| async move { controller_of(change.object().as_ref()) })
            .boxed();
        (watched.store.clone(), owners, watched.run())
    }
}

/// The MicroService that controls `child`, from its controller reference.
pub fn controller_of<K: Resource>(child: &K) -> Option<ObjectRef<MicroService>> {
    let namespace = child.meta().namespace.as_deref()?;
    child
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| {
            o.controller == Some(true)
                && o.kind == MicroService::kind(&())
                && o.api_version == MicroService::api_version(&())
        })
        .map(|o| ObjectRef::new(&o.name).within(namespace))
}

/// One watch of `K`: its store, and the streams of its changes handed out by
/// [`Watched::subscribe`] before [`Watched::run`] starts it.
struct Watched<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    writer: reflector::store::Writer<K>,
    api: Api<K>,
    config: watcher::Config,
    failing: Arc<AtomicBool>,
    trim: bool,
    subscribers: Vec<mpsc::Sender<Change<K>>>,
    /// Set for a kind the cluster may not serve (see [`Availability`]).
    availability: Option<tokio::sync::watch::Sender<Availability>>,
}

impl<K: Child + Slim> Watched<K> {
    fn new(api: Api<K>, config: watcher::Config, health: &WatchHealth, trim: bool) -> Self {
        let (store, writer) = reflector::store();
        Self {
            store,
            writer,
            api,
            config,
            failing: health.register(),
            trim,
            subscribers: Vec::new(),
            availability: None,
        }
    }

    fn subscribe(&mut self) -> mpsc::Receiver<Change<K>> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        self.subscribers.push(tx);
        rx
    }

    /// The future that drives the watch: fills the store, then tells every
    /// subscriber what changed, waiting for slow ones rather than dropping.
    fn run(self) -> BoxFuture<'static, ()> {
        let Self {
            store,
            writer,
            api,
            config,
            failing,
            trim,
            subscribers,
            availability,
        } = self;
        let kind = K::kind(&()).into_owned();
        let mut changes = Changes::new(store);
        Box::pin(
            watch(api, config)
                .backoff(RetryDelay {
                    // A cluster without the kind answers 404 for as long as
                    // it lacks the CRD: ask seldom, yet notice an install.
                    max: if availability.is_some() {
                        RETRY_MAX_OPTIONAL
                    } else {
                        RETRY_MAX
                    },
                    ..RetryDelay::default()
                })
                .modify(move |obj| {
                    if trim {
                        obj.slim();
                    }
                })
                .reflect(writer)
                .for_each(move |event| {
                    let learned = match (&availability, &event) {
                        (Some(_), Ok(Event::InitDone)) => Some(Availability::Served),
                        (Some(_), Err(error)) => Availability::after(error),
                        _ => None,
                    };
                    match (&availability, learned) {
                        // What the optional kind's watch says about the
                        // kind itself; a kind not served is no failure.
                        (Some(tx), Some(now)) => {
                            failing.store(false, Ordering::Relaxed);
                            let changed = tx.send_if_modified(|a| {
                                std::mem::replace(a, now.clone()) != now
                            });
                            match (changed, &now) {
                                (true, Availability::NotServed(why)) => tracing::info!(
                                    %kind, %why,
                                    "the cluster does not serve this kind: none is created until it does"
                                ),
                                (true, _) => tracing::info!(%kind, "the cluster serves this kind"),
                                (false, _) => {}
                            }
                        }
                        // Everything else, as for any watch.
                        (Some(_), None) | (None, _) => {
                            if let Err(error) = &event {
                                tracing::warn!(%kind, %error, "watch failed; retrying with backoff");
                            }
                            failing.store(event.is_err(), Ordering::Relaxed);
                        }
                    }
                    let seen = event.map(|e| changes.after(e)).unwrap_or_default();
                    let mut subscribers = subscribers.clone();
                    async move {
                        for change in seen {
                            for subscriber in &mut subscribers {
                                // A subscriber that is gone has stopped listening: fine.
                                let _ = subscriber.send(change.clone()).await;
                            }
                        }
                    }
                }),
        )
    }
}

/// Turns watch events, already applied to the store, into changes.
struct Changes<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    /// The store's objects when a relist began, to find what it dropped.
    before_relist: Vec<Arc<K>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Changes<K> {
    fn new(store: Store<K>) -> Self {
        Self {
            store,
            before_relist: Vec::new(),
        }
    }

    fn after(&mut self, event: Event<K>) -> Vec<Change<K>> {
        match event {
            Event::Apply(obj) => {
                let cached = self.store.get(&ObjectRef::from_obj(&obj));
                vec![Change::Applied(cached.unwrap_or_else(|| Arc::new(obj)))]
            }
            Event::Delete(obj) => vec![Change::Deleted(Arc::new(obj))],
            // The store keeps its old contents until the relist is done.
            Event::Init => {
                self.before_relist = self.store.state();
                Vec::new()
            }
            Event::InitApply(_) => Vec::new(),
            Event::InitDone => {
                let now = self.store.state();
                let present: HashSet<ObjectRef<K>> = now
                    .iter()
                    .map(|o| ObjectRef::from_obj(o.as_ref()))
                    .collect();
                let gone = std::mem::take(&mut self.before_relist)
                    .into_iter()
                    .filter(|old| !present.contains(&ObjectRef::from_obj(old.as_ref())))
                    .map(Change::Deleted);
                now.into_iter().map(Change::Applied).chain(gone).collect()
            }
        }
    }
}

/// Doubling retry delays from [`RETRY_FIRST`] to a cap, with up to 25 %
/// jitter so the watches do not retry in lockstep.
///
/// kube's `StreamBackoff` resets the backoff on every `Ok` item, and the
/// watcher yields `Ok(Event::Init)` before each list, so a list that fails
/// every time (API server down, a CRD that does not exist) would be retried
/// at the first delay forever. A reset therefore only counts once the watch
/// has stayed up for [`HEALTHY_AFTER`].
struct RetryDelay {
    attempts: u32,
    max: Duration,
    /// When the stream last delivered something after an error.
    ok_since: Option<Instant>,
}

/// How long a watch must run without error before its delays start over.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

impl Default for RetryDelay {
    fn default() -> Self {
        Self {
            attempts: 0,
            max: RETRY_MAX,
            ok_since: None,
        }
    }
}

impl Iterator for RetryDelay {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self
            .ok_since
            .take()
            .is_some_and(|t| t.elapsed() >= HEALTHY_AFTER)
        {
            self.attempts = 0;
        }
        let delay = RETRY_FIRST
            .saturating_mul(1 << self.attempts.min(10))
            .min(self.max);
        self.attempts = self.attempts.saturating_add(1);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        Some(delay.mul_f64(1.0 + f64::from(nanos % 250) / 1000.0))
    }
}

impl kube::runtime::utils::Backoff for RetryDelay {
    fn reset(&mut self) {
        self.ok_since.get_or_insert_with(Instant::now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    use kube::runtime::utils::Backoff;

    #[test]
    fn watch_retries_double_up_to_the_cap_and_reset() {
        let mut delays = RetryDelay::default();
        let first = delays.next().unwrap();
        assert!(first >= RETRY_FIRST && first <= RETRY_FIRST.mul_f64(1.25));
        let late: Vec<Duration> = (0..20).filter_map(|_| delays.next()).collect();
        assert!(late.iter().all(|d| *d <= RETRY_MAX.mul_f64(1.25)));
        assert!(late.last().unwrap() >= &RETRY_MAX);
        // An Ok right before the next error (the watcher's `Init` before a
        // list that fails again) does not start the delays over...
        delays.reset();
        assert!(delays.next().unwrap() >= RETRY_MAX);
        // ...a watch that stayed up does.
        delays.reset();
        delays.ok_since = Some(Instant::now() - HEALTHY_AFTER);
        assert!(delays.next().unwrap() <= RETRY_FIRST.mul_f64(1.25));
    }

    fn service(name: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }
    }

    fn names(changes: &[Change<Service>]) -> Vec<String> {
        let mut names: Vec<String> = changes
            .iter()
            .map(|c| {
                let verb = match c {
                    Change::Applied(_) => "applied",
                    Change::Deleted(_) => "deleted",
                };
                format!("{verb} {}", c.object().metadata.name.as_deref().unwrap())
            })
            .collect();
        names.sort();
        names
    }

    /// Feeds `event` to the store first, as `reflect` does, then to `changes`.
    fn feed(
        writer: &mut reflector::store::Writer<Service>,
        changes: &mut Changes<Service>,
        event: Event<Service>,
    ) -> Vec<String> {
        writer.apply_watcher_event(&event);
        names(&changes.after(event))
    }

    #[test]
    fn deletions_are_changes_including_those_a_relist_reveals() {
        let (store, mut writer) = reflector::store::<Service>();
        let mut changes = Changes::new(store);
        let list = |writer: &mut _, changes: &mut _, objects: &[&str]| {
            let mut seen = feed(writer, changes, Event::Init);
            for name in objects {
                seen.extend(feed(writer, changes, Event::InitApply(service(name))));
            }
            seen.extend(feed(writer, changes, Event::InitDone));
            seen
        };
        assert_eq!(
            list(&mut writer, &mut changes, &["a", "b"]),
            ["applied a", "applied b"]
        );
        assert_eq!(
            feed(&mut writer, &mut changes, Event::Delete(service("a"))),
            ["deleted a"],
            "a watched deletion reaches the subscribers"
        );
        assert_eq!(
            feed(&mut writer, &mut changes, Event::Apply(service("c"))),
            ["applied c"]
        );
        // The watch was down while b was deleted: the relist shows it gone.
        assert_eq!(
            list(&mut writer, &mut changes, &["c"]),
            ["applied c", "deleted b"]
        );
    }

    #[test]
    fn a_child_triggers_the_microservice_that_controls_it() {
        let mut child = service("item");
        let owner = |kind: &str, controller| OwnerReference {
            api_version: "berth.dev/v1alpha1".into(),
            kind: kind.into(),
            name: "item".into(),
            uid: "1".into(),
            controller: Some(controller),
            ..OwnerReference::default()
        };
        assert_eq!(controller_of(&child), None);
        child.metadata.owner_references = Some(vec![owner("MicroService", false)]);
        assert_eq!(controller_of(&child), None, "not its controller");
        child.metadata.owner_references =
            Some(vec![owner("Other", true), owner("MicroService", true)]);
        assert_eq!(
            controller_of(&child),
            Some(ObjectRef::new("item").within("shop"))
        );
    }
}

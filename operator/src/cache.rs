//! The operator's view of the cluster: one watch per kind, each feeding a
//! shared in-memory store (read by the reconciler) and a trigger stream (fed to
//! the controller). One watch serves both, so nothing is watched twice.
//!
//! Children are cached whole because the reconciler compares them with what it
//! would apply and skips the write when they already match; their
//! `managedFields` are cut down to Berth's own entry, the only one it reads,
//! which keeps memory low at scale.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{StreamExt, future::BoxFuture};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::desired::labels::MICROSERVICE_LABEL;
use crate::microservice::{MANAGER, MicroService};

/// Buffer of each shared trigger stream: how far a slow subscriber may lag.
const SUBSCRIBER_BUFFER: usize = 1024;
/// Objects per list page when a watch (re)starts.
const PAGE_SIZE: u32 = 500;
/// Watch retry delays: kube's default grows to 30 s, so after a 20 s API
/// server outage (plus the `410 Expired` every watch gets from a restarted
/// API server's empty watch cache) the caches stayed stale for half a minute
/// more. Five watches retrying every 5 s at most costs the API server nothing.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Stores of everything the reconciler reads.
#[derive(Clone)]
pub struct Stores {
    pub microservices: Store<MicroService>,
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub autoscalers: Store<HorizontalPodAutoscaler>,
    pub disruption_budgets: Store<PodDisruptionBudget>,
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
        );
    }
}

/// Trigger streams for the controller, one per kind.
pub struct Triggers {
    pub microservices: futures::stream::BoxStream<'static, Arc<MicroService>>,
    pub dependencies: futures::stream::BoxStream<'static, Arc<MicroService>>,
    pub deployments: futures::stream::BoxStream<'static, Arc<Deployment>>,
    pub services: futures::stream::BoxStream<'static, Arc<Service>>,
    pub autoscalers: futures::stream::BoxStream<'static, Arc<HorizontalPodAutoscaler>>,
    pub disruption_budgets: futures::stream::BoxStream<'static, Arc<PodDisruptionBudget>>,
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

/// Starts the watches. Returns the stores, the trigger streams and one future
/// that drives all watches; it must be polled for the stores to fill.
pub fn start(
    client: &Client,
    namespace: Option<&str>,
    health: WatchHealth,
    trim: bool,
) -> (Stores, Triggers, BoxFuture<'static, ()>) {
    fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    // Children are found by Berth's label; anything without it is not ours to read.
    let children = watcher::Config::default()
        .labels(MICROSERVICE_LABEL)
        .page_size(PAGE_SIZE);
    let all = watcher::Config::default().page_size(PAGE_SIZE);

    let (microservices, ms_trigger, ms_extra, ms_driver) =
        shared::<MicroService>(api(client, namespace), all, health.clone(), true, trim);
    let (deployments, dep_trigger, _, dep_driver) = shared::<Deployment>(
        api(client, namespace),
        children.clone(),
        health.clone(),
        false,
        trim,
    );
    let (services, svc_trigger, _, svc_driver) = shared::<Service>(
        api(client, namespace),
        children.clone(),
        health.clone(),
        false,
        trim,
    );
    let (autoscalers, hpa_trigger, _, hpa_driver) = shared::<HorizontalPodAutoscaler>(
        api(client, namespace),
        children.clone(),
        health.clone(),
        false,
        trim,
    );
    let (disruption_budgets, pdb_trigger, _, pdb_driver) =
        shared::<PodDisruptionBudget>(api(client, namespace), children, health, false, trim);

    let drivers = async move {
        futures::join!(ms_driver, dep_driver, svc_driver, hpa_driver, pdb_driver);
    };
    (
        Stores {
            microservices,
            deployments,
            services,
            autoscalers,
            disruption_budgets,
        },
        Triggers {
            microservices: ms_trigger,
            dependencies: ms_extra.expect("asked for a second subscriber"),
            deployments: dep_trigger,
            services: svc_trigger,
            autoscalers: hpa_trigger,
            disruption_budgets: pdb_trigger,
        },
        Box::pin(drivers),
    )
}

type Shared<K> = (
    Store<K>,
    futures::stream::BoxStream<'static, Arc<K>>,
    Option<futures::stream::BoxStream<'static, Arc<K>>>,
    BoxFuture<'static, ()>,
);

/// One watch of `K`: a store, one trigger stream (two when `second`), and the driver.
fn shared<K>(
    api: Api<K>,
    wc: watcher::Config,
    health: WatchHealth,
    second: bool,
    trim: bool,
) -> Shared<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store_shared(SUBSCRIBER_BUFFER);
    let trigger = writer.subscribe().expect("shared store").boxed();
    let extra = second.then(|| writer.subscribe().expect("shared store").boxed());
    let kind = K::kind(&()).into_owned();
    let failing = health.register();
    let driver = Box::pin(
        watcher(api, wc)
            .backoff(RetryDelay::default())
            .modify(move |obj| {
                if trim {
                    keep_own_managed_fields(obj);
                }
            })
            .reflect_shared(writer)
            .for_each(move |event| {
                if let Err(error) = &event {
                    tracing::warn!(%kind, %error, "watch failed; retrying with backoff");
                }
                failing.store(event.is_err(), Ordering::Relaxed);
                futures::future::ready(())
            }),
    );
    (store, trigger, extra, driver)
}

/// Doubling retry delays from [`RETRY_FIRST`] to [`RETRY_MAX`], with up to 25 %
/// jitter so the five watches do not retry in lockstep; reset by the first
/// event that arrives.
#[derive(Default)]
struct RetryDelay {
    attempts: u32,
}

impl Iterator for RetryDelay {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = RETRY_FIRST
            .saturating_mul(1 << self.attempts.min(10))
            .min(RETRY_MAX);
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
        self.attempts = 0;
    }
}

/// Drops every `managedFields` entry except Berth's own apply (read by the
/// replicas hand-over), to keep cached objects small.
fn keep_own_managed_fields<K: Resource>(obj: &mut K) {
    if let Some(fields) = obj.meta_mut().managed_fields.as_mut() {
        fields.retain(|f| {
            f.manager.as_deref() == Some(MANAGER)
                && f.operation.as_deref() == Some("Apply")
                && f.subresource.is_none()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff;

    #[test]
    fn watch_retries_double_up_to_the_cap_and_reset() {
        let mut delays = RetryDelay::default();
        let first = delays.next().unwrap();
        assert!(first >= RETRY_FIRST && first <= RETRY_FIRST.mul_f64(1.25));
        let late: Vec<Duration> = (0..20).filter_map(|_| delays.next()).collect();
        assert!(late.iter().all(|d| *d <= RETRY_MAX.mul_f64(1.25)));
        assert!(late.last().unwrap() >= &RETRY_MAX);
        delays.reset();
        assert!(delays.next().unwrap() <= RETRY_FIRST.mul_f64(1.25));
    }
}

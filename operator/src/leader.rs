//! Leader election: every replica watches and serves readiness, only the
//! holder of a coordination.k8s.io Lease writes.
//!
//! kube-lease-manager acquires and renews the Lease. It only says when the
//! lock changes hands as far as it has seen, so during an API server outage it
//! would keep saying "leader" while the Lease expires and another replica takes
//! over. [`Leadership`] therefore also keeps a local deadline: it watches the
//! Lease and counts our holding as valid only until `duration - margin` after
//! the last renewal it saw. The deadline is checked before every write by
//! [`crate::client_gate`], so a lost lease stops writes at once, in-flight
//! reconciles included.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// Lease settings (the `--lease-*` flags).
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// This replica's name in the Lease's `holderIdentity`.
    pub identity: String,
    /// How long a lease is valid after its last renewal.
    pub duration: Duration,
    /// How long before expiry the holder renews.
    pub grace: Duration,
}

/// Safety margin between our local deadline and the moment another replica may take over.
const MARGIN: Duration = Duration::from_secs(2);

/// Whether this replica may write now. Cheap to clone and to ask.
#[derive(Clone)]
pub struct Leadership {
    inner: Arc<State>,
    changes: watch::Receiver<bool>,
}

struct State {
    /// False: no election (single replica), always leading.
    elected: bool,
    /// kube-lease-manager says we hold the lock.
    holder: AtomicBool,
    /// Millis since `epoch` until which our last seen renewal is valid.
    valid_until: AtomicU64,
    epoch: Instant,
    /// Keeps the change channel open when there is no election.
    _always: Option<watch::Sender<bool>>,
}

impl Leadership {
    /// No election: this process always leads (local runs, one replica).
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        Self {
            inner: Arc::new(State {
                elected: false,
                holder: AtomicBool::new(true),
                valid_until: AtomicU64::new(u64::MAX),
                epoch: Instant::now(),
                _always: Some(tx),
            }),
            changes: rx,
        }
    }

    /// True while this replica holds an unexpired lease.
    pub fn leading(&self) -> bool {
        let state = &self.inner;
        if !state.elected {
            return true;
        }
        state.holder.load(Ordering::Acquire)
            && (state.epoch.elapsed().as_millis() as u64)
                < state.valid_until.load(Ordering::Acquire)
    }

    /// A receiver that sees `true` each time this replica becomes leader.
    pub fn changes(&self) -> watch::Receiver<bool> {
        self.changes.clone()
    }

    /// Runs the election in the background. `client` must not be the write-gated
    /// client (the Lease is written while not yet leading).
    pub async fn elect(
        client: Client,
        settings: LeaseSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let params = LeaseParams::new(
            settings.identity.clone(),
            settings.duration.as_secs(),
            settings.grace.as_secs(),
        )
        .with_field_manager(format!("berth-operator-lease-{}", settings.identity));
        let manager = LeaseManagerBuilder::new(client.clone(), settings.name.clone())
            .with_namespace(settings.namespace.clone())
            .with_parameters(params)
            .build()
            .await?;
        let (mut lock, _task) = manager.watch().await;
        let state = Arc::new(State {
            elected: true,
            holder: AtomicBool::new(false),
            valid_until: AtomicU64::new(0),
            epoch: Instant::now(),
            _always: None,
        });
        let (tx, rx) = watch::channel(false);
        let leadership = Self {
            inner: state.clone(),
            changes: rx,
        };

        // The renewals we see: each one extends the local deadline.
        let lease_api: Api<Lease> = Api::namespaced(client, &settings.namespace);
        let watch_config =
            watcher::Config::default().fields(&format!("metadata.name={}", settings.name));
        let valid_for = settings.duration.saturating_sub(MARGIN);
        let me = settings.identity.clone();
        let renewals = state.clone();
        tokio::spawn(async move {
            let mut last_renewal = None;
            let mut events = watcher(lease_api, watch_config)
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(event) = events.next().await {
                let Ok(lease) = event else { continue };
                let spec = lease.spec.unwrap_or_default();
                if spec.holder_identity.as_deref() == Some(me.as_str())
                    && spec.renew_time != last_renewal
                {
                    last_renewal = spec.renew_time;
                    let until = renewals.epoch.elapsed() + valid_for;
                    renewals
                        .valid_until
                        .store(until.as_millis() as u64, Ordering::Release);
                }
            }
        });

        // Publish the effective state: holder per the manager, and not expired locally.
        let watcher_view = leadership.clone();
        let identity = settings.identity;
        tokio::spawn(async move {
            let mut published = false;
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    changed = lock.changed() => {
                        if changed.is_err() {
                            tracing::error!("the lease manager stopped; no longer leading");
                            state.holder.store(false, Ordering::Release);
                        } else {
                            state.holder.store(*lock.borrow_and_update(), Ordering::Release);
                        }
                    }
                    _ = tick.tick() => {}
                }
                let now = watcher_view.leading();
                if now != published {
                    published = now;
                    metrics.leader.set(i64::from(now));
                    if now {
                        tracing::info!(%identity, "acquired the lease; reconciling");
                    } else {
                        tracing::warn!(%identity, "not (or no longer) the leader; not writing");
                    }
                    let _ = tx.send(now);
                }
            }
        });
        Ok(leadership)
    }
}

/// This replica's identity: `POD_NAME` in a cluster, else host and process id.
pub fn default_identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "local".into());
        format!("{host}-{}", std::process::id())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_election_this_replica_always_leads() {
        let leadership = Leadership::always();
        assert!(leadership.leading());
        assert!(*leadership.changes().borrow());
    }

    #[test]
    fn an_expired_local_deadline_stops_leading_even_if_the_manager_says_holder() {
        let leadership = Leadership::always();
        let state = State {
            elected: true,
            holder: AtomicBool::new(true),
            valid_until: AtomicU64::new(0),
            epoch: Instant::now(),
            _always: None,
        };
        let elected = Leadership {
            inner: Arc::new(state),
            changes: leadership.changes(),
        };
        assert!(!elected.leading(), "no renewal seen: not leading");
        elected.inner.valid_until.store(u64::MAX, Ordering::Release);
        assert!(elected.leading());
        elected.inner.holder.store(false, Ordering::Release);
        assert!(!elected.leading(), "the manager lost the lock");
    }
}

//! Leader election: every replica watches and serves readiness, only the
//! holder of a coordination.k8s.io Lease writes.
//!
//! The election follows client-go's `leaderelection`: a replica takes the
//! Lease when it has no holder, or when its record has not changed for
//! `leaseDurationSeconds` by this replica's own clock (never the holder's
//! `renewTime`, so clock skew does not matter). Every write is a patch guarded
//! by the `resourceVersion` last seen, so of two replicas racing for the Lease
//! one wins and the other gets a conflict, and a release never clobbers a new
//! holder. Followers watch the Lease, so they see a release the moment it
//! happens: a leader that shuts down gracefully ([`Leadership::release`],
//! after its last write) clears the holder and the next replica takes over at
//! once instead of waiting out the lease (client-go's `ReleaseOnCancel`).
//!
//! Our holding also has a local deadline: valid until `duration - margin`
//! after we sent the last renewal the API server accepted. The deadline is
//! checked before every write by [`crate::client_gate`], so a lost lease (an
//! API server outage, a renewal refused) stops writes at once, in-flight
//! reconciles included.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::{Api, Client};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use election::{Elector, renew_after};

mod election;

/// Lease settings (the `--lease-*` flags).
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// This replica's name in the Lease's `holderIdentity`.
    pub identity: String,
    /// How long a lease is valid after its last renewal.
    pub duration: Duration,
    /// How long before our local deadline (`duration - margin`) the holder renews.
    pub grace: Duration,
}

/// Safety margin between our local deadline and the moment another replica may take over.
pub(crate) const MARGIN: Duration = Duration::from_secs(2);

/// Whether this replica may write now. Cheap to clone and to ask.
#[derive(Clone)]
pub struct Leadership {
    inner: Arc<State>,
    changes: watch::Receiver<bool>,
}

pub(crate) struct State {
    /// False: no election (single replica), always leading.
    elected: bool,
    /// We hold the Lease as far as we have seen.
    holder: AtomicBool,
    /// Millis since `epoch` until which our last accepted renewal is valid.
    valid_until: AtomicU64,
    epoch: Instant,
    /// Wakes the publisher when `holder` or `valid_until` changed.
    changed: Notify,
    /// Set by [`Leadership::release`]: the elector releases the Lease and stops.
    stop: watch::Sender<bool>,
    elector: Mutex<Option<JoinHandle<()>>>,
    /// Keeps the change channel open when there is no election.
    _always: Option<watch::Sender<bool>>,
}

impl State {
    fn new(elected: bool, always: Option<watch::Sender<bool>>) -> Self {
        Self {
            elected,
            holder: AtomicBool::new(!elected),
            valid_until: AtomicU64::new(if elected { 0 } else { u64::MAX }),
            epoch: Instant::now(),
            changed: Notify::new(),
            stop: watch::channel(false).0,
            elector: Mutex::new(None),
            _always: always,
        }
    }

    /// A write the API server accepted at `sent_at` makes us the holder until `sent_at + valid_for`.
    pub(crate) fn lead(&self, sent_at: Instant, valid_for: Duration) {
        let until = sent_at.saturating_duration_since(self.epoch) + valid_for;
        self.valid_until
            .store(until.as_millis() as u64, Ordering::Release);
        self.holder.store(true, Ordering::Release);
        self.changed.notify_one();
    }

    pub(crate) fn follow(&self) {
        if self.holder.swap(false, Ordering::AcqRel) {
            self.changed.notify_one();
        }
    }
}

impl Leadership {
    /// No election: this process always leads (local runs, one replica).
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        Self {
            inner: Arc::new(State::new(false, Some(tx))),
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

    /// Stops leading at once and hands the Lease back if we hold it, so
    /// another replica takes over without waiting out the lease. Call it after
    /// the last write (once the controller has stopped). Waits at most `limit`.
    pub async fn release(&self, limit: Duration) {
        let state = &self.inner;
        if !state.elected {
            return;
        }
        state.follow();
        let _ = state.stop.send(true);
        let elector = state.elector.lock().map(|mut e| e.take()).ok().flatten();
        if let Some(elector) = elector
            && tokio::time::timeout(limit, elector).await.is_err()
        {
            tracing::warn!(
                ?limit,
                "the Lease was not released in time; the others wait for it to expire"
            );
        }
    }

    /// Runs the election in the background. `client` must not be the write-gated
    /// client (the Lease is written while not yet leading).
    pub async fn elect(
        client: Client,
        settings: LeaseSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let state = Arc::new(State::new(true, None));
        let (tx, rx) = watch::channel(false);
        let leadership = Self {
            inner: state.clone(),
            changes: rx,
        };
        let valid_for = settings.duration.saturating_sub(MARGIN);
        let elector = Elector {
            api: Api::namespaced(client, &settings.namespace),
            name: settings.name.clone(),
            me: settings.identity.clone(),
            duration: settings.duration,
            renew_after: renew_after(settings.duration, settings.grace),
            valid_for,
            state: state.clone(),
            seen: None,
        };
        let handle = tokio::spawn(elector.run(state.stop.subscribe()));
        if let Ok(mut slot) = state.elector.lock() {
            *slot = Some(handle);
        }

        // Publish the effective state: holder, and not expired locally.
        let view = leadership.clone();
        let identity = settings.identity;
        tokio::spawn(async move {
            let mut published = false;
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = state.changed.notified() => {}
                    _ = tick.tick() => {}
                }
                let now = view.leading();
                if now != published {
                    published = now;
                    metrics.leader.set(i64::from(now));
                    if now {
                        tracing::info!(%identity, "acquired the lease; reconciling");
                    } else if *state.stop.borrow() {
                        tracing::info!(%identity, "shutting down; no longer leading");
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
    fn an_expired_local_deadline_stops_leading_even_if_we_hold_the_lease() {
        let always = Leadership::always();
        let elected = Leadership {
            inner: Arc::new(State::new(true, None)),
            changes: always.changes(),
        };
        elected.inner.holder.store(true, Ordering::Release);
        assert!(!elected.leading(), "no renewal accepted: not leading");
        elected.inner.lead(Instant::now(), Duration::from_secs(60));
        assert!(elected.leading());
        elected.inner.lead(Instant::now(), Duration::ZERO);
        assert!(!elected.leading(), "the deadline passed");
        elected.inner.lead(Instant::now(), Duration::from_secs(60));
        elected.inner.follow();
        assert!(!elected.leading(), "someone else holds the Lease");
    }
}

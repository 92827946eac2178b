//! The election itself, as client-go's `leaderelection` does it: what a
//! replica makes of the Lease it has seen (pure, unit-tested) and the loop
//! that acquires, renews and on shutdown releases it, every write a merge
//! patch guarded by the `resourceVersion` read. [`super::Leadership`] is the
//! rest of the operator's view of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{MARGIN, State};

/// Pause after a Lease request failed for another reason than a conflict.
const RETRY: Duration = Duration::from_secs(1);
/// Field manager of every Lease write (one for all replicas: managedFields stays one entry).
const FIELD_MANAGER: &str = "berth-operator-lease";

/// When the holder renews after its last accepted renewal: `grace` before
/// its local deadline, so a renewal that fails can be retried before writes stop.
pub(super) fn renew_after(duration: Duration, grace: Duration) -> Duration {
    duration
        .saturating_sub(MARGIN)
        .saturating_sub(grace)
        .max(Duration::from_millis(500))
}

/// The part of a Lease that says who holds it; a change of any of it is a sign of life.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    /// `None` (or an empty `holderIdentity`): free, whatever the times say.
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    duration: Duration,
}

/// The Lease as this replica last saw it.
#[derive(Clone, Debug)]
pub(super) struct Seen {
    record: Record,
    resource_version: Option<String>,
    transitions: i32,
    /// When the record last changed, by our clock (client-go's `observedTime`).
    changed_at: Instant,
}

impl Seen {
    fn of(lease: &Lease, before: Option<&Seen>, now: Instant) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        let record = Record {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renew_time: spec.renew_time,
            duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64),
        };
        let changed_at = match before {
            Some(before) if before.record == record => before.changed_at,
            _ => now,
        };
        Self {
            record,
            resource_version: lease.metadata.resource_version.clone(),
            transitions: spec.lease_transitions.unwrap_or(0),
            changed_at,
        }
    }

    /// Whether `self` is older than `other` (a watch event behind our own write's answer).
    fn older_than(&self, other: &Seen) -> bool {
        let version = |s: &Seen| s.resource_version.as_deref()?.parse::<u64>().ok();
        matches!((version(self), version(other)), (Some(a), Some(b)) if a < b)
    }
}

/// What a replica does next with the Lease it has seen.
#[derive(Debug, PartialEq)]
enum Next {
    /// No holder, or the holder has not renewed for the lease duration: take it.
    Acquire,
    /// We hold it: renew at `at`.
    Renew { at: Instant },
    /// Someone else holds it: look again at `until` (or when the Lease changes).
    Wait { until: Instant },
}

fn next(seen: &Seen, me: &str, renew_after: Duration, now: Instant) -> Next {
    match seen.record.holder.as_deref() {
        None => Next::Acquire,
        Some(holder) if holder == me => Next::Renew {
            at: seen.changed_at + renew_after,
        },
        Some(_) => {
            let until = seen.changed_at + seen.record.duration;
            if now >= until {
                Next::Acquire
            } else {
                Next::Wait { until }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Write {
    Acquire,
    Renew,
    Release,
}

/// The merge patch for `write`, guarded by the resourceVersion we saw:
/// the API server refuses it with a conflict if anyone wrote in between.
fn patch_body(write: Write, seen: &Seen, me: &str, duration: Duration, now: Timestamp) -> Value {
    let now = MicroTime(now);
    let spec = match write {
        Write::Acquire => json!({
            "holderIdentity": me,
            "leaseDurationSeconds": duration.as_secs(),
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": seen.transitions + 1,
        }),
        Write::Renew => json!({ "renewTime": now, "leaseDurationSeconds": duration.as_secs() }),
        // As client-go: no holder, a 1 s lease renewed now.
        Write::Release => json!({
            "holderIdentity": null,
            "leaseDurationSeconds": 1,
            "renewTime": now,
        }),
    };
    json!({ "metadata": { "resourceVersion": seen.resource_version }, "spec": spec })
}

/// The loop that acquires, renews and finally releases the Lease.
pub(super) struct Elector {
    pub(super) api: Api<Lease>,
    pub(super) name: String,
    pub(super) me: String,
    pub(super) duration: Duration,
    pub(super) renew_after: Duration,
    pub(super) valid_for: Duration,
    pub(super) state: Arc<State>,
    pub(super) seen: Option<Seen>,
}

impl Elector {
    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let mut events = watcher(self.api.clone(), config)
            .default_backoff()
            .applied_objects()
            .boxed();
        loop {
            if *stop.borrow() {
                self.release().await;
                return;
            }
            let now = Instant::now();
            let wake = match self
                .seen
                .as_ref()
                .map(|s| next(s, &self.me, self.renew_after, now))
            {
                None => {
                    self.read().await;
                    continue;
                }
                Some(Next::Acquire) => {
                    self.write(Write::Acquire).await;
                    continue;
                }
                Some(Next::Renew { at }) if at <= now => {
                    self.write(Write::Renew).await;
                    continue;
                }
                Some(Next::Renew { at } | Next::Wait { until: at }) => at,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = stop.changed() => {}
                event = events.next() => match event {
                    Some(Ok(lease)) => self.observe(&lease, Instant::now()),
                    Some(Err(e)) => tracing::debug!(error = %e, "watching the Lease"),
                    None => tokio::time::sleep_until(wake.into()).await,
                },
            }
        }
    }

    fn observe(&mut self, lease: &Lease, now: Instant) {
        let seen = Seen::of(lease, self.seen.as_ref(), now);
        if self
            .seen
            .as_ref()
            .is_some_and(|before| seen.older_than(before))
        {
            return;
        }
        if seen.record.holder.as_deref() != Some(self.me.as_str()) {
            self.state.follow();
        }
        self.seen = Some(seen);
    }

    /// Reads the Lease; creates it, held by us, when there is none.
    async fn read(&mut self) {
        match self.api.get_opt(&self.name).await {
            Ok(Some(lease)) => self.observe(&lease, Instant::now()),
            Ok(None) => self.create().await,
            Err(e) => {
                tracing::warn!(error = %e, lease = %self.name, "reading the Lease");
                tokio::time::sleep(RETRY).await;
            }
        }
    }

    async fn create(&mut self) {
        let now = MicroTime(Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.me.clone()),
                lease_duration_seconds: Some(self.duration.as_secs() as i32),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let sent_at = Instant::now();
        match self.api.create(&params, &lease).await {
            Ok(lease) => {
                self.observe(&lease, sent_at);
                self.state.lead(sent_at, self.valid_for);
            }
            // Another replica created it first: read it on the next turn.
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => {
                tracing::warn!(error = %e, lease = %self.name, "creating the Lease");
                tokio::time::sleep(RETRY).await;
            }
        }
    }

    /// Sends `write`; true when the API server accepted it.
    async fn write(&mut self, write: Write) -> bool {
        let Some(seen) = self.seen.as_ref().filter(|s| s.resource_version.is_some()) else {
            self.seen = None;
            return false;
        };
        let body = patch_body(write, seen, &self.me, self.duration, Timestamp::now());
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let sent_at = Instant::now();
        match self
            .api
            .patch(&self.name, &params, &Patch::Merge(&body))
            .await
        {
            Ok(lease) => {
                self.observe(&lease, sent_at);
                if write != Write::Release {
                    self.state.lead(sent_at, self.valid_for);
                }
                true
            }
            // Someone wrote the Lease since we read it (or deleted it): read it again.
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {
                tracing::debug!(?write, reason = %status.message, "the Lease changed under us");
                self.seen = None;
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, ?write, lease = %self.name, "writing the Lease");
                tokio::time::sleep(RETRY).await;
                false
            }
        }
    }

    /// Hands the Lease back if we hold it; a conflict means someone else has it, so nothing to do.
    async fn release(&mut self) {
        self.state.follow();
        for _ in 0..3 {
            if self.seen.is_none() {
                self.read().await;
            }
            let ours = self
                .seen
                .as_ref()
                .is_some_and(|s| s.record.holder.as_deref() == Some(self.me.as_str()));
            if !ours {
                return;
            }
            if self.write(Write::Release).await {
                tracing::info!(identity = %self.me, lease = %self.name, "released the lease");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed: i64, rv: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("berth-operator".into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
                lease_transitions: Some(3),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_lease_without_holder_is_free_at_once_whatever_its_times_say() {
        let t0 = Instant::now();
        for holder in [None, Some("")] {
            let seen = Seen::of(&lease(holder, 100, "1"), None, t0);
            assert_eq!(next(&seen, "b", Duration::from_secs(8), t0), Next::Acquire);
        }
    }

    #[test]
    fn another_holder_counts_until_its_record_has_not_changed_for_the_duration() {
        let t0 = Instant::now();
        let seen = Seen::of(&lease(Some("a"), 100, "1"), None, t0);
        let until = t0 + Duration::from_secs(15);
        assert_eq!(
            next(&seen, "b", Duration::from_secs(8), t0),
            Next::Wait { until }
        );
        assert_eq!(
            next(&seen, "b", Duration::from_secs(8), until),
            Next::Acquire
        );

        // The same record seen again later (a re-list) is no sign of life...
        let later = t0 + Duration::from_secs(10);
        let again = Seen::of(&lease(Some("a"), 100, "1"), Some(&seen), later);
        assert_eq!(again.changed_at, t0);
        // ...a renewal is, by our clock, whatever the holder's clock says.
        let renewed = Seen::of(&lease(Some("a"), 50, "2"), Some(&seen), later);
        assert_eq!(renewed.changed_at, later);
        assert_eq!(
            next(&renewed, "b", Duration::from_secs(8), until),
            Next::Wait {
                until: later + Duration::from_secs(15)
            }
        );
    }

    #[test]
    fn the_holder_renews_grace_before_its_local_deadline() {
        let t0 = Instant::now();
        let seen = Seen::of(&lease(Some("me"), 100, "1"), None, t0);
        let after = renew_after(Duration::from_secs(15), Duration::from_secs(5));
        assert_eq!(after, Duration::from_secs(8));
        assert_eq!(next(&seen, "me", after, t0), Next::Renew { at: t0 + after });
        assert_eq!(
            renew_after(Duration::from_secs(6), Duration::from_secs(2)),
            Duration::from_secs(2)
        );
        assert_eq!(
            renew_after(Duration::from_secs(3), Duration::from_secs(2)),
            Duration::from_millis(500),
            "never a busy loop"
        );
    }

    #[test]
    fn a_watch_event_older_than_what_we_wrote_is_ignored() {
        let t0 = Instant::now();
        let ours = Seen::of(&lease(Some("me"), 100, "12"), None, t0);
        let stale = Seen::of(&lease(Some("a"), 90, "9"), Some(&ours), t0);
        assert!(stale.older_than(&ours));
        assert!(!ours.older_than(&stale));
    }

    #[test]
    fn every_write_is_guarded_by_the_resource_version_seen() {
        let t0 = Instant::now();
        let seen = Seen::of(&lease(Some("a"), 100, "42"), None, t0);
        let now = Timestamp::from_second(200).unwrap();
        let d = Duration::from_secs(15);
        for write in [Write::Acquire, Write::Renew, Write::Release] {
            let body = patch_body(write, &seen, "me", d, now);
            assert_eq!(body["metadata"]["resourceVersion"], "42", "{write:?}");
        }
        let acquire = patch_body(Write::Acquire, &seen, "me", d, now);
        assert_eq!(acquire["spec"]["holderIdentity"], "me");
        assert_eq!(acquire["spec"]["leaseDurationSeconds"], 15);
        assert_eq!(acquire["spec"]["leaseTransitions"], 4);
        assert_eq!(acquire["spec"]["acquireTime"], acquire["spec"]["renewTime"]);
        let renew = patch_body(Write::Renew, &seen, "me", d, now);
        assert!(renew["spec"].get("holderIdentity").is_none());
    }

    #[test]
    fn a_release_clears_the_holder_and_leaves_a_one_second_lease_renewed_now() {
        let seen = Seen::of(&lease(Some("me"), 100, "7"), None, Instant::now());
        let now = Timestamp::from_second(200).unwrap();
        let body = patch_body(Write::Release, &seen, "me", Duration::from_secs(15), now);
        assert_eq!(body["spec"]["holderIdentity"], Value::Null);
        assert_eq!(body["spec"]["leaseDurationSeconds"], 1);
        assert_eq!(body["spec"]["renewTime"], json!(MicroTime(now)));
        // What a follower makes of the released Lease: free at once.
        let mut released = lease(None, 200, "8");
        released.spec.as_mut().unwrap().lease_duration_seconds = Some(1);
        let t = Instant::now();
        let after = Seen::of(&released, Some(&seen), t);
        assert_eq!(next(&after, "b", Duration::from_secs(8), t), Next::Acquire);
    }
}

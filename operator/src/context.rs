//! What every reconcile shares: the client, the caches, the event recorder,
//! the metrics and each object's retry backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;

use crate::cache::Stores;
use crate::metrics::Metrics;
use crate::microservice::{MANAGER, MicroService};

pub struct Context {
    pub client: Client,
    pub stores: Stores,
    /// The recorder of Warning events. kube's recorder keeps every event it
    /// sent for six minutes, so a warning repeated within that time becomes
    /// a series on one Event rather than a new Event each time.
    warnings: Recorder,
    /// Who reports Normal events; each gets a recorder of its own (see
    /// [`Context::recorder`]).
    reporter: Reporter,
    pub metrics: std::sync::Arc<Metrics>,
    /// How often a MicroService is looked at again with no event.
    pub resync: Duration,
    backoff: Mutex<HashMap<ObjectRef<MicroService>, u32>>,
}

/// First retry delay after a transient failure; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Context {
    pub fn new(client: Client, stores: Stores, metrics: std::sync::Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            warnings: Recorder::new(client.clone(), reporter.clone()),
            reporter,
            client,
            stores,
            metrics,
            resync: crate::reconcile::RESYNC,
            backoff: Mutex::default(),
        }
    }

    /// The recorder for an event of `type_`. A Normal event reports a change,
    /// which happens once, so a shared recorder would only hoard it: one
    /// Event and its key per MicroService for six minutes, in a table that
    /// never shrinks (4.4 MB of a 17.5 MB heap peak at N=1000 in
    /// bench/scale/results.md, and every publish scans it). A fresh recorder
    /// costs two clones and forgets the event once sent.
    pub fn recorder(&self, type_: EventType) -> Recorder {
        match type_ {
            EventType::Warning => self.warnings.clone(),
            EventType::Normal => Recorder::new(self.client.clone(), self.reporter.clone()),
        }
    }

    /// The next retry delay for `obj`: exponential per object, with jitter so
    /// that many objects failing together do not retry together.
    pub fn next_backoff(&self, obj: &ObjectRef<MicroService>) -> Duration {
        let mut attempts = self.backoff.lock().expect("backoff lock");
        let n = attempts.entry(obj.clone()).or_insert(0);
        let delay = FIRST_BACKOFF
            .saturating_mul(1 << (*n).min(16))
            .min(MAX_BACKOFF);
        *n = n.saturating_add(1);
        let jitter = 0.8 + 0.4 * f64::from(jitter_seed(obj, *n) % 1000) / 1000.0;
        delay.mul_f64(jitter)
    }

    /// Forgets `obj`'s failures after a successful reconcile.
    pub fn reset_backoff(&self, obj: &ObjectRef<MicroService>) {
        self.backoff.lock().expect("backoff lock").remove(obj);
    }
}

/// A cheap, spread-out number per object and attempt (no RNG dependency needed).
fn jitter_seed(obj: &ObjectRef<MicroService>, attempt: u32) -> u32 {
    let text = format!("{obj}/{attempt}");
    text.bytes().fold(2_166_136_261_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    })
}

//! A service's background chore (the item service freeing expired holds, the
//! order service finishing abandoned orders): run at start, then at a fixed
//! interval, for as long as the service that owns it exists.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// The running chore; dropping it stops it, so a service built and dropped
/// by a test leaves nothing running.
pub struct Periodic(JoinHandle<()>);

impl Periodic {
    /// Runs `chore` now and then every `every`. A run that takes longer
    /// than `every` delays the next one rather than being followed by a
    /// burst of catch-up runs.
    pub fn spawn<F, Fut>(every: Duration, mut chore: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                chore().await;
            }
        }))
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        self.0.abort();
    }
}

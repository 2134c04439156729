//! Which of the controllers' caches have listed what they watch. `/readyz` reports the ones
//! that have not (a cache that never syncs is usually a missing RBAC right: its watch keeps
//! failing), and reconciles wait for their caches only so long, then say which ones they
//! waited for, and not at all once the process stops (a controller stopping gracefully no
//! longer feeds its caches, so a reconcile waiting for them would hold the shutdown, and the
//! leader's Lease, until the grace period ends).

use std::{collections::BTreeSet, future::Future, sync::Mutex, time::Duration};

/// How long a reconcile waits for its controller's caches before it gives up with
/// [`NotSynced`] (and is retried with backoff).
pub const WAIT_BOUND: Duration = Duration::from_secs(60);

/// The caches registered and not yet synced, by name (`<controller>/<kind>`).
#[derive(Debug)]
pub struct CacheSync {
    pending: Mutex<BTreeSet<String>>,
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Default for CacheSync {
    fn default() -> Self {
        Self {
            pending: Mutex::default(),
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }
}

/// Caches that did not sync within [`WAIT_BOUND`], by name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("caches not synced after {}s: {}", WAIT_BOUND.as_secs(), .0.join(", "))]
pub struct NotSynced(pub Vec<String>);

impl CacheSync {
    /// Records a cache that has not listed yet.
    pub fn register(&self, name: &str) {
        self.lock().insert(name.to_string());
    }

    /// Records that the cache has listed.
    pub fn synced(&self, name: &str) {
        self.lock().remove(name);
    }

    /// The caches registered and not yet synced, sorted.
    pub fn pending(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    /// Registers the cache `name`, and returns `ready` (a store's `wait_until_ready`) that
    /// marks it synced when it completes.
    pub fn track<'a, F>(&'a self, name: String, ready: F) -> impl Future<Output = ()> + 'a
    where
        F: Future + 'a,
    {
        self.register(&name);
        async move {
            let _ = ready.await;
            self.synced(&name);
        }
    }

    /// Records that the process is stopping: waits for caches end at once.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Starts afresh after [`CacheSync::stop`] for a new set of caches (a new leadership
    /// term in the same process): nothing pending, waits bounded again.
    pub fn resume(&self) {
        self.lock().clear();
        self.stopping.send_replace(false);
    }

    /// Waits for `ready` (every cache of a controller) at most [`WAIT_BOUND`]: Ok(None) when
    /// the process stops first, else the caches still pending when it gives up.
    pub async fn bounded<T>(&self, ready: impl Future<Output = T>) -> Result<Option<T>, NotSynced> {
        tokio::select! {
            waited = tokio::time::timeout(WAIT_BOUND, ready) => {
                waited.map(Some).map_err(|_| NotSynced(self.pending()))
            }
            _ = self.stopped() => Ok(None),
        }
    }

    /// Waits for `ready` unless the process stops first (None).
    pub async fn unless_stopping<T>(&self, ready: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            value = ready => Some(value),
            _ = self.stopped() => None,
        }
    }

    async fn stopped(&self) {
        let mut stopping = self.stopping.subscribe();
        // Errors only when the sender is gone, which it never is while `self` lives.
        let _ = stopping.wait_for(|stop| *stop).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // A panic while holding the lock leaves a set that is still consistent.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tracked_cache_is_pending_until_it_is_ready() {
        let caches = CacheSync::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tracked = caches.track("tenants/Secret".into(), rx);
        let other = caches.track("tenants/ConfigMap".into(), async {});
        assert_eq!(caches.pending(), ["tenants/ConfigMap", "tenants/Secret"]);
        other.await;
        assert_eq!(caches.pending(), ["tenants/Secret"]);
        tx.send(()).expect("receiver alive");
        tracked.await;
        assert!(caches.pending().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_bounded_wait_names_the_caches_it_waited_for() {
        let caches = CacheSync::default();
        let never = caches.track("tenants/StatefulSet".into(), std::future::pending::<()>());
        let error = caches.bounded(never).await.expect_err("never syncs");
        let stopping = CacheSync::default();
        stopping.stop();
        let never = stopping.track("tenants/Secret".into(), std::future::pending::<()>());
        assert_eq!(
            stopping.bounded(never).await,
            Ok(None),
            "a stop ends the wait"
        );
        assert_eq!(
            stopping.unless_stopping(std::future::pending::<()>()).await,
            None
        );
        assert_eq!(error.0, ["tenants/StatefulSet"]);
        assert_eq!(
            error.to_string(),
            "caches not synced after 60s: tenants/StatefulSet"
        );
    }
}

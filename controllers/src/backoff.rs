//! Jittered exponential backoff per object, for transient failures.
//!
//! kube-runtime requeues with whatever delay `error_policy` returns; this keeps a failure
//! count per object so retries spread out (and do not synchronise across objects) and resets
//! once the object reconciles.

use std::{collections::HashMap, sync::Mutex, time::Duration};

/// Backoff state of every object that is currently failing.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure of `key` and returns how long to wait before the next attempt:
    /// `base * 2^(failures-1)`, capped at `max`, with ±25% jitter.
    pub fn next(&self, key: &str) -> Duration {
        let failures = {
            let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let exponential = self.base.saturating_mul(
            1_u32
                .checked_shl(failures.saturating_sub(1).min(20))
                .unwrap_or(u32::MAX),
        );
        let capped = exponential.min(self.max);
        let jitter = 0.75 + fastrand::f64() * 0.5;
        capped.mul_f64(jitter)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// How many consecutive failures `key` has had.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(300))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_bounds() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for expected in [1.0, 2.0, 4.0, 8.0] {
            let delay = backoff.next("a").as_secs_f64();
            assert!(
                delay >= expected * 0.75 && delay <= expected * 1.25,
                "delay {delay} for {expected}"
            );
        }
    }

    #[test]
    fn delays_are_capped() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        for _ in 0..40 {
            assert!(backoff.next("a") <= Duration::from_millis(12_500));
        }
    }

    #[test]
    fn reset_starts_over_and_objects_are_independent() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        backoff.next("a");
        backoff.next("a");
        backoff.next("b");
        assert_eq!(backoff.failures("a"), 2);
        assert_eq!(backoff.failures("b"), 1);
        backoff.reset("a");
        assert_eq!(backoff.failures("a"), 0);
        assert!(backoff.next("a") <= Duration::from_millis(1250));
    }
}

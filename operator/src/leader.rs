//! Leader election on a `coordination.k8s.io` Lease, as client-go does it: the holder renews
//! the lease; a candidate takes it over once it has seen the same record unchanged for a whole
//! lease duration (measured on its own clock, so clock skew between nodes does not matter);
//! a leader that shuts down gracefully releases the lease so a standby takes over at once.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tracing::{debug, info, warn};

/// Timing of the election (client-go's defaults).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// How often candidates and the leader try.
    pub retry_period: Duration,
}

impl Timing {
    /// client-go's proportions for a given lease duration: renew deadline at two thirds of
    /// it, retries at about a seventh.
    pub fn for_lease(lease_duration: Duration) -> Self {
        Self {
            lease_duration,
            renew_deadline: lease_duration.mul_f64(2.0 / 3.0),
            retry_period: lease_duration
                .mul_f64(2.0 / 15.0)
                .max(Duration::from_millis(500)),
        }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// One candidate of the election.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
            observed: None,
        }
    }

    /// The lease's durations this candidate works with.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Waits until this candidate holds the lease.
    pub async fn acquire(&mut self) {
        info!(lease = %self.name, identity = %self.identity, "waiting for leadership");
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    info!(lease = %self.name, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews the lease until renewal fails for longer than the renew deadline; returns then
    /// (leadership is lost and the caller must stop its controllers).
    pub async fn keep_renewing(&mut self) {
        let mut last_renewal = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = Instant::now(),
                Ok(false) => {
                    warn!(lease = %self.name, "another candidate holds the lease");
                    return;
                }
                Err(e) => {
                    warn!(error = %e, "renewing the lease failed");
                    if last_renewal.elapsed() > self.timing.renew_deadline {
                        return;
                    }
                }
            }
        }
    }

    /// Gives the lease up so that a standby does not wait for it to expire. Bounded by the
    /// retry period: a shutdown never waits on an API server that does not answer.
    pub async fn release(&mut self) {
        if tokio::time::timeout(self.timing.retry_period, self.release_now())
            .await
            .is_err()
        {
            warn!(lease = %self.name, "releasing the lease timed out; it expires on its own");
        }
    }

    async fn release_now(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!(lease = %self.name, "released leadership"),
            Err(e) => warn!(error = %e, "releasing the lease failed"),
        }
    }

    /// One round of the election, bounded by the renew deadline (as client-go bounds it): a
    /// request the API server never answers counts as a failed renewal instead of holding
    /// the leader past its deadline. Ok(true) when this candidate holds the lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> anyhow::Result<bool> {
        let deadline = self.timing.renew_deadline;
        match tokio::time::timeout(deadline, self.attempt()).await {
            Ok(result) => Ok(result?),
            Err(_) => anyhow::bail!("no answer within {}s", deadline.as_secs_f64()),
        }
    }

    async fn attempt(&mut self) -> Result<bool, kube::Error> {
        let lease_seconds = i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(15);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(lease_seconds),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let held_by_me = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        if !held_by_me {
            let holder_duration = spec
                .lease_duration_seconds
                .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
                .unwrap_or(self.timing.lease_duration);
            let seen_since = match &self.observed {
                Some((observed, since)) if *observed == spec => *since,
                _ => {
                    self.observed = Some((spec.clone(), Instant::now()));
                    Instant::now()
                }
            };
            let vacant = spec
                .holder_identity
                .as_deref()
                .unwrap_or_default()
                .is_empty();
            if !vacant && seen_since.elapsed() < holder_duration {
                debug!(holder = ?spec.holder_identity, "lease is held");
                return Ok(false);
            }
        }
        let mut new_spec = spec.clone();
        if !held_by_me {
            new_spec.holder_identity = Some(self.identity.clone());
            new_spec.acquire_time = Some(now());
            new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        new_spec.lease_duration_seconds = Some(lease_seconds);
        new_spec.renew_time = Some(now());
        lease.spec = Some(new_spec.clone());
        // The replace carries the resourceVersion we read: two candidates racing for an
        // expired lease cannot both win.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.observed = Some((new_spec, Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

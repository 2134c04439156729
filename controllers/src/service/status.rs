//! The catalog Service's status: pure, computed from its pool's rollout and the tenants that
//! run it, so an unchanged world gives an unchanged status and no write.

use k8s_openapi::{api::apps::v1::Deployment, apimachinery::pkg::apis::meta::v1::Time};
use kube::ResourceExt;
use landlord_crds::conditions::Reason;
use landlord_crds::{
    Service, ServiceStatus,
    conditions::{self, Observation, Status},
    service::PoolStatus,
};

use super::rollout::Rollout;

/// The condition a catalog Service reports.
pub const READY: &str = "Ready";

/// What the pool looks like, when the Service runs for the shared tier.
pub struct Pool<'a> {
    pub deployment: Option<&'a Deployment>,
    pub rollout: Rollout,
}

/// Why the API server refused the pool's objects: the reason and a message naming the object
/// and quoting the server.
pub struct Refused {
    pub reason: Reason,
    pub message: String,
}

/// The status of a catalog Service. `invalid` is the validation error of its spec; `refused`
/// says why its pool could not be written; `tenants` holds, for each tenant that runs the
/// Service, whether its instance (its own Deployment, or the pool for a shared tenant) is
/// rolled out.
pub fn compute(
    service: &Service,
    invalid: Option<&str>,
    refused: Option<&Refused>,
    pool: Option<&Pool>,
    tenants: &[bool],
    now: &Time,
) -> ServiceStatus {
    let generation = service.metadata.generation;
    let mut status = ServiceStatus {
        observed_generation: generation,
        pool: pool.map(|p| pool_status(service, p.deployment)),
        tenants: count(tenants.len()),
        tenants_ready: count(tenants.iter().filter(|ready| **ready).count()),
        conditions: service
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default(),
    };
    let name = service.name_any();
    let ready = match (invalid, pool) {
        (Some(why), _) => Observation::new(READY, Status::False, Reason::InvalidSpec, why),
        (None, _) if let Some(refused) = refused => Observation::new(
            READY,
            Status::False,
            refused.reason,
            format!("pool: {}", refused.message),
        ),
        (None, Some(pool)) if !pool.rollout.is_complete() => Observation::new(
            READY,
            Status::False,
            pool.rollout.reason(),
            format!("pool: {}", pool.rollout.message()),
        ),
        (None, Some(_)) => Observation::new(
            READY,
            Status::True,
            Reason::Ready,
            format!("pool Deployment {name} is rolled out"),
        ),
        (None, None) => Observation::new(
            READY,
            Status::True,
            Reason::Ready,
            "runs for dedicated tenants only (no pool)",
        ),
    };
    conditions::set(&mut status.conditions, &ready, generation, now);
    status
}

fn pool_status(service: &Service, deployment: Option<&Deployment>) -> PoolStatus {
    let status = deployment
        .and_then(|d| d.status.clone())
        .unwrap_or_default();
    PoolStatus {
        replicas: deployment
            .and_then(|d| d.spec.as_ref()?.replicas)
            .unwrap_or(service.spec.replicas),
        ready_replicas: status.ready_replicas.unwrap_or(0),
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).expect("timestamp"))
    }

    fn service() -> Service {
        serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Service",
            "metadata": {"name": "api", "namespace": "landlord-platform", "generation": 4},
            "spec": {"image": "x", "replicas": 2},
        }))
        .expect("fixture")
    }

    fn pool_deployment(ready: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "api"},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"readyReplicas": ready},
        }))
        .expect("fixture")
    }

    #[test]
    fn counts_tenants_and_reports_the_pool() {
        let d = pool_deployment(2);
        let pool = Pool {
            deployment: Some(&d),
            rollout: Rollout::Complete,
        };
        let s = compute(
            &service(),
            None,
            None,
            Some(&pool),
            &[true, false, true],
            &at(1),
        );
        assert_eq!((s.tenants, s.tenants_ready), (3, 2));
        assert_eq!(
            s.pool,
            Some(PoolStatus {
                replicas: 2,
                ready_replicas: 2
            })
        );
        assert_eq!(s.observed_generation, Some(4));
        assert!(conditions::is_true(&s.conditions, READY));
    }

    #[test]
    fn a_stuck_pool_is_not_ready_and_says_why() {
        let d = pool_deployment(0);
        let pool = Pool {
            deployment: Some(&d),
            rollout: Rollout::Stuck("Deployment api exceeded its progress deadline".into()),
        };
        let s = compute(&service(), None, None, Some(&pool), &[], &at(1));
        let c = conditions::find(&s.conditions, READY).expect("Ready");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "RolloutStuck")
        );
        assert!(
            c.message.starts_with("pool: Deployment api"),
            "{}",
            c.message
        );
    }

    #[test]
    fn a_refused_pool_is_not_ready_with_the_servers_reason() {
        let pool = Pool {
            deployment: None,
            rollout: Rollout::InProgress("waiting".into()),
        };
        let refused = Refused {
            reason: Reason::QuotaExceeded,
            message: "applying Deployment landlord-platform/api: exceeded quota".into(),
        };
        let s = compute(&service(), None, Some(&refused), Some(&pool), &[], &at(1));
        let c = conditions::find(&s.conditions, READY).expect("Ready");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "QuotaExceeded")
        );
        assert!(
            c.message
                .starts_with("pool: applying Deployment landlord-platform/api"),
            "{}",
            c.message
        );
    }

    #[test]
    fn an_invalid_spec_names_the_field_and_an_unchanged_world_is_stable() {
        let mut svc = service();
        let s = compute(&svc, Some("spec.rollout: both 0"), None, None, &[], &at(1));
        let c = conditions::find(&s.conditions, READY).expect("Ready");
        assert_eq!(c.reason, "InvalidSpec");
        assert!(s.pool.is_none(), "no pool for a dedicated-only Service");
        svc.status = Some(s.clone());
        assert_eq!(
            compute(&svc, Some("spec.rollout: both 0"), None, None, &[], &at(99)),
            s
        );
    }
}

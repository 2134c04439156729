//! Rate limits on writes, per (caller, tenant), by the tenant's plan (`spec.plan`): a
//! portal that loops on one tenant is slowed down without touching other callers or tenants.
//!
//! Each limit is a GCRA quota (the `governor` crate): `N` writes per minute with a burst of
//! `N`. Answers carry the IETF draft headers (`RateLimit-Policy: "writes";q=N;w=60` and
//! `RateLimit: "writes";r=<remaining>;t=<seconds until one more>`); a refusal is `429` with
//! `Retry-After` (seconds). Reads are not limited here: they are the API server's to bound
//! (API Priority and Fairness sees each caller through impersonation).
//!
//! The state is in memory, per replica: with `R` replicas behind the Service a caller gets up
//! to `R` times the quota in the worst case. The quotas are the API's flags
//! (`--writes-per-minute`, `--plan-writes-per-minute PLAN=N`).

use std::{collections::BTreeMap, num::NonZeroU32, time::Duration};

use axum::http::{HeaderName, HeaderValue, StatusCode};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};

use super::problem::Problem;

type Limiter = RateLimiter<
    (String, String),
    DefaultKeyedStateStore<(String, String)>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// One plan's limiter and its quota per minute.
struct PlanLimit {
    per_minute: u32,
    limiter: Limiter,
}

impl PlanLimit {
    fn new(per_minute: NonZeroU32) -> Self {
        Self {
            per_minute: per_minute.get(),
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute))
                .with_middleware::<StateInformationMiddleware>(),
        }
    }
}

/// The write limits of the API.
pub struct WriteLimits {
    default: PlanLimit,
    plans: BTreeMap<String, PlanLimit>,
    clock: DefaultClock,
}

/// Headers of an allowed write (`RateLimit-Policy`, `RateLimit`).
#[derive(Debug)]
pub struct Allowance(pub Vec<(HeaderName, HeaderValue)>);

impl Allowance {
    /// Adds the headers to the write's answer.
    pub fn apply(self, mut response: axum::response::Response) -> axum::response::Response {
        for (name, value) in self.0 {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl WriteLimits {
    /// `default` applies to tenants whose plan has no entry in `plans` (or no plan).
    pub fn new(default: NonZeroU32, plans: &BTreeMap<String, NonZeroU32>) -> Self {
        Self {
            default: PlanLimit::new(default),
            plans: plans
                .iter()
                .map(|(plan, n)| (plan.clone(), PlanLimit::new(*n)))
                .collect(),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one write by `caller` to `tenant` (whose plan is `plan`). Errors: 429 with
    /// `Retry-After` once the caller's quota for that tenant is spent.
    pub fn check(
        &self,
        caller: &str,
        tenant: &str,
        plan: Option<&str>,
    ) -> Result<Allowance, Problem> {
        let limit = plan
            .and_then(|p| self.plans.get(p))
            .unwrap_or(&self.default);
        let policy = (
            HeaderName::from_static("ratelimit-policy"),
            header(format!("\"writes\";q={};w=60", limit.per_minute)),
        );
        match limit
            .limiter
            .check_key(&(caller.to_string(), tenant.to_string()))
        {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // Seconds until the quota gives one more write (0 while some are left).
                let refill = if remaining > 0 {
                    0
                } else {
                    seconds(snapshot.quota().replenish_interval())
                };
                Ok(Allowance(vec![
                    policy,
                    (
                        HeaderName::from_static("ratelimit"),
                        header(format!("\"writes\";r={remaining};t={refill}")),
                    ),
                ]))
            }
            Err(not_until) => {
                let wait = seconds(not_until.wait_time_from(self.clock.now())).max(1);
                Err(Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many writes",
                    format!(
                        "{caller} made more than {} writes per minute to Tenant {tenant}; retry in {wait} s",
                        limit.per_minute
                    ),
                )
                .with_header(axum::http::header::RETRY_AFTER, header(wait.to_string()))
                .with_header(policy.0, policy.1)
                .with_header(
                    HeaderName::from_static("ratelimit"),
                    header(format!("\"writes\";r=0;t={wait}")),
                ))
            }
        }
    }

    /// Forgets keys whose quota is full again (bounded memory for many callers and tenants).
    pub fn forget_idle(&self) {
        self.default.limiter.retain_recent();
        for plan in self.plans.values() {
            plan.limiter.retain_recent();
        }
    }
}

/// Whole seconds, rounded up.
fn seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn header(text: String) -> HeaderValue {
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Parses `PLAN=N` (a `--plan-writes-per-minute` value).
pub fn parse_plan_limit(text: &str) -> Result<(String, NonZeroU32), String> {
    let (plan, n) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected PLAN=N, e.g. enterprise=600"))?;
    if plan.is_empty() {
        return Err(format!("{text:?}: the plan is empty"));
    }
    let n: NonZeroU32 = n
        .parse()
        .map_err(|_| format!("{text:?}: N must be a whole number above 0"))?;
    Ok((plan.to_string(), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> WriteLimits {
        let plans = BTreeMap::from([("enterprise".to_string(), NonZeroU32::new(5).expect("5"))]);
        WriteLimits::new(NonZeroU32::new(2).expect("2"), &plans)
    }

    fn value(headers: &[(HeaderName, HeaderValue)], name: &str) -> String {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn a_caller_gets_its_plans_quota_per_tenant_then_429_with_retry_after() {
        let limits = limits();
        let first = limits.check("portal", "acme", None).expect("first");
        assert_eq!(value(&first.0, "ratelimit-policy"), "\"writes\";q=2;w=60");
        assert_eq!(value(&first.0, "ratelimit"), "\"writes\";r=1;t=0");
        limits
            .check("portal", "acme", Some("unknown-plan"))
            .expect("second");
        let refused = limits.check("portal", "acme", None).expect_err("third");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = value(&refused.headers, "retry-after")
            .parse()
            .expect("seconds");
        assert!((1..=30).contains(&retry), "{retry}");
        assert!(refused.detail.contains("portal") && refused.detail.contains("acme"));
        // Other tenants and other callers have their own quota.
        limits
            .check("portal", "globex", None)
            .expect("another tenant");
        limits
            .check("someone", "acme", None)
            .expect("another caller");
        // A plan with its own quota.
        for _ in 0..5 {
            limits
                .check("portal", "big", Some("enterprise"))
                .expect("within 5");
        }
        assert!(limits.check("portal", "big", Some("enterprise")).is_err());
    }

    #[test]
    fn plan_limits_parse_or_name_what_is_wrong() {
        assert_eq!(
            parse_plan_limit("enterprise=600"),
            Ok(("enterprise".into(), NonZeroU32::new(600).expect("600")))
        );
        for bad in ["enterprise", "=5", "pro=0", "pro=x"] {
            let error = parse_plan_limit(bad).err().unwrap_or_default();
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }
}

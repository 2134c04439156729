//! The Tenant's status, computed from what the parts observed: pure, so that the same world
//! always produces the same status and an unchanged tenant is never written.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt};
use landlord_crds::conditions::Reason;
use landlord_crds::{
    Tenant, TenantStatus,
    conditions::{self, Observation, Severity, Status, tenant::READY},
    tenant::Phase,
};

/// Whether a condition reason is a warning that does not hold the tenant back (a change of
/// the objects at fault triggers a reconcile; nothing to poll for).
pub fn is_warning(reason: Reason) -> bool {
    reason.severity() == Severity::Warning
}

/// Whether a condition reason needs a person to act (no retry can clear it): the phase is
/// Failed.
pub fn needs_action(reason: Reason) -> bool {
    matches!(
        reason.severity(),
        Severity::NeedsPerson | Severity::NeedsPersonElsewhere
    )
}

/// Whether only a change of the Tenant itself (or of the operator's configuration, which
/// restarts it) can clear the reason: the Tenant is then not looked at again soon. A
/// `NamespaceConflict` is not one of them: it clears when the namespace is annotated, which
/// no watch of Landlord's sees (the namespace is not Landlord's yet).
pub fn waits_for_tenant_change(reason: Reason) -> bool {
    reason.severity() == Severity::NeedsPerson
}

/// The status a Tenant should have, given the observations of its parts (in provisioning
/// order) and the `draft` the parts filled in (their own fields, such as `database`, on top
/// of the current status). Conditions, phase and the generation are derived here.
pub fn compute(
    tenant: &Tenant,
    draft: TenantStatus,
    observations: &[Observation],
    now: &Time,
) -> TenantStatus {
    let current = tenant.status.clone().unwrap_or_default();
    let generation = tenant.metadata.generation;
    let mut status = TenantStatus {
        observed_generation: generation,
        namespace: Some(tenant.namespace_name()),
        ..draft
    };
    for observation in observations {
        conditions::set(&mut status.conditions, observation, generation, now);
    }
    let blocking = observations
        .iter()
        .find(|o| !o.is_true() && !is_warning(o.reason));
    let warnings: Vec<String> = observations
        .iter()
        .filter(|o| !o.is_true() && is_warning(o.reason))
        .map(|o| format!("{} is {}", o.type_, o.reason))
        .collect();
    let (ready, phase) = if tenant.meta().deletion_timestamp.is_some() {
        (
            Observation::new(
                READY,
                Status::False,
                Reason::Terminating,
                "the Tenant is being deleted",
            ),
            Phase::Terminating,
        )
    } else if let Some(blocking) = blocking {
        let phase = if needs_action(blocking.reason) {
            Phase::Failed
        } else if matches!(current.phase, Some(Phase::Ready | Phase::Degraded)) {
            Phase::Degraded
        } else {
            Phase::Provisioning
        };
        let message = format!("{} is not ready: {}", blocking.type_, blocking.message);
        (
            Observation::new(READY, Status::False, blocking.reason, message),
            phase,
        )
    } else if tenant.spec.suspended {
        (
            Observation::new(
                READY,
                Status::False,
                Reason::Suspended,
                "the Tenant is suspended (spec.suspended)",
            ),
            Phase::Suspended,
        )
    } else {
        (
            Observation::new(
                READY,
                Status::True,
                Reason::Ready,
                if warnings.is_empty() {
                    "every part of the tenant's stack is ready".to_string()
                } else {
                    format!(
                        "every part of the tenant's stack is ready (warnings: {})",
                        warnings.join(", ")
                    )
                },
            ),
            Phase::Ready,
        )
    };
    conditions::set(&mut status.conditions, &ready, generation, now);
    status.phase = Some(phase);
    status
}

/// The status during deletion: everything kept, Ready False and phase Terminating.
pub fn terminating(tenant: &Tenant, now: &Time) -> TenantStatus {
    compute(tenant, tenant.status.clone().unwrap_or_default(), &[], now)
}

/// The status during a deletion whose cleanup waits: Ready says what it waits for (`reason`
/// and `what`, naming the object or system) and how to release the Tenant if that never
/// clears.
pub fn terminating_blocked(
    tenant: &Tenant,
    reason: Reason,
    what: &str,
    now: &Time,
) -> TenantStatus {
    let mut status = terminating(tenant, now);
    let ready = Observation::new(
        READY,
        Status::False,
        reason,
        format!(
            "the Tenant is being deleted; cleanup waits for {what}. If that can never finish, annotate the Tenant {}=true to release it (external resources are then left behind)",
            crate::labels::RELEASE
        ),
    );
    conditions::set(
        &mut status.conditions,
        &ready,
        tenant.metadata.generation,
        now,
    );
    status
}

/// Whether the Tenant is, by its current status, ready (for events on transitions).
pub fn was_ready(tenant: &Tenant) -> bool {
    tenant
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.conditions, READY))
}

/// A short label for logs.
pub fn describe(tenant: &Tenant) -> String {
    format!("Tenant {}", tenant.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use landlord_crds::conditions::tenant::NAMESPACE_READY;

    fn roll(t: &Tenant, observations: &[Observation], now: &Time) -> TenantStatus {
        compute(t, t.status.clone().unwrap_or_default(), observations, now)
    }

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).expect("timestamp"))
    }

    fn tenant(suspended: bool) -> Tenant {
        let mut t: Tenant = serde_json::from_value(serde_json::json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme", "generation": 3},
            "spec": {"tier": "shared", "suspended": suspended}
        }))
        .expect("fixture");
        t.status = None;
        t
    }

    fn ns_ready(ok: bool) -> Observation {
        if ok {
            Observation::new(
                NAMESPACE_READY,
                Status::True,
                Reason::Provisioned,
                "namespace tenant-acme is active",
            )
        } else {
            Observation::new(
                NAMESPACE_READY,
                Status::False,
                Reason::NamespaceConflict,
                "namespace tenant-acme exists",
            )
        }
    }

    #[test]
    fn all_parts_ready_rolls_up_to_ready() {
        let s = roll(&tenant(false), &[ns_ready(true)], &at(1));
        assert_eq!(s.phase, Some(Phase::Ready));
        assert!(conditions::is_true(&s.conditions, READY));
        assert_eq!(s.observed_generation, Some(3));
        assert!(
            s.conditions
                .iter()
                .all(|c| c.observed_generation == Some(3))
        );
        assert_eq!(s.namespace.as_deref(), Some("tenant-acme"));
    }

    #[test]
    fn a_blocking_part_names_itself_in_ready() {
        let s = roll(&tenant(false), &[ns_ready(false)], &at(1));
        let ready = conditions::find(&s.conditions, READY).expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "NamespaceConflict")
        );
        assert!(ready.message.contains("NamespaceReady"));
        assert_eq!(s.phase, Some(Phase::Failed));
    }

    #[test]
    fn suspended_tenant_is_suspended_not_ready() {
        let s = roll(&tenant(true), &[ns_ready(true)], &at(1));
        assert_eq!(s.phase, Some(Phase::Suspended));
        assert_eq!(
            conditions::find(&s.conditions, READY).map(|c| c.reason.as_str()),
            Some("Suspended")
        );
    }

    #[test]
    fn recomputing_an_unchanged_world_gives_the_same_status() {
        let mut t = tenant(false);
        t.status = Some(roll(&t, &[ns_ready(true)], &at(1)));
        let again = roll(&t, &[ns_ready(true)], &at(99));
        assert_eq!(t.status, Some(again));
    }

    #[test]
    fn flag_warnings_are_visible_but_do_not_hold_the_tenant_back() {
        let conflict = Observation::new(
            conditions::tenant::FLAGS_READY,
            Status::False,
            Reason::FlagConflict,
            "flag beta is boolean in a but string in b",
        );
        let s = roll(&tenant(false), &[ns_ready(true), conflict], &at(1));
        assert_eq!(s.phase, Some(Phase::Ready));
        let ready = conditions::find(&s.conditions, READY).expect("Ready");
        assert_eq!(ready.status, "True");
        assert!(ready.message.contains("FlagsReady is FlagConflict"));
        assert_eq!(
            conditions::find(&s.conditions, "FlagsReady").map(|c| c.status.as_str()),
            Some("False")
        );
    }

    #[test]
    fn a_blocked_deletion_says_what_blocks_and_how_to_release() {
        let mut t = tenant(false);
        t.metadata.deletion_timestamp = Some(at(5));
        let s = terminating_blocked(
            &t,
            Reason::NamespaceTerminating,
            "namespace tenant-acme: Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances",
            &at(6),
        );
        assert_eq!(s.phase, Some(Phase::Terminating));
        let ready = conditions::find(&s.conditions, READY).expect("Ready");
        assert_eq!(ready.reason, "NamespaceTerminating");
        assert!(
            ready.message.contains("example.com/hold"),
            "{}",
            ready.message
        );
        assert!(
            ready.message.contains("landlord.dev/release=true"),
            "{}",
            ready.message
        );
    }

    #[test]
    fn a_ready_tenant_that_loses_a_part_is_degraded() {
        let mut t = tenant(false);
        t.status = Some(roll(&t, &[ns_ready(true)], &at(1)));
        let degraded = roll(
            &t,
            &[Observation::new(
                NAMESPACE_READY,
                Status::False,
                Reason::NamespaceTerminating,
                "x",
            )],
            &at(2),
        );
        assert_eq!(degraded.phase, Some(Phase::Degraded));
    }
}

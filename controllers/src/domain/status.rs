//! The Domain's status, computed purely from what the reconcile observed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use landlord_crds::conditions::Reason;
use landlord_crds::{
    Domain, DomainStatus,
    conditions::{self, Observation, Status, domain::READY},
    domain::Verification,
};

/// What one reconcile observed, one observation per condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub verified: Observation,
    pub conflict: Observation,
    pub routed: Observation,
    pub certificate: Observation,
}

/// The roll-up: Ready when verified, not in conflict, routed and with its certificate; else
/// the first blocking condition's reason, naming it.
pub fn ready(observed: &Observed) -> Observation {
    let blocking = [
        (&observed.verified, true),
        (&observed.conflict, false),
        (&observed.routed, true),
        (&observed.certificate, true),
    ]
    .into_iter()
    .find(|(o, want_true)| o.is_true() != *want_true);
    match blocking {
        Some((o, _)) => Observation::new(
            READY,
            Status::False,
            o.reason,
            format!("{}: {}", o.type_, o.message),
        ),
        None => Observation::new(
            READY,
            Status::True,
            Reason::Ready,
            "the hostname is verified, routed and has its certificate",
        ),
    }
}

/// The status a Domain should have.
pub fn compute(
    domain: &Domain,
    tenant: Option<String>,
    verification: Option<Verification>,
    url: Option<String>,
    observed: &Observed,
    now: &Time,
) -> DomainStatus {
    let current = domain.status.clone().unwrap_or_default();
    let generation = domain.metadata.generation;
    let mut status = DomainStatus {
        observed_generation: generation,
        tenant,
        verification,
        url,
        conditions: current.conditions,
    };
    let roll_up = ready(observed);
    for observation in [
        &observed.verified,
        &observed.conflict,
        &observed.routed,
        &observed.certificate,
        &roll_up,
    ] {
        conditions::set(&mut status.conditions, observation, generation, now);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use landlord_crds::conditions::domain::{CERTIFICATE_READY, CONFLICT, ROUTED, VERIFIED};

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).expect("time"))
    }

    fn observed(verified: bool, conflict: bool, routed: bool, cert: bool) -> Observed {
        let o = |t: &str, ok: bool, reason: Reason| {
            Observation::new(
                t,
                if ok { Status::True } else { Status::False },
                reason,
                format!("{t} says {reason}"),
            )
        };
        Observed {
            verified: o(
                VERIFIED,
                verified,
                if verified {
                    Reason::TxtRecordFound
                } else {
                    Reason::RecordNotFound
                },
            ),
            conflict: o(
                CONFLICT,
                conflict,
                if conflict {
                    Reason::HostnameClaimed
                } else {
                    Reason::NoConflict
                },
            ),
            routed: o(
                ROUTED,
                routed,
                if routed {
                    Reason::HTTPRouteApplied
                } else {
                    Reason::NotVerified
                },
            ),
            certificate: o(
                CERTIFICATE_READY,
                cert,
                if cert {
                    Reason::TlsDisabled
                } else {
                    Reason::CertificatePending
                },
            ),
        }
    }

    fn domain() -> Domain {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Domain",
            "metadata": {"name": "shop", "namespace": "t", "generation": 2},
            "spec": {"hostname": "shop.acme.com"}
        }))
        .expect("fixture")
    }

    #[test]
    fn ready_only_when_every_condition_holds() {
        assert!(ready(&observed(true, false, true, true)).is_true());
        let r = ready(&observed(false, false, false, false));
        assert_eq!(
            (r.status, r.reason.as_str()),
            (Status::False, "RecordNotFound")
        );
        assert!(r.message.starts_with("Verified:"));
        let r = ready(&observed(true, true, false, true));
        assert_eq!(r.reason, "HostnameClaimed");
        let r = ready(&observed(true, false, true, false));
        assert_eq!(r.reason, "CertificatePending");
    }

    #[test]
    fn every_condition_is_written_with_the_generation() {
        let s = compute(
            &domain(),
            Some("acme".into()),
            None,
            None,
            &observed(true, false, true, true),
            &at(1),
        );
        let mut types: Vec<_> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        types.sort();
        let mut expected = [VERIFIED, CONFLICT, ROUTED, CERTIFICATE_READY, READY];
        expected.sort();
        assert_eq!(types, expected);
        assert!(
            s.conditions
                .iter()
                .all(|c| c.observed_generation == Some(2))
        );
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.tenant.as_deref(), Some("acme"));
    }

    #[test]
    fn an_unchanged_world_gives_an_unchanged_status() {
        let mut d = domain();
        d.status = Some(compute(
            &d,
            None,
            None,
            None,
            &observed(false, false, false, true),
            &at(1),
        ));
        let again = compute(
            &d,
            None,
            None,
            None,
            &observed(false, false, false, true),
            &at(50),
        );
        assert_eq!(d.status, Some(again));
    }
}

//! The Domain's status, computed purely from what the reconcile observed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::upstream::{GATEWAY_GROUP, HTTPRoute, ParentReference};
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

/// What the Gateway API controllers reported of an HTTPRoute's current generation, for the
/// parents Landlord attached it to (`status.parents`, matched by group, kind, namespace and
/// name; a report for an older generation counts as none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteReport {
    /// A controller reported `Accepted` or `ResolvedRefs` False for a parent: the parent as
    /// `Kind namespace/name`, the condition's type, reason and message.
    Refused {
        parent: String,
        condition: String,
        reason: String,
        message: String,
    },
    /// No report yet for these parents (`Kind namespace/name`); every other one accepted.
    Pending(Vec<String>),
    /// Every parent accepted the route, by these controllers (`controllerName`).
    Accepted(Vec<String>),
}

/// Reads `route`'s status for `parents` (its spec's `parentRefs`). A route the API server
/// has not stored yet, or whose spec was just changed, has no report: pass None.
pub fn route_report(route: Option<&HTTPRoute>, parents: &[ParentReference]) -> RouteReport {
    let namespace = route.and_then(|r| r.metadata.namespace.clone());
    let generation = route.and_then(|r| r.metadata.generation);
    let reports = route
        .and_then(|r| r.status.as_ref())
        .map(|s| s.parents.as_slice())
        .unwrap_or_default();
    let mut pending = Vec::new();
    let mut controllers = Vec::new();
    for parent in parents {
        let named = format!("{} {}/{}", parent.kind, parent.namespace, parent.name);
        let about = reports.iter().filter(|r| {
            let p = &r.parent_ref;
            p.name == parent.name
                && p.group.as_deref().unwrap_or(GATEWAY_GROUP) == parent.group
                && p.kind.as_deref().unwrap_or("Gateway") == parent.kind
                && p.namespace.as_ref().or(namespace.as_ref()) == Some(&parent.namespace)
        });
        let mut reported = false;
        for report in about {
            let current = |type_: &str| {
                report.conditions.iter().find(|c| {
                    c.type_ == type_
                        && (c.observed_generation.is_none() || c.observed_generation == generation)
                })
            };
            let (accepted, resolved) = (current("Accepted"), current("ResolvedRefs"));
            if let Some(refusal) = [accepted, resolved]
                .into_iter()
                .flatten()
                .find(|c| c.status == "False")
            {
                return RouteReport::Refused {
                    parent: named,
                    condition: refusal.type_.clone(),
                    reason: refusal.reason.clone().unwrap_or_default(),
                    message: refusal.message.clone().unwrap_or_default(),
                };
            }
            if accepted.is_some_and(|c| c.status == "True") {
                reported = true;
                if !controllers.contains(&report.controller_name) {
                    controllers.push(report.controller_name.clone());
                }
            }
        }
        if !reported {
            pending.push(named);
        }
    }
    if pending.is_empty() {
        // In a stable order, whatever order the controllers wrote their reports in.
        controllers.sort();
        RouteReport::Accepted(controllers)
    } else {
        RouteReport::Pending(pending)
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

    fn parents() -> Vec<ParentReference> {
        let parent = |kind: &str, namespace: &str, name: &str| ParentReference {
            group: GATEWAY_GROUP.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        vec![
            parent("Gateway", "gateway", "landlord"),
            parent("ListenerSet", "tenant-acme", "shop"),
        ]
    }

    /// A stored route of generation 2 with `reports` as `status.parents`.
    fn route(reports: serde_json::Value) -> HTTPRoute {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "shop", "namespace": "tenant-acme", "generation": 2},
            "spec": {"parentRefs": [], "hostnames": [], "rules": []},
            "status": {"parents": reports},
        }))
        .expect("route")
    }

    fn report(parent: serde_json::Value, conditions: &[(&str, &str, i64)]) -> serde_json::Value {
        let conditions: Vec<_> = conditions
            .iter()
            .map(|(type_, status, generation)| {
                serde_json::json!({
                    "type": type_, "status": status, "observedGeneration": generation,
                    "reason": if *status == "True" { type_.to_string() } else { "NotAllowedByListeners".to_string() },
                    "message": "listener http does not allow routes from tenant-acme",
                    "lastTransitionTime": "2026-12-02T10:00:00Z",
                })
            })
            .collect();
        serde_json::json!({
            "parentRef": parent,
            "controllerName": "traefik.io/gateway-controller",
            "conditions": conditions,
        })
    }

    #[test]
    fn a_route_is_accepted_once_every_parent_says_so_for_its_generation() {
        let gateway = serde_json::json!({"group": GATEWAY_GROUP, "kind": "Gateway", "namespace": "gateway", "name": "landlord"});
        // The ListenerSet's report leaves out its namespace, which is then the route's own.
        let listener_set =
            serde_json::json!({"group": GATEWAY_GROUP, "kind": "ListenerSet", "name": "shop"});
        let both_true = [("Accepted", "True", 2), ("ResolvedRefs", "True", 2)];
        assert_eq!(
            route_report(None, &parents()),
            RouteReport::Pending(vec![
                "Gateway gateway/landlord".into(),
                "ListenerSet tenant-acme/shop".into()
            ])
        );
        let one = route(serde_json::json!([report(gateway.clone(), &both_true)]));
        assert_eq!(
            route_report(Some(&one), &parents()),
            RouteReport::Pending(vec!["ListenerSet tenant-acme/shop".into()])
        );
        let all = route(serde_json::json!([
            report(gateway.clone(), &both_true),
            report(listener_set.clone(), &both_true),
        ]));
        assert_eq!(
            route_report(Some(&all), &parents()),
            RouteReport::Accepted(vec!["traefik.io/gateway-controller".into()])
        );
        // A report of an earlier spec is no report; `landlord` with group, kind and namespace
        // left out is a Gateway of the route's namespace, not ours.
        let stale = route(serde_json::json!([
            report(gateway.clone(), &[("Accepted", "True", 1)]),
            report(serde_json::json!({"name": "landlord"}), &both_true),
            report(listener_set.clone(), &both_true),
        ]));
        assert_eq!(
            route_report(Some(&stale), &parents()),
            RouteReport::Pending(vec!["Gateway gateway/landlord".into()])
        );
    }

    #[test]
    fn a_refusal_of_any_parent_names_it_and_the_controllers_words() {
        let gateway = serde_json::json!({"namespace": "gateway", "name": "landlord"});
        let refused = route(serde_json::json!([report(
            gateway.clone(),
            &[("Accepted", "False", 2)]
        )]));
        assert_eq!(
            route_report(Some(&refused), &parents()),
            RouteReport::Refused {
                parent: "Gateway gateway/landlord".into(),
                condition: "Accepted".into(),
                reason: "NotAllowedByListeners".into(),
                message: "listener http does not allow routes from tenant-acme".into(),
            }
        );
        let unresolved = route(serde_json::json!([report(
            gateway,
            &[("Accepted", "True", 2), ("ResolvedRefs", "False", 2)]
        )]));
        assert!(matches!(
            route_report(Some(&unresolved), &parents()),
            RouteReport::Refused { condition, .. } if condition == "ResolvedRefs"
        ));
    }
}

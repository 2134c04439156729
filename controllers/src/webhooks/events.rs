//! Events from transitions: what Landlord last recorded of each Tenant and Domain (a
//! [`Subject`]) against what it sees now, as pure functions.
//!
//! Events are derived from the persisted last state, not from watch events, so that an
//! event's identity is a function of Kubernetes facts: the same transition seen twice (a
//! re-list, a restart, a new leader) gives the same [`Event::id`], and the outbox stores it
//! once. Transitions that happen entirely while no operator runs collapse into the latest
//! state (a Tenant that went Degraded and back while every replica was down yields nothing);
//! receivers that need the truth read the Tenant.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use landlord_crds::{
    Domain, Tenant, conditions,
    tenant::{Phase, Tier},
    webhook::EventType,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

/// What Landlord keeps of an object between two looks (stored in the outbox as JSON).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Subject {
    Tenant(TenantState),
    Domain(DomainState),
}

impl Subject {
    /// The tenant the subject's events are about.
    pub fn tenant(&self) -> &str {
        match self {
            Subject::Tenant(t) => &t.name,
            Subject::Domain(d) => &d.tenant,
        }
    }

    fn seq(&self) -> u64 {
        match self {
            Subject::Tenant(t) => t.seq,
            Subject::Domain(d) => d.seq,
        }
    }

    fn set_seq(&mut self, seq: u64) {
        match self {
            Subject::Tenant(t) => t.seq = seq,
            Subject::Domain(d) => d.seq = seq,
        }
    }
}

/// A Tenant as events see it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantState {
    pub name: String,
    pub namespace: String,
    pub tier: Tier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub generation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The Ready condition's reason and message, and when it last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Whether the tenant was ever Ready.
    #[serde(default)]
    pub provisioned: bool,
    /// Transitions recorded so far: part of each event's identity.
    #[serde(default)]
    pub seq: u64,
}

/// A Domain as events see it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DomainState {
    pub name: String,
    pub namespace: String,
    pub tenant: String,
    pub hostname: String,
    pub verified: bool,
    pub conflict: bool,
    pub routed: bool,
    #[serde(default)]
    pub seq: u64,
}

impl TenantState {
    /// The state of a Tenant as it is now (`provisioned` and `seq` are carried over by
    /// [`transition`]).
    pub fn of(tenant: &Tenant) -> Self {
        let status = tenant.status.as_ref();
        let ready = status.and_then(|s| find(&s.conditions, conditions::tenant::READY));
        Self {
            name: tenant.name_any(),
            namespace: status
                .and_then(|s| s.namespace.clone())
                .unwrap_or_else(|| tenant.namespace_name()),
            tier: tenant.spec.tier,
            plan: tenant.spec.plan.clone(),
            labels: tenant.labels().clone(),
            generation: tenant.metadata.generation.unwrap_or_default(),
            phase: if tenant.metadata.deletion_timestamp.is_some() {
                Some(Phase::Terminating)
            } else {
                status.and_then(|s| s.phase)
            },
            reason: ready.map(|c| c.reason.clone()),
            message: ready.map(|c| c.message.clone()),
            since: ready.map(|c| c.last_transition_time.0.to_string()),
            provisioned: false,
            seq: 0,
        }
    }
}

impl DomainState {
    /// The state of a Domain as it is now; None while it has no tenant (nobody to tell).
    pub fn of(domain: &Domain) -> Option<Self> {
        let status = domain.status.as_ref()?;
        let tenant = status.tenant.clone()?;
        let holds =
            |type_: &str| find(&status.conditions, type_).is_some_and(|c| c.status == "True");
        Some(Self {
            name: domain.name_any(),
            namespace: domain.namespace().unwrap_or_default(),
            tenant,
            hostname: domain.spec.hostname.clone(),
            verified: holds(conditions::domain::VERIFIED),
            conflict: holds(conditions::domain::CONFLICT),
            routed: holds(conditions::domain::ROUTED),
            seq: 0,
        })
    }
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// One event: its stable id, type, the tenant it is about, and the exact JSON body sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// `evt_` and 26 base32 characters of SHA-256 over the subject's uid, the type and the
    /// transition's sequence number: the same transition always has the same id.
    pub id: String,
    pub type_: EventType,
    pub tenant: String,
    /// RFC 3339 time of the transition.
    pub timestamp: String,
    /// `{"type", "timestamp", "data"}`, serialized once: the bytes signed and sent.
    pub body: String,
}

/// The new state to record and the events of going from `old` to `new` (None: the object is
/// gone). `now` (RFC 3339) stamps events whose object gives no time.
pub fn transition(
    uid: &str,
    old: Option<&Subject>,
    new: Option<Subject>,
    now: &str,
) -> (Option<Subject>, Vec<Event>) {
    let types = match (old, &new) {
        (Some(Subject::Tenant(old)), Some(Subject::Tenant(new))) => tenant_types(Some(old), new),
        (None, Some(Subject::Tenant(new))) => tenant_types(None, new),
        (Some(Subject::Tenant(_)), None) => vec![EventType::TenantDeleted],
        (Some(Subject::Domain(old)), Some(Subject::Domain(new))) => domain_types(Some(old), new),
        (None, Some(Subject::Domain(new))) => domain_types(None, new),
        (Some(Subject::Domain(_)), None) => vec![EventType::DomainDeleted],
        // A uid never changes kind; treat a mismatch as a new subject.
        (Some(_), Some(new)) => return transition(uid, None, Some(new.clone()), now),
        (None, None) => Vec::new(),
    };
    let seq = old.map(Subject::seq).unwrap_or(0) + u64::from(!types.is_empty());
    let new = new.map(|mut subject| {
        subject.set_seq(seq);
        if let (Subject::Tenant(t), Some(Subject::Tenant(o))) = (&mut subject, old) {
            t.provisioned |= o.provisioned;
        }
        if let Subject::Tenant(t) = &mut subject {
            t.provisioned |= t.phase == Some(Phase::Ready);
        }
        subject
    });
    let Some(about) = new.as_ref().or(old) else {
        return (None, Vec::new());
    };
    let events = types
        .into_iter()
        .map(|type_| event(uid, type_, seq, about, now))
        .collect();
    (new, events)
}

fn tenant_types(old: Option<&TenantState>, new: &TenantState) -> Vec<EventType> {
    let was = old.and_then(|o| o.phase);
    let mut types = Vec::new();
    if old.is_none() {
        types.push(EventType::TenantCreated);
    }
    if new.phase == was {
        return types;
    }
    let provisioned = old.is_some_and(|o| o.provisioned);
    match new.phase {
        Some(Phase::Ready) => {
            if !provisioned {
                types.push(EventType::TenantProvisioned);
            }
            if was == Some(Phase::Suspended) {
                types.push(EventType::TenantResumed);
            }
            types.push(EventType::TenantReady);
        }
        Some(Phase::Degraded) => types.push(EventType::TenantDegraded),
        Some(Phase::Failed) => types.push(EventType::TenantFailed),
        Some(Phase::Suspended) => types.push(EventType::TenantSuspended),
        Some(Phase::Terminating) => types.push(EventType::TenantDeleting),
        Some(Phase::Provisioning) | None => {
            if was == Some(Phase::Suspended) {
                types.push(EventType::TenantResumed);
            }
        }
    }
    types
}

fn domain_types(old: Option<&DomainState>, new: &DomainState) -> Vec<EventType> {
    let mut types = Vec::new();
    let rose = |now: bool, before: Option<bool>| now && before != Some(true);
    if rose(new.verified, old.map(|o| o.verified)) {
        types.push(EventType::DomainVerified);
    }
    if rose(new.conflict, old.map(|o| o.conflict)) {
        types.push(EventType::DomainConflict);
    }
    if rose(new.routed, old.map(|o| o.routed)) {
        types.push(EventType::DomainRouted);
    }
    types
}

fn event(uid: &str, type_: EventType, seq: u64, about: &Subject, now: &str) -> Event {
    // Once-per-object events keep one identity whatever the sequence.
    let once = matches!(
        type_,
        EventType::TenantCreated
            | EventType::TenantProvisioned
            | EventType::TenantDeleted
            | EventType::DomainDeleted
    );
    let digest = Sha256::new()
        .chain_update(uid.as_bytes())
        .chain_update([0])
        .chain_update(type_.as_str().as_bytes())
        .chain_update([0])
        .chain_update(if once { 0 } else { seq }.to_be_bytes())
        .finalize();
    let id = format!(
        "evt_{}",
        &data_encoding::BASE32_NOPAD
            .encode(&digest)
            .to_ascii_lowercase()[..26]
    );
    let (timestamp, data) = match about {
        Subject::Tenant(t) => {
            let timestamp = match type_ {
                EventType::TenantCreated | EventType::TenantDeleted => now.to_string(),
                _ => t.since.clone().unwrap_or_else(|| now.to_string()),
            };
            let data = json!({
                "tenant": t.name,
                "uid": uid,
                "generation": t.generation,
                "phase": t.phase,
                "tier": t.tier,
                "plan": t.plan,
                "namespace": t.namespace,
                "reason": t.reason,
                "message": t.message,
            });
            (timestamp, data)
        }
        Subject::Domain(d) => (
            now.to_string(),
            json!({
                "tenant": d.tenant,
                "domain": d.name,
                "namespace": d.namespace,
                "uid": uid,
                "hostname": d.hostname,
                "verified": d.verified,
                "conflict": d.conflict,
                "routed": d.routed,
            }),
        ),
    };
    let body = json!({"type": type_, "timestamp": timestamp, "data": data}).to_string();
    Event {
        id,
        type_,
        tenant: about.tenant().to_string(),
        timestamp,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(phase: Option<Phase>) -> Subject {
        Subject::Tenant(TenantState {
            name: "acme".into(),
            namespace: "tenant-acme".into(),
            tier: Tier::Shared,
            plan: Some("pro".into()),
            labels: BTreeMap::new(),
            generation: 1,
            phase,
            reason: Some("Ready".into()),
            message: Some("all parts ready".into()),
            since: Some("2026-12-02T10:00:00Z".into()),
            provisioned: false,
            seq: 0,
        })
    }

    const NOW: &str = "2026-12-02T10:00:05Z";

    /// Walks phases from nothing, returning the event types of each step.
    fn walk(phases: &[Option<Option<Phase>>]) -> Vec<Vec<&'static str>> {
        let mut last: Option<Subject> = None;
        phases
            .iter()
            .map(|phase| {
                let (next, events) = transition("u1", last.as_ref(), phase.map(tenant), NOW);
                last = next;
                events.iter().map(|e| e.type_.as_str()).collect()
            })
            .collect()
    }

    #[test]
    fn a_tenants_life_yields_its_events_once_each() {
        use Phase::*;
        let steps = walk(&[
            Some(Some(Provisioning)),
            Some(Some(Provisioning)),
            Some(Some(Ready)),
            Some(Some(Degraded)),
            Some(Some(Ready)),
            Some(Some(Suspended)),
            Some(Some(Ready)),
            Some(Some(Failed)),
            Some(Some(Terminating)),
            None,
        ]);
        assert_eq!(
            steps,
            vec![
                vec!["tenant.created"],
                vec![],
                vec!["tenant.provisioned", "tenant.ready"],
                vec!["tenant.degraded"],
                vec!["tenant.ready"],
                vec!["tenant.suspended"],
                vec!["tenant.resumed", "tenant.ready"],
                vec!["tenant.failed"],
                vec!["tenant.deleting"],
                vec!["tenant.deleted"],
            ]
        );
    }

    #[test]
    fn the_same_transition_has_the_same_id_and_another_one_another() {
        let first = transition("u1", None, Some(tenant(Some(Phase::Ready))), NOW);
        let again = transition(
            "u1",
            None,
            Some(tenant(Some(Phase::Ready))),
            "2027-01-01T00:00:00Z",
        );
        let ids = |e: &[Event]| e.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&first.1), ids(&again.1), "a re-seen transition");
        let other_uid = transition("u2", None, Some(tenant(Some(Phase::Ready))), NOW);
        assert!(
            ids(&first.1)
                .iter()
                .all(|id| !ids(&other_uid.1).contains(id))
        );
        // Ready, Degraded, Ready: the second tenant.ready is a new event.
        let state = first.0.expect("recorded");
        let (state, degraded) =
            transition("u1", Some(&state), Some(tenant(Some(Phase::Degraded))), NOW);
        let (_, ready) = transition("u1", state.as_ref(), Some(tenant(Some(Phase::Ready))), NOW);
        assert_eq!(degraded.len(), 1);
        assert_eq!(ready[0].type_, EventType::TenantReady);
        assert_ne!(ready[0].id, first.1[2].id);
        for e in first.1.iter().chain(&ready) {
            assert!(e.id.starts_with("evt_") && e.id.len() == 30, "{}", e.id);
        }
    }

    #[test]
    fn the_body_is_the_standard_webhooks_shape() {
        let (_, events) = transition("u1", None, Some(tenant(Some(Phase::Ready))), NOW);
        let body: serde_json::Value = serde_json::from_str(&events[2].body).expect("JSON");
        assert_eq!(body["type"], "tenant.ready");
        assert_eq!(
            body["timestamp"], "2026-12-02T10:00:00Z",
            "Ready's transition time"
        );
        assert_eq!(body["data"]["tenant"], "acme");
        assert_eq!(body["data"]["phase"], "Ready");
        assert_eq!(body["data"]["uid"], "u1");
    }

    #[test]
    fn domains_tell_each_condition_that_rises_and_their_end() {
        let domain = |verified, conflict, routed| {
            Some(Subject::Domain(DomainState {
                name: "shop".into(),
                namespace: "tenant-acme".into(),
                tenant: "acme".into(),
                hostname: "shop.acme.test".into(),
                verified,
                conflict,
                routed,
                seq: 0,
            }))
        };
        let (s, e) = transition("d1", None, domain(false, false, false), NOW);
        assert!(e.is_empty());
        let (s, e) = transition("d1", s.as_ref(), domain(true, false, false), NOW);
        assert_eq!(e[0].type_, EventType::DomainVerified);
        let (s, e) = transition("d1", s.as_ref(), domain(true, false, true), NOW);
        assert_eq!(e[0].type_, EventType::DomainRouted);
        let (s, e) = transition("d1", s.as_ref(), domain(true, true, true), NOW);
        assert_eq!(e[0].type_, EventType::DomainConflict);
        let (s, e) = transition("d1", s.as_ref(), None, NOW);
        assert!(s.is_none());
        assert_eq!(e[0].type_, EventType::DomainDeleted);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&e[0].body).expect("JSON")["data"]["hostname"],
            "shop.acme.test"
        );
    }
}

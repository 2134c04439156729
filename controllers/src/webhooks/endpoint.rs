//! Which endpoints receive an event, and what an endpoint's status says: pure functions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use landlord_crds::{
    WebhookEndpoint,
    conditions::{self, Observation, Reason, Status},
    webhook::{EventType, WebhookEndpointStatus},
};

use super::{delivery::PrivateNetworks, events::TenantState};
use crate::flags::resolve::{TenantFacts, matches};

/// The condition type of an endpoint's status.
pub const READY: &str = "Ready";

/// Whether `endpoint` (not paused, not gone) receives an event of `type_` about the tenant
/// whose namespace is `namespace`: a platform endpoint when its selector picks the tenant
/// (`facts`; a tenant Landlord no longer knows is picked only by an endpoint without
/// selector), an endpoint in the tenant's own namespace always.
pub fn receives(
    endpoint: &WebhookEndpoint,
    type_: EventType,
    namespace: &str,
    facts: Option<&TenantFacts>,
    platform_namespace: &str,
) -> bool {
    let spec = &endpoint.spec;
    if spec.disabled || is_gone(endpoint) {
        return false;
    }
    if !spec.event_types.is_empty() && !spec.event_types.contains(&type_) {
        return false;
    }
    match endpoint.namespace().as_deref() {
        Some(ns) if ns == platform_namespace => match (&spec.tenant_selector, facts) {
            (None, _) => true,
            (Some(selector), Some(facts)) => matches(selector, facts),
            (Some(_), None) => false,
        },
        Some(ns) => ns == namespace,
        None => false,
    }
}

/// What endpoint selectors see of a tenant.
pub fn facts(tenant: &TenantState) -> TenantFacts {
    TenantFacts {
        name: tenant.name.clone(),
        tier: tenant.tier,
        plan: tenant.plan.clone(),
        labels: tenant.labels.clone(),
    }
}

/// Whether the endpoint may send to private addresses (and plain http).
pub fn private_ok(
    endpoint: &WebhookEndpoint,
    policy: PrivateNetworks,
    platform_namespace: &str,
) -> bool {
    match policy {
        PrivateNetworks::None => false,
        PrivateNetworks::All => true,
        PrivateNetworks::Platform => endpoint.namespace().as_deref() == Some(platform_namespace),
    }
}

/// Whether the endpoint answered 410 Gone to its current spec: nothing is queued or sent to
/// it until the spec changes (its status says so, which survives restarts).
pub fn is_gone(endpoint: &WebhookEndpoint) -> bool {
    let Some(status) = &endpoint.status else {
        return false;
    };
    status.observed_generation == endpoint.metadata.generation
        && conditions::find(&status.conditions, READY)
            .is_some_and(|c| c.reason.as_str() == Reason::EndpointGone)
}

/// What delivery last learnt about an endpoint (kept in memory; the status carries it over
/// restarts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// The last attempt succeeded.
    Delivering,
    /// The last attempt failed: `reason` is `DeliveryFailing`, `SecretNotFound`,
    /// `SecretInvalid` or `UrlNotAllowed`.
    Failing { reason: Reason, message: String },
    /// The endpoint answered 410 Gone.
    Gone { message: String },
}

/// What else the status depends on.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// Why no event can reach any endpoint now, if so: `WebhooksNotConfigured` (no outbox
    /// database, no trusted roots) or `OutboxUnavailable`, with the message.
    pub unavailable: Option<(Reason, String)>,
    pub private_ok: bool,
    pub now: &'a Time,
}

/// The endpoint's status. `health` is None when no attempt was made for it since the
/// operator started: a failing or gone state already in its status for this generation is
/// kept until the next attempt says otherwise.
pub fn status(
    endpoint: &WebhookEndpoint,
    health: Option<&Health>,
    facts: &Facts<'_>,
) -> WebhookEndpointStatus {
    let generation = endpoint.metadata.generation;
    let current = endpoint.status.clone().unwrap_or_default();
    let url = &endpoint.spec.url;
    let carried = (current.observed_generation == generation)
        .then(|| conditions::find(&current.conditions, READY))
        .flatten()
        .filter(|c| {
            [
                Reason::DeliveryFailing,
                Reason::SecretNotFound,
                Reason::SecretInvalid,
                Reason::EndpointGone,
            ]
            .iter()
            .any(|r| c.reason.as_str() == *r)
        });
    let failing = |reason, message: String| Observation::new(READY, Status::False, reason, message);
    let observation = if let Some((reason, message)) = facts
        .unavailable
        .clone()
        .filter(|(reason, _)| *reason == Reason::WebhooksNotConfigured)
    {
        failing(reason, message)
    } else if endpoint.spec.disabled {
        failing(
            Reason::Paused,
            "spec.disabled is true: no events are queued for this endpoint".into(),
        )
    } else if let Err(refusal) = super::delivery::check_url(url, facts.private_ok) {
        failing(Reason::UrlNotAllowed, format!("spec.url {url}: {refusal}"))
    } else if let Some((reason, message)) = facts.unavailable.clone() {
        failing(reason, message)
    } else {
        match (health, carried) {
            (Some(Health::Failing { reason, message }), _) => failing(*reason, message.clone()),
            (Some(Health::Gone { message }), _) => failing(Reason::EndpointGone, message.clone()),
            (None, Some(kept)) => {
                let reason = Reason::parse(&kept.reason).unwrap_or(Reason::DeliveryFailing);
                failing(reason, kept.message.clone())
            }
            (Some(Health::Delivering), _) | (None, None) => Observation::new(
                READY,
                Status::True,
                Reason::Delivering,
                format!("events are delivered to {url}"),
            ),
        }
    };
    let mut conditions = current.conditions.clone();
    conditions.retain(|c| c.type_ == READY);
    conditions::set(&mut conditions, &observation, generation, facts.now);
    let delivery_failing = [
        Reason::DeliveryFailing,
        Reason::SecretNotFound,
        Reason::SecretInvalid,
        Reason::EndpointGone,
    ]
    .contains(&observation.reason)
        || (observation.reason == Reason::UrlNotAllowed && health.is_some());
    WebhookEndpointStatus {
        observed_generation: generation,
        failing_since: delivery_failing.then(|| {
            current
                .failing_since
                .clone()
                .unwrap_or_else(|| facts.now.clone())
        }),
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use landlord_crds::tenant::Tier;
    use serde_json::json;

    fn endpoint(namespace: &str, spec: serde_json::Value) -> WebhookEndpoint {
        let mut spec = spec;
        spec["secretRef"] = json!({"name": "hook"});
        serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1",
            "kind": "WebhookEndpoint",
            "metadata": {"name": "hook", "namespace": namespace, "generation": 1, "uid": "e1"},
            "spec": spec,
        }))
        .expect("endpoint")
    }

    fn tenant(name: &str, plan: &str) -> TenantFacts {
        TenantFacts {
            name: name.into(),
            tier: Tier::Shared,
            plan: Some(plan.into()),
            labels: Default::default(),
        }
    }

    #[test]
    fn platform_endpoints_receive_what_they_select_and_tenant_endpoints_their_own() {
        let platform = endpoint(
            "landlord-platform",
            json!({"url": "https://h.example.com", "tenantSelector": {"plans": ["pro"]}, "eventTypes": ["tenant.ready"]}),
        );
        let pro = tenant("acme", "pro");
        let free = tenant("globex", "free");
        let ready = EventType::TenantReady;
        assert!(receives(
            &platform,
            ready,
            "tenant-acme",
            Some(&pro),
            "landlord-platform"
        ));
        assert!(!receives(
            &platform,
            ready,
            "tenant-globex",
            Some(&free),
            "landlord-platform"
        ));
        assert!(!receives(
            &platform,
            EventType::TenantCreated,
            "tenant-acme",
            Some(&pro),
            "landlord-platform"
        ));
        assert!(!receives(
            &platform,
            ready,
            "tenant-acme",
            None,
            "landlord-platform"
        ));

        // A selector on a tenant's endpoint is ignored: it gets its own tenant's, no other's.
        let own = endpoint(
            "tenant-acme",
            json!({"url": "https://h.example.com", "tenantSelector": {"tenants": ["globex"]}}),
        );
        assert!(receives(
            &own,
            ready,
            "tenant-acme",
            Some(&pro),
            "landlord-platform"
        ));
        assert!(!receives(
            &own,
            ready,
            "tenant-globex",
            Some(&free),
            "landlord-platform"
        ));

        let paused = endpoint(
            "tenant-acme",
            json!({"url": "https://h.example.com", "disabled": true}),
        );
        assert!(!receives(
            &paused,
            ready,
            "tenant-acme",
            Some(&pro),
            "landlord-platform"
        ));
    }

    #[test]
    fn status_names_what_keeps_events_from_the_endpoint() {
        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let facts = Facts {
            unavailable: None,
            private_ok: false,
            now: &now,
        };
        let reason_of = |s: &WebhookEndpointStatus| s.conditions[0].reason.clone();
        let tenant_hook = endpoint("tenant-acme", json!({"url": "http://10.0.0.9/hook"}));
        let refused = status(&tenant_hook, None, &facts);
        assert_eq!(reason_of(&refused), "UrlNotAllowed");
        assert!(
            refused.conditions[0]
                .message
                .contains("spec.url http://10.0.0.9/hook")
        );

        let good = endpoint("tenant-acme", json!({"url": "https://h.example.com/x"}));
        let ok = status(&good, None, &facts);
        assert_eq!(
            (ok.conditions[0].status.as_str(), reason_of(&ok).as_str()),
            ("True", "Delivering")
        );
        assert_eq!(ok.failing_since, None);

        let failing = Health::Failing {
            reason: Reason::DeliveryFailing,
            message: "POST https://h.example.com/x answered 500".into(),
        };
        let down = status(&good, Some(&failing), &facts);
        assert_eq!(reason_of(&down), "DeliveryFailing");
        assert_eq!(down.failing_since, Some(now.clone()));

        // After a restart (no health yet) the failure stays until an attempt says otherwise.
        let mut restarted = good.clone();
        restarted.status = Some(down.clone());
        assert_eq!(status(&restarted, None, &facts), down);
        assert_eq!(
            reason_of(&status(&restarted, Some(&Health::Delivering), &facts)),
            "Delivering"
        );

        let unconfigured = Facts {
            unavailable: Some((Reason::WebhooksNotConfigured, "no outbox".into())),
            ..facts.clone()
        };
        assert_eq!(
            reason_of(&status(&good, None, &unconfigured)),
            "WebhooksNotConfigured"
        );
        let outage = Facts {
            unavailable: Some((Reason::OutboxUnavailable, "connection refused".into())),
            ..facts
        };
        assert_eq!(
            reason_of(&status(&good, None, &outage)),
            "OutboxUnavailable"
        );
    }
}

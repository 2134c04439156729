//! The domains part of a tenant: `DomainsReady` and `status.endpoints` from the tenant's
//! Domains (which the Domain controller reconciles), and, when the tenant is deleted, its
//! routes and certificates removed first, before any workload goes.

use landlord_crds::conditions::Reason;
use std::{fmt::Debug, sync::Arc};

use k8s_openapi::api::networking::v1::Ingress;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ListParams},
};
use landlord_crds::{
    Domain, Tenant,
    conditions::{self, Observation, Status, domain::READY, tenant::DOMAINS_READY},
};
use serde::de::DeserializeOwned;

use super::{
    Stores,
    error::{Error, Result},
};
use crate::{
    Context,
    domain::{
        HttpsListener,
        upstream::{Certificate, Gateway, HTTPRoute, ListenerSet, ReferenceGrant},
    },
    labels,
};

const MANAGER: &str = "landlord/tenant";

/// Reports `DomainsReady`, and the part's own status field, `status.endpoints`.
pub fn provision(tenant: &Tenant, stores: &Stores) -> (Observation, Vec<String>) {
    let namespace = tenant.namespace_name();
    let domains: Vec<Arc<Domain>> = stores
        .domains
        .state()
        .into_iter()
        .filter(|d| d.namespace().as_deref() == Some(namespace.as_str()))
        .collect();
    summarize(&domains)
}

/// The condition and endpoints of a tenant with these Domains: ready when every Domain is
/// Ready (or there is none); an endpoint per ready Domain, sorted.
pub fn summarize(domains: &[Arc<Domain>]) -> (Observation, Vec<String>) {
    let mut domains: Vec<&Domain> = domains.iter().map(|d| d.as_ref()).collect();
    domains.sort_by(|a, b| (&a.spec.hostname, a.name_any()).cmp(&(&b.spec.hostname, b.name_any())));
    let ready = |d: &Domain| {
        d.status
            .as_ref()
            .is_some_and(|s| conditions::is_true(&s.conditions, READY))
    };
    let mut endpoints: Vec<String> = domains
        .iter()
        .filter(|d| ready(d))
        .filter_map(|d| d.status.as_ref()?.url.clone())
        .collect();
    endpoints.sort();
    endpoints.dedup();
    let waiting: Vec<&&Domain> = domains.iter().filter(|d| !ready(d)).collect();
    let observation = match waiting.first() {
        None if domains.is_empty() => Observation::new(
            DOMAINS_READY,
            Status::True,
            Reason::NoDomains,
            "the tenant has no Domains",
        ),
        None => Observation::new(
            DOMAINS_READY,
            Status::True,
            Reason::DomainsReady,
            format!("every Domain is ready ({})", domains.len()),
        ),
        Some(first) => {
            let why = first
                .status
                .as_ref()
                .and_then(|s| conditions::find(&s.conditions, READY))
                .map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_else(|| "not reconciled yet".into());
            let more = match waiting.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            Observation::new(
                DOMAINS_READY,
                Status::False,
                Reason::DomainNotReady,
                format!(
                    "Domain {} ({}) is not ready: {why}{more}",
                    first.name_any(),
                    first.spec.hostname
                ),
            )
        }
    };
    (observation, endpoints)
}

/// First cleanup step: deletes the tenant's HTTPRoutes, ListenerSets, Gateways, Ingresses,
/// Certificates and ReferenceGrants (found by the tenant label; kinds whose CRDs are not installed are
/// skipped) and waits until they are gone, so traffic stops before the workloads go. The
/// Domain controller does not route Domains of a terminating Tenant, so nothing comes back.
pub async fn cleanup(tenant: &Tenant, ctx: &Context) -> Result<()> {
    let namespace = tenant.namespace_name();
    let client = &ctx.client;
    let selector = format!(
        "{}={},{}",
        labels::TENANT,
        tenant.name_any(),
        labels::MANAGED_SELECTOR
    );
    let mut left = Vec::new();
    left.extend(
        remove(
            &Api::<HTTPRoute>::namespaced(client.clone(), &namespace),
            &selector,
            ctx,
        )
        .await?,
    );
    left.extend(
        remove(
            &Api::<ListenerSet>::namespaced(client.clone(), &namespace),
            &selector,
            ctx,
        )
        .await?,
    );
    left.extend(
        remove(
            &Api::<Gateway>::namespaced(client.clone(), &namespace),
            &selector,
            ctx,
        )
        .await?,
    );
    left.extend(
        remove(
            &Api::<Ingress>::namespaced(client.clone(), &namespace),
            &selector,
            ctx,
        )
        .await?,
    );
    left.extend(
        remove(
            &Api::<Certificate>::namespaced(client.clone(), &namespace),
            &selector,
            ctx,
        )
        .await?,
    );
    left.extend(
        remove(
            &Api::<ReferenceGrant>::namespaced(client.clone(), &ctx.config.platform_namespace),
            &selector,
            ctx,
        )
        .await?,
    );
    if left.is_empty() {
        Ok(())
    } else {
        Err(Error::CleanupPending(format!(
            "routes to be removed: {}",
            left.join(", ")
        )))
    }
}

/// Deletes the labelled objects of one kind; returns those that still exist.
async fn remove<K>(api: &Api<K>, selector: &str, ctx: &Context) -> Result<Vec<String>>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let kind = K::kind(&()).to_string();
    let list = match api
        .list_metadata(&ListParams::default().labels(selector))
        .await
    {
        Ok(list) => list,
        // The kind's CRD is not installed: nothing of it to remove.
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Vec::new()),
        // Gateways only: an operator in ListenerSet mode may not read them (RBAC from before
        // --https-listener Gateway); it made none, so there is nothing to remove.
        Err(kube::Error::Api(status))
            if status.code == 403
                && kind == "Gateway"
                && ctx.config.domains.https_listener == HttpsListener::ListenerSet =>
        {
            return Ok(Vec::new());
        }
        Err(e) => return Err(Error::kube(format!("listing {kind}s"))(e)),
    };
    let mut left = Vec::new();
    for object in list.items {
        let name = object.name_any();
        if object.metadata.deletion_timestamp.is_none() {
            match crate::apply::delete_named(
                api,
                &name,
                &DeleteParams::background(),
                MANAGER,
                &ctx.metrics,
            )
            .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return Err(Error::kube(format!("deleting {kind} {name}"))(e)),
            }
        }
        left.push(format!("{kind} {name}"));
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn domain(name: &str, host: &str, ready: Option<bool>, url: &str) -> Arc<Domain> {
        let mut value = json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Domain",
            "metadata": {"name": name, "namespace": "tenant-acme"},
            "spec": {"hostname": host},
        });
        if let Some(ready) = ready {
            value["status"] = json!({
                "url": url,
                "conditions": [{
                    "type": "Ready", "status": if ready { "True" } else { "False" },
                    "reason": if ready { "Ready" } else { "RecordNotFound" },
                    "message": "create a TXT record", "lastTransitionTime": "2026-01-01T00:00:00Z"
                }]
            });
        }
        Arc::new(serde_json::from_value(value).expect("fixture"))
    }

    #[test]
    fn no_domains_is_ready_and_says_so() {
        let (o, endpoints) = summarize(&[]);
        assert_eq!((o.status, o.reason.as_str()), (Status::True, "NoDomains"));
        assert!(endpoints.is_empty());
    }

    #[test]
    fn ready_domains_become_sorted_endpoints() {
        let (o, endpoints) = summarize(&[
            domain("b", "b.acme.com", Some(true), "https://b.acme.com"),
            domain("a", "a.acme.com", Some(true), "http://a.acme.com"),
        ]);
        assert!(o.is_true());
        assert_eq!(endpoints, ["http://a.acme.com", "https://b.acme.com"]);
    }

    #[test]
    fn an_unready_domain_blocks_and_is_named() {
        let (o, endpoints) = summarize(&[
            domain(
                "shop",
                "shop.acme.com",
                Some(false),
                "https://shop.acme.com",
            ),
            domain("new", "new.acme.com", None, ""),
            domain("ok", "ok.acme.com", Some(true), "https://ok.acme.com"),
        ]);
        assert_eq!(
            (o.status, o.reason.as_str()),
            (Status::False, "DomainNotReady")
        );
        assert_eq!(
            o.message,
            "Domain new (new.acme.com) is not ready: not reconciled yet (and 1 more)"
        );
        assert_eq!(endpoints, ["https://ok.acme.com"]);
    }
}

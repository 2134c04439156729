//! The services part of a tenant: the catalog Services its spec selects.
//!
//! A dedicated tenant gets its own instance of each (Deployment, Service, PodDisruptionBudget
//! and optional HorizontalPodAutoscaler in its namespace), built by the same builder as the
//! shared pool and owned by the Tenant. A shared tenant gets nothing of its own: the pool
//! (owned by the Service controller) serves it. `ServicesReady` is read, purely, from the
//! Deployments' status.
//!
//! A running instance is removed only when the tenant stops selecting its Service (or is
//! deleted): a catalog Service that disappears, turns invalid or stops offering the tier is
//! reported, and the tenant's running workload is left alone.

use landlord_crds::conditions::Reason;
use std::sync::Arc;

use futures::{Stream, StreamExt, stream::BoxStream};
use kube::{
    ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};
use landlord_crds::{
    Service, Tenant,
    conditions::{Observation, Status, tenant::SERVICES_READY},
    tenant::Tier,
};

use super::{
    MANAGER,
    desired::owner_reference,
    error::{Error, Result},
};
use crate::{
    Context,
    apply::EnsureError,
    reflectors::Reflectors,
    service::{
        desired::{self, Audience},
        rollout::{self, Rollout},
        workload::{self, Failure},
    },
};

/// The catalog (Services in the platform namespace) and every instance of a catalog Service.
pub struct Caches {
    pub catalog: Store<Service>,
    pub workloads: crate::reflectors::workloads::Caches,
    /// Whether the catalog has listed.
    pub catalog_synced: crate::reflectors::Synced,
}

impl Caches {
    pub async fn wait_until_ready(&self) {
        let _ = futures::join!(
            self.catalog_synced.wait(),
            self.workloads.wait_until_ready()
        );
    }
}

/// The change streams that fill the caches, to be turned into Tenant reconciles.
pub struct Triggers {
    catalog: BoxStream<'static, Arc<Service>>,
    workloads: BoxStream<'static, crate::reflectors::workloads::Touched>,
}

/// The caches of the services part and their change streams, from the shared reflectors.
pub fn watch(reflectors: &Reflectors) -> (Caches, Triggers) {
    let caches = Caches {
        catalog: reflectors.catalog.store(),
        workloads: reflectors.workloads.caches(),
        catalog_synced: reflectors.catalog.synced(),
    };
    let triggers = Triggers {
        catalog: reflectors.catalog.touched().boxed(),
        workloads: reflectors.workloads.touched().boxed(),
    };
    (caches, triggers)
}

impl Triggers {
    /// The Tenants to reconcile on each change: a catalog Service → every tenant that selects
    /// it (so a change rolls out everywhere); a dedicated instance → its tenant; a pool
    /// Deployment → the shared tenants it serves.
    pub fn into_stream(
        self,
        tenants: Store<Tenant>,
        platform_namespace: String,
    ) -> impl Stream<Item = ObjectRef<Tenant>> + Send + 'static {
        let Triggers { catalog, workloads } = self;
        let selecting = move |service: &str, tier: Option<Tier>| -> Vec<ObjectRef<Tenant>> {
            tenants
                .state()
                .iter()
                .filter(|t| tier.is_none_or(|tier| t.spec.tier == tier))
                .filter(|t| t.spec.services.iter().any(|s| s.name == service))
                .map(|t| ObjectRef::from_obj(t.as_ref()))
                .collect()
        };
        let by_catalog = selecting.clone();
        let from_catalog = catalog
            .flat_map(move |service| futures::stream::iter(by_catalog(&service.name_any(), None)));
        let from_workloads = workloads.flat_map(move |t| {
            let refs = match (t.tenant(), t.service()) {
                (Some(tenant), _) => vec![ObjectRef::new(tenant)],
                (None, Some(service)) if t.deployment && t.namespace == platform_namespace => {
                    selecting(service, Some(Tier::Shared))
                }
                _ => Vec::new(),
            };
            futures::stream::iter(refs)
        });
        futures::stream::select(from_catalog, from_workloads)
    }
}

/// How one selected service of a tenant stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    NotFound,
    NotOffered(Vec<Tier>),
    Invalid(String),
    /// The API server refused the tenant's instance (reason, message naming the object and
    /// quoting the server): a person must act.
    Refused(Reason, String),
    /// The rollout of the tenant's instance (dedicated) or of the pool (shared).
    Rollout(Rollout),
}

impl Health {
    /// Lower is more urgent: spec problems a person must fix come first.
    fn rank(&self) -> u8 {
        match self {
            Health::NotFound => 0,
            Health::NotOffered(_) => 1,
            Health::Invalid(_) => 2,
            Health::Refused(..) => 3,
            Health::Rollout(Rollout::Stuck(_)) => 4,
            Health::Rollout(Rollout::Unavailable(_)) => 5,
            Health::Rollout(Rollout::InProgress(_)) => 6,
            Health::Rollout(Rollout::Complete) => u8::MAX,
        }
    }

    fn reason(&self) -> Reason {
        match self {
            Health::NotFound => Reason::ServiceNotFound,
            Health::NotOffered(_) => Reason::ServiceNotOffered,
            Health::Invalid(_) => Reason::ServiceInvalid,
            Health::Refused(reason, _) => *reason,
            Health::Rollout(r) => r.reason(),
        }
    }
}

/// Rolls the health of a tenant's selected services (in spec order) up into
/// `ServicesReady`. The message names the most urgent blocking service.
pub fn observe(
    tenant: &Tenant,
    health: &[(String, Health)],
    platform_namespace: &str,
) -> Observation {
    let tier = tenant.spec.tier;
    let blocking: Vec<&(String, Health)> = {
        let mut b: Vec<_> = health.iter().filter(|(_, h)| h.rank() < u8::MAX).collect();
        b.sort_by_key(|(_, h)| h.rank());
        b
    };
    if let Some((name, first)) = blocking.first() {
        let detail = match first {
            Health::NotFound => format!(
                "service {name} is not in the catalog (no Service {name} in namespace {platform_namespace})"
            ),
            Health::NotOffered(tiers) => format!(
                "service {name} does not run for the {} tier (its spec.tiers: {})",
                tier.as_str(),
                tiers
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Health::Invalid(why) => format!("service {name} has an invalid spec: {why}"),
            Health::Refused(_, why) => format!("service {name}: {why}"),
            Health::Rollout(r) => match tier {
                Tier::Shared => format!("service {name} (shared pool): {}", r.message()),
                Tier::Dedicated => format!("service {name}: {}", r.message()),
            },
        };
        let more = match blocking.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more not ready)"),
        };
        return Observation::new(
            SERVICES_READY,
            Status::False,
            first.reason(),
            detail + &more,
        );
    }
    let names: Vec<&str> = health.iter().map(|(n, _)| n.as_str()).collect();
    if names.is_empty() {
        return Observation::new(
            SERVICES_READY,
            Status::True,
            Reason::NoServices,
            "spec.services selects no service",
        );
    }
    let list = names.join(", ");
    match tier {
        Tier::Shared => Observation::new(
            SERVICES_READY,
            Status::True,
            Reason::Ready,
            format!("served by the shared pool: {list}"),
        ),
        Tier::Dedicated if tenant.spec.suspended => Observation::new(
            SERVICES_READY,
            Status::True,
            Reason::ScaledToZero,
            format!("suspended: scaled to zero: {list}"),
        ),
        Tier::Dedicated => Observation::new(
            SERVICES_READY,
            Status::True,
            Reason::Ready,
            format!("rolled out: {list}"),
        ),
    }
}

fn failure(f: Failure) -> Error {
    match f.source {
        EnsureError::Kube(source) => Error::Kube {
            action: f.action,
            source,
        },
        EnsureError::Encode(source) => Error::Encode {
            what: "service workload",
            source,
        },
        EnsureError::Foreign(message) => Error::Foreign(message),
    }
}

/// Applies the tenant's instances (dedicated tier), removes those it no longer selects, and
/// reports `ServicesReady`.
pub async fn provision(tenant: &Tenant, ctx: &Context, caches: &Caches) -> Result<Observation> {
    let namespace = tenant.namespace_name();
    let platform = &ctx.config.platform_namespace;
    let tier = tenant.spec.tier;
    let mut health = Vec::with_capacity(tenant.spec.services.len());
    let mut written = 0;
    // A transient failure (an outage) of one instance: the others are applied first, then it
    // is returned, to be retried with backoff.
    let mut transient = None;
    for selection in &tenant.spec.services {
        let name = &selection.name;
        let catalog = caches.catalog.get(&ObjectRef::new(name).within(platform));
        let h = match catalog {
            None => Health::NotFound,
            Some(service) if !desired::offers(&service, tier) => {
                Health::NotOffered(service.spec.tiers.clone())
            }
            Some(service) => match desired::validate(&service.spec) {
                Err(why) => Health::Invalid(why),
                Ok(()) if tier == Tier::Shared => Health::Rollout(rollout::rollout(
                    caches.workloads.deployment(platform, name).as_deref(),
                )),
                Ok(()) => {
                    let owner = owner_reference(tenant).ok_or(Error::MissingUid)?;
                    let audience = Audience::Tenant { tenant, selection };
                    let instance = desired::workload(&service, &audience, &owner, &ctx.config);
                    let applied = workload::apply(
                        &ctx.client,
                        &caches.workloads,
                        &instance,
                        MANAGER,
                        &ctx.metrics,
                    )
                    .await
                    .map_err(failure);
                    match applied {
                        // One refused instance does not stop the others (nor their
                        // suspension): it is reported as this service's health.
                        Err(error) => {
                            let reason = super::failure::reason(&error);
                            if reason.severity() == super::failure::Severity::Transient {
                                transient.get_or_insert(error);
                                continue;
                            }
                            Health::Refused(reason, super::failure::message(&error))
                        }
                        Ok(applied) => {
                            written += applied.writes;
                            Health::Rollout(if applied.deployment_written {
                                Rollout::InProgress(format!(
                                    "Deployment {name}: applying the new spec"
                                ))
                            } else {
                                rollout::rollout(
                                    caches.workloads.deployment(&namespace, name).as_deref(),
                                )
                            })
                        }
                    }
                }
            },
        };
        health.push((name.clone(), h));
    }
    if tier == Tier::Dedicated {
        for instance in caches.workloads.instances_in(&namespace) {
            if !tenant.spec.services.iter().any(|s| s.name == instance) {
                workload::remove(
                    &ctx.client,
                    &caches.workloads,
                    &namespace,
                    &instance,
                    MANAGER,
                    &ctx.metrics,
                )
                .await
                .map_err(failure)?;
                tracing::info!(service = %instance, "removing an instance the tenant no longer selects");
            }
        }
    }
    if written > 0 {
        tracing::info!(namespace = %namespace, written, "applied service instances");
    }
    if let Some(error) = transient {
        return Err(error);
    }
    Ok(observe(tenant, &health, platform))
}

/// Cleanup step after the routes are gone: removes the tenant's instances and waits until
/// their Deployments (and so their pods) are gone, before topics and the database go.
pub async fn cleanup(tenant: &Tenant, ctx: &Context, caches: &Caches) -> Result<()> {
    let namespace = tenant.namespace_name();
    let mut remaining = Vec::new();
    for instance in caches.workloads.instances_in(&namespace) {
        if workload::remove(
            &ctx.client,
            &caches.workloads,
            &namespace,
            &instance,
            MANAGER,
            &ctx.metrics,
        )
        .await
        .map_err(failure)?
        {
            remaining.push(instance);
        }
    }
    if remaining.is_empty() {
        Ok(())
    } else {
        Err(Error::CleanupPending(format!(
            "the workloads of services {} to stop",
            remaining.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant(tier: &str, suspended: bool) -> Tenant {
        serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "globex"},
            "spec": {"tier": tier, "suspended": suspended},
        }))
        .expect("fixture")
    }

    fn h(name: &str, health: Health) -> (String, Health) {
        (name.to_string(), health)
    }

    #[test]
    fn every_service_rolled_out_is_ready() {
        let o = observe(
            &tenant("dedicated", false),
            &[
                h("api", Health::Rollout(Rollout::Complete)),
                h("web", Health::Rollout(Rollout::Complete)),
            ],
            "landlord-platform",
        );
        assert!(o.is_true());
        assert_eq!(o.reason, "Ready");
        assert!(o.message.contains("api, web"));
        let none = observe(&tenant("shared", false), &[], "landlord-platform");
        assert_eq!((none.is_true(), none.reason.as_str()), (true, "NoServices"));
        let suspended = observe(
            &tenant("dedicated", true),
            &[h("api", Health::Rollout(Rollout::Complete))],
            "landlord-platform",
        );
        assert_eq!(suspended.reason, "ScaledToZero");
    }

    #[test]
    fn a_stuck_rollout_names_the_service() {
        let o = observe(
            &tenant("dedicated", false),
            &[
                h(
                    "api",
                    Health::Rollout(Rollout::InProgress(
                        "Deployment api: 0 of 1 replicas updated".into(),
                    )),
                ),
                h(
                    "worker",
                    Health::Rollout(Rollout::Stuck(
                        "Deployment worker exceeded its progress deadline: timed out".into(),
                    )),
                ),
            ],
            "landlord-platform",
        );
        assert!(!o.is_true());
        assert_eq!(o.type_, SERVICES_READY);
        assert_eq!(o.reason, "RolloutStuck");
        assert!(
            o.message
                .starts_with("service worker: Deployment worker exceeded"),
            "{}",
            o.message
        );
        assert!(
            o.message.ends_with("(and 1 more not ready)"),
            "{}",
            o.message
        );
    }

    #[test]
    fn spec_problems_come_before_rollouts() {
        let o = observe(
            &tenant("dedicated", false),
            &[
                h("api", Health::Rollout(Rollout::Stuck("x".into()))),
                h("billing", Health::NotFound),
            ],
            "landlord-platform",
        );
        assert_eq!(o.reason, "ServiceNotFound");
        assert!(
            o.message.contains("service billing is not in the catalog"),
            "{}",
            o.message
        );
        assert!(o.message.contains("landlord-platform"));

        let o = observe(
            &tenant("shared", false),
            &[h("api", Health::NotOffered(vec![Tier::Dedicated]))],
            "landlord-platform",
        );
        assert_eq!(o.reason, "ServiceNotOffered");
        assert!(
            o.message
                .contains("does not run for the shared tier (its spec.tiers: dedicated)"),
            "{}",
            o.message
        );

        let o = observe(
            &tenant("dedicated", false),
            &[h("api", Health::Invalid("spec.rollout: both 0".into()))],
            "landlord-platform",
        );
        assert_eq!(o.reason, "ServiceInvalid");
    }

    #[test]
    fn a_shared_tenant_reports_the_pool() {
        let o = observe(
            &tenant("shared", false),
            &[h(
                "api",
                Health::Rollout(Rollout::InProgress(
                    "Deployment api: 1 of 2 replicas updated".into(),
                )),
            )],
            "landlord-platform",
        );
        assert_eq!(o.reason, "RolloutInProgress");
        assert!(
            o.message.starts_with("service api (shared pool)"),
            "{}",
            o.message
        );
    }
}

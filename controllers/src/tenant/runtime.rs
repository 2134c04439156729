//! The runtime part: `tenant-runtime`, where the tenant's services reach it (the OFREP flag
//! server and tenant context). A dedicated tenant gets its own instance in its namespace;
//! shared tenants are served by one pooled instance in the platform namespace, whose
//! cluster-wide read rights come from the chart (ClusterRole `landlord-runtime`). The objects
//! are built in [`crate::runtime`]; this module applies them and reports `RuntimeReady`. The
//! pool loop also keeps the platform namespace's walls ([`crate::pool`]) in place, and the
//! pooled instance gets the tenant keys it checks assertions with.
//!
//! The services part hands [`flags_url`] to every container as `LANDLORD_FLAGS_URL`.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Resource, ResourceExt, runtime::reflector::ObjectRef};
use landlord_crds::{
    Tenant,
    conditions::{Observation, Reason, Status, tenant::RUNTIME_READY},
    tenant::Tier,
};
use serde::{Serialize, de::DeserializeOwned};
use tracing::{info, warn};

use super::{
    Stores, desired,
    error::{Error, Result},
};
use crate::{
    Context,
    apply::{self, EnsureError, Outcome},
    runtime::*,
};

const MANAGER: &str = "landlord/tenant-runtime";
const POOL_MANAGER: &str = "landlord/runtime-pool";
/// How often the pooled instance is checked for drift.
const POOL_RESYNC: Duration = Duration::from_secs(60);

/// Provisions a dedicated tenant's runtime and reports `RuntimeReady`; a shared tenant is
/// served by the pool and gets nothing in its namespace.
pub async fn provision(tenant: &Tenant, ctx: &Context, stores: &Stores) -> Result<Observation> {
    if tenant.spec.tier == Tier::Shared {
        if let Some(failure) = ctx.pool.failure() {
            return Ok(failure);
        }
        return Ok(Observation::new(
            RUNTIME_READY,
            Status::True,
            Reason::Pooled,
            format!(
                "served by the pooled tenant-runtime at {}",
                flags_url(tenant, &ctx.config)
            ),
        ));
    }
    let owner = desired::owner_reference(tenant).ok_or(Error::MissingUid)?;
    let RuntimeStack {
        service_account,
        role,
        role_binding,
        deployment,
        service,
    } = dedicated(tenant, &owner, &ctx.config);
    let ns = tenant.namespace_name();
    let client = &ctx.client;
    ensure(
        &Api::namespaced(client.clone(), &ns),
        stores.service_accounts.get(&key(&service_account)).as_ref(),
        &service_account,
        ctx,
    )
    .await?;
    if let Some(role) = &role {
        ensure(
            &Api::namespaced(client.clone(), &ns),
            stores.roles.get(&key(role)).as_ref(),
            role,
            ctx,
        )
        .await?;
    }
    if let Some(binding) = &role_binding {
        ensure(
            &Api::namespaced(client.clone(), &ns),
            stores.role_bindings.get(&key(binding)).as_ref(),
            binding,
            ctx,
        )
        .await?;
    }
    ensure(
        &Api::namespaced(client.clone(), &ns),
        stores.services.get(&key(&service)).as_ref(),
        &service,
        ctx,
    )
    .await?;
    let live = stores.deployments.get(&key(&deployment));
    ensure(
        &Api::namespaced(client.clone(), &ns),
        live.as_ref(),
        &deployment,
        ctx,
    )
    .await?;
    Ok(match live.as_ref().filter(|d| available(d)) {
        Some(_) => Observation::new(
            RUNTIME_READY,
            Status::True,
            Reason::Available,
            format!("Deployment {NAME} in {ns} is available"),
        ),
        None => Observation::new(
            RUNTIME_READY,
            Status::False,
            Reason::RuntimeProgressing,
            format!("Deployment {NAME} in {ns} is not available yet"),
        ),
    })
}

fn key<K: Resource<DynamicType = ()>>(object: &K) -> ObjectRef<K> {
    let mut key = ObjectRef::new(&object.name_any());
    if let Some(ns) = object.namespace() {
        key = key.within(&ns);
    }
    key
}

async fn ensure<K>(api: &Api<K>, live: Option<&K>, desired: &K, ctx: &Context) -> Result<()>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + std::fmt::Debug,
{
    match apply::ensure(api, live, desired, MANAGER, &ctx.metrics).await {
        Ok(Outcome::Applied) => {
            info!(kind = %K::kind(&()), name = %desired.name_any(), "applied tenant-runtime object");
            Ok(())
        }
        Ok(Outcome::Unchanged) => Ok(()),
        Err(EnsureError::Encode(source)) => Err(Error::Encode {
            what: "tenant-runtime object",
            source,
        }),
        Err(EnsureError::Foreign(message)) => Err(Error::Foreign(message)),
        Err(EnsureError::Kube(source)) => Err(Error::Kube {
            action: format!("applying {} {}", K::kind(&()), desired.name_any()),
            source,
        }),
    }
}

/// Keeps the pooled instance and the platform namespace's walls (NetworkPolicies, the tenant
/// key: [`crate::pool`]) in place (checked at start and every minute, written only on drift)
/// until `shutdown` resolves. Waits while the platform
/// namespace does not exist.
pub async fn run_pool(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let outcome = match ensure_pool(&ctx).await {
            Ok(()) => Some(None),
            Err(e) => {
                warn!(error = %e, category = e.category(), "keeping the pooled tenant-runtime in place failed");
                let failure = pool_failure(&e, &ctx.config.platform_namespace);
                // Only what a person must fix reaches every shared tenant; a transient
                // failure (a timeout, a 5xx) is retried on the next pass and leaves the
                // tenants' state as it was.
                (failure.reason.severity() == super::failure::Severity::NeedsPerson)
                    .then_some(Some(failure))
            }
        };
        if let Some(failure) = outcome
            && ctx.pool.set(failure)
        {
            info!(
                failing = ctx.pool.failure().is_some(),
                "the pool's state changed; shared tenants are reconciled"
            );
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(POOL_RESYNC) => {}
        }
    }
}

/// A failure of the pool loop as shared tenants' `RuntimeReady` condition.
fn pool_failure(error: &Error, platform_namespace: &str) -> Observation {
    let mut observation = super::failure::observation(super::Part::Runtime, error);
    observation.message = format!(
        "the pool in namespace {platform_namespace} that serves shared tenants is not in place: {}",
        observation.message
    );
    observation
}

async fn ensure_pool(ctx: &Context) -> Result<()> {
    let ns = &ctx.config.platform_namespace;
    let exists = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(ns)
        .await
        .map_err(Error::kube(format!("reading namespace {ns}")))?
        .is_some();
    if !exists {
        info!(namespace = %ns, "platform namespace missing; the pooled tenant-runtime waits for it");
        return Ok(());
    }
    // The walls and the key first: the pool's pods need the key to start.
    crate::pool::ensure(ctx).await?;
    let RuntimeStack {
        service_account,
        role: _,
        role_binding: _,
        deployment,
        service,
    } = pooled(&ctx.config);
    pool_ensure(ctx, &service_account).await?;
    pool_ensure(ctx, &service).await?;
    pool_ensure(ctx, &deployment).await?;
    Ok(())
}

async fn pool_ensure<K>(ctx: &Context, desired: &K) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let ns = &ctx.config.platform_namespace;
    let api = Api::<K>::namespaced(ctx.client.clone(), ns);
    let name = desired.name_any();
    let live = api
        .get_opt(&name)
        .await
        .map_err(Error::kube(format!("reading {} {ns}/{name}", K::kind(&()))))?;
    match apply::ensure(&api, live.as_ref(), desired, POOL_MANAGER, &ctx.metrics).await {
        Ok(Outcome::Applied) => {
            info!(kind = %K::kind(&()), namespace = %ns, "applied the pooled tenant-runtime");
            Ok(())
        }
        Ok(Outcome::Unchanged) => Ok(()),
        Err(EnsureError::Encode(source)) => Err(Error::Encode {
            what: "pooled tenant-runtime object",
            source,
        }),
        Err(EnsureError::Foreign(message)) => Err(Error::Foreign(message)),
        Err(EnsureError::Kube(source)) => Err(Error::Kube {
            action: format!("applying {} {ns}/{name}", K::kind(&())),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::api::{apps::v1::Deployment, core::v1::Container};

    use super::*;
    use crate::{config::Config, labels};

    fn tenant(tier: &str, suspended: bool) -> Tenant {
        let mut t: Tenant = serde_json::from_value(serde_json::json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme", "uid": "uid-1"},
            "spec": {"tier": tier, "suspended": suspended}
        }))
        .unwrap();
        t.metadata.uid = Some("uid-1".into());
        t
    }

    #[test]
    fn a_refused_pool_is_every_shared_tenants_runtime_condition_until_it_is_back() {
        let refused = Error::Kube {
            action: "applying Deployment landlord-system/landlord-runtime".into(),
            source: kube::Error::Api(Box::new(
                kube::core::Status::failure(
                    "deployments.apps \"landlord-runtime\" is forbidden: exceeded quota: walls",
                    "Forbidden",
                )
                .with_code(403),
            )),
        };
        let failure = pool_failure(&refused, "landlord-system");
        assert_eq!(failure.type_, RUNTIME_READY);
        assert_eq!(failure.status, Status::False);
        assert_eq!(failure.reason, "QuotaExceeded");
        assert!(
            failure.message.starts_with(
                "the pool in namespace landlord-system that serves shared tenants is not in place: applying Deployment landlord-system/landlord-runtime: the API server answered 403"
            ),
            "{}",
            failure.message
        );
        let health = crate::pool::Health::default();
        let changes = health.subscribe();
        assert!(health.set(Some(failure.clone())), "failing is a change");
        assert!(
            !health.set(Some(failure.clone())),
            "the same failure again is not"
        );
        assert!(changes.has_changed().unwrap());
        let mut recounted = failure.clone();
        recounted.message.push_str(" (used: 1)");
        assert!(
            !health.set(Some(recounted.clone())),
            "a new message with the same reason reconciles nobody"
        );
        assert_eq!(health.failure(), Some(recounted));
        assert!(health.set(None), "back in place is a change");
        assert_eq!(health.failure(), None);
    }

    fn config() -> Config {
        Config {
            runtime_image: "registry.example/tenant-runtime:1.2.3".into(),
            ..Config::default()
        }
    }

    #[test]
    fn the_flags_url_points_at_the_tenants_own_or_the_pooled_instance() {
        assert_eq!(
            flags_url(&tenant("dedicated", false), &config()),
            "http://landlord-runtime.tenant-acme.svc:8080"
        );
        assert_eq!(
            flags_url(&tenant("shared", false), &config()),
            "http://landlord-runtime.landlord-platform.svc:8080"
        );
    }

    #[test]
    fn the_dedicated_instance_pulls_always_unless_turned_off_and_the_pool_keeps_the_default() {
        let t = tenant("dedicated", false);
        let owner = desired::owner_reference(&t).unwrap();
        let policy = |stack: &RuntimeStack| container(stack).image_pull_policy.clone();
        assert_eq!(
            policy(&dedicated(&t, &owner, &config())).as_deref(),
            Some("Always")
        );
        let off = Config {
            image_pull_policy_always: false,
            ..config()
        };
        assert_eq!(policy(&dedicated(&t, &owner, &off)), None);
        assert_eq!(policy(&pooled(&config())), None);
    }

    #[test]
    fn a_dedicated_instance_runs_restricted_for_its_tenant_with_read_only_rights() {
        let t = tenant("dedicated", false);
        let owner = desired::owner_reference(&t).unwrap();
        let stack = dedicated(&t, &owner, &config());
        let d = &stack.deployment;
        assert_eq!(d.metadata.namespace.as_deref(), Some("tenant-acme"));
        assert_eq!(
            d.metadata.owner_references.as_ref().unwrap()[0].uid,
            "uid-1"
        );
        assert_eq!(d.metadata.labels.as_ref().unwrap()[labels::TENANT], "acme");
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some(NAME));
        assert_eq!(
            pod.security_context.as_ref().unwrap().run_as_non_root,
            Some(true)
        );
        let container = &pod.containers[0];
        assert_eq!(
            container.image.as_deref(),
            Some("registry.example/tenant-runtime:1.2.3")
        );
        assert_eq!(
            container.args.as_deref().unwrap()[..2],
            ["--tenant".to_string(), "acme".to_string()]
        );
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..])
        );
        assert!(container.resources.as_ref().unwrap().limits.is_some());
        // The pod template's labels match the selector.
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        for (k, v) in spec.selector.match_labels.as_ref().unwrap() {
            assert_eq!(pod_labels.get(k), Some(v));
        }

        let rules = stack.role.unwrap().rules.unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].resources.as_deref(),
            Some(&["configmaps".to_string()][..])
        );
        assert_eq!(rules[0].verbs, ["get", "list", "watch"]);
        let binding = stack.role_binding.unwrap();
        assert_eq!(
            binding.subjects.unwrap()[0].namespace.as_deref(),
            Some("tenant-acme")
        );

        let ports = stack.service.spec.unwrap().ports.unwrap();
        assert_eq!(
            (ports[0].name.as_deref(), ports[0].port),
            (Some("http"), 8080)
        );
    }

    #[test]
    fn a_suspended_tenants_runtime_scales_to_zero() {
        let t = tenant("dedicated", true);
        let owner = desired::owner_reference(&t).unwrap();
        let stack = dedicated(&t, &owner, &config());
        assert_eq!(stack.deployment.spec.unwrap().replicas, Some(0));
    }

    #[test]
    fn the_pool_lives_in_the_platform_namespace_without_a_tenant() {
        let stack = pooled(&config());
        assert_eq!(
            stack.deployment.metadata.namespace.as_deref(),
            Some("landlord-platform")
        );
        assert!(stack.role.is_none());
        assert!(
            !stack
                .deployment
                .metadata
                .labels
                .as_ref()
                .unwrap()
                .contains_key(labels::TENANT)
        );
        let args = container(&stack).args.clone().unwrap();
        assert!(!args.iter().any(|a| a == "--tenant"));
    }

    /// The one container of a stack's Deployment.
    fn container(stack: &RuntimeStack) -> &Container {
        &stack
            .deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    fn env_names(stack: &RuntimeStack) -> Vec<String> {
        container(stack)
            .env
            .iter()
            .flatten()
            .map(|v| v.name.clone())
            .collect()
    }

    #[test]
    fn only_the_pooled_instance_gets_the_tenant_keys() {
        let stack = pooled(&config());
        let env = &container(&stack).env;
        assert_eq!(env.as_ref().unwrap()[1..], crate::pool::key_env()[..]);
        assert_eq!(
            env_names(&stack),
            [
                "POD_NAMESPACE",
                "LANDLORD_TENANT_KEY",
                "LANDLORD_TENANT_KEY_SECONDARY"
            ]
        );
        // A dedicated instance serves its own tenant; it needs no key and gets none.
        let t = tenant("dedicated", false);
        let owner = desired::owner_reference(&t).unwrap();
        assert_eq!(
            env_names(&dedicated(&t, &owner, &config())),
            ["POD_NAMESPACE"]
        );
    }

    #[test]
    fn availability_needs_the_current_generation_and_the_available_condition() {
        let deployment = |generation: i64, observed: i64, available: &str| -> Deployment {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": NAME, "generation": generation},
                "status": {"observedGeneration": observed, "conditions": [
                    {"type": "Available", "status": available}]}
            }))
            .unwrap()
        };
        assert!(available(&deployment(2, 2, "True")));
        assert!(!available(&deployment(3, 2, "True")));
        assert!(!available(&deployment(2, 2, "False")));
    }
}

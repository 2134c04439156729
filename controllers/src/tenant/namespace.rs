//! The namespace part of a tenant: its namespace, RBAC (and its admins' and viewers' read
//! access to the Tenant itself), quota, limits, network walls and identity ConfigMaps.

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Preconditions},
    runtime::reflector::ObjectRef,
};
use landlord_crds::conditions::Reason;
use landlord_crds::{
    Tenant,
    conditions::{Observation, Status, tenant::NAMESPACE_READY},
};

use super::{
    MANAGER, Stores,
    desired::{self, NamespaceStack},
    ensure_child, ensure_with,
    error::{Error, Result},
};
use crate::{Context, labels};

/// Provisions the namespace stack and reports `NamespaceReady`.
pub async fn provision(tenant: &Tenant, ctx: &Context, stores: &Stores) -> Result<Observation> {
    let ns_name = tenant.namespace_name();
    let uid = tenant.uid().ok_or(Error::MissingUid)?;
    let live_ns = match stores.namespaces.get(&ObjectRef::new(&ns_name)) {
        Some(ns) => Some(ns),
        // Unlabelled namespaces are not in the label-selected cache: ask once.
        None => Api::<Namespace>::all(ctx.client.clone())
            .get_opt(&ns_name)
            .await
            .map_err(Error::kube(format!("reading namespace {ns_name}")))?,
    };
    if let Some(ns) = &live_ns {
        if let Some(conflict) = ownership_conflict(tenant, &uid, ns) {
            return Ok(conflict);
        }
        if ns.meta().deletion_timestamp.is_some() {
            return Ok(Observation::new(
                NAMESPACE_READY,
                Status::False,
                Reason::NamespaceTerminating,
                format!("namespace {ns_name} is terminating; it is recreated once it is gone"),
            ));
        }
    }

    let owner = desired::owner_reference(tenant).ok_or(Error::MissingUid)?;
    let NamespaceStack {
        namespace,
        roles,
        role_bindings,
        quota,
        limit_range,
        network_policies,
        config_maps,
        access,
    } = desired::namespace_stack(tenant, &owner, &ctx.config);
    // The namespace first: without it nothing else can be applied. Then every other object,
    // even when one is refused (a quota, a RoleBinding refused, ...): the walls still go up,
    // and the first refusal is reported.
    let mut written = ensure_with(
        Api::all(ctx.client.clone()),
        &stores.namespaces,
        &namespace,
        ctx,
    )
    .await?;
    let mut refused = None;
    for role in &roles {
        tally(
            ensure_child(&stores.roles, role, ctx).await,
            &mut written,
            &mut refused,
        );
    }
    for binding in &role_bindings {
        let result = ensure_child(&stores.role_bindings, binding, ctx).await;
        if matches!(result, Ok(1)) && binding.name_any() == desired::names::OPERATOR {
            // The database and topics parts write Secrets right after this one.
            crate::secrets_access::await_access(ctx, &ns_name).await;
        }
        tally(result, &mut written, &mut refused);
    }
    let result = ensure_with(
        Api::all(ctx.client.clone()),
        &stores.cluster_roles,
        &access.role,
        ctx,
    )
    .await;
    tally(result, &mut written, &mut refused);
    let result = ensure_with(
        Api::all(ctx.client.clone()),
        &stores.cluster_role_bindings,
        &access.binding,
        ctx,
    )
    .await;
    tally(result, &mut written, &mut refused);
    let result = ensure_child(&stores.quotas, &quota, ctx).await;
    tally(result, &mut written, &mut refused);
    let result = ensure_child(&stores.limit_ranges, &limit_range, ctx).await;
    tally(result, &mut written, &mut refused);
    for policy in &network_policies {
        let result = ensure_child(&stores.network_policies, policy, ctx).await;
        tally(result, &mut written, &mut refused);
    }
    for config_map in &config_maps {
        let result = ensure_child(&stores.config_maps, config_map, ctx).await;
        tally(result, &mut written, &mut refused);
    }
    if let Some(error) = refused {
        return Err(error);
    }
    if written > 0 {
        tracing::info!(namespace = %ns_name, written, "applied namespace stack");
    }
    if let Some(pending) = quota_pending(&quota, stores) {
        return Ok(pending);
    }
    Ok(Observation::new(
        NAMESPACE_READY,
        Status::True,
        Reason::Provisioned,
        format!("namespace {ns_name} and its policies are in place"),
    ))
}

/// Until Kubernetes' quota controller has counted a resource of the quota, the API server
/// refuses every create it covers ("status unknown for quota"): the namespace is not ready
/// for the tenant's own Domains, FeatureFlagSets or workloads before that. The quota's
/// status update reconciles the Tenant again.
fn quota_pending(desired: &ResourceQuota, stores: &Stores) -> Option<Observation> {
    let name = desired.name_any();
    let ns = desired.namespace().unwrap_or_default();
    let live = stores.quotas.get(&ObjectRef::new(&name).within(&ns));
    (!quota_counted(desired, live.as_ref())).then(|| {
        Observation::new(
            NAMESPACE_READY,
            Status::False,
            Reason::QuotaPending,
            format!(
                "ResourceQuota {ns}/{name} is not counted yet by the quota controller; until it is, the API server refuses the writes it covers"
            ),
        )
    })
}

/// Whether the quota controller has counted every resource `desired` limits, in `live`.
pub fn quota_counted(desired: &ResourceQuota, live: Option<&ResourceQuota>) -> bool {
    let Some(wanted) = desired.spec.as_ref().and_then(|s| s.hard.as_ref()) else {
        return true;
    };
    live.and_then(|q| q.status.as_ref())
        .and_then(|s| s.used.as_ref())
        .is_some_and(|used| wanted.keys().all(|k| used.contains_key(k)))
}

/// Counts a write, or keeps the first failure.
fn tally(result: Result<u32>, written: &mut u32, refused: &mut Option<Error>) {
    match result {
        Ok(n) => *written += n,
        Err(e) => {
            refused.get_or_insert(e);
        }
    }
}

/// A namespace that exists but is not this tenant's: not taken over unless its owner asked.
fn ownership_conflict(tenant: &Tenant, uid: &str, ns: &Namespace) -> Option<Observation> {
    let owned = ns.owner_references().iter().any(|o| o.uid == uid);
    let adopt = ns
        .annotations()
        .get(labels::ADOPT)
        .is_some_and(|v| *v == tenant.name_any());
    (!owned && !adopt).then(|| {
        Observation::new(
            NAMESPACE_READY,
            Status::False,
            Reason::NamespaceConflict,
            format!(
                "namespace {} already exists and does not belong to this Tenant; annotate it {}={} to adopt it",
                ns.name_any(),
                labels::ADOPT,
                tenant.name_any()
            ),
        )
    })
}

/// Last cleanup step: deletes the tenant's namespace (if it is the tenant's) and waits until
/// it is gone, so that nothing of the tenant outlives the Tenant object.
pub async fn cleanup(tenant: &Tenant, ctx: &Context) -> Result<()> {
    let ns_name = tenant.namespace_name();
    let api = Api::<Namespace>::all(ctx.client.clone());
    let Some(ns) = api
        .get_opt(&ns_name)
        .await
        .map_err(Error::kube(format!("reading namespace {ns_name}")))?
    else {
        return Ok(());
    };
    let uid = tenant.uid().unwrap_or_default();
    if !ns.owner_references().iter().any(|o| o.uid == uid) {
        // Never ours (a conflict): leave it alone.
        return Ok(());
    }
    if ns.meta().deletion_timestamp.is_none() {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: ns.uid(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        crate::apply::delete_named(&api, &ns_name, &params, MANAGER, &ctx.metrics)
            .await
            .map_err(Error::kube(format!("deleting namespace {ns_name}")))?;
    }
    let blockers = blockers(&ns);
    Err(Error::CleanupPending(if blockers.is_empty() {
        format!("namespace {ns_name} to finish terminating")
    } else {
        format!(
            "namespace {ns_name} to finish terminating: {}",
            blockers.join("; ")
        )
    }))
}

/// What a terminating namespace says holds it: its own `NamespaceContentRemaining`,
/// `NamespaceFinalizersRemaining` and deletion-failure conditions, which name the finalizers
/// and resources.
pub fn blockers(ns: &Namespace) -> Vec<String> {
    ns.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .filter(|c| {
            c.status == "True"
                && matches!(
                    c.type_.as_str(),
                    "NamespaceContentRemaining"
                        | "NamespaceFinalizersRemaining"
                        | "NamespaceDeletionContentFailure"
                        | "NamespaceDeletionDiscoveryFailure"
                        | "NamespaceDeletionGroupVersionParsingFailure"
                )
        })
        .filter_map(|c| c.message.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminating_namespace_names_what_holds_it() {
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "tenant-acme"},
            "status": {"phase": "Terminating", "conditions": [
                {"type": "NamespaceDeletionDiscoveryFailure", "status": "False", "message": "All resources successfully discovered"},
                {"type": "NamespaceContentRemaining", "status": "True", "message": "Some resources are remaining: configmaps. has 1 resource instances"},
                {"type": "NamespaceFinalizersRemaining", "status": "True", "message": "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"}
            ]}
        }))
        .expect("namespace");
        assert_eq!(
            blockers(&ns),
            [
                "Some resources are remaining: configmaps. has 1 resource instances",
                "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
            ]
        );
    }
}

//! The namespace part of a tenant: its namespace, RBAC, quota, limits, network walls and
//! identity ConfigMaps.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Preconditions},
    runtime::reflector::ObjectRef,
};
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
            .map_err(Error::kube(format!("reading namespace {ns_name}")))?
            .map(Arc::new),
    };
    if let Some(ns) = &live_ns {
        if let Some(conflict) = ownership_conflict(tenant, &uid, ns) {
            return Ok(conflict);
        }
        if ns.meta().deletion_timestamp.is_some() {
            return Ok(Observation::new(
                NAMESPACE_READY,
                Status::False,
                "NamespaceTerminating",
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
    } = desired::namespace_stack(tenant, &owner, &ctx.config);
    let mut written = 0;
    written += ensure_with(
        Api::all(ctx.client.clone()),
        &stores.namespaces,
        &namespace,
        ctx,
    )
    .await?;
    for role in &roles {
        written += ensure_child(&stores.roles, role, ctx).await?;
    }
    for binding in &role_bindings {
        written += ensure_child(&stores.role_bindings, binding, ctx).await?;
    }
    written += ensure_child(&stores.quotas, &quota, ctx).await?;
    written += ensure_child(&stores.limit_ranges, &limit_range, ctx).await?;
    for policy in &network_policies {
        written += ensure_child(&stores.network_policies, policy, ctx).await?;
    }
    for config_map in &config_maps {
        written += ensure_child(&stores.config_maps, config_map, ctx).await?;
    }
    if written > 0 {
        tracing::info!(namespace = %ns_name, written, "applied namespace stack");
    }
    Ok(Observation::new(
        NAMESPACE_READY,
        Status::True,
        "Provisioned",
        format!("namespace {ns_name} and its policies are in place"),
    ))
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
            "NamespaceConflict",
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
        api.delete(&ns_name, &params)
            .await
            .map_err(Error::kube(format!("deleting namespace {ns_name}")))?;
        ctx.metrics
            .writes
            .with_label_values(&[MANAGER, "Namespace"])
            .inc();
    }
    Err(Error::CleanupPending(format!(
        "namespace {ns_name} to finish terminating"
    )))
}

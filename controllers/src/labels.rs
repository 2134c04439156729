//! The labels and annotations Landlord reads and writes: one vocabulary, documented here.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use landlord_crds::Tenant;

/// `app.kubernetes.io/managed-by` value on everything Landlord creates; owned watches select
/// on it so the operator's memory grows with its tenants, not with the cluster.
pub const MANAGED_BY_KEY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "landlord";
/// The tenant an object belongs to.
pub const TENANT: &str = "landlord.dev/tenant";
/// Which part of a tenant's stack an object belongs to (e.g. `flags`).
pub const COMPONENT: &str = "landlord.dev/component";
/// The catalog Service a workload runs (on Deployments, Services, PodDisruptionBudgets,
/// HorizontalPodAutoscalers and pods, pooled and per tenant).
pub const SERVICE: &str = "landlord.dev/service";
/// On a pre-existing namespace: the name of the Tenant allowed to adopt it.
pub const ADOPT: &str = "landlord.dev/adopt";
/// On a Tenant: `"true"` releases it from its finalizer even when external cleanup cannot
/// finish (the external resources are left behind and reported in an event).
pub const RELEASE: &str = "landlord.dev/release";
/// Hash of the desired state Landlord last applied to an object; a changed hash (a new
/// intent) or a live object that no longer matches (drift) triggers a write.
pub const APPLIED_HASH: &str = "landlord.dev/applied-hash";
/// Label selector of every object Landlord manages.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=landlord";

/// Whether a Landlord object (a Tenant, a catalog Service, ...) owns the object: the
/// `managed-by` label alone can be set by anyone with rights in a namespace that admission
/// does not protect.
pub fn owned_by_landlord(meta: &ObjectMeta) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.api_version.starts_with("landlord.dev/"))
}

/// Labels of an object that belongs to a tenant.
pub fn tenant_labels(tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_KEY.to_string(), MANAGED_BY.to_string()),
        (TENANT.to_string(), tenant.to_string()),
    ])
}

/// Metadata of a child object in the tenant's namespace: its name, the tenant's labels and
/// the controller reference to the Tenant (`owner`).
pub fn child_meta(tenant: &Tenant, owner: &OwnerReference, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(tenant.namespace_name()),
        labels: Some(tenant_labels(&tenant.name_any())),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

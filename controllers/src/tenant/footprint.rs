//! The objects Landlord itself keeps in a tenant's namespace, counted per quota key.
//!
//! `spec.quota.objects` counts the tenant's own objects: the ResourceQuota's hard limit is
//! the tenant's figure plus Landlord's footprint, so Landlord's own Secret or ConfigMap is
//! never refused by a quota the tenant set (a tenant with `secrets: 1`, a database and a
//! topic still gets both credential Secrets, and one Secret of its own). Pods are not
//! counted here: they come from workloads (the dedicated tier's database, runtime and
//! service instances), and a workload the quota does not fit is reported by its part.

use landlord_crds::{Tenant, tenant::Tier};

/// How many objects of each counted kind Landlord keeps in the tenant's namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    pub config_maps: i32,
    pub secrets: i32,
    pub services: i32,
    pub persistent_volume_claims: i32,
}

/// Landlord's footprint for a tenant, from its spec.
pub fn footprint(tenant: &Tenant) -> Footprint {
    let spec = &tenant.spec;
    let database = spec.database.as_ref().is_some_and(|d| d.enabled);
    let topics = !spec.topics.is_empty();
    let dedicated = spec.tier == Tier::Dedicated;
    let count = |yes: bool| i32::from(yes);
    let selected = i32::try_from(spec.services.len()).unwrap_or(i32::MAX);
    Footprint {
        // kube-root-ca.crt (written by Kubernetes into every namespace), landlord-tenant,
        // landlord-config, landlord-flags; landlord-postgres-init for a dedicated database.
        config_maps: 4 + count(dedicated && database),
        // landlord-database, landlord-nats; landlord-postgres-admin for a dedicated database.
        secrets: count(database) + count(topics) + count(dedicated && database),
        // landlord-runtime, landlord-postgres, and one per selected catalog Service (at most).
        services: if dedicated {
            1 + count(database) + selected
        } else {
            0
        },
        // The dedicated database's volume.
        persistent_volume_claims: count(dedicated && database),
    }
}

/// A tenant's object count as the ResourceQuota states it: its own plus Landlord's.
pub fn hard(own: i32, landlord: i32) -> i32 {
    own.saturating_add(landlord)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant(spec: serde_json::Value) -> Tenant {
        serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme"}, "spec": spec
        }))
        .expect("tenant fixture")
    }

    #[test]
    fn a_shared_tenant_with_a_database_and_a_topic_needs_two_secrets() {
        let t = tenant(json!({"tier": "shared", "database": {},
            "topics": [{"name": "orders"}]}));
        assert_eq!(
            footprint(&t),
            Footprint {
                config_maps: 4,
                secrets: 2,
                services: 0,
                persistent_volume_claims: 0
            }
        );
    }

    #[test]
    fn a_dedicated_tenant_counts_its_database_server_runtime_and_instances() {
        let t = tenant(json!({"tier": "dedicated", "database": {},
            "services": [{"name": "api"}, {"name": "web"}]}));
        assert_eq!(
            footprint(&t),
            Footprint {
                config_maps: 5,
                secrets: 2,
                services: 4,
                persistent_volume_claims: 1
            }
        );
        let off = tenant(json!({"tier": "dedicated", "database": {"enabled": false}}));
        assert_eq!(footprint(&off).secrets, 0);
        assert_eq!(footprint(&off).services, 1);
    }

    #[test]
    fn the_quota_adds_landlords_objects_to_the_tenants_own() {
        assert_eq!(hard(1, 2), 3);
        assert_eq!(hard(i32::MAX, 2), i32::MAX);
    }
}

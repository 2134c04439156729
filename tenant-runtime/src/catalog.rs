//! What the runtime knows about the tenants it serves: per tenant, its namespace, its parsed
//! flags, its identity (`landlord-tenant`) and its white-label config (`landlord-config`).
//! Filled by the watches (see `watch`), read by every request; a view is replaced whole, so a
//! request sees one consistent version of a tenant.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;

use crate::flags::{self, FlagsDocument};

/// ConfigMap with the tenant's identity: name, tier, plan, namespace, suspended, displayName.
pub const IDENTITY_CONFIG_MAP: &str = "landlord-tenant";
/// ConfigMap with the tenant's white-label `spec.config`.
pub const CONFIG_CONFIG_MAP: &str = "landlord-config";

/// Whether the runtime serves `config_map`: one of the ConfigMaps Landlord writes for a
/// tenant (`landlord-flags`, `landlord-tenant`, `landlord-config`), owned by a Tenant.
/// Labels alone prove nothing (anyone may set them where admission does not protect them);
/// an ownerReference to a Tenant is kept by the garbage collector only while that Tenant
/// exists, and tenant admins cannot add one to an object in their namespace.
pub fn is_served(config_map: &ConfigMap) -> bool {
    let name = config_map.metadata.name.as_deref().unwrap_or_default();
    [flags::CONFIG_MAP, IDENTITY_CONFIG_MAP, CONFIG_CONFIG_MAP].contains(&name)
        && config_map
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Tenant" && o.api_version.starts_with("landlord.dev/"))
}

/// One tenant, as its ConfigMaps describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantView {
    pub namespace: String,
    /// `None` while no `landlord-flags` exists; `Err` when it cannot be read.
    pub flags: Option<Result<Arc<FlagsDocument>, String>>,
    pub identity: Option<BTreeMap<String, String>>,
    pub config: Option<BTreeMap<String, String>>,
}

impl TenantView {
    /// The view of `tenant` from the ConfigMaps of its namespace (others are ignored).
    pub fn from_config_maps<'a>(
        tenant: &str,
        namespace: &str,
        config_maps: impl IntoIterator<Item = &'a ConfigMap>,
    ) -> Self {
        let mut view = TenantView {
            namespace: namespace.to_string(),
            flags: None,
            identity: None,
            config: None,
        };
        for cm in config_maps {
            if cm.namespace().as_deref() != Some(namespace) {
                continue;
            }
            match cm.name_any().as_str() {
                flags::CONFIG_MAP => {
                    view.flags = Some(
                        FlagsDocument::from_data(tenant, cm.data.as_ref())
                            .map(Arc::new)
                            .map_err(|e| e.to_string()),
                    );
                }
                IDENTITY_CONFIG_MAP => view.identity = Some(cm.data.clone().unwrap_or_default()),
                CONFIG_CONFIG_MAP => view.config = Some(cm.data.clone().unwrap_or_default()),
                _ => {}
            }
        }
        view
    }
}

/// The tenants this instance serves.
#[derive(Default)]
pub struct Catalog {
    tenants: RwLock<HashMap<String, Arc<TenantView>>>,
    ready: AtomicBool,
}

impl Catalog {
    pub fn get(&self, tenant: &str) -> Option<Arc<TenantView>> {
        self.read().get(tenant).cloned()
    }

    pub fn contains(&self, tenant: &str) -> bool {
        self.read().contains_key(tenant)
    }

    /// Sets a tenant's view; returns whether it changed.
    pub fn set(&self, tenant: &str, view: TenantView) -> bool {
        let mut tenants = self.write();
        if tenants.get(tenant).is_some_and(|old| **old == view) {
            return false;
        }
        tenants.insert(tenant.to_string(), Arc::new(view));
        true
    }

    /// Keeps only the tenants for which `keep` holds; returns how many were removed.
    pub fn retain(&self, mut keep: impl FnMut(&str, &TenantView) -> bool) -> usize {
        let mut tenants = self.write();
        let before = tenants.len();
        tenants.retain(|name, view| keep(name, view));
        before - tenants.len()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the first full listing has been loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    // A panic while holding the lock cannot leave a half-written map (views are replaced
    // whole), so a poisoned lock is still safe to use.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<TenantView>>> {
        self.tenants.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<TenantView>>> {
        self.tenants.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cm(namespace: &str, name: &str, data: &[(&str, &str)]) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace},
            "data": data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }))
        .unwrap()
    }

    #[test]
    fn only_the_served_config_maps_owned_by_a_tenant_are_served() {
        let owned = |name: &str, kind: &str, api_version: &str| -> ConfigMap {
            let mut map = cm("tenant-acme", name, &[]);
            map.metadata.owner_references = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: api_version.into(),
                    kind: kind.into(),
                    name: "acme".into(),
                    uid: "u".into(),
                    ..Default::default()
                },
            ]);
            map
        };
        for name in ["landlord-flags", "landlord-tenant", "landlord-config"] {
            assert!(is_served(&owned(name, "Tenant", "landlord.dev/v1alpha1")));
            assert!(!is_served(&cm("tenant-acme", name, &[])), "{name} unowned");
            assert!(!is_served(&owned(name, "Deployment", "apps/v1")), "{name}");
            assert!(!is_served(&owned(name, "Tenant", "evil.dev/v1")), "{name}");
        }
        assert!(!is_served(&owned(
            "big-labelled-blob",
            "Tenant",
            "landlord.dev/v1alpha1"
        )));
    }

    #[test]
    fn a_view_gathers_the_three_config_maps_of_the_namespace_only() {
        let maps = [
            cm(
                "tenant-acme",
                "landlord-tenant",
                &[("name", "acme"), ("tier", "shared")],
            ),
            cm("tenant-acme", "landlord-config", &[("brandColor", "teal")]),
            cm(
                "tenant-acme",
                "landlord-flags",
                &[(
                    "flags.json",
                    r#"{"tenant":"acme","revision":"r","flags":{}}"#,
                )],
            ),
            cm("tenant-other", "landlord-config", &[("brandColor", "red")]),
            cm("tenant-acme", "unrelated", &[("x", "y")]),
        ];
        let view = TenantView::from_config_maps("acme", "tenant-acme", &maps);
        assert_eq!(view.identity.unwrap()["tier"], "shared");
        assert_eq!(view.config.unwrap()["brandColor"], "teal");
        assert_eq!(view.flags.unwrap().unwrap().revision, "r");
    }

    #[test]
    fn an_unreadable_flags_document_is_kept_as_the_reason() {
        let maps = [cm("ns", "landlord-flags", &[("flags.json", "{")])];
        let view = TenantView::from_config_maps("acme", "ns", &maps);
        assert!(
            view.flags
                .unwrap()
                .unwrap_err()
                .contains("not a flags document")
        );
    }

    #[test]
    fn setting_an_equal_view_is_not_a_change() {
        let catalog = Catalog::default();
        let view = TenantView::from_config_maps("acme", "ns", []);
        assert!(catalog.set("acme", view.clone()));
        assert!(!catalog.set("acme", view));
        assert!(catalog.contains("acme"));
        assert_eq!(catalog.retain(|_, v| v.namespace != "ns"), 1);
        assert!(catalog.is_empty());
    }
}

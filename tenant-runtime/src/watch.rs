//! Keeping the catalog current: label-selected watches on the tenants' ConfigMaps, so that a
//! change is served as soon as the API server reports it, without a restart.
//!
//! - Dedicated: the ConfigMaps Landlord manages in the tenant's own namespace.
//! - Pooled: the shared-tier tenant namespaces (metadata only) and the ConfigMaps Landlord
//!   manages in any namespace. A namespace's `landlord.dev/tenant` label, which only Landlord
//!   can write, says whose ConfigMaps it holds; a ConfigMap's own labels are not trusted
//!   for that, since tenant admins may edit ConfigMaps in their namespace.
//!
//! Only the ConfigMaps the runtime serves, owned by a Tenant, reach its cache
//! (`catalog::is_served`): anybody may put Landlord's labels on objects outside the
//! namespaces admission protects, and a cache of whatever carries them could be grown
//! until the runtime runs out of memory.

use std::{collections::HashMap, sync::Arc};

use futures::{Stream, StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::{
    Api, Client, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher::{self, Event},
    },
};
use tracing::{info, warn};

use crate::{
    catalog::{Catalog, TenantView},
    metrics::Metrics,
    tenant::Tenant,
};

/// Label selector of the objects Landlord manages.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=landlord";
/// Label selector of shared-tier tenant namespaces.
pub const SHARED_NAMESPACES: &str =
    "app.kubernetes.io/managed-by=landlord,landlord.dev/tier=shared";
/// The label naming a namespace's tenant.
pub const TENANT_LABEL: &str = "landlord.dev/tenant";

/// Which tenants an instance serves.
#[derive(Clone, Debug)]
pub enum Mode {
    /// One tenant, from its own namespace.
    Dedicated { tenant: Tenant, namespace: String },
    /// Every shared-tier tenant; the request names which.
    Pooled,
}

/// Watches until the process ends (the watches retry with backoff on their own).
pub async fn run(client: Client, mode: Mode, catalog: Arc<Catalog>, metrics: Arc<Metrics>) {
    match mode {
        Mode::Dedicated { tenant, namespace } => {
            dedicated(client, tenant, namespace, catalog, metrics).await
        }
        Mode::Pooled => pooled(client, catalog, metrics).await,
    }
}

fn config_maps(
    api: Api<ConfigMap>,
) -> (
    Store<ConfigMap>,
    impl Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Send,
) {
    let (reader, writer) = reflector::store();
    let stream = kube::runtime::watcher(api, watcher::Config::default().labels(MANAGED_SELECTOR))
        .default_backoff()
        .try_filter(|event| {
            std::future::ready(match event {
                Event::Apply(cm) | Event::InitApply(cm) | Event::Delete(cm) => {
                    crate::catalog::is_served(cm)
                }
                Event::Init | Event::InitDone => true,
            })
        })
        .modify(|cm| cm.managed_fields_mut().clear())
        .reflect(writer);
    (reader, stream)
}

/// Records a rebuilt view; logs and counts it when it changed.
fn publish(catalog: &Catalog, metrics: &Metrics, tenant: &str, view: TenantView) {
    let revision = match &view.flags {
        Some(Ok(document)) => document.revision.clone(),
        Some(Err(why)) => {
            warn!(tenant, error = %why, "the tenant's flags cannot be read");
            String::new()
        }
        None => String::new(),
    };
    if catalog.set(tenant, view) {
        metrics.reloads.inc();
        info!(tenant, revision, "tenant reloaded");
    }
    metrics.tenants.set(catalog.len() as i64);
}

async fn dedicated(
    client: Client,
    tenant: Tenant,
    namespace: String,
    catalog: Arc<Catalog>,
    metrics: Arc<Metrics>,
) {
    let (store, events) = config_maps(Api::namespaced(client, &namespace));
    let rebuild = || {
        let maps = store.state();
        metrics.cached_config_maps.set(maps.len() as i64);
        let view =
            TenantView::from_config_maps(tenant.as_str(), &namespace, maps.iter().map(|m| &**m));
        publish(&catalog, &metrics, tenant.as_str(), view);
    };
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(_) | Event::Delete(_)) => rebuild(),
            Ok(Event::InitDone) => {
                rebuild();
                catalog.mark_ready();
            }
            Ok(Event::Init | Event::InitApply(_)) => {}
            Err(e) => warn!(error = %e, namespace, "watching ConfigMaps failed; retrying"),
        }
    }
}

/// What a watch event means for the catalog.
enum Change {
    /// Something in (or about) this namespace changed.
    Namespace(String),
    /// A watch (re)listed everything: `true` for the namespace watch.
    Relisted(bool),
    None,
}

fn change_of<K: ResourceExt>(
    event: Result<Event<K>, watcher::Error>,
    namespace_of: impl Fn(&K) -> Option<String>,
    is_namespaces: bool,
) -> Change {
    match event {
        Ok(Event::Apply(o) | Event::Delete(o)) => {
            namespace_of(&o).map_or(Change::None, Change::Namespace)
        }
        Ok(Event::InitDone) => Change::Relisted(is_namespaces),
        Ok(Event::Init | Event::InitApply(_)) => Change::None,
        Err(e) => {
            warn!(error = %e, "watch failed; retrying");
            Change::None
        }
    }
}

async fn pooled(client: Client, catalog: Arc<Catalog>, metrics: Arc<Metrics>) {
    let (namespaces, writer) = reflector::store::<PartialObjectMeta<Namespace>>();
    let namespace_events = kube::runtime::watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default().labels(SHARED_NAMESPACES),
    )
    .default_backoff()
    .reflect(writer)
    .map(|e| change_of(e, |ns| Some(ns.name_any()), true));
    let (maps, map_events) = config_maps(Api::all(client));
    let map_events = map_events.map(|e| change_of(e, |cm| cm.namespace(), false));
    let mut changes = std::pin::pin!(stream::select(namespace_events, map_events));

    let tenant_of = |ns: &str| -> Option<String> {
        let namespace = namespaces.get(&ObjectRef::new(ns))?;
        let label = namespace.labels().get(TENANT_LABEL)?;
        Tenant::parse(label).ok().map(|t| t.to_string())
    };
    let (mut namespaces_listed, mut maps_listed) = (false, false);
    while let Some(change) = changes.next().await {
        metrics.cached_config_maps.set(maps.state().len() as i64);
        match change {
            Change::None => {}
            Change::Namespace(ns) => {
                let owner = tenant_of(&ns);
                if let Some(tenant) = &owner {
                    let all = maps.state();
                    let view = TenantView::from_config_maps(tenant, &ns, all.iter().map(|m| &**m));
                    publish(&catalog, &metrics, tenant, view);
                }
                // A namespace no longer shared (or relabelled) stops serving its old tenant.
                let removed = catalog
                    .retain(|name, view| view.namespace != ns || Some(name) == owner.as_deref());
                if removed > 0 {
                    info!(namespace = %ns, "tenant no longer served");
                    metrics.tenants.set(catalog.len() as i64);
                }
            }
            Change::Relisted(is_namespaces) => {
                if is_namespaces {
                    namespaces_listed = true;
                } else {
                    maps_listed = true;
                }
                if !(namespaces_listed && maps_listed) {
                    continue;
                }
                let owners: HashMap<String, String> = namespaces
                    .state()
                    .iter()
                    .filter_map(|ns| Some((ns.name_any(), tenant_of(&ns.name_any())?)))
                    .collect();
                let all = maps.state();
                for (ns, tenant) in &owners {
                    let view = TenantView::from_config_maps(tenant, ns, all.iter().map(|m| &**m));
                    publish(&catalog, &metrics, tenant, view);
                }
                catalog.retain(|name, view| {
                    owners.get(&view.namespace).map(String::as_str) == Some(name)
                });
                metrics.tenants.set(catalog.len() as i64);
                catalog.mark_ready();
            }
        }
    }
}

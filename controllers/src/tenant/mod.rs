//! The Tenant controller.
//!
//! fetch (the Tenant and its children, from label-selected caches) → validate (pure) →
//! desired (pure, per part) → apply (server-side apply, only on drift) → status (pure,
//! written only when it changed). Deletion runs the parts' cleanup in dependency order
//! behind the `landlord.dev/cleanup` finalizer.

pub mod database;
pub mod desired;
pub mod domains;
pub mod error;
pub mod failure;
pub mod flags;
pub mod footprint;
pub mod namespace;
#[cfg(test)]
mod orchestration;
pub mod runtime;
pub mod services;
pub mod status;
pub mod topics;
pub mod validate;

use std::{fmt::Debug, future::Future, sync::Arc, time::Duration};
use tokio_util::task::AbortOnDropHandle;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, StatefulSet},
        core::v1::{
            ConfigMap, LimitRange, Namespace, ResourceQuota, Secret, Service, ServiceAccount,
        },
        networking::v1::NetworkPolicy,
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Resource, ResourceExt,
    core::NamespaceResourceScope,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::{Event, EventType},
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use landlord_crds::{
    CLEANUP_FINALIZER, Domain, FeatureFlagSet, Tenant, TenantStatus,
    conditions::{Observation, Reason, Severity},
};
use serde::{Serialize, de::DeserializeOwned};
use tracing::{info, warn};

pub use error::Error;
use error::Result;

use crate::{
    Context,
    apply::{self, EnsureError, Outcome},
    labels,
    reflectors::{
        Reflectors, Synced,
        compact::{Compact, Wire},
        kind,
    },
};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "tenant";
const STATUS_MANAGER: &str = "landlord/tenant-status";
/// Field manager of every child object the Tenant controller applies.
pub const MANAGER: &str = "landlord/tenant";
/// How often a healthy Tenant is looked at again without any change (a read, not a write).
const RESYNC: Duration = Duration::from_secs(600);
/// How soon a Tenant blocked on something outside Landlord's watches (a squatted namespace,
/// an external server) is looked at again.
const RECHECK: Duration = Duration::from_secs(10);
/// How often the shared database servers are probed.
const DATABASE_PROBE: Duration = Duration::from_secs(5);
/// How soon a pending cleanup step is checked again.
const CLEANUP_POLL: Duration = Duration::from_secs(2);

/// The parts of a tenant's stack, in provisioning order. Cleanup runs in the reverse order
/// of dependencies: routes and DNS, workloads, topics, database, and the namespace last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Namespace,
    Database,
    Topics,
    Flags,
    /// The dedicated tenant's tenant-runtime (flags and context for its services).
    Runtime,
    /// The catalog Services the tenant runs (its own instances when dedicated).
    Services,
    /// The tenant's Domains (routes to its services, TLS, `status.endpoints`).
    Domains,
}

impl Part {
    pub const PROVISION_ORDER: &'static [Part] = &[
        Part::Namespace,
        Part::Database,
        Part::Topics,
        Part::Flags,
        Part::Runtime,
        Part::Services,
        Part::Domains,
    ];
    // The runtime's and the flags' objects live in the namespace and go with it. Routes go
    // first, so no traffic reaches a workload that is being removed.
    pub const CLEANUP_ORDER: &'static [Part] = &[
        Part::Domains,
        Part::Services,
        Part::Topics,
        Part::Database,
        Part::Namespace,
    ];

    /// Provisions the part and reports its condition. The parts that own a status field
    /// get that field alone (`status.database`, `status.topics`) or return it
    /// (`status.endpoints`); none sees another part's fields. `owned` starts as the Tenant's
    /// current status.
    async fn provision(
        self,
        tenant: &Tenant,
        state: &State,
        owned: &mut TenantStatus,
    ) -> Result<Observation> {
        match self {
            Part::Namespace => namespace::provision(tenant, &state.ctx, &state.stores).await,
            Part::Database => database::provision(tenant, state, &mut owned.database).await,
            Part::Topics => topics::provision(tenant, state, &mut owned.topics).await,
            Part::Runtime => runtime::provision(tenant, &state.ctx, &state.stores).await,
            Part::Flags => flags::provision(tenant, state).await,
            Part::Services => {
                services::provision(tenant, &state.ctx, &state.stores.workloads).await
            }
            Part::Domains => {
                let (observation, endpoints) = domains::provision(tenant, &state.stores);
                owned.endpoints = endpoints;
                Ok(observation)
            }
        }
    }

    async fn cleanup(self, tenant: &Tenant, state: &State) -> Result<()> {
        match self {
            Part::Namespace => namespace::cleanup(tenant, &state.ctx).await,
            Part::Database => database::cleanup(tenant, state).await,
            Part::Topics => topics::cleanup(tenant, state).await,
            Part::Runtime | Part::Flags => Ok(()),
            Part::Services => services::cleanup(tenant, &state.ctx, &state.stores.workloads).await,
            Part::Domains => domains::cleanup(tenant, &state.ctx).await,
        }
    }
}

/// Caches of the children Landlord manages, filled by the controller's own owned watches.
pub struct Stores {
    pub namespaces: Compact<Namespace>,
    pub roles: Compact<Role>,
    pub role_bindings: Compact<RoleBinding>,
    pub cluster_roles: Compact<ClusterRole>,
    pub cluster_role_bindings: Compact<ClusterRoleBinding>,
    pub quotas: Compact<ResourceQuota>,
    pub limit_ranges: Compact<LimitRange>,
    pub network_policies: Compact<NetworkPolicy>,
    pub config_maps: Compact<ConfigMap>,
    pub services: Compact<Service>,
    pub stateful_sets: Compact<StatefulSet>,
    pub service_accounts: Compact<ServiceAccount>,
    pub deployments: Compact<Deployment>,
    /// Every FeatureFlagSet (platform and tenant namespaces).
    pub flag_sets: Store<FeatureFlagSet>,
    /// The catalog and every catalog Service instance (see `services`).
    pub workloads: services::Caches,
    /// Every Domain (user-created, so not label-selected), mapped to its Tenant by the
    /// `status.tenant` the Domain controller writes.
    pub domains: Store<Domain>,
    /// Whether the shared caches (FeatureFlagSets, Domains) have listed.
    pub shared: SharedSynced,
}

/// Whether the Tenant controller's shared caches have listed (see [`Synced`]).
pub struct SharedSynced {
    pub flag_sets: Synced,
    pub domains: Synced,
}

impl Stores {
    /// Publishes how many objects each child cache holds (`landlord_cached_objects{kind}`).
    fn record_sizes(&self, metrics: &crate::metrics::Metrics) {
        fn count(len: usize) -> i64 {
            i64::try_from(len).unwrap_or(i64::MAX)
        }
        fn size<K: Resource<DynamicType = ()> + Clone>(store: &Store<K>) -> (String, i64) {
            (K::kind(&()).into_owned(), count(store.state().len()))
        }
        fn compact<K: Child>(cache: &Compact<K>) -> (String, i64) {
            (K::kind(&()).into_owned(), count(cache.len()))
        }
        for (kind, count) in [
            compact(&self.namespaces),
            compact(&self.roles),
            compact(&self.role_bindings),
            compact(&self.cluster_roles),
            compact(&self.cluster_role_bindings),
            compact(&self.quotas),
            compact(&self.limit_ranges),
            compact(&self.network_policies),
            compact(&self.config_maps),
            compact(&self.services),
            compact(&self.stateful_sets),
            compact(&self.service_accounts),
            compact(&self.deployments),
            size(&self.flag_sets),
            size(&self.domains),
        ] {
            metrics
                .cached_objects
                .with_label_values(&[kind.as_str()])
                .set(count);
        }
    }

    /// Waits until every cache has listed, each tracked in `caches` as `tenants/<kind>`.
    async fn wait_until_ready(&self, caches: &crate::caches::CacheSync) {
        let Stores {
            namespaces,
            roles,
            role_bindings,
            cluster_roles,
            cluster_role_bindings,
            quotas,
            limit_ranges,
            network_policies,
            config_maps,
            services,
            stateful_sets,
            service_accounts,
            deployments,
            flag_sets,
            workloads,
            domains,
            shared,
        } = self;
        fn name<K: Resource<DynamicType = ()>>(_: &Store<K>) -> String {
            format!("{CONTROLLER}/{}", K::kind(&()))
        }
        macro_rules! tracked {
            ($cache:expr) => {
                caches.track(format!("{CONTROLLER}/{}", kind_of($cache)), {
                    let synced = $cache.synced();
                    async move { synced.wait().await }
                })
            };
        }
        fn kind_of<K: Resource<DynamicType = ()>>(
            _: &Compact<K>,
        ) -> std::borrow::Cow<'static, str> {
            K::kind(&())
        }
        // Errors only when the writer is gone, i.e. the controller is shutting down.
        futures::join!(
            tracked!(namespaces),
            tracked!(roles),
            tracked!(role_bindings),
            tracked!(cluster_roles),
            tracked!(cluster_role_bindings),
            tracked!(quotas),
            tracked!(limit_ranges),
            tracked!(network_policies),
            tracked!(config_maps),
            tracked!(services),
            tracked!(stateful_sets),
            tracked!(service_accounts),
            tracked!(deployments),
            caches.track(name(flag_sets), shared.flag_sets.wait()),
            caches.track(
                format!("{CONTROLLER}/catalog Service"),
                workloads.wait_until_ready()
            ),
            caches.track(name(domains), shared.domains.wait()),
        );
    }
}

/// What every Tenant reconcile shares.
pub struct State {
    pub ctx: Arc<Context>,
    pub stores: Stores,
    /// Tenants that do not decode now (not reconciled).
    undecodable: crate::reflectors::undecodable::Undecodables<Tenant>,
    /// Every Tenant, from the controller's own cache (for placement by load).
    pub tenants: Store<Tenant>,
    /// Set once every child cache has been listed. Reconciles wait on this cell rather than
    /// on the stores themselves: a store's readiness wakes only one waiter, so concurrent
    /// reconciles waiting on it directly would hang.
    stores_ready: tokio::sync::OnceCell<()>,
}

/// Objects per page when a child cache lists.
const LIST_PAGE_SIZE: u32 = 100;
/// How often the sizes of the caches are published (`landlord_cached_objects`).
const CACHE_METRICS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// A label-selected, owner-checked, compact cache of one child kind (see
/// [`crate::reflectors::compact`]) and the stream that fills it and triggers reconciles of the
/// owning Tenant.
fn owned<K>(
    client: &kube::Client,
) -> (
    Compact<K>,
    impl Stream<Item = Result<Wire<K>, watcher::Error>> + Send + 'static,
)
where
    K: Child,
{
    let cache = Compact::default();
    // Smaller list pages than kube's 500: a page of objects someone else labelled can be
    // large, and it is held whole while it is decoded.
    let config = watcher::Config::default()
        .labels(labels::MANAGED_SELECTOR)
        .page_size(LIST_PAGE_SIZE);
    let filling = cache.clone();
    let stream = watcher(Api::<Wire<K>>::all(client.clone()), config)
        .default_backoff()
        // The label alone is not proof: outside tenant namespaces (where admission protects
        // it) anyone may set it. Only objects a Landlord object owns reach the cache or
        // trigger a reconcile, so nobody can grow the operator's memory with labelled
        // objects of their own.
        .try_filter(|event| {
            std::future::ready(match event {
                watcher::Event::Apply(o)
                | watcher::Event::InitApply(o)
                | watcher::Event::Delete(o) => labels::owned_by_landlord(o.meta()),
                watcher::Event::Init | watcher::Event::InitDone => true,
            })
        })
        .map_ok(move |event| {
            filling.apply(&event);
            event
        })
        .touched_objects();
    (
        cache,
        crate::runner::logged(CONTROLLER, kind::<K>(), stream),
    )
}

/// The Tenant a child belongs to, by its `landlord.dev/tenant` label. (kube's `owns` maps an
/// ownerReference into the child's namespace, which is wrong for the cluster-scoped Tenant.)
fn tenant_of<K: Resource>(child: K) -> Option<ObjectRef<Tenant>> {
    child
        .labels()
        .get(labels::TENANT)
        .map(|name| ObjectRef::new(name))
}

/// The Tenant controller: subscribes to the shared reflectors at once (call before
/// [`Reflectors::start`]); the future runs it until `shutdown` resolves.
pub fn run(
    ctx: Arc<Context>,
    reflectors: &Reflectors,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let tenant_events = reflectors.tenants.touched();
    let tenants = reflectors.tenants.store();
    let undecodable = reflectors.tenants.undecodable();
    let (flag_sets, flag_set_changes) = crate::flags::set_changes(reflectors);
    let (workloads, workload_triggers) = services::watch(reflectors);
    let shared = SharedSynced {
        flag_sets: reflectors.flag_sets.synced(),
        domains: reflectors.domains.synced(),
    };
    let domains = reflectors.domains.store();
    let domain_events = reflectors.domains.touched();
    async move {
        let client = ctx.client.clone();
        let (namespaces, namespace_events) = owned::<Namespace>(&client);
        let (roles, role_events) = owned::<Role>(&client);
        let (role_bindings, role_binding_events) = owned::<RoleBinding>(&client);
        let (cluster_roles, cluster_role_events) = owned::<ClusterRole>(&client);
        let (cluster_role_bindings, cluster_role_binding_events) =
            owned::<ClusterRoleBinding>(&client);
        let (quotas, quota_events) = owned::<ResourceQuota>(&client);
        let (limit_ranges, limit_range_events) = owned::<LimitRange>(&client);
        let (network_policies, network_policy_events) = owned::<NetworkPolicy>(&client);
        let (config_maps, config_map_events) = owned::<ConfigMap>(&client);
        let (services, service_events) = owned::<Service>(&client);
        let (stateful_sets, stateful_set_events) = owned::<StatefulSet>(&client);
        let (service_accounts, service_account_events) = owned::<ServiceAccount>(&client);
        let (deployments, deployment_events) = owned::<Deployment>(&client);
        let stores = Stores {
            namespaces,
            roles,
            role_bindings,
            cluster_roles,
            cluster_role_bindings,
            quotas,
            limit_ranges,
            network_policies,
            config_maps,
            services,
            stateful_sets,
            service_accounts,
            deployments,
            flag_sets,
            workloads,
            domains,
            shared,
        };
        let controller = Controller::for_shared_stream(tenant_events, tenants);
        // Server outages and recoveries reconcile the tenants placed on the server at once.
        let (trigger, triggered) = futures::channel::mpsc::channel(1024);
        // The helper tasks end with the controller, also when it is dropped mid-run (a
        // leadership term aborted).
        let _health = AbortOnDropHandle::new(tokio::spawn(crate::database::health::watch(
            ctx.clone(),
            controller.store(),
            trigger,
            DATABASE_PROBE,
        )));
        // A changed FeatureFlagSet re-resolves the flags of the tenants it can affect.
        let flags_config = ctx.config.clone();
        let tenants = controller.store();
        let flag_set_triggers = flag_set_changes.flat_map(move |sets| {
            let all = tenants.state();
            let affected: Vec<_> = sets
                .iter()
                .flat_map(|set| crate::flags::affected_tenants(set, &all, &flags_config))
                .collect();
            futures::stream::iter(affected)
        });
        // A change in the pool's state (failing, back in place) concerns every shared tenant.
        let shared = controller.store();
        let pool_triggers = futures::stream::unfold(ctx.pool.subscribe(), |mut changes| async {
            changes.changed().await.ok()?;
            Some(((), changes))
        })
        .flat_map(move |()| {
            let refs: Vec<_> = shared
                .state()
                .iter()
                .filter(|t| t.spec.tier == landlord_crds::tenant::Tier::Shared)
                .map(|t| ObjectRef::from_obj(t.as_ref()))
                .collect();
            futures::stream::iter(refs)
        });
        let workload_triggers = workload_triggers
            .into_stream(controller.store(), ctx.config.platform_namespace.clone());
        let state = Arc::new(State {
            ctx,
            stores,
            undecodable,
            tenants: controller.store(),
            stores_ready: tokio::sync::OnceCell::new(),
        });
        // The caches are waited for from the start, not only by the first reconcile: /readyz
        // names the ones that never sync even while there is no Tenant.
        let _caches_synced = {
            let state = state.clone();
            AbortOnDropHandle::new(tokio::spawn(async move {
                state
                    .stores_ready
                    .get_or_init(|| state.stores.wait_until_ready(&state.ctx.caches))
                    .await;
            }))
        };
        let _cache_metrics = {
            let state = state.clone();
            AbortOnDropHandle::new(tokio::spawn(async move {
                loop {
                    state.stores.record_sizes(&state.ctx.metrics);
                    tokio::time::sleep(CACHE_METRICS_INTERVAL).await;
                }
            }))
        };
        let controller = controller
            .reconcile_on(triggered)
            .reconcile_on(pool_triggers)
            .reconcile_on(workload_triggers)
            .watches_stream(namespace_events, tenant_of)
            .watches_stream(role_events, tenant_of)
            .watches_stream(role_binding_events, tenant_of)
            .watches_stream(cluster_role_events, tenant_of)
            .watches_stream(cluster_role_binding_events, tenant_of)
            .watches_stream(quota_events, tenant_of)
            .watches_stream(limit_range_events, tenant_of)
            .watches_stream(network_policy_events, tenant_of)
            .watches_stream(config_map_events, tenant_of)
            .watches_stream(service_events, tenant_of)
            .watches_stream(stateful_set_events, tenant_of)
            .watches_stream(service_account_events, tenant_of)
            .watches_stream(deployment_events, tenant_of)
            .reconcile_on(flag_set_triggers)
            .watches_shared_stream(domain_events, |d: Arc<Domain>| {
                d.status
                    .as_ref()
                    .and_then(|s| s.tenant.as_deref())
                    .map(ObjectRef::new)
            });
        crate::runner::run(controller, state, shutdown).await;
    }
}

impl crate::runner::Reconciler for State {
    type Object = Tenant;
    type Error = Error;
    const NAME: &'static str = CONTROLLER;

    fn context(&self) -> &Context {
        &self.ctx
    }

    async fn caches_ready(&self) {
        self.stores_ready
            .get_or_init(|| self.stores.wait_until_ready(&self.ctx.caches))
            .await;
    }

    /// Cleans up a Tenant being deleted (then releases its finalizer); otherwise adds the
    /// finalizer, when missing, and provisions in the same reconcile: a new Tenant is not
    /// sent back to the end of the queue between the two.
    async fn reconcile(&self, tenant: Arc<Tenant>) -> Result<Action> {
        let api = Api::<Tenant>::all(self.ctx.client.clone());
        let manager = crate::apply::field_manager(CONTROLLER);
        let has_finalizer = tenant.finalizers().iter().any(|f| f == CLEANUP_FINALIZER);
        if tenant.meta().deletion_timestamp.is_some() {
            if !has_finalizer {
                return Ok(Action::await_change());
            }
            let action = cleanup(&tenant, self).await?;
            crate::apply::remove_finalizer(
                &api,
                tenant.as_ref(),
                CLEANUP_FINALIZER,
                &manager,
                &self.ctx.metrics,
            )
            .await
            .map_err(Error::kube(format!(
                "removing the finalizer {CLEANUP_FINALIZER} from Tenant {}",
                tenant.name_any()
            )))?;
            return Ok(action);
        }
        let tenant = match crate::apply::add_finalizer(
            &api,
            tenant.as_ref(),
            CLEANUP_FINALIZER,
            &manager,
            &self.ctx.metrics,
        )
        .await
        .map_err(Error::kube(format!(
            "adding the finalizer {CLEANUP_FINALIZER} to Tenant {}",
            tenant.name_any()
        )))? {
            Some(written) => Arc::new(written),
            None => tenant,
        };
        apply(&tenant, self).await
    }

    fn undecodable(&self) -> Option<&crate::reflectors::undecodable::Undecodables<Tenant>> {
        Some(&self.undecodable)
    }

    fn category(error: &Error) -> &'static str {
        error.category()
    }

    fn on_error(tenant: &Tenant, error: &Error) -> Option<Action> {
        match error {
            Error::CleanupPending(what) => {
                info!(tenant = %tenant.name_any(), waiting_for = %what, "cleanup in progress");
                Some(Action::requeue(CLEANUP_POLL))
            }
            Error::InvalidSpec(_) => Some(Action::await_change()),
            _ => None,
        }
    }
}

fn now() -> Time {
    Time(Timestamp::now())
}

async fn apply(tenant: &Tenant, state: &State) -> Result<Action> {
    let mut draft = tenant.status.clone().unwrap_or_default();
    let mut transient = Vec::new();
    let observations = match validate::validate(tenant, &state.ctx.config) {
        Err(invalid) => vec![invalid],
        Ok(()) => {
            let mut observations = Vec::with_capacity(Part::PROVISION_ORDER.len());
            for part in Part::PROVISION_ORDER {
                // A part's failure is its own condition: the other parts still run (and
                // apply suspension), and status is written below.
                let (observation, failed) = match part.provision(tenant, state, &mut draft).await {
                    Ok(observation) => (observation, false),
                    Err(error) => {
                        let observation = failure::observation(*part, &error);
                        warn!(part = ?part, reason = %observation.reason, error = %error, "part failed");
                        state
                            .ctx
                            .metrics
                            .failures
                            .with_label_values(&[CONTROLLER, error.category()])
                            .inc();
                        (observation, true)
                    }
                };
                if failed && observation.reason.severity() == Severity::Transient {
                    transient.push(format!("{} {}", observation.type_, observation.reason));
                }
                // Every other part lives in (or hands credentials to) the namespace: they
                // wait while it is missing or not the tenant's. A refused object inside it
                // (reported by the namespace part) does not hold the others back.
                let stop = *part == Part::Namespace
                    && (matches!(
                        observation.reason,
                        Reason::NamespaceConflict | Reason::NamespaceTerminating
                    ) || failed
                        && state
                            .stores
                            .namespaces
                            .get(&ObjectRef::new(&tenant.namespace_name()))
                            .is_none());
                observations.push(observation);
                if stop {
                    break;
                }
            }
            observations
        }
    };
    // Settled, or blocked only on what a person must fix, or warned about objects whose
    // changes are watched (FeatureFlagSets): no point looking again soon.
    let settled = observations.iter().all(|o| {
        o.is_true() || status::waits_for_tenant_change(o.reason) || status::is_warning(o.reason)
    });
    let status = status::compute(tenant, draft, &observations, &now());
    write_status(tenant, status, state).await?;
    if !transient.is_empty() {
        // Retried with backoff by the error policy; the conditions already say why.
        return Err(Error::PartsFailed(transient.join(", ")));
    }
    Ok(Action::requeue(if settled { RESYNC } else { RECHECK }))
}

async fn cleanup(tenant: &Tenant, state: &State) -> Result<Action> {
    // Once Terminating, Ready is left to the step that waits (below), so that a blocked
    // deletion is not written twice per look.
    let terminating = tenant
        .status
        .as_ref()
        .is_some_and(|s| s.phase == Some(landlord_crds::tenant::Phase::Terminating));
    if !terminating {
        write_status(tenant, status::terminating(tenant, &now()), state).await?;
    }
    if tenant
        .annotations()
        .get(labels::RELEASE)
        .is_some_and(|v| v == "true")
    {
        warn!("released by annotation: external cleanup skipped");
        publish(
            state,
            tenant,
            EventType::Warning,
            "Released",
            "Released by the landlord.dev/release annotation; external cleanup was skipped",
        )
        .await;
        return Ok(Action::await_change());
    }
    for part in Part::CLEANUP_ORDER {
        if let Err(error) = part.cleanup(tenant, state).await {
            // Status says what the deletion waits for, and how to release the Tenant.
            let (reason, what) = match &error {
                Error::CleanupPending(what) => (
                    match part {
                        Part::Namespace => Reason::NamespaceTerminating,
                        _ => Reason::CleanupPending,
                    },
                    what.clone(),
                ),
                other => (
                    failure::reason(other),
                    format!("{part:?} cleanup: {}", failure::message(other)),
                ),
            };
            write_status(
                tenant,
                status::terminating_blocked(tenant, reason, &what, &now()),
                state,
            )
            .await?;
            return Err(error);
        }
        info!(part = ?part, "cleanup step done");
    }
    publish(
        state,
        tenant,
        EventType::Normal,
        "CleanedUp",
        "Every part of the tenant's stack was removed",
    )
    .await;
    Ok(Action::await_change())
}

/// Writes the status only when it differs from the current one: an unchanged Tenant
/// causes no write and no reconcile of its own.
async fn write_status(tenant: &Tenant, status: TenantStatus, state: &State) -> Result<()> {
    let became_ready = !status::was_ready(tenant)
        && landlord_crds::conditions::is_true(&status.conditions, "Ready");
    let api = Api::<Tenant>::all(state.ctx.client.clone());
    let written = crate::apply::status(
        &api,
        tenant,
        tenant.status.as_ref(),
        &status,
        STATUS_MANAGER,
        &state.ctx.metrics,
    )
    .await
    .map_err(Error::kube("writing Tenant status"))?;
    if written == crate::apply::Outcome::Unchanged {
        return Ok(());
    }
    if became_ready {
        publish(
            state,
            tenant,
            EventType::Normal,
            "Ready",
            "Every part of the tenant's stack is ready",
        )
        .await;
    } else if let Some(ready) = landlord_crds::conditions::find(&status.conditions, "Ready") {
        let changed = tenant
            .status
            .as_ref()
            .and_then(|s| landlord_crds::conditions::find(&s.conditions, "Ready"))
            .map(|c| c.reason.as_str())
            != Some(ready.reason.as_str());
        if changed
            && ready.status != "True"
            && !matches!(ready.reason.as_str(), "Terminating" | "Suspended")
        {
            publish(
                state,
                tenant,
                EventType::Warning,
                &ready.reason,
                &ready.message,
            )
            .await;
        }
    }
    Ok(())
}

/// Applies one namespaced child of a Tenant through the one write path (`apply::ensure`,
/// field manager `landlord/tenant`), comparing with its cached live copy. Returns 1 when it
/// wrote.
pub async fn ensure_child<K>(store: &Compact<K>, desired: &K, ctx: &Context) -> Result<u32>
where
    K: Child + Resource<Scope = NamespaceResourceScope>,
{
    let ns = desired.namespace().unwrap_or_default();
    ensure_with(
        Api::namespaced(ctx.client.clone(), &ns),
        store,
        desired,
        ctx,
    )
    .await
}

/// What a child object of a Tenant must be for the apply path: a typed Kubernetes object
/// that can be encoded, decoded, compared and sent across tasks.
pub trait Child:
    Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static
{
}

impl<K> Child for K where
    K: Resource<DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// [`ensure_child`] through a given API (cluster-scoped children, such as the namespace).
pub async fn ensure_with<K>(
    api: Api<K>,
    store: &Compact<K>,
    desired: &K,
    ctx: &Context,
) -> Result<u32>
where
    K: Child,
{
    let name = desired.name_any();
    let mut key = ObjectRef::new(&name);
    if let Some(ns) = desired.namespace() {
        key = key.within(&ns);
    }
    let live = store.get(&key);
    ensure_against(api, live.as_ref(), desired, ctx).await
}

/// A Secret of a tenant (or the platform) namespace, read with one GET: the operator may not
/// list or watch Secrets cluster-wide (see `Config::secrets_cluster_role`), so they are not
/// cached. Ok(None) when it does not exist.
pub async fn get_secret(ctx: &Context, namespace: &str, name: &str) -> Result<Option<Secret>> {
    Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(Error::kube(format!("reading Secret {namespace}/{name}")))
}

/// [`ensure_child`] for a Secret: compared with what a GET returns (Secrets are not cached).
pub async fn ensure_secret(desired: &Secret, ctx: &Context) -> Result<u32> {
    let ns = desired.namespace().unwrap_or_default();
    let live = get_secret(ctx, &ns, &desired.name_any()).await?;
    ensure_against(
        Api::namespaced(ctx.client.clone(), &ns),
        live.as_ref(),
        desired,
        ctx,
    )
    .await
}

/// Applies `desired` unless `live` is already up to date; the number of writes (0 or 1).
async fn ensure_against<K>(api: Api<K>, live: Option<&K>, desired: &K, ctx: &Context) -> Result<u32>
where
    K: Child,
{
    let name = desired.name_any();
    match apply::ensure(&api, live, desired, MANAGER, &ctx.metrics).await {
        Ok(Outcome::Applied) => Ok(1),
        Ok(Outcome::Unchanged) => Ok(0),
        Err(EnsureError::Encode(source)) => Err(Error::Encode {
            what: "child object",
            source,
        }),
        Err(EnsureError::Foreign(message)) => Err(Error::Foreign(message)),
        Err(EnsureError::Kube(source)) => Err(Error::Kube {
            action: match desired.namespace() {
                Some(ns) => format!("applying {} {ns}/{name}", K::kind(&())),
                None => format!("applying {} {name}", K::kind(&())),
            },
            source,
        }),
    }
}

async fn publish(state: &State, tenant: &Tenant, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note.to_string()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let reference = tenant.object_ref(&());
    let publishing = state.ctx.tenant_recorder.publish(&event, &reference);
    if let Err(e) = crate::apply::bounded(publishing).await {
        warn!(error = %e, "publishing event failed");
    }
}

//! Feature flags: resolution of a tenant's effective flags (pure, [`resolve`]) and the
//! FeatureFlagSet controller, which reports on each set: how many tenants it applies to,
//! `Ready`, and `Conflict` naming the other set when a flag has two types.
//!
//! The tenant's own flags are written by the Tenant controller's flags part
//! (`tenant::flags`); this controller only writes FeatureFlagSet status, and only when it
//! changed. A set's status depends on other sets and on the tenants, so a change of any set's
//! spec, or of a tenant's name, tier, plan, labels or namespace, re-reconciles every set (the
//! sets are few; their status writes do not trigger this).

pub mod resolve;
pub mod status;

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    hash::{Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt, future};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use landlord_crds::{FeatureFlagSet, Tenant};
use tracing::{Instrument, info_span, warn};

use crate::{Context, config::Config};
use resolve::{Resolution, TenantFacts};
use status::Scope;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "featureflagset";
const STATUS_MANAGER: &str = "landlord/flags-status";
/// How often a set is looked at again without any change (a read, not a write).
const RESYNC: Duration = Duration::from_secs(300);

/// Resolves a tenant's flags from every set the operator knows of: those of the platform
/// namespace (filtered by their selectors) and those of the tenant's own namespace.
pub fn resolve_for(tenant: &Tenant, sets: &[Arc<FeatureFlagSet>], config: &Config) -> Resolution {
    resolve::resolve(
        &TenantFacts::of(tenant),
        in_namespace(sets, &config.platform_namespace),
        in_namespace(sets, &tenant.namespace_name()),
    )
}

/// The problems of a tenant's flags that concern the keys of the set `of`.
fn problems_for(
    tenant: &Tenant,
    sets: &[Arc<FeatureFlagSet>],
    of: &FeatureFlagSet,
    config: &Config,
) -> Vec<resolve::Problem> {
    let keys: HashSet<&str> = of.spec.flags.iter().map(|f| f.name.as_str()).collect();
    resolve::resolve_keys(
        &TenantFacts::of(tenant),
        in_namespace(sets, &config.platform_namespace),
        in_namespace(sets, &tenant.namespace_name()),
        |key| keys.contains(key),
    )
    .problems
}

fn in_namespace<'a>(
    sets: &'a [Arc<FeatureFlagSet>],
    namespace: &str,
) -> impl Iterator<Item = &'a FeatureFlagSet> {
    let namespace = namespace.to_string();
    sets.iter()
        .filter(move |s| s.namespace().as_deref() == Some(namespace.as_str()))
        .map(Arc::as_ref)
}

/// The tenants whose flags a change of the set `set` (a reference: it may be gone) can
/// affect. Every tenant for a platform set (its old selector may have picked tenants the new
/// one does not), the namespace's tenant for a tenant set.
pub fn affected_tenants(
    set: &ObjectRef<FeatureFlagSet>,
    tenants: &[Arc<Tenant>],
    config: &Config,
) -> Vec<ObjectRef<Tenant>> {
    let platform = set.namespace.as_deref() == Some(config.platform_namespace.as_str());
    tenants
        .iter()
        .filter(|t| platform || set.namespace.as_deref() == Some(t.namespace_name().as_str()))
        .map(|t| ObjectRef::from_obj(t.as_ref()))
        .collect()
}

/// What a set's spec is, for change detection: its generation (status writes do not move it).
pub fn set_key(set: &FeatureFlagSet) -> u64 {
    set.metadata
        .generation
        .and_then(|g| u64::try_from(g).ok())
        .unwrap_or_default()
}

/// What of a tenant flag resolution reads: name, tier, plan, labels and namespace.
pub fn tenant_key(tenant: &Tenant) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let facts = TenantFacts::of(tenant);
    (
        facts.name,
        facts.tier.as_str(),
        facts.plan,
        facts.labels,
        tenant.namespace_name(),
    )
        .hash(&mut hasher);
    hasher.finish()
}

/// Turns watch events into the objects that changed in what `key` looks at, or went away.
/// Unlike a kube predicate filter it never swallows a deletion, including one that happened
/// while the watch was down (found when the relist ends).
pub struct Changes<K: Resource<DynamicType = ()>> {
    key: fn(&K) -> u64,
    seen: HashMap<ObjectRef<K>, u64>,
    relisted: Option<HashSet<ObjectRef<K>>>,
}

impl<K: Resource<DynamicType = ()>> Changes<K> {
    pub fn new(key: fn(&K) -> u64) -> Self {
        Self {
            key,
            seen: HashMap::new(),
            relisted: None,
        }
    }

    pub fn observe(&mut self, event: &watcher::Event<K>) -> Vec<ObjectRef<K>> {
        match event {
            watcher::Event::Apply(object) => self.touch(object),
            watcher::Event::InitApply(object) => {
                if let Some(relisted) = self.relisted.as_mut() {
                    relisted.insert(ObjectRef::from_obj(object));
                }
                self.touch(object)
            }
            watcher::Event::Delete(object) => {
                let reference = ObjectRef::from_obj(object);
                self.seen.remove(&reference);
                vec![reference]
            }
            watcher::Event::Init => {
                self.relisted = Some(HashSet::new());
                Vec::new()
            }
            watcher::Event::InitDone => {
                let relisted = self.relisted.take().unwrap_or_default();
                let gone: Vec<_> = self
                    .seen
                    .keys()
                    .filter(|r| !relisted.contains(r))
                    .cloned()
                    .collect();
                for reference in &gone {
                    self.seen.remove(reference);
                }
                gone
            }
        }
    }

    fn touch(&mut self, object: &K) -> Vec<ObjectRef<K>> {
        let reference = ObjectRef::from_obj(object);
        let key = (self.key)(object);
        if self.seen.insert(reference.clone(), key) == Some(key) {
            Vec::new()
        } else {
            vec![reference]
        }
    }
}

/// A cache of every FeatureFlagSet and the stream that fills it, yielding the references of
/// sets whose spec changed or that were deleted (after the cache has seen the change).
pub fn set_changes(
    client: &kube::Client,
) -> (
    Store<FeatureFlagSet>,
    impl futures::Stream<Item = Vec<ObjectRef<FeatureFlagSet>>> + Send + 'static,
) {
    let (reader, writer) = reflector::store();
    let mut changes = Changes::new(set_key);
    let stream = watcher(
        Api::<FeatureFlagSet>::all(client.clone()),
        Default::default(),
    )
    .default_backoff()
    .modify(|set| set.managed_fields_mut().clear())
    .reflect(writer)
    .filter_map(move |event| {
        future::ready(match event {
            Ok(event) => Some(changes.observe(&event)).filter(|c| !c.is_empty()),
            Err(e) => {
                warn!(error = %e, "watching FeatureFlagSets failed");
                None
            }
        })
    });
    (reader, stream)
}

/// Why a FeatureFlagSet reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// A small fixed set of categories: metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { source, .. } => match source {
                kube::Error::Api(status) if status.code == 403 => "ApiForbidden",
                kube::Error::Api(status) if status.code == 409 => "ApiConflict",
                kube::Error::Api(status) if status.code == 422 || status.code == 400 => {
                    "ApiInvalid"
                }
                kube::Error::Api(status) if status.code >= 500 => "ApiUnavailable",
                kube::Error::Api(_) => "ApiError",
                _ => "ApiUnreachable",
            },
        }
    }
}

struct State {
    ctx: Arc<Context>,
    tenants: Store<Tenant>,
    sets: Store<FeatureFlagSet>,
    ready: tokio::sync::OnceCell<()>,
}

/// Runs the FeatureFlagSet controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();

    let (tenants, tenant_writer) = reflector::store();
    let mut tenant_changes = Changes::new(tenant_key);
    let tenant_events = watcher(Api::<Tenant>::all(client.clone()), Default::default())
        .default_backoff()
        .modify(|tenant| {
            // Only what resolution reads is kept.
            tenant.managed_fields_mut().clear();
            tenant.status = None;
        })
        .reflect(tenant_writer)
        .filter_map(move |event| {
            future::ready(match event {
                Ok(event) => (!tenant_changes.observe(&event).is_empty()).then_some(()),
                Err(e) => {
                    warn!(error = %e, "watching Tenants failed");
                    None
                }
            })
        });

    // Own watch of the sets: every event reconciles its set; a spec change or a deletion
    // also reconciles all the others (their conflicts may have changed).
    let (sets, set_writer) = reflector::store();
    let (others_tx, others_rx) = futures::channel::mpsc::unbounded();
    let mut set_changes = Changes::new(set_key);
    let set_events = watcher(
        Api::<FeatureFlagSet>::all(client.clone()),
        Default::default(),
    )
    .default_backoff()
    .modify(|set| set.managed_fields_mut().clear())
    .reflect(set_writer)
    .inspect(move |event| {
        if let Ok(event) = event
            && !set_changes.observe(event).is_empty()
        {
            let _ = others_tx.unbounded_send(());
        }
    })
    .touched_objects();

    let config = kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency);
    let state = Arc::new(State {
        ctx,
        tenants,
        sets: sets.clone(),
        ready: tokio::sync::OnceCell::new(),
    });
    Controller::for_stream(set_events, sets)
        .with_config(config)
        .reconcile_all_on(tenant_events)
        .reconcile_all_on(others_rx)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, state)
        .for_each(|outcome| async move {
            crate::runner::log_outcome(CONTROLLER, outcome);
        })
        .await;
}

async fn reconcile(set: Arc<FeatureFlagSet>, state: Arc<State>) -> Result<Action, Error> {
    let id = resolve::set_id(&set);
    let span = info_span!("reconcile", controller = CONTROLLER, featureflagset = %id);
    async move {
        let metrics = &state.ctx.metrics;
        metrics.reconciles.with_label_values(&[CONTROLLER]).inc();
        let _timer = metrics
            .duration
            .with_label_values(&[CONTROLLER])
            .start_timer();
        let caches = state
            .ctx
            .caches
            .unless_stopping(state.ready.get_or_init(|| async {
                let _ = futures::join!(
                    state.tenants.wait_until_ready(),
                    state.sets.wait_until_ready()
                );
            }));
        if caches.await.is_none() {
            return Ok(Action::await_change());
        }
        let config = &state.ctx.config;
        let tenants = state.tenants.state();
        let sets = state.sets.state();
        let (scope, applies_to) = scope(&set, &tenants, config);
        let mut problems = Vec::new();
        for tenant in &applies_to {
            problems.extend(
                problems_for(tenant, &sets, &set, config)
                    .into_iter()
                    .filter(|p| status::concerns(p, &id, &scope, &config.platform_namespace)),
            );
        }
        let now = Time(Timestamp::now());
        let status = status::compute(&set, &id, &scope, applies_to.len(), &problems, &now);
        write_status(&set, status, &state).await?;
        state.ctx.backoff.reset(&backoff_key(&id));
        Ok(Action::requeue(RESYNC))
    }
    .instrument(span)
    .await
}

/// Where the set lives and the tenants it applies to.
fn scope(
    set: &FeatureFlagSet,
    tenants: &[Arc<Tenant>],
    config: &Config,
) -> (Scope, Vec<Arc<Tenant>>) {
    let ns = set.namespace().unwrap_or_default();
    if ns == config.platform_namespace {
        let picked = tenants
            .iter()
            .filter(|t| resolve::selects(set, &TenantFacts::of(t)))
            .cloned()
            .collect();
        return (Scope::Platform, picked);
    }
    match tenants.iter().find(|t| t.namespace_name() == ns) {
        Some(tenant) => (Scope::Tenant(tenant.name_any()), vec![tenant.clone()]),
        None => (
            Scope::Stray {
                platform_namespace: config.platform_namespace.clone(),
            },
            Vec::new(),
        ),
    }
}

/// The set's key in the shared backoff (which the Tenant controller keys by tenant name).
fn backoff_key(id: &str) -> String {
    format!("featureflagset/{id}")
}

async fn write_status(
    set: &FeatureFlagSet,
    status: landlord_crds::FeatureFlagSetStatus,
    state: &State,
) -> Result<(), Error> {
    let api = Api::<FeatureFlagSet>::namespaced(
        state.ctx.client.clone(),
        &set.namespace().unwrap_or_default(),
    );
    crate::apply::status(
        &api,
        set,
        set.status.as_ref(),
        &status,
        STATUS_MANAGER,
        &state.ctx.metrics,
    )
    .await
    .map_err(|source| Error::Kube {
        action: "writing FeatureFlagSet status".into(),
        source,
    })?;
    Ok(())
}

fn error_policy(set: Arc<FeatureFlagSet>, error: &Error, state: Arc<State>) -> Action {
    state
        .ctx
        .metrics
        .failures
        .with_label_values(&[CONTROLLER, error.category()])
        .inc();
    let delay = state.ctx.backoff.next(&backoff_key(&resolve::set_id(&set)));
    warn!(featureflagset = %resolve::set_id(&set), error = %error, category = error.category(), retry_in_ms = delay.as_millis() as u64, "reconcile failed");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(namespace: &str, name: &str, generation: i64) -> FeatureFlagSet {
        serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "FeatureFlagSet",
            "metadata": {"name": name, "namespace": namespace, "generation": generation},
            "spec": {"flags": [{"name": "beta", "type": "boolean",
                                "variants": {"on": {"boolean": true}}, "defaultVariant": "on"}]},
        }))
        .expect("fixture")
    }

    fn tenant(name: &str, namespace: Option<&str>) -> Arc<Tenant> {
        let mut spec = json!({"tier": "shared"});
        if let Some(ns) = namespace {
            spec["namespace"] = json!(ns);
        }
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
                "metadata": {"name": name}, "spec": spec
            }))
            .expect("fixture"),
        )
    }

    #[test]
    fn only_spec_changes_and_deletions_pass() {
        let mut changes = Changes::new(set_key);
        let v1 = set("p", "a", 1);
        assert_eq!(changes.observe(&watcher::Event::Init), []);
        assert_eq!(
            changes
                .observe(&watcher::Event::InitApply(v1.clone()))
                .len(),
            1
        );
        assert_eq!(changes.observe(&watcher::Event::InitDone), []);
        // A status write: same generation.
        assert_eq!(changes.observe(&watcher::Event::Apply(v1.clone())), []);
        let v2 = set("p", "a", 2);
        assert_eq!(changes.observe(&watcher::Event::Apply(v2.clone())).len(), 1);
        assert_eq!(
            changes.observe(&watcher::Event::Delete(v2.clone())),
            [ObjectRef::from_obj(&v2)]
        );
    }

    #[test]
    fn a_deletion_missed_while_the_watch_was_down_is_found_at_relist() {
        let mut changes = Changes::new(set_key);
        let a = set("p", "a", 1);
        let b = set("p", "b", 1);
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(a.clone()),
            watcher::Event::InitApply(b.clone()),
            watcher::Event::InitDone,
        ] {
            changes.observe(&event);
        }
        assert_eq!(changes.observe(&watcher::Event::Init), []);
        assert_eq!(changes.observe(&watcher::Event::InitApply(a.clone())), []);
        assert_eq!(
            changes.observe(&watcher::Event::InitDone),
            [ObjectRef::from_obj(&b)]
        );
    }

    #[test]
    fn tenant_key_moves_with_what_targeting_reads_only() {
        let t = tenant("acme", None);
        let mut relabelled = (*t).clone();
        relabelled.labels_mut().insert("segment".into(), "x".into());
        assert_ne!(tenant_key(&t), tenant_key(&relabelled));
        let mut annotated = (*t).clone();
        annotated
            .annotations_mut()
            .insert("note".into(), "x".into());
        annotated.spec.suspended = true;
        assert_eq!(tenant_key(&t), tenant_key(&annotated));
    }

    #[test]
    fn platform_sets_affect_every_tenant_and_tenant_sets_their_tenant() {
        let config = Config::default();
        let tenants = [tenant("acme", None), tenant("globex", Some("globex-prod"))];
        let platform = ObjectRef::from_obj(&set(&config.platform_namespace, "a", 1));
        assert_eq!(affected_tenants(&platform, &tenants, &config).len(), 2);
        let own = ObjectRef::from_obj(&set("globex-prod", "mine", 1));
        assert_eq!(
            affected_tenants(&own, &tenants, &config),
            [ObjectRef::new("globex")]
        );
        let stray = ObjectRef::from_obj(&set("default", "x", 1));
        assert!(affected_tenants(&stray, &tenants, &config).is_empty());
    }

    #[test]
    fn scope_of_a_set() {
        let config = Config::default();
        let tenants = [tenant("acme", None), tenant("globex", None)];
        let mut picky = set(&config.platform_namespace, "a", 1);
        picky.spec.selector = Some(landlord_crds::flags::TenantSelector {
            tenants: Some(vec!["globex".into()]),
            ..Default::default()
        });
        let (s, picked) = scope(&picky, &tenants, &config);
        assert_eq!((s, picked.len()), (Scope::Platform, 1));
        let (s, picked) = scope(&set("tenant-acme", "m", 1), &tenants, &config);
        assert_eq!((s, picked.len()), (Scope::Tenant("acme".into()), 1));
        let (s, picked) = scope(&set("default", "m", 1), &tenants, &config);
        assert!(matches!(s, Scope::Stray { .. }) && picked.is_empty());
    }
}

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
        Controller,
        controller::Action,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use landlord_crds::{FeatureFlagSet, Tenant};

use crate::{Context, config::Config, reflectors::Reflectors};
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

/// The shared cache of every FeatureFlagSet, and a stream of the references of sets whose
/// spec changed or that were deleted (after the cache has seen the change).
pub fn set_changes(
    reflectors: &Reflectors,
) -> (
    Store<FeatureFlagSet>,
    impl futures::Stream<Item = Vec<ObjectRef<FeatureFlagSet>>> + Send + 'static,
) {
    let mut changes = Changes::new(set_key);
    let stream = reflectors.flag_sets.events().filter_map(move |event| {
        future::ready(Some(changes.observe(&event)).filter(|c| !c.is_empty()))
    });
    (reflectors.flag_sets.store(), stream)
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
            Error::Kube { source, .. } => crate::failure::api_category(source),
        }
    }
}

struct State {
    ctx: Arc<Context>,
    tenants: Store<Tenant>,
    sets: Store<FeatureFlagSet>,
    undecodable: crate::reflectors::undecodable::Undecodables<FeatureFlagSet>,
    /// Whether both caches have listed.
    synced: crate::reflectors::Synced,
}

/// The FeatureFlagSet controller: subscribes to the shared reflectors at once (call before
/// [`Reflectors::start`]); the future runs it until `shutdown` resolves.
pub fn run(
    ctx: Arc<Context>,
    reflectors: &Reflectors,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    // Any change to what resolution reads of a Tenant reconciles every set.
    let mut tenant_changes = Changes::new(tenant_key);
    let tenant_events = reflectors.tenants.events().filter_map(move |event| {
        future::ready((!tenant_changes.observe(&event).is_empty()).then_some(()))
    });
    // Every event reconciles its set; a spec change or a deletion also reconciles all the
    // others (their conflicts may have changed).
    let mut set_changes = Changes::new(set_key);
    let others = reflectors.flag_sets.events().filter_map(move |event| {
        future::ready((!set_changes.observe(&event).is_empty()).then_some(()))
    });
    let set_events = reflectors.flag_sets.touched();
    let sets = reflectors.flag_sets.store();
    let state = Arc::new(State {
        tenants: reflectors.tenants.store(),
        sets: sets.clone(),
        undecodable: reflectors.flag_sets.undecodable(),
        synced: crate::reflectors::Synced::all([
            reflectors.tenants.synced(),
            reflectors.flag_sets.synced(),
        ]),
        ctx,
    });
    let controller = Controller::for_shared_stream(set_events, sets)
        .reconcile_all_on(tenant_events)
        .reconcile_all_on(others);
    crate::runner::run(controller, state, shutdown)
}

impl crate::runner::Reconciler for State {
    type Object = FeatureFlagSet;
    type Error = Error;
    const NAME: &'static str = CONTROLLER;

    fn context(&self) -> &Context {
        &self.ctx
    }

    async fn caches_ready(&self) {
        self.synced.wait().await;
    }

    async fn reconcile(&self, set: Arc<FeatureFlagSet>) -> Result<Action, Error> {
        let id = resolve::set_id(&set);
        let config = &self.ctx.config;
        let tenants = self.tenants.state();
        let sets = self.sets.state();
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
        write_status(&set, status, self).await?;
        Ok(Action::requeue(RESYNC))
    }

    fn undecodable(&self) -> Option<&crate::reflectors::undecodable::Undecodables<FeatureFlagSet>> {
        Some(&self.undecodable)
    }

    fn category(error: &Error) -> &'static str {
        error.category()
    }
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

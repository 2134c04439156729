//! Shared reflectors: each kind that more than one controller reads is watched once per
//! process, into one cache, and its changes are fanned out to every controller that
//! subscribed.
//!
//! Before this, each controller ran its own watch of every kind it read: the Tenant kind four
//! times over (Tenant, FeatureFlagSet, Service and Domain controllers), FeatureFlagSets,
//! Domains, the catalog and the catalog Services' instances twice. Each watch held its own
//! copy of every object, so the operator's memory grew with the tenant count several times
//! over (see BENCHMARKS.md).
//!
//! How it works: [`Reflectors::new`] sets up one [`Shared`] per kind (watch, cache, fan-out)
//! without starting anything; each controller subscribes (synchronously, before it is first
//! polled); then [`Reflectors::start`] starts the watches, so every subscriber sees the first
//! list. A subscriber gets every watch event in order ([`Shared::events`]) or the objects
//! touched ([`Shared::touched`]); the fan-out applies backpressure (a slow subscriber slows
//! the watch, it never loses an event). Landlord's own kinds are decoded leniently (see
//! [`undecodable`]): one object that does not decode is reported and left out, and never
//! stalls the watch.

/// The type information (kind, group, version, plural) of a wrapper of the Kubernetes type
/// `K`, for its `Resource` impl: `K`'s own, so the wrapper is watched at `K`'s API path.
macro_rules! resource_of {
    ($k:ident) => {
        fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
            $k::kind(dt)
        }
        fn group(dt: &()) -> std::borrow::Cow<'_, str> {
            $k::group(dt)
        }
        fn version(dt: &()) -> std::borrow::Cow<'_, str> {
            $k::version(dt)
        }
        fn api_version(dt: &()) -> std::borrow::Cow<'_, str> {
            $k::api_version(dt)
        }
        fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
            $k::plural(dt)
        }
    };
}

pub mod compact;
pub mod undecodable;
pub mod workloads;

use std::{
    fmt::Debug,
    sync::{Arc, Mutex},
};

use futures::{
    FutureExt, Stream, StreamExt,
    future::{self, BoxFuture},
    stream,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        WatchStreamExt,
        events::{Recorder, Reporter},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use landlord_crds::{Domain, FeatureFlagSet, Service, Tenant, WebhookEndpoint};
use serde::de::DeserializeOwned;

use crate::Context;
use undecodable::{Admission, Decoded, Report};
pub use workloads::Workloads;

/// How many events a subscriber may trail the watch by before the watch waits for it.
const FAN_OUT_CAPACITY: usize = 256;

/// Whether caches have listed, awaitable by any number of tasks at once.
///
/// kube's `Store::wait_until_ready` wakes only the last task that polled it (its readiness is
/// a oneshot channel), so with one cache read by several controllers a waiter could hang for
/// ever. Each shared cache's readiness is therefore this instead; a `Store` is awaited only
/// by the one controller whose own reader it is (kube's runner, once).
#[derive(Clone, Debug, Default)]
pub struct Synced(Vec<tokio::sync::watch::Receiver<bool>>);

impl Synced {
    /// Completes once every cache in `self` has listed (or its watch stopped for good, when
    /// the process stops).
    pub async fn wait(&self) {
        for ready in &self.0 {
            let mut ready = ready.clone();
            let _ = ready.wait_for(|synced| *synced).await;
        }
    }

    /// Ready when all of `parts` are.
    pub fn all(parts: impl IntoIterator<Item = Synced>) -> Self {
        Self(parts.into_iter().flat_map(|p| p.0).collect())
    }
}

/// One watch of a kind: its cache, and the fan-out of its events to subscribers.
pub struct Shared<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> {
    store: Store<K>,
    /// The objects that do not decode (only Landlord's own kinds have any).
    undecodable: undecodable::Undecodables<K>,
    synced: tokio::sync::watch::Sender<bool>,
    sender: async_broadcast::Sender<Arc<watcher::Event<K>>>,
    /// Keeps the channel open while no subscriber is active.
    _open: async_broadcast::InactiveReceiver<Arc<watcher::Event<K>>>,
    /// The watch, fed into the cache and the fan-out; taken by [`Shared::start`].
    driver: Mutex<Option<BoxFuture<'static, ()>>>,
}

impl<K> Shared<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
{
    /// A shared reflector over the events `watch` yields, given the cache it fills (so that a
    /// filter may look at what is cached). Nothing is watched until [`Shared::start`].
    fn new<S>(watch: impl FnOnce(Store<K>, undecodable::Undecodables<K>) -> S) -> Self
    where
        S: Stream<Item = watcher::Event<K>> + Send + 'static,
    {
        let (store, mut writer) = reflector::store();
        let undecodable = undecodable::Undecodables::default();
        let (mut sender, receiver) = async_broadcast::broadcast(FAN_OUT_CAPACITY);
        // Wait for slow subscribers rather than drop their events; send nothing while there
        // is no subscriber (the cache is still filled).
        sender.set_overflow(false);
        sender.set_await_active(false);
        let fan_out = sender.clone();
        let synced = tokio::sync::watch::Sender::new(false);
        let listed = synced.clone();
        let driver = watch(store.clone(), undecodable.clone())
            .for_each(move |event| {
                writer.apply_watcher_event(&event);
                if matches!(event, watcher::Event::InitDone) {
                    listed.send_replace(true);
                }
                let fan_out = fan_out.clone();
                async move {
                    // Fails only when no subscriber is left (the controllers have stopped).
                    let _ = fan_out.broadcast_direct(Arc::new(event)).await;
                }
            })
            .boxed();
        Self {
            store,
            undecodable,
            synced,
            sender,
            _open: receiver.deactivate(),
            driver: Mutex::new(Some(driver)),
        }
    }

    /// The cache (filled once the first list has been applied: see [`Shared::synced`]).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// The objects that do not decode now (not to be reconciled).
    pub fn undecodable(&self) -> undecodable::Undecodables<K> {
        self.undecodable.clone()
    }

    /// Whether the cache has listed (await this, not the store's own readiness).
    pub fn synced(&self) -> Synced {
        Synced(vec![self.synced.subscribe()])
    }

    /// Every watch event from now on, in order. Subscribe before [`Reflectors::start`] to
    /// see the first list.
    pub fn events(&self) -> impl Stream<Item = Arc<watcher::Event<K>>> + Send + use<K> {
        self.sender.new_receiver()
    }

    /// The objects touched (applied, listed or deleted) from now on, as the event has them.
    pub fn touched(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let store = self.store.clone();
        self.events().flat_map(move |event| {
            let object = match &*event {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => Some(o),
                watcher::Event::Delete(o) => Some(o),
                watcher::Event::Init | watcher::Event::InitDone => None,
            };
            // The cached object when it is this very version (no copy); during a relist the
            // cache still holds the versions from before it, so then the event's own.
            let object = object.map(|o| {
                store
                    .get(&ObjectRef::from_obj(o))
                    .filter(|cached| cached.resource_version() == o.resource_version())
                    .unwrap_or_else(|| Arc::new(o.clone()))
            });
            stream::iter(object)
        })
    }

    fn take_driver(&self) -> Option<BoxFuture<'static, ()>> {
        self.driver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// The watch of a kind as a stream of events for a shared reflector: retried with backoff,
/// errors logged at warn (naming the kind), managed fields dropped.
fn watch<K>(api: Api<K>, config: watcher::Config) -> impl Stream<Item = watcher::Event<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let stream = watcher(api, config)
        .default_backoff()
        .modify(|object| object.managed_fields_mut().clear());
    crate::runner::logged("reflector", kind::<K>(), stream)
        .filter_map(|event| future::ready(event.ok()))
}

/// The watch of one of Landlord's own kinds, cluster-wide: as [`watch`], but an object that
/// does not decode is reported and left out instead of failing the watch.
fn watch_leniently<K>(
    client: &Client,
    report: &Arc<Report>,
) -> impl FnOnce(Store<K>, undecodable::Undecodables<K>) -> BoxStreamEvents<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let api = Api::<Decoded<K>>::all(client.clone());
    let report = report.clone();
    move |store, invalid| {
        let mut admission = Admission::new(store, invalid, report);
        watch(api, watcher::Config::default())
            .filter_map(move |event| future::ready(admission.admit(event)))
            .boxed()
    }
}

type BoxStreamEvents<K> = futures::stream::BoxStream<'static, watcher::Event<K>>;

/// A kind's name for logs, e.g. `Tenant`.
pub fn kind<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()) {
        std::borrow::Cow::Borrowed(kind) => kind,
        std::borrow::Cow::Owned(_) => "object",
    }
}

/// The kinds more than one controller reads, each watched once.
pub struct Reflectors {
    /// Every Tenant.
    pub tenants: Shared<Tenant>,
    /// Every FeatureFlagSet (platform and tenant namespaces).
    pub flag_sets: Shared<FeatureFlagSet>,
    /// Every Domain.
    pub domains: Shared<Domain>,
    /// The catalog: Services in the platform namespace.
    pub catalog: Shared<Service>,
    /// Every WebhookEndpoint.
    pub webhook_endpoints: Shared<WebhookEndpoint>,
    /// Every instance of a catalog Service.
    pub workloads: Workloads,
}

impl Reflectors {
    /// Sets up the shared reflectors; nothing is watched until [`Reflectors::start`].
    pub fn new(ctx: &Context) -> Self {
        let client = &ctx.client;
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "landlord".into(),
                instance: None,
            },
        );
        let report = Arc::new(Report::new(client.clone(), recorder, ctx.metrics.clone()));
        let workloads = || watcher::Config::default().labels(workloads::SELECTOR);
        Self {
            tenants: Shared::new(watch_leniently(client, &report)),
            flag_sets: Shared::new(watch_leniently(client, &report)),
            domains: Shared::new(watch_leniently(client, &report)),
            webhook_endpoints: Shared::new(watch_leniently(client, &report)),
            catalog: Shared::new(|_, _| {
                watch(
                    Api::<Service>::namespaced(client.clone(), &ctx.config.platform_namespace),
                    watcher::Config::default(),
                )
            }),
            workloads: Workloads {
                deployments: Shared::new(|_, _| watch(Api::all(client.clone()), workloads())),
                services: Shared::new(|_, _| watch(Api::all(client.clone()), workloads())),
                disruption_budgets: Shared::new(|_, _| {
                    watch(Api::all(client.clone()), workloads())
                }),
                autoscalers: Shared::new(|_, _| watch(Api::all(client.clone()), workloads())),
            },
        }
    }

    /// Starts every watch. Call once every controller has subscribed. The watches stop
    /// when the returned handle is dropped.
    pub fn start(&self) -> Running {
        let drivers = [
            self.tenants.take_driver(),
            self.flag_sets.take_driver(),
            self.domains.take_driver(),
            self.catalog.take_driver(),
            self.webhook_endpoints.take_driver(),
            self.workloads.deployments.take_driver(),
            self.workloads.services.take_driver(),
            self.workloads.disruption_budgets.take_driver(),
            self.workloads.autoscalers.take_driver(),
        ];
        Running(drivers.into_iter().flatten().map(tokio::spawn).collect())
    }
}

/// The running watches of [`Reflectors::start`]; dropping it stops them.
pub struct Running(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_sees_a_shared_cache_listed() {
        let listed = tokio::sync::watch::Sender::new(false);
        let synced = Synced::all([Synced(vec![listed.subscribe()]), Synced::default()]);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let synced = synced.clone();
                tokio::spawn(async move { synced.wait().await })
            })
            .collect();
        tokio::task::yield_now().await;
        listed.send_replace(true);
        for waiter in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .expect("a waiter was not woken")
                .expect("waiter panicked");
        }
    }
}

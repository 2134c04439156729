//! Compact caches: objects held as compressed JSON and decoded when read.
//!
//! A typed Kubernetes object takes two to five times the memory of its JSON: every field is
//! an `Option` in a wide struct, and each label or annotation map is a B-tree node sized for
//! eleven entries. Measured with heaptrack at 1,000 tenants: a ResourceQuota counting ten
//! kinds of object took about 7 KiB typed against 1.4 KiB as JSON, a NetworkPolicy 1.9 KiB
//! against 0.7 KiB. The Tenant controller caches sixteen children per tenant and reads each
//! only when it reconciles that tenant, so its child caches hold JSON (managed fields left
//! out), compressed with DEFLATE at its fastest level, keyed by namespace and name, and
//! decode an object (a few microseconds) on each read. Compression takes a typical child from
//! about 750 to 440 bytes: at 10,000 tenants the operator peaked at 296 MiB without it and at
//! 217 MiB with it (BENCHMARKS.md).
//!
//! [`Wire`] is the type the watch decodes into (full metadata for filters and mappers, the
//! body as JSON); [`Compact`] keeps only the compressed JSON. Lists replace the cache as kube's own
//! reflector does: the objects of a relist are gathered and swapped in at its end, so an
//! object deleted while the watch was down leaves the cache.

use std::{
    collections::HashMap,
    fmt::Debug,
    marker::PhantomData,
    sync::{Arc, RwLock},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Resource,
    runtime::{reflector::ObjectRef, watcher},
};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use serde_json::Value;

use super::Synced;

/// An object as the watch decodes it: its metadata (without managed fields) for filters and
/// mappers, and the whole object (without managed fields) as JSON text, which is what a
/// [`Compact`] cache keeps.
pub struct Wire<K> {
    metadata: ObjectMeta,
    json: Box<str>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Wire<K> {
    fn clone(&self) -> Self {
        Self {
            metadata: self.metadata.clone(),
            json: self.json.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Resource<DynamicType = ()>> Debug for Wire<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("kind", &K::kind(&()))
            .field("namespace", &self.metadata.namespace)
            .field("name", &self.metadata.name)
            .finish_non_exhaustive()
    }
}

impl<K: serde::Serialize> Wire<K> {
    /// The wire form of a typed object (as if the watch had sent it).
    pub fn of(object: &K) -> serde_json::Result<Self> {
        serde_json::from_value(serde_json::to_value(object)?)
    }
}

impl<'de, K> Deserialize<'de> for Wire<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(deserializer)?;
        let metadata = match value.get_mut("metadata").and_then(Value::as_object_mut) {
            Some(metadata) => {
                metadata.remove("managedFields");
                ObjectMeta::deserialize(Value::Object(metadata.clone()))
                    .map_err(serde::de::Error::custom)?
            }
            None => return Err(serde::de::Error::missing_field("metadata")),
        };
        Ok(Self {
            metadata,
            json: value.to_string().into_boxed_str(),
            kind: PhantomData,
        })
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Wire<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    resource_of!(K);

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The cache key: `namespace/name` (`/name` for cluster-scoped objects), one allocation.
fn key(namespace: Option<&str>, name: &str) -> Box<str> {
    format!("{}/{name}", namespace.unwrap_or_default()).into_boxed_str()
}

type Objects = HashMap<Box<str>, Box<[u8]>>;

/// DEFLATE's fastest level: most of the gain on small JSON documents, at the least CPU.
const COMPRESSION_LEVEL: u8 = 1;

fn compress(json: &str) -> Box<[u8]> {
    miniz_oxide::deflate::compress_to_vec(json.as_bytes(), COMPRESSION_LEVEL).into_boxed_slice()
}

/// A cache of one kind as compressed JSON, filled by [`Compact::apply`] from a watch of
/// [`Wire`] objects; cheap to clone (the clones share the cache).
pub struct Compact<K> {
    objects: Arc<RwLock<Objects>>,
    /// The objects of a list in progress, swapped in when it ends.
    listing: Arc<std::sync::Mutex<Option<Objects>>>,
    synced: tokio::sync::watch::Sender<bool>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Self {
            objects: self.objects.clone(),
            listing: self.listing.clone(),
            synced: self.synced.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> Default for Compact<K> {
    fn default() -> Self {
        Self {
            objects: Arc::default(),
            listing: Arc::default(),
            synced: tokio::sync::watch::Sender::new(false),
            kind: PhantomData,
        }
    }
}

impl<K> Compact<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    /// The cached object, decoded; None when it is not cached. An object that no longer
    /// decodes (impossible for JSON the API server sent for this kind, unless the type
    /// changed under a running process) is reported at warn and treated as absent, so the
    /// next write replaces it.
    pub fn get(&self, reference: &ObjectRef<K>) -> Option<K> {
        let key = key(reference.namespace.as_deref(), &reference.name);
        let compressed = self.read().get(&key)?.clone();
        let decoded = miniz_oxide::inflate::decompress_to_vec(&compressed)
            .map_err(|e| format!("inflating: {e}"))
            .and_then(|json| serde_json::from_slice(&json).map_err(|e| e.to_string()));
        decoded
            .inspect_err(|e| {
                tracing::warn!(
                    kind = %K::kind(&()),
                    object = %key,
                    error = %e,
                    "a cached object does not decode"
                );
            })
            .ok()
    }

    /// How many objects the cache holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the cache holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the cache has listed once (any number of tasks may wait on it).
    pub fn synced(&self) -> Synced {
        Synced(vec![self.synced.subscribe()])
    }

    /// Applies one watch event to the cache: an object is stored or removed; a list gathers
    /// its objects and replaces the cache with them when it ends (then the cache is synced).
    pub fn apply(&self, event: &watcher::Event<Wire<K>>) {
        let key_of = |o: &Wire<K>| {
            let meta = &o.metadata;
            key(
                meta.namespace.as_deref(),
                meta.name.as_deref().unwrap_or_default(),
            )
        };
        let entry = |o: &Wire<K>| (key_of(o), compress(&o.json));
        match event {
            watcher::Event::Apply(o) => {
                let (key, json) = entry(o);
                self.write().insert(key, json);
            }
            watcher::Event::Delete(o) => {
                self.write().remove(&key_of(o));
            }
            watcher::Event::Init => *self.lock_listing() = Some(Objects::new()),
            watcher::Event::InitApply(o) => {
                let (key, json) = entry(o);
                self.lock_listing()
                    .get_or_insert_with(Objects::new)
                    .insert(key, json);
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.lock_listing().take() {
                    *self.write() = listed;
                }
                self.synced.send_replace(true);
            }
        }
    }

    // A panic while holding a lock leaves a map that is still consistent.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Objects> {
        self.objects.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Objects> {
        self.objects.write().unwrap_or_else(|e| e.into_inner())
    }
    fn lock_listing(&self) -> std::sync::MutexGuard<'_, Option<Objects>> {
        self.listing.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn wire(namespace: &str, name: &str, value: &str) -> Wire<ConfigMap> {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "resourceVersion": "7",
                "labels": {"landlord.dev/tenant": "acme"},
                "managedFields": [{"manager": "landlord", "operation": "Apply"}],
            },
            "data": {"key": value},
        }))
        .expect("a ConfigMap decodes as Wire")
    }

    fn reference(namespace: &str, name: &str) -> ObjectRef<ConfigMap> {
        ObjectRef::new(name).within(namespace)
    }

    #[test]
    fn wire_keeps_metadata_for_mappers_and_drops_managed_fields() {
        let object = wire("tenant-acme", "landlord-flags", "v");
        assert_eq!(object.meta().labels.as_ref().map(|l| l.len()), Some(1));
        assert!(object.meta().managed_fields.is_none());
        assert!(!object.json.contains("managedFields"));
        assert_eq!(
            <Wire<ConfigMap> as Resource>::plural(&()),
            "configmaps",
            "the API path is the kind's own"
        );
    }

    #[tokio::test]
    async fn a_compact_cache_decodes_what_it_stored_and_a_relist_drops_the_deleted() {
        let cache = Compact::<ConfigMap>::default();
        let synced = cache.synced();
        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitApply(wire("a", "one", "1")));
        cache.apply(&watcher::Event::InitApply(wire("a", "two", "2")));
        assert!(cache.is_empty(), "a list in progress is not visible yet");
        cache.apply(&watcher::Event::InitDone);
        synced.wait().await;
        assert_eq!(cache.len(), 2);
        let one = cache.get(&reference("a", "one")).expect("cached");
        assert_eq!(one.data.expect("data")["key"], "1");
        assert_eq!(one.metadata.resource_version.as_deref(), Some("7"));
        assert!(one.metadata.managed_fields.is_none());
        assert!(
            cache.get(&reference("b", "one")).is_none(),
            "keyed by namespace"
        );

        cache.apply(&watcher::Event::Apply(wire("a", "one", "changed")));
        let one = cache.get(&reference("a", "one")).expect("cached");
        assert_eq!(one.data.expect("data")["key"], "changed");
        cache.apply(&watcher::Event::Delete(wire("a", "one", "changed")));
        assert!(cache.get(&reference("a", "one")).is_none());

        // The watch restarts: "two" was deleted meanwhile, "three" created.
        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitApply(wire("a", "three", "3")));
        assert!(
            cache.get(&reference("a", "two")).is_some(),
            "kept until the list ends"
        );
        cache.apply(&watcher::Event::InitDone);
        assert!(cache.get(&reference("a", "two")).is_none());
        assert!(cache.get(&reference("a", "three")).is_some());
        assert_eq!(cache.len(), 1);
    }
}

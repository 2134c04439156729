//! Objects the operator cannot decode: one of them must never stall a watch.
//!
//! kube's watcher decodes a whole list page or watch event into the Rust type; one object
//! that does not fit (stored under an older or newer CRD than this operator was built with,
//! a schema edited by hand) fails the page, the watcher retries with backoff forever, and the
//! cache never syncs, so no object of the kind is reconciled at all. Landlord's own kinds are
//! therefore watched as [`Decoded`]: an object that fails is kept aside as [`Undecodable`]
//! (its metadata, its status, and the field serde names), [`Admission`] keeps it out of the
//! cache (or keeps its last version that decoded), the runner does not reconcile it, and it
//! is reported where the owner of the object looks: a warning log, the metric
//! `landlord_undecodable_objects{kind}`, a Warning event and its `Ready` condition
//! (`ObjectUndecodable`, naming the field). Nothing is written to fix it and nothing of the
//! object's stack is touched; once it decodes again it is reconciled as usual.

use landlord_crds::conditions::Reason;
use std::{
    collections::HashMap,
    fmt::{Debug, Display},
    sync::{Arc, RwLock},
};

use k8s_openapi::{
    api::core::v1::ObjectReference,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    runtime::{
        events::{Event, EventType, Recorder},
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use serde_json::{Value, json};
use tracing::warn;

use crate::metrics::Metrics;

/// The condition reason (and event reason) of an object the operator cannot decode.
pub const REASON: Reason = Reason::ObjectUndecodable;
/// Who writes the report into an undecodable object's status.
const MANAGER: &str = "landlord/reflector";

/// An object of kind `K` as it came from the API server: decoded, or kept aside with why not.
#[derive(Clone, Debug)]
pub enum Decoded<K> {
    Valid(K),
    Invalid(Box<Undecodable>),
}

/// An object that did not decode: what is needed to name it and report on it.
#[derive(Clone, Debug)]
pub struct Undecodable {
    pub metadata: ObjectMeta,
    /// The object's `status` as stored (to write the report only when it is not there yet).
    pub status: Option<Value>,
    /// The failing field's path and serde's message, e.g.
    /// `spec.tier: unknown variant `gold`, expected `shared` or `dedicated``.
    pub error: String,
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Decoded<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match serde_path_to_error::deserialize::<_, K>(&value) {
            Ok(object) => Ok(Decoded::Valid(object)),
            Err(error) => {
                // Without readable metadata there is nothing to name: the page fails as before.
                let metadata = value
                    .get("metadata")
                    .map(ObjectMeta::deserialize)
                    .transpose()
                    .map_err(serde::de::Error::custom)?
                    .unwrap_or_default();
                let path = error.path().to_string();
                Ok(Decoded::Invalid(Box::new(Undecodable {
                    metadata,
                    status: value.get("status").cloned(),
                    error: format!("{path}: {}", error.into_inner()),
                })))
            }
        }
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Decoded<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    resource_of!(K);

    fn meta(&self) -> &ObjectMeta {
        match self {
            Decoded::Valid(object) => object.meta(),
            Decoded::Invalid(invalid) => &invalid.metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Decoded::Valid(object) => object.meta_mut(),
            Decoded::Invalid(invalid) => &mut invalid.metadata,
        }
    }
}

/// The objects of a kind that do not decode now, with why: shared by the watch that finds
/// them and the runner, which does not reconcile them (see [`Admission`]).
pub struct Undecodables<K: Resource<DynamicType = ()> + 'static>(
    Arc<RwLock<HashMap<ObjectRef<K>, String>>>,
);

impl<K: Resource<DynamicType = ()> + 'static> Clone for Undecodables<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Default for Undecodables<K> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Undecodables<K> {
    /// Whether `object` did not decode the last time it was seen.
    pub fn contains(&self, object: &K) -> bool {
        self.read().contains_key(&ObjectRef::from_obj(object))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ObjectRef<K>, String>> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ObjectRef<K>, String>> {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Turns the watch events of [`Decoded`] objects into events of `K` for the cache. An object
/// that does not decode is reported, and the cache keeps its last version that did (or has
/// none of it): the controllers that read it as a dependency (a Tenant's Domains, the
/// FeatureFlagSets of its flags, a hostname's other claims) go on as before rather than act
/// as if it were deleted, and the runner does not reconcile it ([`Undecodables`]).
pub struct Admission<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    report: Arc<Report>,
    /// The undecodable objects and their errors (reported once per error).
    invalid: Undecodables<K>,
    /// Those seen by the relist in progress, which replace `invalid` when it ends.
    relisted: Option<HashMap<ObjectRef<K>, String>>,
}

impl<K> Admission<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    pub fn new(store: Store<K>, invalid: Undecodables<K>, report: Arc<Report>) -> Self {
        Self {
            store,
            report,
            invalid,
            relisted: None,
        }
    }

    /// The event for the cache, if any.
    pub fn admit(&mut self, event: watcher::Event<Decoded<K>>) -> Option<watcher::Event<K>> {
        use watcher::Event::*;
        let last_good = |reference: &ObjectRef<K>| self.store.get(reference).map(|o| (*o).clone());
        let admitted = match event {
            Init => {
                self.relisted = Some(HashMap::new());
                Some(Init)
            }
            InitApply(Decoded::Valid(object)) => Some(InitApply(object)),
            InitApply(Decoded::Invalid(invalid)) => {
                let reference = reference::<K>(&invalid.metadata);
                self.report_once(&reference, &invalid);
                let kept = last_good(&reference).map(InitApply);
                if let Some(relisted) = self.relisted.as_mut() {
                    relisted.insert(reference, invalid.error);
                }
                kept
            }
            InitDone => {
                if let Some(relisted) = self.relisted.take() {
                    *self.invalid.write() = relisted;
                }
                Some(InitDone)
            }
            Apply(Decoded::Valid(object)) => {
                self.invalid.write().remove(&ObjectRef::from_obj(&object));
                Some(Apply(object))
            }
            Apply(Decoded::Invalid(invalid)) => {
                let reference = reference::<K>(&invalid.metadata);
                self.report_once(&reference, &invalid);
                self.invalid.write().insert(reference, invalid.error);
                None
            }
            Delete(Decoded::Valid(object)) => {
                self.invalid.write().remove(&ObjectRef::from_obj(&object));
                Some(Delete(object))
            }
            Delete(Decoded::Invalid(invalid)) => {
                let reference = reference::<K>(&invalid.metadata);
                self.invalid.write().remove(&reference);
                last_good(&reference).map(Delete)
            }
        };
        let count = self
            .invalid
            .read()
            .len()
            .max(self.relisted.as_ref().map_or(0, HashMap::len));
        self.report.count::<K>(count);
        admitted
    }

    fn report_once(&self, reference: &ObjectRef<K>, invalid: &Undecodable) {
        if self.invalid.read().get(reference) != Some(&invalid.error) {
            self.report.spawn::<K>(invalid.clone());
        }
    }
}

fn reference<K: Resource<DynamicType = ()>>(metadata: &ObjectMeta) -> ObjectRef<K> {
    let reference = ObjectRef::new(metadata.name.as_deref().unwrap_or_default());
    match &metadata.namespace {
        Some(namespace) => reference.within(namespace),
        None => reference,
    }
}

/// Where undecodable objects are reported: the log, a metric, an event and the object's
/// status.
pub struct Report {
    client: Client,
    recorder: Recorder,
    metrics: Metrics,
}

impl Report {
    pub fn new(client: Client, recorder: Recorder, metrics: Metrics) -> Self {
        Self {
            client,
            recorder,
            metrics,
        }
    }

    fn count<K: Resource<DynamicType = ()>>(&self, count: usize) {
        self.metrics
            .undecodable_objects
            .with_label_values(&[K::kind(&()).as_ref()])
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Reports `invalid` in the background (the watch goes on at once).
    fn spawn<K: Resource<DynamicType = ()>>(self: &Arc<Self>, invalid: Undecodable) {
        let resource = ApiResource::erase::<K>(&());
        let name = named(&resource.kind, &invalid.metadata);
        let message = message(&name, &invalid.error);
        warn!(object = %name, error = %invalid.error, "{REASON}: the object is left alone until it decodes");
        let report = self.clone();
        tokio::spawn(async move {
            if let Err(error) = report.publish(&resource, &invalid, &message).await {
                warn!(object = %name, %error, "reporting an undecodable object failed");
            }
        });
    }

    async fn publish(
        &self,
        resource: &ApiResource,
        invalid: &Undecodable,
        message: &str,
    ) -> Result<(), kube::Error> {
        let metadata = &invalid.metadata;
        let regarding = ObjectReference {
            api_version: Some(resource.api_version.clone()),
            kind: Some(resource.kind.clone()),
            name: metadata.name.clone(),
            namespace: metadata.namespace.clone(),
            uid: metadata.uid.clone(),
            resource_version: metadata.resource_version.clone(),
            field_path: None,
        };
        let event = Event {
            type_: EventType::Warning,
            reason: REASON.as_str().into(),
            note: Some(message.into()),
            action: "Decode".into(),
            secondary: None,
        };
        // Already reported (a restart, another leader): no second event, no write.
        if reported(invalid.status.as_ref(), message) {
            return Ok(());
        }
        crate::apply::bounded(self.recorder.publish(&event, &regarding)).await?;
        let api: Api<DynamicObject> = match &metadata.namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, resource),
            None => Api::all_with(self.client.clone(), resource),
        };
        let condition = json!({
            "type": "Ready",
            "status": "False",
            "reason": REASON.as_str(),
            "message": message,
            "lastTransitionTime": Time(Timestamp::now()),
            "observedGeneration": metadata.generation,
        });
        // A merge patch replaces the list: the other conditions described a spec the operator
        // can no longer read. A kind with a phase (Tenant) shows `Failed` in `kubectl get`.
        let mut status = json!({"conditions": [condition]});
        if invalid
            .status
            .as_ref()
            .is_some_and(|s| s.get("phase").is_some())
        {
            status["phase"] = json!("Failed");
        }
        let patch = json!({"status": status});
        crate::apply::bounded(api.patch_status(
            metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        ))
        .await?;
        crate::apply::count(
            &self.metrics,
            MANAGER,
            &resource.kind,
            crate::apply::Verb::Status,
        );
        Ok(())
    }
}

/// `Kind namespace/name`, or `Kind name` when cluster-scoped.
fn named(kind: &str, metadata: &ObjectMeta) -> String {
    let name = metadata.name.as_deref().unwrap_or_default();
    match &metadata.namespace {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn message(name: &str, error: &impl Display) -> String {
    format!(
        "{name} cannot be decoded by this operator ({error}), so it is left alone: nothing of it is reconciled until it is fixed. The stored object does not match the CRD this operator was built with: apply the CRDs of the operator's release, then correct the field"
    )
}

/// Whether `status` already carries the report (its Ready condition says `message`).
fn reported(status: Option<&Value>, message: &str) -> bool {
    status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type") == Some(&json!("Ready"))
                    && c.get("reason") == Some(&json!(REASON.as_str()))
                    && c.get("message").and_then(Value::as_str) == Some(message)
            })
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use landlord_crds::Tenant;

    fn decode(value: Value) -> Decoded<Tenant> {
        serde_json::from_value(value).expect("Decoded never fails on an object with metadata")
    }

    #[test]
    fn an_object_that_does_not_fit_names_the_field_and_keeps_its_metadata() {
        let decoded = decode(json!({
            "apiVersion": "landlord.dev/v1alpha1",
            "kind": "Tenant",
            "metadata": {"name": "acme", "uid": "u-1", "generation": 3},
            "spec": {"tier": "gold"},
            "status": {"conditions": []},
        }));
        let Decoded::Invalid(invalid) = decoded else {
            panic!("a tier outside the enum must not decode")
        };
        assert_eq!(invalid.metadata.name.as_deref(), Some("acme"));
        assert!(
            invalid.error.starts_with("spec.tier: "),
            "{}",
            invalid.error
        );
        assert!(invalid.error.contains("gold"), "{}", invalid.error);
        assert_eq!(invalid.status, Some(json!({"conditions": []})));
    }

    #[test]
    fn a_list_with_one_bad_object_still_decodes_the_others() {
        let list: Vec<Decoded<Tenant>> = serde_json::from_value(json!([
            {"metadata": {"name": "good"}, "spec": {"tier": "shared"}},
            {"metadata": {"name": "bad"}, "spec": {"tier": 7}},
        ]))
        .expect("one bad object does not fail the list");
        assert!(
            matches!(&list[0], Decoded::Valid(t) if t.metadata.name.as_deref() == Some("good"))
        );
        assert!(
            matches!(&list[1], Decoded::Invalid(i) if i.metadata.name.as_deref() == Some("bad"))
        );
    }

    #[test]
    fn an_object_without_readable_metadata_still_fails() {
        let result: Result<Decoded<Tenant>, _> =
            serde_json::from_value(json!({"metadata": {"name": 7}, "spec": {}}));
        assert!(result.is_err());
    }

    #[tokio::test]
    async fn an_object_that_stops_decoding_keeps_its_last_good_version_and_is_not_reconciled() {
        use kube::runtime::{reflector::store, watcher::Event};
        let (client, log) = crate::testing::client(Vec::new());
        let metrics = Metrics::new(&prometheus::Registry::new()).expect("metrics");
        let recorder = Recorder::new(
            client.clone(),
            kube::runtime::events::Reporter {
                controller: "landlord".into(),
                instance: None,
            },
        );
        let report = Arc::new(Report::new(client, recorder, metrics));
        let (cache, mut writer) = store::<Tenant>();
        let good =
            || match decode(json!({"metadata": {"name": "acme"}, "spec": {"tier": "shared"}})) {
                Decoded::Valid(t) => t,
                Decoded::Invalid(i) => panic!("{}", i.error),
            };
        let bad = || decode(json!({"metadata": {"name": "acme"}, "spec": {"tier": "gold"}}));
        writer.apply_watcher_event(&Event::Apply(good()));
        let invalid = Undecodables::default();
        let mut admission = Admission::new(cache.clone(), invalid.clone(), report);

        // It stops decoding: nothing reaches the cache, which keeps the version that decoded
        // (its dependents go on as before), and the runner will not reconcile it.
        assert!(admission.admit(Event::Apply(bad())).is_none());
        assert!(invalid.contains(&good()));
        // A relist keeps it too.
        assert!(matches!(admission.admit(Event::Init), Some(Event::Init)));
        let kept = admission.admit(Event::InitApply(bad()));
        assert!(
            matches!(kept, Some(Event::InitApply(ref t)) if t.spec.tier == landlord_crds::tenant::Tier::Shared)
        );
        assert!(matches!(
            admission.admit(Event::InitDone),
            Some(Event::InitDone)
        ));
        assert!(invalid.contains(&good()));
        // Fixed: reconciled again.
        assert!(matches!(
            admission.admit(Event::Apply(Decoded::Valid(good()))),
            Some(Event::Apply(_))
        ));
        assert!(!invalid.contains(&good()));
        // Deleted while undecodable: it leaves the cache.
        assert!(admission.admit(Event::Apply(bad())).is_none());
        assert!(matches!(
            admission.admit(Event::Delete(bad())),
            Some(Event::Delete(_))
        ));
        assert!(!invalid.contains(&good()));
        // Reported once per error, in the background: one status write for the two
        // `Apply`s of the same error before it was fixed, one after.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let status_writes = log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == "PATCH" && r.resource() == ("tenants", true))
            .count();
        assert_eq!(status_writes, 2);
    }

    #[test]
    fn a_report_already_in_status_is_not_written_again() {
        let message = message("Tenant acme", &"spec.tier: bad");
        let status = json!({"conditions": [
            {"type": "Ready", "status": "False", "reason": REASON.as_str(), "message": message},
        ]});
        assert!(reported(Some(&status), &message));
        assert!(!reported(
            Some(&status),
            &super::message("Tenant acme", &"spec.plan: bad")
        ));
        assert!(!reported(None, &message));
    }
}

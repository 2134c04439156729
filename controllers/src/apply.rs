//! The one way Landlord writes an object: server-side apply with a field manager per use
//! site, and only when the live object is missing, drifted, or behind a new intent; deletes,
//! creates and status writes go through here too. Every write has a bound
//! ([`WRITE_TIMEOUT`]) and is counted once in `landlord_api_writes_total{controller, kind,
//! verb}` (`controller` is the field manager).

use std::{fmt::Debug, future::Future, time::Duration};

use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::{
    drift,
    labels::{APPLIED_HASH, COMPONENT, MANAGED_BY, MANAGED_BY_KEY, SERVICE},
    metrics::Metrics,
};

/// How long one write may wait for the API server's answer before it fails (as
/// `kube::Error::Service`, an unreachable API server: retried with backoff).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a write did to the object: the `verb` label of `landlord_api_writes_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// A server-side apply (a patch).
    Apply,
    Create,
    Delete,
    /// A server-side apply of the status subresource.
    Status,
    /// A JSON patch of `metadata.finalizers` (adding or removing a finalizer).
    Finalize,
    /// A merge patch raising a PersistentVolumeClaim's storage request.
    Expand,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Apply => "apply",
            Verb::Create => "create",
            Verb::Delete => "delete",
            Verb::Status => "status",
            Verb::Finalize => "finalize",
            Verb::Expand => "expand",
        }
    }
}

/// Counts one write of a `kind` object by `manager`.
pub fn count(metrics: &Metrics, manager: &str, kind: &str, verb: Verb) {
    metrics
        .writes
        .with_label_values(&[manager, kind, verb.as_str()])
        .inc();
}

/// `request`, failing after [`WRITE_TIMEOUT`] without an answer.
pub async fn bounded<T>(
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    match tokio::time::timeout(WRITE_TIMEOUT, request).await {
        Ok(answer) => answer,
        Err(_) => Err(kube::Error::Service(
            format!(
                "the API server did not answer within {}s",
                WRITE_TIMEOUT.as_secs()
            )
            .into(),
        )),
    }
}

/// Field manager of a use site: `landlord/<scope>`, e.g. `landlord/tenant`.
pub fn field_manager(scope: &str) -> String {
    format!("landlord/{scope}")
}

/// What an `ensure` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Applied,
}

/// Applies `desired` unless `live` already matches it. Returns whether a write was made.
pub async fn ensure<K>(
    api: &Api<K>,
    live: Option<&K>,
    desired: &K,
    manager: &str,
    metrics: &Metrics,
) -> Result<Outcome, EnsureError>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let mut value = serde_json::to_value(desired).map_err(EnsureError::Encode)?;
    let hash = drift::hash(&value);
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(APPLIED_HASH.to_string(), Value::String(hash.clone()));
        }
    }
    if let Some(owner) = live.and_then(|live| foreign_writer(live, desired)) {
        return Err(EnsureError::Foreign(format!(
            "{} {}{} belongs to {owner}, not to {}: two writers never share one object",
            K::kind(&()),
            desired
                .namespace()
                .map(|ns| format!("{ns}/"))
                .unwrap_or_default(),
            desired.name_any(),
            writer(desired.meta())
        )));
    }
    if let Some(live) = live {
        let live_value = serde_json::to_value(live).map_err(EnsureError::Encode)?;
        if drift::up_to_date(&value, &hash, &live_value) {
            return Ok(Outcome::Unchanged);
        }
    }
    let name = desired.name_any();
    let params = PatchParams::apply(manager).force();
    let kind = K::kind(&());
    match bounded(api.patch(&name, &params, &Patch::Apply(&value))).await {
        Ok(_) => {}
        // Someone else made the live ConfigMap or Secret `immutable`, so no patch can bring
        // it back: it is made again (only the very object seen, by its uid).
        Err(kube::Error::Api(status)) if status.code == 422 && immutable(live) => {
            let uid = live.and_then(|l| l.meta().uid.clone());
            let delete = DeleteParams {
                preconditions: Some(Preconditions {
                    uid,
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            bounded(api.delete(&name, &delete))
                .await
                .map_err(EnsureError::Kube)?;
            count(metrics, manager, &kind, Verb::Delete);
            bounded(api.patch(&name, &params, &Patch::Apply(&value)))
                .await
                .map_err(EnsureError::Kube)?;
        }
        Err(e) => return Err(EnsureError::Kube(e)),
    }
    count(metrics, manager, &kind, Verb::Apply);
    Ok(Outcome::Applied)
}

/// Who writes an object, by the labels that say which part of Landlord made it
/// (`landlord.dev/component`, `landlord.dev/service`).
fn writer(meta: &kube::api::ObjectMeta) -> String {
    let labels = meta.labels.as_ref();
    let get = |key: &str| labels.and_then(|l| l.get(key)).cloned();
    match (get(COMPONENT), get(SERVICE)) {
        (Some(c), Some(s)) => format!("{COMPONENT}={c}, {SERVICE}={s}"),
        (Some(c), None) => format!("{COMPONENT}={c}"),
        (None, Some(s)) => format!("{SERVICE}={s}"),
        (None, None) => "another part of the tenant's stack (no landlord.dev/component or landlord.dev/service label)".to_string(),
    }
}

/// The writer of `live` when it is another part of Landlord than the one that wants
/// `desired`: each object has one writer, so that two parts never overwrite each other in
/// turn (a catalog Service named like the dedicated database's Service, say). Objects
/// Landlord did not make (no managed-by label) are not claimed by any part. A writer's
/// `landlord.dev/component` and `landlord.dev/service` labels are part of its identity and
/// never change.
pub fn foreign_writer<K: Resource>(live: &K, desired: &K) -> Option<String> {
    let claims = |meta: &kube::api::ObjectMeta| {
        let labels = meta.labels.as_ref();
        (
            labels.and_then(|l| l.get(COMPONENT)).cloned(),
            labels.and_then(|l| l.get(SERVICE)).cloned(),
        )
    };
    let managed = live
        .meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_KEY))
        .is_some_and(|v| v == MANAGED_BY);
    (managed && claims(live.meta()) != claims(desired.meta())).then(|| writer(live.meta()))
}

/// Whether the live object is a ConfigMap or Secret marked `immutable: true`.
fn immutable<K: Serialize>(live: Option<&K>) -> bool {
    live.and_then(|l| serde_json::to_value(l).ok())
        .is_some_and(|v| v.get("immutable") == Some(&Value::Bool(true)))
}

/// Why an `ensure` failed.
#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    #[error("encoding: {0}")]
    Encode(#[source] serde_json::Error),
    #[error(transparent)]
    Kube(kube::Error),
    /// The live object is another part's (see [`foreign_writer`]); nothing was written.
    #[error("{0}")]
    Foreign(String),
}

/// Deletes an object unless it is already gone or going. Returns whether a delete was sent.
pub async fn delete<K>(
    api: &Api<K>,
    live: &K,
    params: &DeleteParams,
    manager: &str,
    metrics: &Metrics,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    if live.meta().deletion_timestamp.is_some() {
        return Ok(false);
    }
    delete_named(api, &live.name_any(), params, manager, metrics).await
}

/// Deletes the object `name` (with `params`: preconditions, propagation). Returns whether a
/// delete was sent; `Ok(false)` when it was already gone.
pub async fn delete_named<K>(
    api: &Api<K>,
    name: &str,
    params: &DeleteParams,
    manager: &str,
    metrics: &Metrics,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    match bounded(api.delete(name, params)).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
        Err(e) => return Err(e),
    }
    count(metrics, manager, &K::kind(&()), Verb::Delete);
    Ok(true)
}

/// Creates `object` (for objects made once and never changed by Landlord afterwards, like a
/// generated key): `Ok(false)` when it already exists, whoever made it.
pub async fn create<K>(
    api: &Api<K>,
    object: &K,
    manager: &str,
    metrics: &Metrics,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + serde::Serialize + DeserializeOwned + Clone + Debug,
{
    let params = PostParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    };
    match bounded(api.create(&params, object)).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => return Ok(false),
        Err(e) => return Err(e),
    }
    count(metrics, manager, &K::kind(&()), Verb::Create);
    Ok(true)
}

/// Adds `finalizer` to the object's `metadata.finalizers` unless it is there. Returns the
/// object as the API server stored it (with the finalizer), or `None` when nothing was
/// written.
///
/// A JSON patch that first tests the list as seen: a concurrent change of the finalizers (by
/// another controller) fails the patch with 422 instead of being overwritten, and the
/// reconcile is retried on the newer object.
pub async fn add_finalizer<K>(
    api: &Api<K>,
    object: &K,
    finalizer: &str,
    manager: &str,
    metrics: &Metrics,
) -> Result<Option<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let current = object.finalizers();
    if current.iter().any(|f| f == finalizer) {
        return Ok(None);
    }
    let patch = if current.is_empty() {
        // An absent list and an empty one are both tested as absent: the API server drops an
        // empty list, so `[]` is never what it stores.
        serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
        ])
    } else {
        serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
        ])
    };
    let written = write_finalizers(api, object, patch, manager).await?;
    count(metrics, manager, &K::kind(&()), Verb::Finalize);
    Ok(Some(written))
}

/// Removes `finalizer` from the object's `metadata.finalizers` (tested as seen, like
/// [`add_finalizer`]). Returns whether a write was made; `Ok(false)` when the finalizer is
/// not there or the object is already gone.
pub async fn remove_finalizer<K>(
    api: &Api<K>,
    object: &K,
    finalizer: &str,
    manager: &str,
    metrics: &Metrics,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let current = object.finalizers();
    let Some(index) = current.iter().position(|f| f == finalizer) else {
        return Ok(false);
    };
    let patch = serde_json::json!([
        {"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": finalizer},
        {"op": "remove", "path": format!("/metadata/finalizers/{index}")},
    ]);
    match write_finalizers(api, object, patch, manager).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
        Err(e) => return Err(e),
    }
    count(metrics, manager, &K::kind(&()), Verb::Finalize);
    Ok(true)
}

async fn write_finalizers<K>(
    api: &Api<K>,
    object: &K,
    patch: Value,
    manager: &str,
) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    let params = PatchParams {
        field_manager: Some(manager.into()),
        ..PatchParams::default()
    };
    bounded(api.patch(&object.name_any(), &params, &Patch::<()>::Json(patch))).await
}

/// Writes `desired` as the object's status (server-side apply on the status subresource, as
/// `manager`) unless `current` already equals it: an unchanged status causes no write and
/// no watch event. Returns whether a write was made.
pub async fn status<K, S>(
    api: &Api<K>,
    object: &K,
    current: Option<&S>,
    desired: &S,
    manager: &str,
    metrics: &Metrics,
) -> Result<Outcome, kube::Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
    S: Serialize + PartialEq,
{
    if current == Some(desired) {
        return Ok(Outcome::Unchanged);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": desired,
    });
    bounded(api.patch_status(
        &object.name_any(),
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&patch),
    ))
    .await?;
    count(metrics, manager, &K::kind(&()), Verb::Status);
    Ok(Outcome::Applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;

    fn service(labels: &[(&str, &str)]) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some("landlord-postgres".into());
        s.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        s
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_without_an_answer_fails_after_the_bound() {
        let started = tokio::time::Instant::now();
        let error = bounded(std::future::pending::<Result<(), kube::Error>>())
            .await
            .expect_err("no answer");
        assert_eq!(started.elapsed(), WRITE_TIMEOUT);
        assert!(matches!(error, kube::Error::Service(_)), "{error:?}");
        assert_eq!(crate::failure::api_category(&error), "ApiUnreachable");
        assert!(bounded(async { Ok::<_, kube::Error>(7) }).await.is_ok());
    }

    #[test]
    fn a_part_never_writes_over_another_parts_object() {
        let database = service(&[(MANAGED_BY_KEY, MANAGED_BY), ("landlord.dev/tenant", "a")]);
        let catalog = service(&[
            (MANAGED_BY_KEY, MANAGED_BY),
            ("landlord.dev/tenant", "a"),
            (SERVICE, "landlord-postgres"),
        ]);
        assert_eq!(
            foreign_writer(&database, &catalog).as_deref(),
            Some(
                "another part of the tenant's stack (no landlord.dev/component or landlord.dev/service label)"
            )
        );
        assert_eq!(
            foreign_writer(&catalog, &database).as_deref(),
            Some("landlord.dev/service=landlord-postgres")
        );
        assert_eq!(foreign_writer(&database, &database), None);
        assert_eq!(foreign_writer(&catalog, &catalog), None);
    }

    #[test]
    fn objects_landlord_did_not_make_are_not_claimed() {
        let foreign = service(&[("app", "x")]);
        let catalog = service(&[(MANAGED_BY_KEY, MANAGED_BY), (SERVICE, "landlord-postgres")]);
        assert_eq!(foreign_writer(&foreign, &catalog), None);
    }
}

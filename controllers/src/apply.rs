//! The one way Landlord writes an object: server-side apply with a field manager per use
//! site, and only when the live object is missing, drifted, or behind a new intent.

use std::fmt::Debug;

use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::{
    drift,
    labels::{APPLIED_HASH, COMPONENT, MANAGED_BY, MANAGED_BY_KEY, SERVICE},
    metrics::Metrics,
};

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
    let count = || {
        metrics
            .writes
            .with_label_values(&[manager, &K::kind(&())])
            .inc()
    };
    match api.patch(&name, &params, &Patch::Apply(&value)).await {
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
            api.delete(&name, &delete)
                .await
                .map_err(EnsureError::Kube)?;
            count();
            api.patch(&name, &params, &Patch::Apply(&value))
                .await
                .map_err(EnsureError::Kube)?;
        }
        Err(e) => return Err(EnsureError::Kube(e)),
    }
    count();
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
    match api.delete(&live.name_any(), params).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
        Err(e) => return Err(e),
    }
    metrics
        .writes
        .with_label_values(&[manager, &K::kind(&())])
        .inc();
    Ok(true)
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
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    metrics
        .writes
        .with_label_values(&[manager, &K::kind(&())])
        .inc();
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

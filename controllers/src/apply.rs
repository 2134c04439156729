//! The one way Landlord writes an object: server-side apply with a field manager per use
//! site, and only when the live object is missing, drifted, or behind a new intent.

use std::fmt::Debug;

use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::{drift, labels::APPLIED_HASH, metrics::Metrics};

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
    if let Some(live) = live {
        let live_value = serde_json::to_value(live).map_err(EnsureError::Encode)?;
        if drift::up_to_date(&value, &hash, &live_value) {
            return Ok(Outcome::Unchanged);
        }
    }
    let name = desired.name_any();
    let params = PatchParams::apply(manager).force();
    api.patch(&name, &params, &Patch::Apply(&value))
        .await
        .map_err(EnsureError::Kube)?;
    metrics
        .writes
        .with_label_values(&[manager, &K::kind(&())])
        .inc();
    Ok(Outcome::Applied)
}

/// Why an `ensure` failed.
#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    #[error("encoding: {0}")]
    Encode(#[source] serde_json::Error),
    #[error(transparent)]
    Kube(kube::Error),
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

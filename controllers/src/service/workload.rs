//! Applying and removing instances of catalog Services: the I/O both owners share (the
//! Service controller for the pool, the Tenant controller for dedicated instances), each with
//! its own caches and field manager.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::DeleteParams,
    runtime::reflector::{ObjectRef, Store},
};
use serde::{Serialize, de::DeserializeOwned};

use super::desired::Workload;
use crate::{
    apply::{self, EnsureError, Outcome},
    metrics::Metrics,
    reflectors::workloads::Caches,
};

/// A write that failed, with what was being done.
#[derive(Debug)]
pub struct Failure {
    pub action: String,
    pub source: EnsureError,
}

/// What applying an instance did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub writes: u32,
    /// The Deployment was written, so its cached status describes an older spec.
    pub deployment_written: bool,
}

/// Applies an instance: each object only when it drifted, and removes the optional ones
/// (Service, autoscaler) the instance no longer has.
pub async fn apply(
    client: &Client,
    caches: &Caches,
    workload: &Workload,
    manager: &str,
    metrics: &Metrics,
) -> Result<Applied, Failure> {
    let Workload {
        deployment,
        service,
        disruption_budget,
        autoscaler,
    } = workload;
    let namespace = deployment.namespace().unwrap_or_default();
    let name = deployment.name_any();
    let mut applied = Applied::default();
    if ensure(client, &caches.deployments, deployment, manager, metrics).await? {
        applied.writes += 1;
        applied.deployment_written = true;
    }
    applied.writes += ensure_or_remove(
        client,
        &caches.services,
        &namespace,
        &name,
        service.as_ref(),
        manager,
        metrics,
    )
    .await?;
    if ensure(
        client,
        &caches.disruption_budgets,
        disruption_budget,
        manager,
        metrics,
    )
    .await?
    {
        applied.writes += 1;
    }
    applied.writes += ensure_or_remove(
        client,
        &caches.autoscalers,
        &namespace,
        &name,
        autoscaler.as_ref(),
        manager,
        metrics,
    )
    .await?;
    Ok(applied)
}

/// Deletes every object of a catalog Service's instance in a namespace. The Deployment goes
/// with foreground propagation, so it stays visible until its pods are gone. Returns whether
/// anything of the instance is still there.
pub async fn remove(
    client: &Client,
    caches: &Caches,
    namespace: &str,
    name: &str,
    manager: &str,
    metrics: &Metrics,
) -> Result<bool, Failure> {
    let mut remaining = false;
    remaining |= delete(
        client,
        &caches.autoscalers,
        namespace,
        name,
        manager,
        metrics,
    )
    .await?;
    remaining |= delete(
        client,
        &caches.disruption_budgets,
        namespace,
        name,
        manager,
        metrics,
    )
    .await?;
    remaining |= delete(client, &caches.services, namespace, name, manager, metrics).await?;
    remaining |= delete(
        client,
        &caches.deployments,
        namespace,
        name,
        manager,
        metrics,
    )
    .await?;
    Ok(remaining)
}

async fn ensure<K>(
    client: &Client,
    store: &Store<K>,
    desired: &K,
    manager: &str,
    metrics: &Metrics,
) -> Result<bool, Failure>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let namespace = desired.namespace().unwrap_or_default();
    let name = desired.name_any();
    let live = store.get(&ObjectRef::new(&name).within(&namespace));
    let api = Api::<K>::namespaced(client.clone(), &namespace);
    match apply::ensure(&api, live.as_deref(), desired, manager, metrics).await {
        Ok(outcome) => Ok(outcome == Outcome::Applied),
        Err(source) => Err(Failure {
            action: format!("applying {} {namespace}/{name}", K::kind(&())),
            source,
        }),
    }
}

async fn ensure_or_remove<K>(
    client: &Client,
    store: &Store<K>,
    namespace: &str,
    name: &str,
    desired: Option<&K>,
    manager: &str,
    metrics: &Metrics,
) -> Result<u32, Failure>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    match desired {
        Some(desired) => Ok(u32::from(
            ensure(client, store, desired, manager, metrics).await?,
        )),
        None => {
            delete(client, store, namespace, name, manager, metrics).await?;
            Ok(0)
        }
    }
}

/// Deletes the cached object, if any. Returns whether it still exists (it was there).
async fn delete<K>(
    client: &Client,
    store: &Store<K>,
    namespace: &str,
    name: &str,
    manager: &str,
    metrics: &Metrics,
) -> Result<bool, Failure>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let Some(live) = store.get(&ObjectRef::new(name).within(namespace)) else {
        return Ok(false);
    };
    let api = Api::<K>::namespaced(client.clone(), namespace);
    let params = if K::kind(&()) == "Deployment" {
        DeleteParams::foreground()
    } else {
        DeleteParams::background()
    };
    apply::delete(&api, live.as_ref(), &params, manager, metrics)
        .await
        .map_err(|e| Failure {
            action: format!("deleting {} {namespace}/{name}", K::kind(&())),
            source: EnsureError::Kube(e),
        })?;
    Ok(true)
}

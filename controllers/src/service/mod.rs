//! The catalog Service controller.
//!
//! fetch (the Service, its pool and the tenants that run it, from caches) → validate (pure)
//! → desired (the pool, pure) → apply (server-side apply, only on drift) → status (pure,
//! written only when it changed).
//!
//! Ownership: this controller owns the shared-tier pool (Deployment, Service,
//! PodDisruptionBudget, optional HorizontalPodAutoscaler in the catalog Service's namespace).
//! Per-tenant instances belong to the Tenant controller (its `Services` part), which watches
//! the catalog and re-applies every dedicated tenant that selects a changed Service; this
//! controller only reads them to count the tenants that are ready. One owner per object, so
//! two controllers never write the same fields.

pub mod desired;
pub mod error;
pub mod rollout;
pub mod status;
pub mod workload;

use std::{future::Future, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        Controller,
        controller::Action,
        reflector::{ObjectRef, Store},
    },
};
use landlord_crds::{Service, ServiceStatus, Tenant, tenant::Tier};
use tracing::{info, warn};

pub use error::Error;
use error::Result;

use crate::{Context, reflectors::Reflectors};
use desired::Audience;
use rollout::Rollout;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "service";
const MANAGER: &str = "landlord/service";
const STATUS_MANAGER: &str = "landlord/service-status";
/// How often a Service is looked at again without any change: the tenant counts of shared
/// tenants that stop selecting it are only noticed then (no object of theirs changes).
const RESYNC: Duration = Duration::from_secs(300);

/// What every Service reconcile shares.
pub struct State {
    pub ctx: Arc<Context>,
    pub workloads: crate::reflectors::workloads::Caches,
    pub tenants: Store<Tenant>,
    tenants_synced: crate::reflectors::Synced,
}

/// The catalog Service controller (Services in the platform namespace): subscribes to the
/// shared reflectors at once (call before [`Reflectors::start`]); the future runs it until
/// `shutdown` resolves.
pub fn run(
    ctx: Arc<Context>,
    reflectors: &Reflectors,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let platform = ctx.config.platform_namespace.clone();
    // A pool object changed: its Service. A tenant's Deployment changed: the Service it runs
    // (its tenant count may have changed). A Tenant changed: the Services it selects.
    let ns = platform.clone();
    let from_workloads = reflectors.workloads.touched().filter_map(move |t| {
        let target = match (t.service(), t.tenant()) {
            (Some(service), None) if t.namespace == ns => Some(service),
            (Some(service), Some(_)) if t.deployment => Some(service),
            _ => None,
        }
        .map(|s| ObjectRef::<Service>::new(s).within(&ns));
        futures::future::ready(target)
    });
    let ns = platform;
    let from_tenants = reflectors.tenants.touched().flat_map(move |tenant| {
        let refs: Vec<_> = tenant
            .spec
            .services
            .iter()
            .map(|s| ObjectRef::<Service>::new(&s.name).within(&ns))
            .collect();
        futures::stream::iter(refs)
    });
    let state = Arc::new(State {
        workloads: reflectors.workloads.caches(),
        tenants: reflectors.tenants.store(),
        tenants_synced: reflectors.tenants.synced(),
        ctx,
    });
    let controller =
        Controller::for_shared_stream(reflectors.catalog.touched(), reflectors.catalog.store())
            .reconcile_on(futures::stream::select(from_workloads, from_tenants));
    crate::runner::run(controller, state, shutdown)
}

impl crate::runner::Reconciler for State {
    type Object = Service;
    type Error = Error;
    const NAME: &'static str = CONTROLLER;

    fn context(&self) -> &Context {
        &self.ctx
    }

    async fn caches_ready(&self) {
        let _ = futures::join!(
            self.workloads.wait_until_ready(),
            self.tenants_synced.wait()
        );
    }

    async fn reconcile(&self, service: Arc<Service>) -> Result<Action> {
        if service.meta().deletion_timestamp.is_some() {
            // The pool is owned by the Service; the garbage collector removes it.
            return Ok(Action::await_change());
        }
        apply(&service, self).await?;
        Ok(Action::requeue(RESYNC))
    }

    fn category(error: &Error) -> &'static str {
        error.category()
    }
}

async fn apply(service: &Service, state: &State) -> Result<()> {
    let ctx = &state.ctx;
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let invalid = desired::validate(&service.spec).err();
    let pooled = desired::offers(service, Tier::Shared);
    let mut pool_written = false;
    // A refused pool (a quota, an invalid object, missing rights) is the Service's status; a
    // transient failure is retried with backoff once status says so.
    let mut refused: Option<Error> = None;
    if invalid.is_none() && pooled {
        let owner = service.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
        let pool = desired::workload(service, &Audience::Pool, &owner, &ctx.config);
        match workload::apply(&ctx.client, &state.workloads, &pool, MANAGER, &ctx.metrics).await {
            Ok(applied) => {
                if applied.writes > 0 {
                    info!(writes = applied.writes, "applied pool");
                }
                pool_written = applied.deployment_written;
            }
            Err(failure) => refused = Some(failure.into()),
        }
    } else if !pooled
        && workload::remove(
            &ctx.client,
            &state.workloads,
            &namespace,
            &name,
            MANAGER,
            &ctx.metrics,
        )
        .await?
    {
        info!("removing the pool: the Service no longer runs for the shared tier");
    }

    let pool_deployment = state.workloads.deployment(&namespace, &name);
    let pool_rollout = if pool_written {
        Rollout::InProgress(format!("Deployment {name}: applying the new spec"))
    } else {
        rollout::rollout(pool_deployment.as_deref())
    };
    let pool_ready = pool_rollout.is_complete();
    let tenants: Vec<bool> = state
        .tenants
        .state()
        .iter()
        .filter(|t| t.meta().deletion_timestamp.is_none())
        .filter(|t| t.spec.services.iter().any(|s| s.name == name))
        .filter(|t| desired::offers(service, t.spec.tier))
        .map(|t| match t.spec.tier {
            Tier::Shared => pool_ready,
            Tier::Dedicated => rollout::rollout(
                state
                    .workloads
                    .deployment(&t.namespace_name(), &name)
                    .as_deref(),
            )
            .is_complete(),
        })
        .collect();
    let pool = pooled.then_some(status::Pool {
        deployment: pool_deployment.as_deref(),
        rollout: pool_rollout,
    });
    let now = Time(Timestamp::now());
    let refusal = refused.as_ref().map(|error| status::Refused {
        reason: error.reason(),
        message: error.to_string(),
    });
    let status = status::compute(
        service,
        invalid.as_deref(),
        refusal.as_ref(),
        pool.as_ref(),
        &tenants,
        &now,
    );
    write_status(service, status, state).await?;
    match refused {
        Some(error) if error.reason().severity() == crate::failure::Severity::Transient => {
            Err(error)
        }
        Some(error) => {
            warn!(service = %name, reason = %error.reason(), error = %error, "pool refused; waiting for a change");
            Ok(())
        }
        None => Ok(()),
    }
}

async fn write_status(service: &Service, status: ServiceStatus, state: &State) -> Result<()> {
    let api = Api::<Service>::namespaced(
        state.ctx.client.clone(),
        &service.namespace().unwrap_or_default(),
    );
    crate::apply::status(
        &api,
        service,
        service.status.as_ref(),
        &status,
        STATUS_MANAGER,
        &state.ctx.metrics,
    )
    .await
    .map_err(|source| Error::Kube {
        action: "writing Service status".into(),
        source,
    })?;
    Ok(())
}

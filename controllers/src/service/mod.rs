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
        Controller, WatchStreamExt,
        controller::Action,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use landlord_crds::{Service, ServiceStatus, Tenant, tenant::Tier};
use tracing::{Instrument, info, info_span, warn};

pub use error::Error;
use error::Result;

use crate::Context;
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
    pub workloads: workload::Caches,
    pub tenants: Store<Tenant>,
    ready: tokio::sync::OnceCell<()>,
}

/// Runs the catalog Service controller (Services in the platform namespace) until `shutdown`
/// resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let platform = ctx.config.platform_namespace.clone();
    let (workloads, touched) = workload::watch(&client);
    let (tenants, tenant_writer) = reflector::store::<Tenant>();
    let tenant_events = watcher(
        Api::<Tenant>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|t| t.managed_fields_mut().clear())
    .reflect(tenant_writer)
    .touched_objects();

    // A pool object changed: its Service. A tenant's Deployment changed: the Service it runs
    // (its tenant count may have changed). A Tenant changed: the Services it selects.
    let ns = platform.clone();
    let from_workloads = touched.filter_map(move |t| {
        let target = match (t.service(), t.tenant()) {
            (Some(service), None) if t.namespace == ns => Some(service),
            (Some(service), Some(_)) if t.deployment => Some(service),
            _ => None,
        }
        .map(|s| ObjectRef::<Service>::new(s).within(&ns));
        futures::future::ready(target)
    });
    let ns = platform.clone();
    let from_tenants = tenant_events
        .filter_map(|r| futures::future::ready(r.ok()))
        .flat_map(move |tenant: Tenant| {
            let refs: Vec<_> = tenant
                .spec
                .services
                .iter()
                .map(|s| ObjectRef::<Service>::new(&s.name).within(&ns))
                .collect();
            futures::stream::iter(refs)
        });

    let state = Arc::new(State {
        ctx: ctx.clone(),
        workloads,
        tenants,
        ready: tokio::sync::OnceCell::new(),
    });
    let config = kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency);
    Controller::new(
        Api::<Service>::namespaced(client, &platform),
        watcher::Config::default(),
    )
    .with_config(config)
    .reconcile_on(futures::stream::select(from_workloads, from_tenants))
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, state)
    .for_each(|outcome| async move {
        crate::runner::log_outcome(CONTROLLER, outcome);
    })
    .await;
}

fn backoff_key(service: &Service) -> String {
    format!(
        "service/{}/{}",
        service.namespace().unwrap_or_default(),
        service.name_any()
    )
}

async fn reconcile(service: Arc<Service>, state: Arc<State>) -> Result<Action> {
    let span = info_span!(
        "reconcile",
        controller = CONTROLLER,
        service = %service.name_any(),
        namespace = %service.namespace().unwrap_or_default()
    );
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
                state.workloads.wait_until_ready().await;
                let _ = state.tenants.wait_until_ready().await;
            }));
        if caches.await.is_none() {
            return Ok(Action::await_change());
        }
        if service.meta().deletion_timestamp.is_some() {
            // The pool is owned by the Service; the garbage collector removes it.
            return Ok(Action::await_change());
        }
        apply(&service, &state).await?;
        state.ctx.backoff.reset(&backoff_key(&service));
        Ok(Action::requeue(RESYNC))
    }
    .instrument(span)
    .await
}

fn error_policy(service: Arc<Service>, error: &Error, state: Arc<State>) -> Action {
    state
        .ctx
        .metrics
        .failures
        .with_label_values(&[CONTROLLER, error.category()])
        .inc();
    let delay = state.ctx.backoff.next(&backoff_key(&service));
    warn!(service = %service.name_any(), error = %error, category = error.category(), retry_in_ms = delay.as_millis() as u64, "reconcile failed");
    Action::requeue(delay)
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
        Some(error)
            if crate::failure::severity(error.reason()) == crate::failure::Severity::Transient =>
        {
            Err(error)
        }
        Some(error) => {
            warn!(service = %name, reason = error.reason(), error = %error, "pool refused; waiting for a change");
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

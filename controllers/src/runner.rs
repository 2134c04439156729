//! The one controller runner: what every Landlord controller does around kube's `Controller`
//! (a span per reconcile, the reconcile and failure counters and the duration histogram, a
//! bounded wait for the controller's caches, backoff per object, the error policy and the
//! logging of outcomes). A controller says only what is its own by implementing
//! [`Reconciler`], and is run by [`run`].

use std::{fmt::Display, future::Future, sync::Arc};

use futures::{Stream, StreamExt};
use kube::{
    Resource, ResourceExt,
    runtime::{
        Controller,
        controller::{self, Action},
    },
};
use serde::de::DeserializeOwned;
use tracing::{Instrument, info_span, warn};

use crate::{Context, caches::NotSynced, reflectors::undecodable::Undecodables};

/// A controller as the runner sees it.
pub trait Reconciler: Send + Sync + 'static {
    /// The kind reconciled.
    type Object: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// Why a reconcile did not finish.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The controller's name in metrics (`controller` label), logs and backoff keys.
    const NAME: &'static str;

    /// What every reconcile shares.
    fn context(&self) -> &Context;

    /// Completes once every cache the reconcile reads has listed. The runner awaits it once,
    /// for at most [`crate::caches::WAIT_BOUND`], and not at all once the process stops.
    fn caches_ready(&self) -> impl Future<Output = ()> + Send + '_;

    /// Reconciles one object (the runner has waited for the caches).
    fn reconcile(
        &self,
        object: Arc<Self::Object>,
    ) -> impl Future<Output = Result<Action, Self::Error>> + Send + '_;

    /// The objects of the kind that do not decode now: not reconciled (the shared reflector
    /// reports them; see `reflectors::undecodable`). `None` for kinds that always decode.
    fn undecodable(&self) -> Option<&Undecodables<Self::Object>> {
        None
    }

    /// The error's category: a small fixed set of CamelCase values (metric label).
    fn category(error: &Self::Error) -> &'static str;

    /// What follows an error that is not a failure to retry with backoff (a cleanup still
    /// running, a spec that waits for its next change); `None` (the default): retried with
    /// jittered exponential backoff.
    fn on_error(_object: &Self::Object, _error: &Self::Error) -> Option<Action> {
        None
    }
}

/// Why a reconcile run by [`run`] did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Failure<E: std::error::Error + 'static> {
    /// The controller's caches did not list within the bound (named; usually a missing RBAC
    /// right on a watched kind).
    #[error(transparent)]
    CachesNotSynced(NotSynced),
    #[error(transparent)]
    Reconcile(E),
}

struct Runner<R> {
    reconciler: Arc<R>,
    caches: tokio::sync::OnceCell<()>,
}

/// Runs `controller` with `reconciler` until `shutdown` resolves: at most the configured
/// concurrency of reconciles at once; in-flight reconciles finish on shutdown.
pub fn run<R: Reconciler>(
    controller: Controller<R::Object>,
    reconciler: Arc<R>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> + Send {
    let config = controller::Config::default().concurrency(reconciler.context().config.concurrency);
    let runner = Arc::new(Runner {
        reconciler,
        caches: tokio::sync::OnceCell::new(),
    });
    controller
        .with_config(config)
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<R>, error_policy::<R>, runner)
        .for_each(|outcome| async move { log_outcome(R::NAME, outcome) })
}

/// `Kind name` or `Kind namespace/name`, for logs and backoff keys.
fn describe<K: Resource<DynamicType = ()>>(object: &K) -> String {
    match object.namespace() {
        Some(namespace) => format!("{} {namespace}/{}", K::kind(&()), object.name_any()),
        None => format!("{} {}", K::kind(&()), object.name_any()),
    }
}

async fn reconcile<R: Reconciler>(
    object: Arc<R::Object>,
    runner: Arc<Runner<R>>,
) -> Result<Action, Failure<R::Error>> {
    let described = describe(object.as_ref());
    let span = info_span!("reconcile", controller = R::NAME, object = %described);
    async move {
        let ctx = runner.reconciler.context();
        let metrics = &ctx.metrics;
        metrics.reconciles.with_label_values(&[R::NAME]).inc();
        let _timer = metrics.duration.with_label_values(&[R::NAME]).start_timer();
        let caches = runner
            .caches
            .get_or_init(|| runner.reconciler.caches_ready());
        match ctx.caches.bounded(caches).await {
            Ok(Some(_)) => {}
            // Stopping: the change is picked up by whoever leads next.
            Ok(None) => return Ok(Action::await_change()),
            Err(not_synced) => return Err(Failure::CachesNotSynced(not_synced)),
        }
        if runner
            .reconciler
            .undecodable()
            .is_some_and(|undecodable| undecodable.contains(&object))
        {
            // Its last version that decoded is cached; the current one is reported instead.
            return Ok(Action::await_change());
        }
        let result = runner.reconciler.reconcile(object).await;
        if result.is_ok() {
            ctx.backoff.reset(&described);
        }
        result.map_err(Failure::Reconcile)
    }
    .instrument(span)
    .await
}

fn error_policy<R: Reconciler>(
    object: Arc<R::Object>,
    failure: &Failure<R::Error>,
    runner: Arc<Runner<R>>,
) -> Action {
    let category = match failure {
        Failure::CachesNotSynced(_) => "CachesNotSynced",
        Failure::Reconcile(error) => R::category(error),
    };
    let ctx = runner.reconciler.context();
    ctx.metrics
        .failures
        .with_label_values(&[R::NAME, category])
        .inc();
    if let Failure::Reconcile(error) = failure
        && let Some(action) = R::on_error(&object, error)
    {
        return action;
    }
    let described = describe(object.as_ref());
    let delay = ctx.backoff.next(&described);
    warn!(controller = R::NAME, object = %described, error = %failure, category, retry_in_ms = delay.as_millis() as u64, "reconcile failed");
    Action::requeue(delay)
}

/// What the log says when a watch fails (it is retried with backoff).
pub const WATCH_FAILED: &str = "a watch failed; it is retried with backoff";

/// A trigger stream for a controller without its errors: each is logged at warn for
/// `controller`, naming `what` is watched, and the stream's own backoff retries. A trigger
/// stream that yields errors puts kube's controller into its own backoff on them, which
/// holds the controller's graceful shutdown (and the leader's Lease) until the grace period
/// ends.
pub fn logged<K, E: Display>(
    controller: &'static str,
    what: &'static str,
    stream: impl Stream<Item = Result<K, E>>,
) -> impl Stream<Item = Result<K, E>> {
    stream.filter_map(move |event| {
        std::future::ready(match event {
            Ok(object) => Some(Ok(object)),
            Err(error) => {
                tracing::warn!(controller, watch = what, %error, "{WATCH_FAILED}");
                None
            }
        })
    })
}

/// Logs one outcome of a controller's `run` stream for controller `name`. A reconcile's own
/// failure was logged (at warn) by the controller's error policy, so it is only traced here;
/// a watch or queue error (a watch refused by RBAC, an object that cannot be decoded, the API
/// server gone) is logged at warn, since nothing else reports it; a reconcile of an object
/// that is already gone is expected and only traced.
pub fn log_outcome<T, R: Display, Q: Display>(
    name: &str,
    outcome: Result<T, controller::Error<R, Q>>,
) {
    match outcome {
        Ok(_) => {}
        Err(controller::Error::ReconcilerFailed(error, object)) => {
            tracing::debug!(controller = name, %object, %error, "reconcile failed");
        }
        Err(controller::Error::ObjectNotFound(object)) => {
            tracing::debug!(controller = name, %object, "object gone before its reconcile");
        }
        Err(controller::Error::QueueError(error)) => {
            tracing::warn!(controller = name, %error, "{WATCH_FAILED}");
        }
        Err(controller::Error::RunnerError(error)) => {
            tracing::warn!(controller = name, %error, "the controller's runner failed");
        }
    }
}

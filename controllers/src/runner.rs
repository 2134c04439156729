//! What the controllers share around kube's `Controller`: how an outcome of its run stream is
//! logged.

use std::fmt::Display;

use futures::{Stream, StreamExt};
use kube::runtime::controller;

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

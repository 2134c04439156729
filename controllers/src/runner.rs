//! What the controllers share around kube's `Controller`: how an outcome of its run stream is
//! logged.

use std::fmt::Display;

use kube::runtime::controller;

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
            tracing::warn!(controller = name, %error, "a watch of the controller failed; it is retried with backoff");
        }
        Err(controller::Error::RunnerError(error)) => {
            tracing::warn!(controller = name, %error, "the controller's runner failed");
        }
    }
}

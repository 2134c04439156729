//! Landlord's controllers.
//!
//! Each controller is a pipeline: fetch → validate → desired → apply → status. The pure
//! steps (validate, desired, status) are plain functions over data and are unit-tested on
//! fixtures; only fetch, apply and status writes touch the API server.

pub mod apply;
pub mod backoff;
pub mod caches;
pub mod config;
pub mod context;
pub mod database;
pub mod domain;
pub mod drift;
pub mod failure;
pub mod flags;
pub mod labels;
pub mod metrics;
pub mod nats;
pub mod pod_security;
pub mod pool;
pub mod quantity;
pub mod reflectors;
pub mod runner;
pub mod runtime;
pub mod scheduling;
pub mod secrets_access;
pub mod service;
pub mod tenant;
#[cfg(test)]
mod testing;
pub mod webhooks;

pub use config::Config;
pub use context::Context;

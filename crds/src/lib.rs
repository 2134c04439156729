//! Landlord's custom resource types (API group `landlord.dev`, version `v1alpha1`).
//!
//! This crate holds only data: the five resource kinds with their OpenAPI schemas and CEL
//! validation rules, the condition vocabulary, and the CRD generator. Nothing here is async
//! or talks to a cluster, so every other crate (and every test) can depend on it cheaply.

// kube's `#[kube(printcolumn(...))]` repeats `type_ = ...` in each column, which clippy
// mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod conditions;
pub mod domain;
pub mod flags;
pub mod generate;
pub mod reason;
pub mod schema;
pub mod service;
pub mod tenant;
pub mod webhook;

pub use domain::{Domain, DomainSpec, DomainStatus};
pub use flags::{FeatureFlagSet, FeatureFlagSetSpec, FeatureFlagSetStatus};
pub use service::{Service, ServiceSpec, ServiceStatus};
pub use tenant::{Tenant, TenantSpec, TenantStatus};
pub use webhook::{WebhookEndpoint, WebhookEndpointSpec, WebhookEndpointStatus};

/// The API group of every Landlord resource.
pub const GROUP: &str = "landlord.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
/// The one finalizer Landlord puts on a Tenant; it guards external cleanup only.
pub const CLEANUP_FINALIZER: &str = "landlord.dev/cleanup";

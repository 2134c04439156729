//! tenant-runtime: what a tenant's services run against.
//!
//! - [`tenant`]: a tower layer that finds the tenant of a request (the header the route sets,
//!   or the host), puts it in the request's extensions and tracing span, and rejects requests
//!   without a valid tenant. Usable by any service of the product; a pool service adds
//!   [`TenantLayer::keys`] so that only a tenant its route asserted is accepted.
//! - [`assertion`]: the tenant assertion a shared tenant's route adds, and its check.
//! - [`ofrep`]: the OpenFeature Remote Evaluation Protocol over a tenant's flags, as pure
//!   functions; [`server`] serves it with the tenant's context, probes and metrics.
//! - [`catalog`] and [`watch`]: the tenants' ConfigMaps, kept current by watches so that a
//!   change is served within seconds, without a restart.
//!
//! The `tenant-runtime` binary runs one instance per dedicated tenant (`--tenant`) and one
//! pooled instance for all shared-tier tenants.

#![forbid(unsafe_code)]

pub mod assertion;
pub mod catalog;
pub mod flags;
pub mod metrics;
pub mod ofrep;
pub mod server;
pub mod tenant;
pub mod watch;

pub use assertion::TenantKeys;
pub use tenant::{Tenant, TenantLayer, TenantService};

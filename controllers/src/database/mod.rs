//! PostgreSQL for tenants: a database and role on a shared server (shared tier) or a
//! server of the tenant's own (dedicated tier).
//!
//! Pure pieces: [`identifier`] (names and quoting), [`scram`] (passwords and verifiers),
//! [`placement`] (which server), [`desired`] (Secrets and the dedicated server's objects),
//! [`dedicated`] (the version and volume a dedicated server keeps), [`config`]. I/O: [`servers`] (pools per server) and [`sql`] (the statements). The Tenant
//! controller's database part (`tenant::database`) drives them.

pub mod config;
pub mod dedicated;
pub mod desired;
pub mod failure;
pub mod health;
pub mod identifier;
pub mod placement;
pub mod scram;
pub mod servers;
pub mod sql;

pub use config::{DatabaseConfig, ServerConfig};
pub use servers::Servers;

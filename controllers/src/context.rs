//! What every reconcile shares: the client, configuration, one event recorder per
//! controller, metrics and backoff.

use kube::{
    Client,
    runtime::events::{Recorder, Reporter},
};

use crate::{backoff::Backoff, config::Config, database, metrics::Metrics, nats::Nats};

/// Shared state of the controllers.
pub struct Context {
    pub client: Client,
    pub config: Config,
    pub metrics: Metrics,
    pub backoff: Backoff,
    /// One recorder for the Tenant controller, shared by all its reconciles so that events
    /// aggregate instead of piling up.
    pub tenant_recorder: Recorder,
    /// Pools to the shared PostgreSQL servers, and placements in flight.
    pub databases: database::Servers,
    /// The NATS provisioner, when a server is configured; it connects on first use.
    pub nats: Option<Nats>,
    /// The last outcome of the pool loop (what shared tenants' `RuntimeReady` reports).
    pub pool: crate::pool::Health,
    /// Which caches have synced (`/readyz`, bounded waits).
    pub caches: std::sync::Arc<crate::caches::CacheSync>,
}

impl Context {
    pub fn new(client: Client, config: Config, metrics: Metrics, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "landlord".into(),
            instance,
        };
        Self {
            tenant_recorder: Recorder::new(client.clone(), reporter),
            nats: config.nats.clone().map(Nats::new),
            client,
            config,
            metrics,
            backoff: Backoff::default(),
            databases: database::Servers::default(),
            caches: Default::default(),
            pool: Default::default(),
        }
    }
}

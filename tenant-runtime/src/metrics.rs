//! Prometheus metrics of the runtime. Labels are bounded: endpoints, outcomes and rejection
//! codes, never a tenant's or a flag's name.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub struct Metrics {
    /// Requests by endpoint (`evaluate`, `bulk`, `tenant`) and outcome.
    pub requests: IntCounterVec,
    /// Requests the tenant layer turned away, by code (`MissingTenant`, ...).
    pub rejections: IntCounterVec,
    /// Tenant views rebuilt because one of their ConfigMaps changed.
    pub reloads: IntCounter,
    /// Tenants this instance serves.
    pub tenants: IntGauge,
    /// ConfigMaps in the watch cache: only those it serves, owned by a Tenant.
    pub cached_config_maps: IntGauge,
}

impl Metrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "tenant_runtime_requests_total",
                "Requests by endpoint and outcome",
            ),
            &["endpoint", "outcome"],
        )?;
        let rejections = IntCounterVec::new(
            Opts::new(
                "tenant_runtime_rejections_total",
                "Requests rejected for want of a valid tenant, by code",
            ),
            &["code"],
        )?;
        let reloads = IntCounter::new(
            "tenant_runtime_reloads_total",
            "Tenant views rebuilt after a change of their ConfigMaps",
        )?;
        let tenants = IntGauge::new("tenant_runtime_tenants", "Tenants served")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(rejections.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        let cached_config_maps = IntGauge::new(
            "tenant_runtime_cached_config_maps",
            "ConfigMaps held in the watch cache (served ones, owned by a Tenant)",
        )?;
        registry.register(Box::new(tenants.clone()))?;
        registry.register(Box::new(cached_config_maps.clone()))?;
        Ok(Self {
            requests,
            rejections,
            reloads,
            tenants,
            cached_config_maps,
        })
    }
}

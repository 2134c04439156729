//! Prometheus metrics of the controllers. Labels are bounded: controller names, error
//! categories, object kinds and outcomes; never an object's name or an error's text.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The metrics every controller reports into.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: IntCounterVec,
    pub failures: IntCounterVec,
    pub duration: HistogramVec,
    pub writes: IntCounterVec,
    pub tenants: IntGaugeVec,
    /// Time from the start of a reconcile to a newly created database, by tier.
    pub database_provision: HistogramVec,
    /// Database provisioning failures, by condition reason.
    pub database_errors: IntCounterVec,
    /// 1 when a shared database server answered its last probe, by server name.
    pub database_server_up: IntGaugeVec,
    /// Objects in the Tenant controller's caches, by kind.
    pub cached_objects: IntGaugeVec,
    /// Objects the operator cannot decode (and so leaves alone), by kind.
    pub undecodable_objects: IntGaugeVec,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let reconciles = IntCounterVec::new(
            Opts::new("landlord_reconciles_total", "Reconciles run, by controller"),
            &["controller"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "landlord_reconcile_errors_total",
                "Failed reconciles, by controller and error category",
            ),
            &["controller", "category"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "landlord_reconcile_duration_seconds",
                "Time a reconcile takes, by controller",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["controller"],
        )?;
        let writes = IntCounterVec::new(
            Opts::new(
                "landlord_api_writes_total",
                "Writes to the Kubernetes API, by controller (field manager), kind and verb (apply, create, delete, status, finalize, expand)",
            ),
            &["controller", "kind", "verb"],
        )?;
        let tenants = IntGaugeVec::new(
            Opts::new("landlord_tenants", "Tenants by phase"),
            &["phase"],
        )?;
        let database_provision = HistogramVec::new(
            HistogramOpts::new(
                "landlord_database_provision_seconds",
                "Time to create a tenant's database, by tier",
            )
            .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["tier"],
        )?;
        let database_errors = IntCounterVec::new(
            Opts::new(
                "landlord_database_errors_total",
                "Failed database provisioning steps, by condition reason",
            ),
            &["reason"],
        )?;
        let database_server_up = IntGaugeVec::new(
            Opts::new(
                "landlord_database_server_up",
                "Whether a shared database server answered its last probe",
            ),
            &["server"],
        )?;
        let cached_objects = IntGaugeVec::new(
            Opts::new(
                "landlord_cached_objects",
                "Objects in the Tenant controller's caches, by kind",
            ),
            &["kind"],
        )?;
        let undecodable_objects = IntGaugeVec::new(
            Opts::new(
                "landlord_undecodable_objects",
                "Objects the operator cannot decode and leaves alone, by kind (each is named in a warning log, an event and its Ready condition)",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(undecodable_objects.clone()))?;
        registry.register(Box::new(cached_objects.clone()))?;
        registry.register(Box::new(database_server_up.clone()))?;
        registry.register(Box::new(database_provision.clone()))?;
        registry.register(Box::new(database_errors.clone()))?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        registry.register(Box::new(tenants.clone()))?;
        Ok(Self {
            reconciles,
            failures,
            duration,
            writes,
            tenants,
            database_provision,
            database_errors,
            database_server_up,
            cached_objects,
            undecodable_objects,
        })
    }
}

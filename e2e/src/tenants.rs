//! The operator's end-to-end harness: one operator per test, started as the chart's
//! ServiceAccount against the local stack, and the Tenant steps the tests share (create, wait
//! for a phase or a condition, delete and wait until gone).
//!
//! Operators reconcile every Tenant in the cluster, so the tests of one test binary run one at
//! a time: [`Harness::setup`] takes this binary's lock (a static of this module, so one per
//! test binary) and the [`Harness`] holds it until it is dropped, after its operator has
//! stopped.
//!
//! The operator binary is the `landlord` package's, whose path only that package's tests
//! see: they pass `env!("CARGO_BIN_EXE_landlord")` in.

use std::{
    collections::BTreeMap,
    ops::{Deref, DerefMut},
    path::{Path, PathBuf},
    time::Duration,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use landlord_crds::{Tenant, conditions, tenant::Phase};
use tokio::sync::{Mutex, MutexGuard};

use crate::{
    Cluster, cluster,
    manifests::install_crds,
    operator::{self, Operator, Options},
    unique_name, wait,
};

/// How long a Tenant may take to reach a phase or a condition unless a test file says
/// otherwise ([`Setup::timeout`]).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a deleted Tenant may take to be gone (its cleanup runs first).
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(90);
/// The label every test's Tenants carry (value `"true"`), so that they can be told apart from
/// anything else on the cluster.
pub const E2E_LABEL: &str = "landlord.dev/e2e";
/// The lease of the operators [`Harness`] starts, in seconds (as `operator::start_as_chart`).
const LEASE_DURATION_SECONDS: u64 = 15;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Takes this test binary's lock, which [`Harness::setup`] takes too: for a test that starts
/// its operators itself (leader election, a second stack) but must still not run beside the
/// others. Held until the guard is dropped.
pub async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// A Tenant named `name` with `spec` (any JSON the CRD accepts), labelled [`E2E_LABEL`].
///
/// Errors when `spec` does not deserialise into a Tenant's spec.
pub fn tenant(name: &str, spec: serde_json::Value) -> anyhow::Result<Tenant> {
    tenant_labelled(name, &[], spec)
}

/// Like [`tenant`], with `labels` (name, value) besides [`E2E_LABEL`].
pub fn tenant_labelled(
    name: &str,
    labels: &[(&str, &str)],
    spec: serde_json::Value,
) -> anyhow::Result<Tenant> {
    let labels: serde_json::Map<_, _> = std::iter::once((E2E_LABEL, "true"))
        .chain(labels.iter().copied())
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
        .collect();
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "landlord.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }))?)
}

/// Creates the Tenant [`tenant`]`(name, spec)` and returns it as the API server stored it.
pub async fn create(
    client: &Client,
    name: &str,
    spec: serde_json::Value,
) -> anyhow::Result<Tenant> {
    Ok(Api::<Tenant>::all(client.clone())
        .create(&PostParams::default(), &tenant(name, spec)?)
        .await?)
}

/// The database credentials Landlord wrote for a tenant: the Secret `landlord-database` in
/// `namespace`, key → value (`host`, `port`, `dbname`, `user`, `password`, `uri`).
pub async fn database_credentials(
    client: &Client,
    namespace: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
        .get("landlord-database")
        .await?;
    Ok(secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect())
}

/// The Tenant's condition of type `type_`, if its status has one.
pub fn condition<'a>(tenant: &'a Tenant, type_: &str) -> Option<&'a Condition> {
    tenant
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, type_))
}

/// Waits until Tenant `name` is in `phase` and returns it; errors after `timeout` with the
/// phase and status it last had.
pub async fn wait_phase(
    client: &Client,
    name: &str,
    phase: Phase,
    timeout: Duration,
) -> anyhow::Result<Tenant> {
    let api = Api::<Tenant>::all(client.clone());
    wait::until(
        &format!("Tenant {name} phase {phase:?}"),
        timeout,
        || async {
            let t = api.get(name).await?;
            let current = t.status.as_ref().and_then(|s| s.phase);
            if current == Some(phase) {
                Ok(Some(t))
            } else {
                anyhow::bail!("phase is {current:?}, status {:?}", t.status)
            }
        },
    )
    .await
}

/// Waits until Tenant `name` has a condition of type `type_` for which `check` holds and
/// returns the Tenant; errors after `timeout` with the condition it last had.
pub async fn wait_condition(
    client: &Client,
    name: &str,
    type_: &str,
    timeout: Duration,
    check: impl Fn(&Condition) -> bool,
) -> anyhow::Result<Tenant> {
    let api = Api::<Tenant>::all(client.clone());
    wait::until(&format!("{type_} of Tenant {name}"), timeout, || async {
        let t = api.get(name).await?;
        match condition(&t, type_) {
            Some(c) if check(c) => Ok(Some(t)),
            other => anyhow::bail!("{type_} is {other:?}"),
        }
    })
    .await
}

/// Deletes the Tenants `names`, then waits until each is gone (its cleanup done); errors
/// when a delete is refused or a Tenant is still there after `timeout`.
pub async fn delete(client: &Client, names: &[&str], timeout: Duration) -> anyhow::Result<()> {
    let api = Api::<Tenant>::all(client.clone());
    for name in names {
        api.delete(name, &DeleteParams::default()).await?;
    }
    for name in names {
        wait::until(&format!("Tenant {name} deleted"), timeout, || async {
            Ok(api.get_opt(name).await?.is_none().then_some(()))
        })
        .await?;
    }
    Ok(())
}

/// A Tenant harness being set up: this binary's lock is held, the client connected and the
/// CRDs installed; the operator starts with [`Setup::start`]. Anything the operator needs
/// before it starts (a platform namespace, a database server) is made with `cluster` and
/// `client` in between.
pub struct Setup {
    pub cluster: &'static Cluster,
    /// The cluster admin's client.
    pub client: Client,
    binary: PathBuf,
    args: Vec<String>,
    timeout: Duration,
    serial: MutexGuard<'static, ()>,
}

impl Setup {
    /// Adds flags of `landlord run` (e.g. `--platform-namespace <name>`) to the ones the
    /// operator always gets (see `operator::Operator::start_unready`).
    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// How long the harness's waits for a phase or a condition take at most (default
    /// [`READY_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts the operator and waits until its /readyz answers. Errors when the chart's
    /// ServiceAccount and RBAC cannot be applied or its token requested, or when the operator
    /// exits or is not ready within 30 s (the error carries its log).
    pub async fn start(self) -> anyhow::Result<Harness> {
        self.start_with(()).await
    }

    /// Like [`Setup::start`], with a fixture of the test file's own that the harness keeps
    /// (and dereferences to) until it is dropped, after the operator. Errors as
    /// [`Setup::start`].
    pub async fn start_with<F>(self, fixture: F) -> anyhow::Result<Harness<F>> {
        let kubeconfig = operator::service_account_kubeconfig(self.cluster, &self.client).await?;
        let operator = start_operator(self.cluster, &self.binary, &kubeconfig, &self.args).await?;
        Ok(Harness {
            cluster: self.cluster,
            client: self.client,
            operator,
            fixture,
            timeout: self.timeout,
            binary: self.binary,
            kubeconfig,
            args: self.args,
            _serial: self.serial,
        })
    }
}

/// One test's operator and Tenant steps. `F` is the test file's own fixture, made before the
/// operator started (a platform namespace, database servers); the harness dereferences to it,
/// so its fields and methods read as the harness's own.
///
/// Dropping the harness stops the operator (gracefully, releasing the Lease), then drops the
/// fixture, then lets the binary's next test start.
pub struct Harness<F = ()> {
    pub cluster: &'static Cluster,
    /// The cluster admin's client.
    pub client: Client,
    /// The operator this test runs; a test may kill it and start another
    /// ([`Harness::start_operator`]).
    pub operator: Operator,
    pub fixture: F,
    /// How long waits for a phase or a condition take at most.
    pub timeout: Duration,
    binary: PathBuf,
    kubeconfig: PathBuf,
    args: Vec<String>,
    _serial: MutexGuard<'static, ()>,
}

impl Harness {
    /// Takes this binary's lock, connects as the cluster admin and installs the CRDs; the
    /// operator `binary` (`env!("CARGO_BIN_EXE_landlord")`) starts with [`Setup::start`].
    pub async fn setup(binary: impl AsRef<Path>) -> anyhow::Result<Setup> {
        let serial = serial().await;
        let cluster = cluster();
        let client = cluster.client().await?;
        install_crds(&client).await?;
        Ok(Setup {
            cluster,
            client,
            binary: binary.as_ref().to_path_buf(),
            args: Vec::new(),
            timeout: READY_TIMEOUT,
            serial,
        })
    }

    /// [`Harness::setup`] and [`Setup::start`]: the operator `binary` with no flags of the
    /// test's own.
    pub async fn start(binary: impl AsRef<Path>) -> anyhow::Result<Harness> {
        Self::setup(binary).await?.start().await
    }
}

impl<F> Harness<F> {
    /// Starts another operator like the harness's first (same binary, ServiceAccount
    /// kubeconfig, Lease and flags) and waits until it is ready.
    pub async fn start_operator(&self) -> anyhow::Result<Operator> {
        start_operator(self.cluster, &self.binary, &self.kubeconfig, &self.args).await
    }

    /// The operator's reconcile count (`landlord_reconciles_total`, over all controllers).
    pub async fn reconciles(&self) -> anyhow::Result<f64> {
        self.operator.metric("landlord_reconciles_total").await
    }

    /// Waits up to 15 s until the operator has reconciled since its count was `before`
    /// ([`Harness::reconciles`]): proof that it looked at a change (`what`) that must not
    /// cause writes.
    pub async fn wait_reconcile(&self, what: &str, before: f64) -> anyhow::Result<()> {
        wait::until(what, Duration::from_secs(15), || async {
            Ok((self.reconciles().await? > before).then_some(()))
        })
        .await
    }

    /// All Tenants (they are cluster-scoped), as the cluster admin.
    pub fn tenants(&self) -> Api<Tenant> {
        Api::all(self.client.clone())
    }

    /// Creates the Tenant [`tenant`]`(name, spec)`; returns it as stored.
    pub async fn create_tenant(
        &self,
        name: &str,
        spec: serde_json::Value,
    ) -> anyhow::Result<Tenant> {
        create(&self.client, name, spec).await
    }

    /// Creates a Tenant named `<prefix>-<random>` with `spec` and returns its name, without
    /// waiting for anything.
    pub async fn new_tenant(
        &self,
        prefix: &str,
        spec: serde_json::Value,
    ) -> anyhow::Result<String> {
        let name = unique_name(prefix);
        self.create_tenant(&name, spec).await?;
        Ok(name)
    }

    /// Creates a Tenant named `<prefix>-<random>` with `spec`, waits until it is Ready and
    /// returns its name.
    pub async fn ready_tenant(
        &self,
        prefix: &str,
        spec: serde_json::Value,
    ) -> anyhow::Result<String> {
        let name = self.new_tenant(prefix, spec).await?;
        self.wait_phase(&name, Phase::Ready).await?;
        Ok(name)
    }

    /// [`wait_phase`] within the harness's timeout.
    pub async fn wait_phase(&self, name: &str, phase: Phase) -> anyhow::Result<Tenant> {
        wait_phase(&self.client, name, phase, self.timeout).await
    }

    /// Waits within the harness's timeout until Tenant `name`'s condition `type_` has
    /// `status` (`"True"`, `"False"`, `"Unknown"`) and, when given, `reason`.
    pub async fn wait_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
    ) -> anyhow::Result<Tenant> {
        wait_condition(&self.client, name, type_, self.timeout, |c| {
            c.status == status && reason.is_none_or(|r| r == c.reason)
        })
        .await
    }

    /// Asks for a new database password for Tenant `name` (the annotation
    /// `landlord.dev/rotate-database-password: <value>`) and waits, within the harness's
    /// timeout, until its credentials in `tenant-<name>` carry a password other than
    /// `old` and its status shows the rotation (`status.database.passwordRotation`);
    /// returns the credentials.
    pub async fn rotate_database_password(
        &self,
        name: &str,
        value: &str,
        old: &str,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        self.tenants()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"landlord.dev/rotate-database-password": value}}})),
            )
            .await?;
        let namespace = format!("tenant-{name}");
        let rotated = wait::until(
            &format!("Tenant {name}'s password rotated"),
            self.timeout,
            || async {
                let now = database_credentials(&self.client, &namespace).await?;
                Ok((now.get("password").map(String::as_str) != Some(old)).then_some(now))
            },
        )
        .await?;
        // The status says so too (what the API's rotation operation waits for).
        wait::until(
            &format!("Tenant {name}'s status.database.passwordRotation to be {value:?}"),
            self.timeout,
            || async {
                let tenant = self.tenants().get(name).await?;
                let shown = tenant
                    .status
                    .and_then(|s| s.database)
                    .and_then(|d| d.password_rotation);
                Ok((shown.as_deref() == Some(value)).then_some(()))
            },
        )
        .await?;
        Ok(rotated)
    }

    /// Merge-patches Tenant `name`'s spec with `spec`.
    pub async fn patch_spec(&self, name: &str, spec: serde_json::Value) -> anyhow::Result<()> {
        self.tenants()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": spec})),
            )
            .await?;
        Ok(())
    }

    /// Deletes Tenant `name` and waits up to [`DELETE_TIMEOUT`] until it is gone.
    pub async fn delete_tenant(&self, name: &str) -> anyhow::Result<()> {
        self.delete_tenants(&[name]).await
    }

    /// Deletes the Tenants `names`, then waits up to [`DELETE_TIMEOUT`] for each to be gone.
    pub async fn delete_tenants(&self, names: &[&str]) -> anyhow::Result<()> {
        delete(&self.client, names, DELETE_TIMEOUT).await
    }
}

impl<F> Deref for Harness<F> {
    type Target = F;

    /// The test file's fixture.
    fn deref(&self) -> &F {
        &self.fixture
    }
}

impl<F> DerefMut for Harness<F> {
    fn deref_mut(&mut self) -> &mut F {
        &mut self.fixture
    }
}

/// The operator `binary` as the chart's ServiceAccount (`kubeconfig`), holding the test
/// Lease, with `args`; once its /readyz answers.
async fn start_operator(
    cluster: &Cluster,
    binary: &Path,
    kubeconfig: &Path,
    args: &[String],
) -> anyhow::Result<Operator> {
    Operator::start(
        cluster,
        &Options {
            binary,
            kubeconfig,
            lease_name: operator::LEASE,
            lease_duration_seconds: LEASE_DURATION_SECONDS,
            args,
        },
    )
    .await
}

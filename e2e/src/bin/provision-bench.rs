//! Provisioning benchmark: how fast Landlord turns N new Tenants into Ready stacks, side by
//! side with the floor, i.e. the same child objects written by a minimal client, in the
//! same run, on the same local control plane.
//!
//! ```text
//! cargo build --release -p landlord
//! cargo run --release -p landlord-e2e --bin provision-bench -- [--tenants 200] [--concurrency 16]
//! ```
//!
//! The benchmark runs on a stack of its own (`target/landlord-bench`, or `--dev-dir`), so it
//! never disturbs the tests' stack, and stops it at the end unless `--keep-stack`.
//!
//! Both phases see the same arrival of work: C concurrent creators create the N Tenants as
//! fast as the API server takes them, and C workers turn them into stacks.
//!
//! Phase 1, Landlord: the operator binary runs as the chart's ServiceAccount with
//! `--concurrency C` (its C reconcile workers). Then all Tenants are deleted and the time
//! until they are gone is measured.
//!
//! Phase 2, the floor: no operator. As each Tenant is created (so its children get a real
//! owner uid), it is queued for one of C floor workers, which builds its children with the
//! operator's own pure builder (`namespace_stack`, its Secrets binding included), server-side
//! applies each of them in the operator's order, with the operator's ServiceAccount credential
//! (same RBAC, same API Priority and Fairness level) and no drift checks, adds the
//! `landlord-flags` ConfigMap from the operator's resolver, waits as the operator does until
//! the quota controller has counted the namespace's quota, then writes the same status (phase
//! Ready) in one patch. Deletion mirrors the operator's order: delete the namespace,
//! and delete the Tenant once the namespace is gone.
//!
//! In both phases, time-to-Ready runs from the start of a Tenant's create call to the first
//! watch event that shows it with phase Ready (one watch, the same instrument for both), and
//! is split, from the API server's audit log, into the wait (create call to the first write
//! for that tenant) and the service time (first write to the end of the status write).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt::Write as _,
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::{
    api::core::v1::{Namespace, ResourceQuota},
    apimachinery::pkg::apis::meta::v1::{OwnerReference, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use landlord_controllers::{
    Config as ControllerConfig,
    database::{
        desired::{self as db_desired, Endpoint},
        identifier::{Names, ownership_marker},
        scram, sql,
    },
    flags::resolve,
    labels::MANAGED_SELECTOR,
    tenant::{desired, flags as tenant_flags, namespace, status},
};
use landlord_crds::{
    Tenant,
    conditions::{
        Observation, Reason, Status,
        tenant::{DATABASE_READY, NAMESPACE_READY},
    },
    tenant::Phase,
};
use landlord_e2e::{
    Cluster,
    cluster::{client_for, repo_root},
    manifests::install_crds,
    operator::{self, Operator, Options},
    unique_name,
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::mpsc;

/// Label on every Tenant the benchmark creates; its value names the run and the phase.
const BENCH_LABEL: &str = "landlord.dev/bench";
/// Field manager of the floor client.
const FLOOR_MANAGER: &str = "landlord-bench-floor";
/// Status field manager of the floor client (the operator uses its own).
const FLOOR_STATUS_MANAGER: &str = "landlord-bench-floor/status";
/// The Lease the operator leads with: the chart's Role allows get/update on this name only.
const LEASE: &str = "landlord-leader";
/// Bound of any single API call the benchmark makes.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause after the last Ready (or gone) before sampling counters, so that writes which
/// follow in the same reconcile (events, redundant re-applies) are counted.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Parser, Debug)]
#[command(
    name = "provision-bench",
    about = "Time-to-Ready of N tenants under Landlord, against the floor of the same writes by a minimal client"
)]
struct Args {
    /// Number of tenants per phase.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=20000))]
    tenants: u32,
    /// Concurrent creators and workers (floor writers), also the operator's `--concurrency`.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// The operator binary (default: <repo>/target/release/landlord).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// State directory of the benchmark's own stack (default: <repo>/target/landlord-bench).
    #[arg(long, env = "LANDLORD_BENCH_DIR")]
    dev_dir: Option<PathBuf>,
    /// Leave the benchmark's stack running at the end (default: `e2e/cluster down`).
    #[arg(long)]
    keep_stack: bool,
    /// Bound, in seconds, of each wait for all tenants (Ready, gone).
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Tenants provisioned (floor path) and deleted before the measured phases, so that
    /// neither phase pays for a cold API server.
    #[arg(long, default_value_t = 32)]
    warmup: u32,
    /// Skip phase 2 (the floor).
    #[arg(long)]
    skip_floor: bool,
    /// Skip the deletion of Landlord's tenants (for runs at scale, where the peak RSS of
    /// provisioning is the figure; the stack is torn down with them at the end).
    #[arg(long)]
    skip_deletion: bool,
    /// Also run phase 1 with the Tenants created through `landlord api` (`POST /v1/tenants`
    /// as a portal's ServiceAccount) instead of directly, and compare the two.
    #[arg(long)]
    through_api: bool,
    /// Leave out the database step (by default every tenant gets a database on the stack's
    /// PostgreSQL server, and the floor issues the same CREATE ROLE / CREATE DATABASE
    /// statements directly).
    #[arg(long)]
    no_database: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let dev_dir = args
        .dev_dir
        .clone()
        .unwrap_or_else(|| repo_root().join("target/landlord-bench"));
    let result = run(&args, &dev_dir).await;
    if let Err(e) = &result {
        eprintln!("provision-bench: error: {e:#}");
    }
    if args.keep_stack {
        eprintln!(
            "provision-bench: the stack keeps running; stop it with: LANDLORD_DEV_DIR={} e2e/cluster down",
            dev_dir.display()
        );
    } else {
        progress("stopping the benchmark's stack (e2e/cluster down)");
        if let Err(e) = landlord_e2e::cluster::run_script(&dev_dir, "down") {
            eprintln!("provision-bench: stopping the stack failed: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn progress(message: impl AsRef<str>) {
    eprintln!("[bench] {}", message.as_ref());
}

/// What both phases share.
struct Env {
    /// The admin: creates and deletes the Tenants, as a user would.
    admin: Client,
    /// The operator's ServiceAccount: the floor's writer.
    service_account: Client,
    sa_user: String,
    stack_dir: PathBuf,
    audit_log: PathBuf,
    run_id: String,
    n: usize,
    c: usize,
    timeout: Duration,
    /// `--skip-deletion`: Landlord's tenants are left for the stack's teardown.
    skip_deletion: bool,
    /// The database step, unless `--no-database`.
    database: Option<BenchDatabase>,
}

/// The stack's PostgreSQL server as the shared server `bench` of both phases.
struct BenchDatabase {
    /// The operator's `--database-servers` file.
    servers_file: PathBuf,
    /// The floor's admin connections (the same admin the operator uses).
    pool: sqlx::PgPool,
    /// The admin's options, for the statements that run on a connection of their own.
    admin: sqlx::postgres::PgConnectOptions,
    host: String,
    port: u16,
    /// The floor serialises CREATE DATABASE as the operator does (one server).
    create_lock: tokio::sync::Mutex<()>,
}

impl BenchDatabase {
    /// Registers the stack's server: its admin credentials in a Secret, a servers file.
    async fn register(
        cluster: &Cluster,
        admin: &Client,
        dir: &Path,
        c: usize,
    ) -> anyhow::Result<Self> {
        let url = cluster.var("LANDLORD_POSTGRES_URL");
        // Pinned like the operator's admin sessions (controllers/src/database/sql.rs, rule 1).
        let options = url
            .parse::<sqlx::postgres::PgConnectOptions>()?
            .options([("search_path", "pg_catalog,pg_temp")]);
        let (user, password, port) = {
            let parsed = url
                .strip_prefix("postgres://")
                .and_then(|rest| rest.split_once('@'))
                .context("LANDLORD_POSTGRES_URL is not postgres://user:password@host:port/db")?;
            let (user, password) = parsed.0.split_once(':').context("no password in the URL")?;
            let port = parsed
                .1
                .split(['/', ':'])
                .nth(1)
                .context("no port in the URL")?
                .parse::<u16>()?;
            (user.to_string(), password.to_string(), port)
        };
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "landlord-bench-postgres", "namespace": operator::NAMESPACE},
            "stringData": {"username": user, "password": password},
        });
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(admin.clone(), operator::NAMESPACE)
            .patch(
                "landlord-bench-postgres",
                &PatchParams::apply(FLOOR_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await?;
        let servers_file = dir.join("bench-database-servers.yaml");
        std::fs::write(
            &servers_file,
            format!(
                "- name: bench\n  host: 127.0.0.1\n  port: {port}\n  capacity: 100000\n  sslMode: disable\n  adminSecret: {{namespace: {}, name: landlord-bench-postgres}}\n",
                operator::NAMESPACE
            ),
        )?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(u32::try_from(c).unwrap_or(16).max(1))
            .connect_with(options.clone())
            .await?;
        Ok(Self {
            servers_file,
            pool,
            admin: options,
            host: "127.0.0.1".into(),
            port,
            create_lock: tokio::sync::Mutex::new(()),
        })
    }
}

async fn run(args: &Args, dev_dir: &Path) -> anyhow::Result<()> {
    let binary = args
        .operator
        .clone()
        .unwrap_or_else(|| repo_root().join("target/release/landlord"));
    if !binary.is_file() {
        bail!(
            "operator binary {} not found: build it with `cargo build --release -p landlord` (or pass --operator PATH)",
            binary.display()
        );
    }
    let binary = binary.canonicalize()?;

    progress(format!(
        "starting the benchmark's stack in {} (e2e/cluster up)",
        dev_dir.display()
    ));
    let started = Instant::now();
    let cluster_dir = dev_dir.to_path_buf();
    tokio::task::spawn_blocking(move || landlord_e2e::cluster::run_script(&cluster_dir, "up"))
        .await??;
    let cluster = Cluster::from_env_file(&dev_dir.join("env"))?;
    progress(format!("stack up in {:.1?}", started.elapsed()));
    let var = |name: &str| -> anyhow::Result<PathBuf> {
        cluster
            .vars()
            .get(name)
            .map(PathBuf::from)
            .with_context(|| format!("{name} is missing from the stack's env file"))
    };

    let admin = cluster.client().await?;
    bounded(
        "installing the CRDs",
        CALL_TIMEOUT * 2,
        install_crds(&admin),
    )
    .await?;
    let sa_kubeconfig = bounded(
        "installing the operator's ServiceAccount and RBAC",
        CALL_TIMEOUT,
        operator::service_account_kubeconfig(&cluster, &admin),
    )
    .await?;
    let env = Env {
        service_account: client_for(&sa_kubeconfig).await?,
        admin,
        sa_user: format!(
            "system:serviceaccount:{}:{}",
            operator::NAMESPACE,
            operator::SERVICE_ACCOUNT
        ),
        stack_dir: var("LANDLORD_DEV_DIR")?,
        audit_log: var("LANDLORD_AUDIT_LOG")?,
        run_id: unique_name("run"),
        n: args.tenants as usize,
        c: usize::from(args.concurrency),
        timeout: Duration::from_secs(args.timeout_secs),
        skip_deletion: args.skip_deletion,
        database: None,
    };
    let env = if args.no_database {
        env
    } else {
        let database = bounded(
            "registering the stack's PostgreSQL server",
            CALL_TIMEOUT,
            BenchDatabase::register(&cluster, &env.admin, &env.stack_dir, env.c),
        )
        .await?;
        Env {
            database: Some(database),
            ..env
        }
    };
    let machine = Machine::read(&binary, &cluster);
    if args.warmup > 0 {
        warm_up(&env, args.warmup as usize).await?;
    }

    let landlord = landlord_phase(
        &env,
        &cluster,
        &binary,
        &sa_kubeconfig,
        &Creator::Kubernetes,
    )
    .await?;
    let through_api = if args.through_api {
        let server = bounded(
            "starting landlord api",
            CALL_TIMEOUT,
            landlord_e2e::api::ApiServer::start(&cluster, &env.admin, &binary),
        )
        .await?;
        progress(format!("landlord api log: {}", server.log.display()));
        let portal = "landlord-bench-portal";
        landlord_e2e::manifests::ensure_namespace_labelled(
            &env.admin,
            portal,
            serde_json::json!({}),
        )
        .await?;
        let (token, _) = landlord_e2e::api::caller(
            &env.admin,
            portal,
            "portal",
            &["create", "get", "list", "watch"],
        )
        .await?;
        let creator = Creator::Api {
            server: &server,
            token,
        };
        Some(landlord_phase(&env, &cluster, &binary, &sa_kubeconfig, &creator).await?)
    } else {
        None
    };
    let floor = if args.skip_floor {
        None
    } else {
        Some(floor_phase(&env).await?)
    };
    print!("{}", report(&env, &machine, &landlord, floor.as_ref()));
    if let Some(api) = &through_api {
        print!("{}", report_through_api(&env, &landlord, api));
    }
    Ok(())
}

async fn bounded<T>(
    what: &str,
    limit: Duration,
    future: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, future)
        .await
        .with_context(|| format!("{what}: no answer within {limit:?}"))?
        .with_context(|| what.to_string())
}

// ---------------------------------------------------------------------------------------
// Tenants: creation, the watch, deletion
// ---------------------------------------------------------------------------------------

/// A shared-tier tenant whose children are all non-trivial: admins and viewers, a quota with
/// object counts and container defaults, an allowed peer, white-label config.
fn bench_tenant(name: &str, label: &str, database: bool) -> anyhow::Result<Tenant> {
    let mut tenant: Tenant = serde_json::from_value(serde_json::json!({
        "apiVersion": "landlord.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": name, "labels": {BENCH_LABEL: label}},
        "spec": {
            "tier": "shared",
            "plan": "pro",
            "displayName": format!("Bench {name}"),
            "admins": [{"kind": "User", "name": format!("admin@{name}.example")}],
            "viewers": [{"kind": "Group", "name": "auditors"}],
            "quota": {
                "requests": {"cpu": "2", "memory": "4Gi", "storage": "20Gi"},
                "limits": {"cpu": "4", "memory": "8Gi"},
                "objects": {"pods": 40, "services": 10, "configMaps": 50, "secrets": 50},
                "containerDefaults": {
                    "request": {"cpu": "50m", "memory": "64Mi"},
                    "limit": {"cpu": "500m", "memory": "256Mi"}
                }
            },
            "network": {"allowedPeers": [{"direction": "Egress", "cidr": "10.20.0.0/16", "ports": [443]}]},
            "config": {"brandColor": "teal", "logoUrl": "https://cdn.example/logo.svg", "locale": "en-GB"}
        },
    }))?;
    if database {
        tenant.spec.database = Some(landlord_crds::tenant::DatabaseSpec {
            deletion_policy: landlord_crds::tenant::DeletionPolicy::Delete,
            ..Default::default()
        });
    }
    Ok(tenant)
}

fn tenant_names(prefix: &str, n: usize) -> Vec<String> {
    let base = unique_name(prefix);
    (0..n).map(|i| format!("{base}-{i:04}")).collect()
}

/// What the Tenant watch reports.
enum Seen {
    Synced,
    Ready(String, Instant),
    Gone(String, Instant),
}

/// Watches the Tenants carrying `label` and reports each first Ready and each deletion.
/// The watch of one phase's Tenants; stopped when dropped.
struct Watch {
    rx: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::AbortHandle,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn watch_tenants(client: &Client, label: &str) -> Watch {
    let (tx, rx) = mpsc::unbounded_channel();
    let api = Api::<Tenant>::all(client.clone());
    let config = watcher::Config::default().labels(&format!("{BENCH_LABEL}={label}"));
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        let mut ready = HashSet::new();
        while let Some(event) = events.next().await {
            let now = Instant::now();
            let (tenant, deleted) = match event {
                Ok(watcher::Event::Apply(t) | watcher::Event::InitApply(t)) => (t, false),
                Ok(watcher::Event::Delete(t)) => (t, true),
                Ok(watcher::Event::InitDone) => {
                    if tx.send(Seen::Synced).is_err() {
                        return;
                    }
                    continue;
                }
                Ok(watcher::Event::Init) => continue,
                Err(e) => {
                    progress(format!("tenant watch error (retrying): {e}"));
                    continue;
                }
            };
            let name = tenant.name_any();
            let message = if deleted {
                Seen::Gone(name, now)
            } else if tenant.status.as_ref().and_then(|s| s.phase) == Some(Phase::Ready)
                && ready.insert(name.clone())
            {
                Seen::Ready(name, now)
            } else {
                continue;
            };
            if tx.send(message).is_err() {
                return;
            }
        }
    });
    Watch {
        rx,
        task: task.abort_handle(),
    }
}

/// Starts the watch and waits for its first complete listing.
async fn start_watch(client: &Client, label: &str) -> anyhow::Result<Watch> {
    let mut watch = watch_tenants(client, label);
    bounded("starting the Tenant watch", CALL_TIMEOUT, async {
        while let Some(seen) = watch.rx.recv().await {
            if matches!(seen, Seen::Synced) {
                return Ok(());
            }
        }
        bail!("the Tenant watch ended")
    })
    .await?;
    Ok(watch)
}

/// Collects Ready (or Gone) reports until every name has one; fails after `timeout`, naming
/// how many are missing, or as soon as the process `operator` (when given) is gone.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    names: &[String],
    gone: bool,
    timeout: Duration,
    operator: Option<u32>,
) -> anyhow::Result<HashMap<String, Instant>> {
    let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut seen = HashMap::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let what = if gone { "gone" } else { "Ready" };
    while seen.len() < wanted.len() {
        if let Some(pid) = operator
            && !process_alive(pid)
        {
            bail!(
                "the operator (pid {pid}) exited with {} of {} tenants not {what} yet",
                wanted.len() - seen.len(),
                wanted.len()
            );
        }
        let check = (tokio::time::Instant::now() + Duration::from_secs(1)).min(deadline);
        let (name, at) = match tokio::time::timeout_at(check, rx.recv()).await {
            Err(_) if check < deadline => continue,
            Err(_) => {
                let missing: Vec<_> = wanted
                    .iter()
                    .filter(|n| !seen.contains_key(**n))
                    .take(5)
                    .collect();
                bail!(
                    "{} of {} tenants not {what} after {timeout:?} (e.g. {missing:?})",
                    wanted.len() - seen.len(),
                    wanted.len()
                );
            }
            Ok(None) => bail!("the Tenant watch ended"),
            Ok(Some(Seen::Ready(name, at))) if !gone => (name, at),
            Ok(Some(Seen::Gone(name, at))) if gone => (name, at),
            Ok(Some(_)) => continue,
        };
        if wanted.contains(name.as_str()) {
            seen.entry(name).or_insert(at);
        }
    }
    Ok(seen)
}

/// When a Tenant's create call started: monotonic (for the watch) and wall clock (for the
/// audit log).
#[derive(Clone, Copy)]
struct Created {
    at: Instant,
    wall: Timestamp,
    /// How long the create call took (to its answer).
    call: Duration,
}

/// How a phase creates its Tenants.
enum Creator<'a> {
    /// As the admin, through the Kubernetes API (as `kubectl` or a GitOps tool would).
    Kubernetes,
    /// Through `landlord api`, as a portal's ServiceAccount (`POST /v1/tenants`).
    Api {
        server: &'a landlord_e2e::api::ApiServer,
        token: String,
    },
}

impl Creator<'_> {
    fn prefix(&self) -> &'static str {
        match self {
            Creator::Kubernetes => "bench",
            Creator::Api { .. } => "bench-api",
        }
    }
}

/// Creates the Tenants as the admin, C at once, in order; hands each created Tenant to
/// `queue` when given. Returns when each create call started.
async fn create_tenants(
    env: &Env,
    names: &[String],
    label: &str,
    creator: &Creator<'_>,
    queue: Option<mpsc::UnboundedSender<Tenant>>,
) -> anyhow::Result<HashMap<String, Created>> {
    let api = Api::<Tenant>::all(env.admin.clone());
    stream::iter(names.iter().cloned())
        .map(|name| {
            let api = api.clone();
            let queue = queue.clone();
            async move {
                let tenant = bench_tenant(&name, label, env.database.is_some())?;
                let (at, wall) = (Instant::now(), Timestamp::now());
                let what = format!("creating Tenant {name}");
                match creator {
                    Creator::Kubernetes => {
                        let tenant = bounded(&what, CALL_TIMEOUT, async {
                            Ok(api.create(&PostParams::default(), &tenant).await?)
                        })
                        .await?;
                        if let Some(queue) = queue {
                            queue.send(tenant).context("the floor workers stopped")?;
                        }
                    }
                    Creator::Api { server, token } => {
                        let body = serde_json::to_value(&tenant)?;
                        let answer = bounded(&what, CALL_TIMEOUT, async {
                            server
                                .call(
                                    "POST",
                                    "/v1/tenants",
                                    Some(token),
                                    &[("idempotency-key", name.as_str())],
                                    Some(("application/json", &body)),
                                )
                                .await
                        })
                        .await?;
                        if !matches!(answer.status, 200 | 202) {
                            bail!("{what} through the API: {} {}", answer.status, answer.text);
                        }
                    }
                }
                let created = Created {
                    at,
                    wall,
                    call: at.elapsed(),
                };
                anyhow::Ok((name, created))
            }
        })
        .buffered(env.c)
        .try_collect()
        .await
}

/// Deletes objects by name, C at once; a missing object counts as deleted.
async fn delete_all<K>(api: &Api<K>, names: &[String], c: usize) -> anyhow::Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    stream::iter(names.iter())
        .map(|name| async move {
            bounded(&format!("deleting {name}"), CALL_TIMEOUT, async {
                match api.delete(name, &DeleteParams::background()).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    Err(e) => Err(e.into()),
                }
            })
            .await
        })
        .buffer_unordered(c)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Phase 1: Landlord
// ---------------------------------------------------------------------------------------

/// What one phase measured while provisioning.
struct Provisioning {
    /// Create call to Ready on the watch, per tenant.
    ready: Durations,
    /// Create call to the first write for the tenant (audit log), per tenant.
    wait: Durations,
    /// First write to the end of the first status write (audit log), per tenant.
    service: Durations,
    /// First create call to the last Ready.
    total: Duration,
    /// The create calls, to their answers.
    calls: Durations,
    /// Writes the client counted itself (operator metric; floor's own count).
    writes_own: f64,
    audit: AuditCount,
    cpu: CpuUse,
}

/// What one phase measured while deleting.
struct Deletion {
    total: Duration,
    writes_own: Option<f64>,
    audit: AuditCount,
}

struct LandlordResult {
    provisioning: Provisioning,
    /// `None` with `--skip-deletion`.
    deletion: Option<Deletion>,
    rss_idle_kib: Option<u64>,
    rss_peak_kib: Option<u64>,
    reconciles: f64,
    reconcile_errors: f64,
}

async fn landlord_phase(
    env: &Env,
    cluster: &Cluster,
    binary: &Path,
    kubeconfig: &Path,
    creator: &Creator<'_>,
) -> anyhow::Result<LandlordResult> {
    progress(format!(
        "phase 1{}, Landlord: {} tenants, concurrency {}",
        match creator {
            Creator::Kubernetes => "",
            Creator::Api { .. } => " through the API",
        },
        env.n,
        env.c
    ));
    // `Operator::start` passes a fixed set of flags; a wrapper adds `--concurrency` and
    // `exec`s the binary, so the process (and its pid) is the operator's own.
    let wrapper = env.stack_dir.join("landlord-bench-operator.sh");
    let quoted = binary.display().to_string().replace('\'', r"'\''");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{quoted}' \"$@\" --concurrency {}\n",
            env.c
        ),
    )?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    }
    let database_args: Vec<String> = env
        .database
        .iter()
        .flat_map(|d| {
            [
                "--database-servers".to_string(),
                d.servers_file.display().to_string(),
            ]
        })
        .collect();
    let mut operator = bounded(
        "starting the operator",
        CALL_TIMEOUT,
        Operator::start(
            cluster,
            &Options {
                binary: &wrapper,
                kubeconfig,
                lease_name: LEASE,
                lease_duration_seconds: 15,
                args: &database_args,
            },
        ),
    )
    .await?;
    progress(format!("operator log: {}", operator.log.display()));
    bounded("waiting for the operator to lead", CALL_TIMEOUT, async {
        while !operator.is_leader().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    })
    .await?;
    let pid = operator_pid(&operator.identity)?;
    let components = Components::find(&env.stack_dir, Some(pid));
    // Let the informers' initial lists finish before the clock starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle_kib = proc_status_kib(pid, "VmRSS");

    let label = format!("{}-{}", env.run_id, creator.prefix());
    let names = tenant_names(creator.prefix(), env.n);
    let mut watch = start_watch(&env.admin, &label).await?;

    let writes_before = operator.metric("landlord_api_writes_total").await?;
    let reconciles_before = operator.metric("landlord_reconciles_total").await?;
    let errors_before = operator.metric("landlord_reconcile_errors_total").await?;
    let audit_start = file_len(&env.audit_log)?;
    let cpu_before = components.sample();

    let created = create_tenants(env, &names, &label, creator, None).await?;
    let ready = collect(&mut watch.rx, &names, false, env.timeout, Some(pid))
        .await
        .with_context(|| format!("operator log: {}", operator.log.display()))?;
    tokio::time::sleep(SETTLE).await;
    let cpu = components.sample().since(&cpu_before);
    let writes_own = operator.metric("landlord_api_writes_total").await? - writes_before;
    let reconciles = operator.metric("landlord_reconciles_total").await? - reconciles_before;
    let reconcile_errors =
        operator.metric("landlord_reconcile_errors_total").await? - errors_before;
    let audit_mid = file_len(&env.audit_log)?;
    let events = read_audit(&env.audit_log, audit_start, audit_mid, &env.sa_user)?;
    let provisioning = provisioning(&names, &created, &ready, &events, writes_own, cpu)?;
    progress(format!(
        "all {} tenants Ready in {:.2}s (time-to-Ready p50 {:.0} ms)",
        env.n,
        provisioning.total.as_secs_f64(),
        ms(provisioning.ready.p(0.50))
    ));

    let deletion = if env.skip_deletion {
        None
    } else {
        progress("deleting the tenants");
        let deletion_start = Instant::now();
        delete_all(&Api::<Tenant>::all(env.admin.clone()), &names, env.c).await?;
        collect(&mut watch.rx, &names, true, env.timeout, Some(pid))
            .await
            .with_context(|| format!("operator log: {}", operator.log.display()))?;
        let total = deletion_start.elapsed();
        progress(format!("all tenants gone in {:.2}s", total.as_secs_f64()));
        tokio::time::sleep(SETTLE).await;
        let deletion = Deletion {
            total,
            writes_own: Some(
                operator.metric("landlord_api_writes_total").await? - writes_before - writes_own,
            ),
            audit: AuditCount::of(&read_audit(
                &env.audit_log,
                audit_mid,
                file_len(&env.audit_log)?,
                &env.sa_user,
            )?),
        };
        Some(deletion)
    };
    let rss_peak_kib = proc_status_kib(pid, "VmHWM");
    match operator.terminate() {
        Ok(status) if status.success() => {}
        Ok(status) => progress(format!("the operator exited with {status}")),
        Err(e) => progress(format!("stopping the operator: {e:#}")),
    }

    Ok(LandlordResult {
        provisioning,
        deletion,
        rss_idle_kib,
        rss_peak_kib,
        reconciles,
        reconcile_errors,
    })
}

/// The pid of the operator process: the one whose command line has `--identity <identity>`.
fn operator_pid(identity: &str) -> anyhow::Result<u32> {
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args
            .windows(2)
            .any(|w| w[0] == b"--identity" && w[1] == identity.as_bytes())
        {
            return Ok(pid);
        }
    }
    bail!("no process with --identity {identity} found in /proc")
}

/// The per-tenant figures of a phase, from the create calls, the watch and the audit log.
fn provisioning(
    names: &[String],
    created: &HashMap<String, Created>,
    ready: &HashMap<String, Instant>,
    events: &[AuditEvent],
    writes_own: f64,
    cpu: CpuUse,
) -> anyhow::Result<Provisioning> {
    let spans = tenant_spans(events);
    let (mut to_ready, mut wait, mut service) = (Vec::new(), Vec::new(), Vec::new());
    for name in names {
        let c = created
            .get(name)
            .with_context(|| format!("no create of {name}"))?;
        let r = ready
            .get(name)
            .with_context(|| format!("no Ready of {name}"))?;
        to_ready.push(r.saturating_duration_since(c.at));
        let span = spans
            .get(name.as_str())
            .with_context(|| format!("no write for tenant {name} in the audit log"))?;
        let status = span
            .status_done
            .with_context(|| format!("no status write for tenant {name} in the audit log"))?;
        wait.push(between(c.wall, span.first_write));
        service.push(between(span.first_write, status));
    }
    let first = created.values().map(|c| c.at).min().context("no tenant")?;
    let last = ready.values().max().copied().context("no tenant")?;
    Ok(Provisioning {
        ready: Durations::new(to_ready),
        wait: Durations::new(wait),
        service: Durations::new(service),
        total: last - first,
        calls: Durations::new(
            names
                .iter()
                .filter_map(|n| created.get(n))
                .map(|c| c.call)
                .collect(),
        ),
        writes_own,
        audit: AuditCount::of(events),
        cpu,
    })
}

fn between(from: Timestamp, to: Timestamp) -> Duration {
    let nanos = to.as_nanosecond() - from.as_nanosecond();
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

// ---------------------------------------------------------------------------------------
// Phase 2: the floor
// ---------------------------------------------------------------------------------------

struct FloorResult {
    provisioning: Provisioning,
    /// The floor's own clock: first child write to the end of the status patch.
    own_service: Durations,
    deletion: Deletion,
}

async fn floor_phase(env: &Env) -> anyhow::Result<FloorResult> {
    progress(format!(
        "phase 2, the floor: {} tenants, concurrency {}, no operator",
        env.n, env.c
    ));
    let label = format!("{}-floor", env.run_id);
    let names = tenant_names("floor", env.n);
    let components = Components::find(&env.stack_dir, None);
    let mut watch = start_watch(&env.admin, &label).await?;
    let audit_start = file_len(&env.audit_log)?;
    let cpu_before = components.sample();

    let (created, written) = floor_provision(env, &names, &label).await?;
    let ready = collect(&mut watch.rx, &names, false, env.timeout, None).await?;
    tokio::time::sleep(SETTLE).await;
    let cpu = components.sample().since(&cpu_before);
    let audit_mid = file_len(&env.audit_log)?;
    let events = read_audit(&env.audit_log, audit_start, audit_mid, &env.sa_user)?;
    let writes_own = f64::from(written.iter().map(|w| w.0).sum::<u32>());
    let own_service = Durations::new(written.iter().map(|w| w.1).collect());
    let provisioning = provisioning(&names, &created, &ready, &events, writes_own, cpu)?;
    progress(format!(
        "floor: all {} tenants Ready in {:.2}s (time-to-Ready p50 {:.0} ms)",
        env.n,
        provisioning.total.as_secs_f64(),
        ms(provisioning.ready.p(0.50))
    ));

    progress("floor: deleting each namespace, then its Tenant once the namespace is gone");
    let deletion_start = Instant::now();
    let deletes = floor_delete(env, &names).await?;
    collect(&mut watch.rx, &names, true, env.timeout, None).await?;
    let total = deletion_start.elapsed();
    progress(format!(
        "floor: tenants and namespaces gone in {:.2}s",
        total.as_secs_f64()
    ));
    tokio::time::sleep(SETTLE).await;
    let deletion = Deletion {
        total,
        writes_own: Some(deletes as f64),
        audit: AuditCount::of(&read_audit(
            &env.audit_log,
            audit_mid,
            file_len(&env.audit_log)?,
            &env.sa_user,
        )?),
    };
    Ok(FloorResult {
        provisioning,
        own_service,
        deletion,
    })
}

/// The floor's provisioning: C creators create the Tenants and queue each, as soon as it
/// exists, for one of C workers, which write its children and status. Returns when each
/// create call started, and per tenant the writes and the time the worker took.
async fn floor_provision(
    env: &Env,
    names: &[String],
    label: &str,
) -> anyhow::Result<(HashMap<String, Created>, Vec<(u32, Duration)>)> {
    // The same children as the operator's, its Secrets binding included: the operator runs
    // as the chart's ServiceAccount.
    let config = ControllerConfig {
        service_account: Some(landlord_controllers::config::ServiceAccountName {
            namespace: operator::NAMESPACE.into(),
            name: operator::SERVICE_ACCOUNT.into(),
        }),
        ..ControllerConfig::default()
    };
    let (queue, queued) = mpsc::unbounded_channel::<Tenant>();
    let creators = create_tenants(env, names, label, &Creator::Kubernetes, Some(queue));
    let workers = stream::unfold(queued, |mut rx| async move {
        rx.recv().await.map(|tenant| (tenant, rx))
    })
    .map(|tenant| {
        let config = &config;
        async move {
            let name = tenant.name_any();
            bounded(
                &format!("floor writes of tenant {name}"),
                CALL_TIMEOUT * 2,
                floor_tenant(&env.service_account, tenant, config, env.database.as_ref()),
            )
            .await
        }
    })
    .buffer_unordered(env.c)
    .try_collect::<Vec<(u32, Duration)>>();
    tokio::try_join!(creators, workers)
}

/// Provisions and deletes `count` tenants through the floor's path, unmeasured.
async fn warm_up(env: &Env, count: usize) -> anyhow::Result<()> {
    progress(format!(
        "warm-up: {count} tenants (floor path, not measured)"
    ));
    let started = Instant::now();
    let label = format!("{}-warmup", env.run_id);
    let names = tenant_names("warmup", count);
    floor_provision(env, &names, &label).await?;
    floor_delete(env, &names).await?;
    progress(format!("warm-up done in {:.1?}", started.elapsed()));
    Ok(())
}

/// One tenant of the floor: server-side apply each child in the operator's order, then one
/// status patch. Returns the writes made and the time from the first to the end of the last.
async fn floor_tenant(
    client: &Client,
    tenant: Tenant,
    config: &ControllerConfig,
    database: Option<&BenchDatabase>,
) -> anyhow::Result<(u32, Duration)> {
    let start = Instant::now();
    let name = tenant.name_any();
    let owner: OwnerReference =
        desired::owner_reference(&tenant).context("created Tenant without uid")?;
    let stack = desired::namespace_stack(&tenant, &owner, config);
    let ns = tenant.namespace_name();
    let mut writes = 0;
    apply(&Api::all(client.clone()), &stack.namespace).await?;
    writes += 1;
    let here = || client.clone();
    for role in &stack.roles {
        apply(&Api::namespaced(here(), &ns), role).await?;
        writes += 1;
    }
    for binding in &stack.role_bindings {
        apply(&Api::namespaced(here(), &ns), binding).await?;
        writes += 1;
    }
    apply(&Api::all(here()), &stack.access.role).await?;
    apply(&Api::all(here()), &stack.access.binding).await?;
    writes += 2;
    apply(&Api::namespaced(here(), &ns), &stack.quota).await?;
    apply(&Api::namespaced(here(), &ns), &stack.limit_range).await?;
    writes += 2;
    for policy in &stack.network_policies {
        apply(&Api::namespaced(here(), &ns), policy).await?;
        writes += 1;
    }
    for config_map in &stack.config_maps {
        apply(&Api::namespaced(here(), &ns), config_map).await?;
        writes += 1;
    }
    // The tenant's effective flags (no FeatureFlagSets here), as the operator writes them.
    let flags = resolve::resolve(&resolve::TenantFacts::of(&tenant), [], []);
    apply(
        &Api::namespaced(here(), &ns),
        &tenant_flags::config_map(&tenant, &owner, &flags)?,
    )
    .await?;
    writes += 1;
    // Ready means what it means for the operator: the quota controller has counted the
    // namespace's quota (until then the API server refuses the creates it covers).
    let quotas = Api::<ResourceQuota>::namespaced(here(), &ns);
    let quota_name = stack.quota.name_any();
    loop {
        let live = quotas.get_opt(&quota_name).await?;
        if namespace::quota_counted(&stack.quota, live.as_ref()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The status the operator writes for a provisioned namespace stack, by its own function.
    let mut observations = vec![
        Observation::new(
            NAMESPACE_READY,
            Status::True,
            Reason::Provisioned,
            format!("namespace {ns} and its policies are in place"),
        ),
        tenant_flags::observation(&flags),
    ];
    let mut draft = tenant.status.clone().unwrap_or_default();
    if let Some(db) = database {
        // The operator's statements, issued directly: role (with its verifier and marker) in
        // one transaction, then the database (as a member of the role for that moment),
        // serialised.
        let names = Names::for_tenant(&name)?;
        let marker = ownership_marker(&name, &owner.uid);
        let password = scram::generate_password()?;
        sql::create_role(
            &db.pool,
            &names,
            &scram::verifier(&password)?,
            true,
            20,
            &marker,
        )
        .await?;
        {
            let _serialised = db.create_lock.lock().await;
            sql::create_database(&db.admin, &names, &marker).await?;
        }
        let endpoint = Endpoint {
            host: db.host.clone(),
            port: db.port,
            ssl_mode: "disable".into(),
        };
        let secret = db_desired::credentials(&tenant, &owner, &names, &endpoint, &password, "");
        apply(&Api::namespaced(here(), &ns), &secret).await?;
        writes += 1;
        draft.database = Some(landlord_crds::tenant::DatabaseStatus {
            server: Some("bench".into()),
            host: Some(endpoint.host),
            port: Some(i32::from(endpoint.port)),
            name: Some(names.database.clone()),
            secret: Some(db_desired::names::SECRET.into()),
            password_rotation: None,
        });
        observations.push(Observation::new(
            DATABASE_READY,
            Status::True,
            Reason::Provisioned,
            format!("database {} on server bench", names.database),
        ));
    }
    let status = status::compute(&tenant, draft, &observations, &Time(Timestamp::now()));
    let patch = serde_json::json!({
        "apiVersion": "landlord.dev/v1alpha1",
        "kind": "Tenant",
        "status": status,
    });
    Api::<Tenant>::all(client.clone())
        .patch_status(
            &name,
            &PatchParams::apply(FLOOR_STATUS_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .with_context(|| format!("status of Tenant {name}"))?;
    writes += 1;
    Ok((writes, start.elapsed()))
}

/// A plain server-side apply: no read, no drift check.
async fn apply<K>(api: &Api<K>, object: &K) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + std::fmt::Debug,
{
    let name = object.name_any();
    api.patch(
        &name,
        &PatchParams::apply(FLOOR_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .with_context(|| format!("applying {} {name}", K::kind(&())))?;
    Ok(())
}

/// The floor's deletion, in the operator's order: delete every namespace (as the operator's
/// ServiceAccount), then delete each Tenant (as the admin; it has no finalizer) once its
/// namespace is gone. Returns the ServiceAccount's writes.
async fn floor_delete(env: &Env, names: &[String]) -> anyhow::Result<usize> {
    if let Some(db) = &env.database {
        // deletionPolicy Delete, as in phase 1: database and role dropped first.
        stream::iter(names)
            .map(|name| async move {
                sql::drop_all(&db.pool, &db.admin, &Names::for_tenant(name)?).await?;
                anyhow::Ok(())
            })
            .buffer_unordered(env.c)
            .try_collect::<Vec<()>>()
            .await?;
    }
    let namespaces = Api::<Namespace>::all(env.service_account.clone());
    let ns_names: Vec<String> = names.iter().map(|n| format!("tenant-{n}")).collect();
    delete_all(&namespaces, &ns_names, env.c).await?;
    let tenants = Api::<Tenant>::all(env.admin.clone());
    let mut pending: HashSet<&String> = names.iter().collect();
    let deadline = Instant::now() + env.timeout;
    while !pending.is_empty() {
        let present: HashSet<String> = bounded("listing namespaces", CALL_TIMEOUT, async {
            Ok(namespaces
                .list_metadata(&ListParams::default().labels(MANAGED_SELECTOR))
                .await?)
        })
        .await?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
        let done: Vec<String> = pending
            .iter()
            .filter(|n| !present.contains(&format!("tenant-{n}")))
            .map(|n| (*n).clone())
            .collect();
        delete_all(&tenants, &done, env.c).await?;
        for name in &done {
            pending.remove(name);
        }
        if pending.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "floor cleanup: {} namespaces still there after {:?}",
                pending.len(),
                env.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(ns_names.len())
}

// ---------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------

/// Sorted durations.
struct Durations(Vec<Duration>);

impl Durations {
    fn new(mut values: Vec<Duration>) -> Self {
        values.sort();
        Self(values)
    }

    /// Nearest-rank percentile.
    fn p(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }

    fn max(&self) -> Duration {
        self.0.last().copied().unwrap_or_default()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn file_len(path: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len())
}

/// One write of the audit log.
struct AuditEvent {
    verb: String,
    resource: String,
    subresource: String,
    namespace: String,
    name: String,
    code: u64,
    received: Option<Timestamp>,
    completed: Option<Timestamp>,
}

impl AuditEvent {
    /// The bench tenant a write belongs to: a Tenant itself, a tenant namespace, or an
    /// object inside one. Events (in the Tenant's event namespace) belong to none.
    fn tenant(&self) -> Option<&str> {
        match self.resource.as_str() {
            "tenants" => Some(&self.name),
            "namespaces" => self.name.strip_prefix("tenant-"),
            "events" => None,
            _ => self.namespace.strip_prefix("tenant-"),
        }
    }
}

/// The writes of one user between two byte offsets of the audit log: stage
/// ResponseComplete, verb create/update/patch/delete, resource other than `leases`.
fn read_audit(path: &Path, from: u64, to: u64, user: &str) -> anyhow::Result<Vec<AuditEvent>> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.seek(SeekFrom::Start(from))?;
    let mut text = String::new();
    file.take(to.saturating_sub(from))
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    let mut events = Vec::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let field = |pointer: &str| {
            event
                .pointer(pointer)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let verb = field("/verb");
        let resource = field("/objectRef/resource");
        if field("/stage") != "ResponseComplete"
            || field("/user/username") != user
            || !matches!(verb.as_str(), "create" | "update" | "patch" | "delete")
            || resource == "leases"
        {
            continue;
        }
        events.push(AuditEvent {
            verb,
            resource,
            subresource: field("/objectRef/subresource"),
            namespace: field("/objectRef/namespace"),
            name: field("/objectRef/name"),
            code: event
                .pointer("/responseStatus/code")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            received: field("/requestReceivedTimestamp").parse().ok(),
            completed: field("/stageTimestamp").parse().ok(),
        });
    }
    Ok(events)
}

/// Per tenant: when its first write arrived and when its first status write completed.
struct Span {
    first_write: Timestamp,
    status_done: Option<Timestamp>,
}

fn tenant_spans(events: &[AuditEvent]) -> HashMap<&str, Span> {
    let mut spans: HashMap<&str, Span> = HashMap::new();
    for event in events {
        let (Some(tenant), Some(received), Some(completed)) =
            (event.tenant(), event.received, event.completed)
        else {
            continue;
        };
        let span = spans.entry(tenant).or_insert(Span {
            first_write: received,
            status_done: None,
        });
        span.first_write = span.first_write.min(received);
        if event.resource == "tenants" && event.subresource == "status" && event.code < 400 {
            span.status_done = Some(span.status_done.map_or(completed, |s| s.min(completed)));
        }
    }
    spans
}

/// Writes counted from the audit log, by verb and resource.
#[derive(Default)]
struct AuditCount {
    total: u64,
    failed: u64,
    by_kind: BTreeMap<String, u64>,
}

impl AuditCount {
    fn of(events: &[AuditEvent]) -> Self {
        let mut count = Self::default();
        for event in events {
            count.total += 1;
            if event.code >= 400 {
                count.failed += 1;
            }
            let kind = if event.subresource.is_empty() {
                format!("{} {}", event.verb, event.resource)
            } else {
                format!("{} {}/{}", event.verb, event.resource, event.subresource)
            };
            *count.by_kind.entry(kind).or_default() += 1;
        }
        count
    }
}

/// Whether a process exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(") ")?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Processes whose CPU time is measured per phase.
struct Components {
    pids: Vec<(&'static str, u32)>,
    ticks_per_second: f64,
}

/// CPU seconds (user + system, all threads) per process.
#[derive(Default)]
struct CpuUse(BTreeMap<&'static str, f64>);

impl CpuUse {
    fn since(&self, before: &CpuUse) -> CpuUse {
        CpuUse(
            self.0
                .iter()
                .map(|(k, v)| (*k, v - before.0.get(k).copied().unwrap_or(0.0)))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<f64> {
        self.0.get(key).copied()
    }
}

impl Components {
    fn find(stack_dir: &Path, operator: Option<u32>) -> Self {
        let mut pids = vec![("bench", std::process::id())];
        if let Some(pid) = operator {
            pids.push(("operator", pid));
        }
        for name in ["kube-apiserver", "etcd", "kube-controller-manager", "kwok"] {
            let pid = std::fs::read_to_string(stack_dir.join("pids").join(format!("{name}.pid")))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            if let Some(pid) = pid {
                pids.push((name, pid));
            }
        }
        let ticks_per_second = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0);
        Self {
            pids,
            ticks_per_second,
        }
    }

    fn sample(&self) -> CpuUse {
        CpuUse(
            self.pids
                .iter()
                .filter_map(|(name, pid)| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                    // After "(comm) ": field 3 (state) is index 0, utime (14) index 11,
                    // stime (15) index 12.
                    let rest = stat.rsplit_once(") ")?.1;
                    let fields: Vec<&str> = rest.split_whitespace().collect();
                    let utime: f64 = fields.get(11)?.parse().ok()?;
                    let stime: f64 = fields.get(12)?.parse().ok()?;
                    Some((*name, (utime + stime) / self.ticks_per_second))
                })
                .collect(),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

struct Machine {
    commit: String,
    built: String,
    nproc: usize,
    cpu_model: String,
    memory: String,
    kernel: String,
    load: String,
    kubernetes: String,
    operator: String,
    profile: &'static str,
}

impl Machine {
    fn read(binary: &Path, cluster: &Cluster) -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|x| x.1.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        let path = binary.display().to_string();
        let profile = if path.contains("/release/") {
            "release"
        } else if path.contains("/debug/") {
            "debug"
        } else {
            "unknown"
        };
        let git = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .current_dir(repo_root())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
        let commit = format!(
            "{}{}",
            git(&["rev-parse", "--short", "HEAD"]),
            if dirty {
                " (with uncommitted changes)"
            } else {
                ""
            }
        );
        let built = std::fs::metadata(binary)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| Timestamp::try_from(t).ok())
            .map_or("unknown".into(), |t| {
                t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
            });
        Self {
            commit,
            built,
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            load: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            kubernetes: cluster
                .vars()
                .get("LANDLORD_K8S_VERSION")
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
            operator: path,
            profile,
        }
    }
}

/// A figure of a phase's provisioning.
type Figure<'a> = dyn Fn(&Provisioning) -> f64 + 'a;

/// One row of the table: the Landlord value, the floor value and landlord / floor.
fn row(out: &mut String, metric: &str, landlord: Option<f64>, floor: Option<f64>, decimals: usize) {
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.decimals$}"));
    let ratio = match (landlord, floor) {
        (Some(l), Some(f)) if f > 0.0 => format!("{:.2}x", l / f),
        _ => "-".into(),
    };
    let _ = writeln!(
        out,
        "| {metric} | {} | {} | {ratio} |",
        cell(landlord),
        cell(floor)
    );
}

/// Tenants created through `landlord api` against the same Tenants created directly, each
/// with an operator of its own, in the same run.
fn report_through_api(env: &Env, direct: &LandlordResult, api: &LandlordResult) -> String {
    let n = env.n as f64;
    let (d, a) = (&direct.provisioning, &api.provisioning);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Created through the API (`POST /v1/tenants`, a portal's ServiceAccount) against directly (the admin, as kubectl)\n"
    );
    let _ = writeln!(out, "| metric | through the API | directly | ratio |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let rows: [(&str, &Figure<'_>, usize); 8] = [
        ("create call p50 (ms)", &|p| ms(p.calls.p(0.50)), 1),
        ("create call p99 (ms)", &|p| ms(p.calls.p(0.99)), 1),
        ("time-to-Ready p50 (ms)", &|p| ms(p.ready.p(0.50)), 0),
        ("time-to-Ready p99 (ms)", &|p| ms(p.ready.p(0.99)), 0),
        (
            "total: first create to last Ready (s)",
            &|p| p.total.as_secs_f64(),
            2,
        ),
        (
            "operator's API writes per tenant, audit log",
            &|p| p.audit.total as f64 / n,
            2,
        ),
        (
            "operator's failed writes, audit log (HTTP >= 400)",
            &|p| p.audit.failed as f64,
            0,
        ),
        (
            "kube-apiserver CPU (s)",
            &|p| p.cpu.get("kube-apiserver").unwrap_or_default(),
            2,
        ),
    ];
    for (metric, get, decimals) in rows {
        row(&mut out, metric, Some(get(a)), Some(get(d)), decimals);
    }
    row(
        &mut out,
        "operator peak RSS, VmHWM (MiB)",
        api.rss_peak_kib.map(|k| k as f64 / 1024.0),
        direct.rss_peak_kib.map(|k| k as f64 / 1024.0),
        1,
    );
    out
}

fn report(env: &Env, m: &Machine, l: &LandlordResult, f: Option<&FloorResult>) -> String {
    let n = env.n as f64;
    let lp = &l.provisioning;
    let fp = f.map(|f| &f.provisioning);
    let mut out = String::new();
    let _ = writeln!(out, "\n## provision-bench\n");
    let _ = writeln!(
        out,
        "- machine: {} CPUs (nproc), {}, {} RAM, Linux {}; load average at start {}. The CPUs are shared by the API server, etcd, the controller manager, kwok, the operator and this client.",
        m.nproc, m.cpu_model, m.memory, m.kernel, m.load
    );
    let _ = writeln!(
        out,
        "- control plane: kube-apiserver {} with etcd, from e2e/cluster (state dir {})",
        m.kubernetes,
        env.stack_dir.display()
    );
    let _ = writeln!(
        out,
        "- operator: {} (profile {}, built {}), --concurrency {}, as {}; repository HEAD at run time: {}",
        m.operator, m.profile, m.built, env.c, env.sa_user, m.commit
    );
    let _ = writeln!(
        out,
        "- database step: {}",
        if env.database.is_some() {
            "on: every tenant gets a role and database on the stack's PostgreSQL (deletionPolicy Delete); the floor issues the same CREATE ROLE / CREATE DATABASE statements directly, CREATE DATABASE serialised, plus the credentials Secret"
        } else {
            "off (--no-database)"
        }
    );
    let _ = writeln!(out, "- N = {} tenants per phase, C = {}\n", env.n, env.c);

    let _ = writeln!(out, "| metric | landlord | floor | ratio |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let pick = |get: &Figure<'_>| (Some(get(lp)), fp.map(get));
    let rows: [(&str, &Figure<'_>, usize); 12] = [
        ("time-to-Ready p50 (ms)", &|p| ms(p.ready.p(0.50)), 0),
        ("time-to-Ready p99 (ms)", &|p| ms(p.ready.p(0.99)), 0),
        ("time-to-Ready max (ms)", &|p| ms(p.ready.max()), 0),
        (
            "of which wait: create to first write, p50 (ms)",
            &|p| ms(p.wait.p(0.50)),
            0,
        ),
        (
            "of which wait: create to first write, p99 (ms)",
            &|p| ms(p.wait.p(0.99)),
            0,
        ),
        (
            "of which service: first write to status written, p50 (ms)",
            &|p| ms(p.service.p(0.50)),
            0,
        ),
        (
            "of which service: first write to status written, p99 (ms)",
            &|p| ms(p.service.p(0.99)),
            0,
        ),
        (
            "total: first create to last Ready (s)",
            &|p| p.total.as_secs_f64(),
            2,
        ),
        ("throughput (tenants/s)", &|p| n / p.total.as_secs_f64(), 1),
        (
            "API writes per tenant, client's count",
            &|p| p.writes_own / n,
            2,
        ),
        (
            "API writes per tenant, audit log",
            &|p| p.audit.total as f64 / n,
            2,
        ),
        (
            "failed writes, audit log (HTTP >= 400)",
            &|p| p.audit.failed as f64,
            0,
        ),
    ];
    for (metric, get, decimals) in rows {
        let (lv, fv) = pick(get);
        row(&mut out, metric, lv, fv, decimals);
    }
    row(
        &mut out,
        "client CPU (s): operator / this bench process",
        lp.cpu.get("operator"),
        fp.and_then(|p| p.cpu.get("bench")),
        2,
    );
    for name in ["kube-apiserver", "etcd", "kube-controller-manager"] {
        row(
            &mut out,
            &format!("{name} CPU (s)"),
            lp.cpu.get(name),
            fp.and_then(|p| p.cpu.get(name)),
            2,
        );
    }
    row(
        &mut out,
        "operator peak RSS, VmHWM (MiB)",
        l.rss_peak_kib.map(|k| k as f64 / 1024.0),
        None,
        1,
    );
    row(
        &mut out,
        "deletion: all N gone (s)",
        l.deletion.as_ref().map(|d| d.total.as_secs_f64()),
        f.map(|f| f.deletion.total.as_secs_f64()),
        2,
    );
    row(
        &mut out,
        "deletion: API writes per tenant, audit log",
        l.deletion.as_ref().map(|d| d.audit.total as f64 / n),
        f.map(|f| f.deletion.audit.total as f64 / n),
        2,
    );

    let _ = writeln!(out, "\nNotes:");
    let _ = writeln!(
        out,
        "- time-to-Ready: start of the Tenant's create call to the first watch event showing phase Ready (same watch for both). wait and service split it using the audit log: the first write for the tenant (Landlord: its finalizer patch; floor: the namespace apply), and the end of its first status write."
    );
    if let Some(f) = f {
        let _ = writeln!(
            out,
            "- floor: {:.0} writes per tenant ({:.0} server-side applies + 1 status patch), its own clock from first write to end of the status patch: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            f.provisioning.writes_own / n,
            f.provisioning.writes_own / n - 1.0,
            ms(f.own_service.p(0.50)),
            ms(f.own_service.p(0.99)),
            ms(f.own_service.max())
        );
    }
    let _ = writeln!(
        out,
        "- CPU figures cover provisioning plus a {}s settle; the floor's client CPU is this whole bench process (creators, watch and floor writers); Landlord's is the operator alone",
        SETTLE.as_secs()
    );
    let _ = writeln!(
        out,
        "- operator: RSS {} MiB idle after start, peak (VmHWM) {} MiB over provisioning and deletion; {} reconciles during provisioning ({:.2} per tenant), {} reconcile errors; landlord_api_writes_total during deletion: {:.2} per tenant",
        l.rss_idle_kib
            .map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
        l.rss_peak_kib
            .map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
        l.reconciles,
        l.reconciles / n,
        l.reconcile_errors,
        l.deletion
            .as_ref()
            .and_then(|d| d.writes_own)
            .unwrap_or(0.0)
            / n,
    );
    let breakdown = |count: &AuditCount| {
        count
            .by_kind
            .iter()
            .map(|(k, v)| format!("{k} {:.2}", *v as f64 / n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "- Landlord's writes per tenant (audit): {}",
        breakdown(&lp.audit)
    );
    if let Some(f) = f {
        let _ = writeln!(
            out,
            "- floor's writes per tenant (audit): {}",
            breakdown(&f.provisioning.audit)
        );
    }
    let _ = writeln!(
        out,
        "- deletion: Landlord = the operator's cleanup (Terminating status, namespace delete, poll until it is gone, finalizer removed); floor = delete the namespace, delete the Tenant once it is gone. Landlord's deletion writes per tenant (audit): {}",
        l.deletion
            .as_ref()
            .map_or("skipped (--skip-deletion)".into(), |d| breakdown(&d.audit))
    );
    out
}

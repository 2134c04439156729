//! `tenant-runtime`: the OFREP flag server and tenant context of one dedicated tenant
//! (`--tenant`), or of every shared-tier tenant (pooled, without `--tenant`).
//!
//! The pooled instance serves a tenant only with the assertion its route adds, checked under
//! the keys in `LANDLORD_TENANT_KEY` and `LANDLORD_TENANT_KEY_SECONDARY` (environment only,
//! never flags, which any process on the node can read); it does not start without them.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context as _;
use axum::http::HeaderName;
use clap::{Parser, ValueEnum};
use kube::{
    Client,
    config::{KubeConfigOptions, Kubeconfig},
};
use tenant_runtime::{
    assertion::TenantKeys,
    catalog::Catalog,
    metrics::Metrics,
    server::{self, AppState},
    tenant::{DEFAULT_HEADER, Tenant, TenantLayer},
    watch::{self, Mode},
};
use tracing::info;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Serves a tenant's feature flags (OpenFeature Remote Evaluation Protocol) and context.
#[derive(Parser, Debug)]
#[command(name = "tenant-runtime", version)]
struct Args {
    /// Serve this one tenant (a dedicated instance, in the tenant's namespace). Without it the
    /// instance is pooled: it serves every shared-tier tenant, named by each request.
    #[arg(long, env = "LANDLORD_RUNTIME_TENANT")]
    tenant: Option<String>,

    /// Namespace of the dedicated tenant's ConfigMaps (default: tenant-<tenant>).
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,

    /// Address of the API, probes and metrics.
    #[arg(long, env = "LANDLORD_RUNTIME_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,

    /// Header that names the tenant of a request.
    #[arg(long, env = "LANDLORD_RUNTIME_TENANT_HEADER", default_value = DEFAULT_HEADER)]
    tenant_header: HeaderName,

    /// Also take the tenant from the host `<tenant>.<base-domain>`.
    #[arg(long, env = "LANDLORD_RUNTIME_BASE_DOMAIN")]
    base_domain: Option<String>,

    /// Kubeconfig to use. Without it: $KUBECONFIG, ~/.kube/config, or the in-cluster service
    /// account.
    #[arg(long, env = "LANDLORD_KUBECONFIG", value_name = "FILE")]
    kubeconfig: Option<PathBuf>,

    /// Log line format.
    #[arg(long, env = "LANDLORD_LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logs(args.log_format)?;

    let mut layer = TenantLayer::new().header(args.tenant_header.clone());
    if let Some(domain) = &args.base_domain {
        layer = layer.base_domain(domain);
    }
    let catalog = Arc::new(Catalog::default());
    let mode = match &args.tenant {
        Some(name) => {
            let tenant = Tenant::parse(name).with_context(|| format!("--tenant {name:?}"))?;
            let namespace = args
                .namespace
                .clone()
                .unwrap_or_else(|| format!("tenant-{tenant}"));
            layer = layer.fixed(tenant.clone());
            Mode::Dedicated { tenant, namespace }
        }
        None => {
            let keys = TenantKeys::from_env().context("the pooled instance (no --tenant)")?;
            let known = catalog.clone();
            layer = layer
                .keys(keys)
                .known(move |tenant| known.contains(tenant.as_str()));
            Mode::Pooled
        }
    };

    let client = client(args.kubeconfig.as_deref()).await?;
    let registry = prometheus::Registry::new();
    let metrics = Arc::new(Metrics::new(&registry)?);
    let state = AppState {
        catalog: catalog.clone(),
        metrics: metrics.clone(),
        registry,
    };
    info!(mode = ?mode, "starting");
    let watches = tokio::spawn(watch::run(client, mode, catalog, metrics));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    info!(address = %listener.local_addr()?, "{}", server::SERVING);
    axum::serve(listener, server::router(state, layer))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    watches.abort();
    info!("stopped");
    Ok(())
}

async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig and not in a cluster")?,
    };
    Ok(Client::try_from(config)?)
}

fn init_logs(format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,kube=warn,hyper=warn,tower=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()?,
    }
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

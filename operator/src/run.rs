//! `landlord run`: connect, wait for the CRDs, win the leader election, run the controllers;
//! on SIGTERM stop them and release the lease; on losing the lease, exit so that Kubernetes
//! restarts a clean standby.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::Context as _;
use futures::FutureExt as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    config::{KubeConfigOptions, Kubeconfig},
};
use landlord_controllers::{
    Config, Context,
    config::{is_label_key, is_label_value},
    database::{
        DatabaseConfig,
        config::{DEFAULT_EXTENSIONS, parse_servers},
    },
    domain::HttpsListener,
    metrics::Metrics,
    nats::{NatsConfig, TenantLimits},
};
use landlord_crds::tenant::Placement;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::{
    http::{self, Health},
    leader::{Elector, Timing},
    telemetry::LogFormat,
};

/// Flags of `landlord run`; each can also be given by the environment variable it names.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Kubeconfig to use. Without it: $KUBECONFIG, ~/.kube/config, or the in-cluster service
    /// account.
    #[arg(long, env = "LANDLORD_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Address of /healthz, /readyz and /metrics (port 0: one the kernel chooses; the address
    /// bound is logged as `address` with "serving /healthz, /readyz and /metrics").
    #[arg(long, env = "LANDLORD_PROBE_ADDRESS", default_value = "0.0.0.0:8080")]
    pub probe_address: SocketAddr,

    /// Log line format.
    #[arg(long, env = "LANDLORD_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,

    /// Elect a leader through a Lease so that only one replica reconciles. Turn off only when
    /// exactly one replica runs.
    #[arg(long, env = "LANDLORD_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the leader election Lease.
    #[arg(long, env = "LANDLORD_LEASE_NAME", default_value = "landlord-leader")]
    pub lease_name: String,

    /// Namespace of the Lease: the operator's own namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "landlord-system")]
    pub lease_namespace: String,

    /// This replica's identity in the election. Defaults to the pod name, else host name and
    /// process id.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Seconds a lease stays valid without renewal; a standby takes over after this long when
    /// the leader dies without releasing it.
    #[arg(long, env = "LANDLORD_LEASE_DURATION_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=300))]
    pub lease_duration_seconds: u64,

    /// Namespace of the catalog Services and platform FeatureFlagSets.
    #[arg(
        long,
        env = "LANDLORD_PLATFORM_NAMESPACE",
        default_value = "landlord-platform"
    )]
    pub platform_namespace: String,

    /// Namespace of the platform's ingress gateway; tenant namespaces admit ingress from it.
    #[arg(
        long,
        env = "LANDLORD_GATEWAY_NAMESPACE",
        default_value = "landlord-gateway"
    )]
    pub gateway_namespace: String,

    /// Namespace of the cluster DNS; tenant pods may reach it on port 53.
    #[arg(long, env = "LANDLORD_DNS_NAMESPACE", default_value = "kube-system")]
    pub dns_namespace: String,

    /// Reconciles that run at once per controller.
    #[arg(long, env = "LANDLORD_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,

    /// YAML file listing the shared PostgreSQL servers of the shared tier: a list of
    /// `{name, host, port, adminSecret: {namespace, name}, capacity, sslMode}`. The admin
    /// Secret holds `username` and `password` (and optionally `database` and `ca.crt`); the
    /// admin needs CREATEROLE and CREATEDB. `sslMode` defaults to `verify-full`. Without it, shared-tier tenants with a database report
    /// `NoDatabaseServers`.
    #[arg(long, env = "LANDLORD_DATABASE_SERVERS")]
    pub database_servers: Option<PathBuf>,

    /// PostgreSQL extensions tenants may request (comma-separated).
    #[arg(long, env = "LANDLORD_DATABASE_EXTENSIONS", value_delimiter = ',', default_values_t = DEFAULT_EXTENSIONS.iter().map(|e| e.to_string()))]
    pub database_extensions: Vec<String>,

    /// Connection limit of a tenant's database role when `spec.quota.databaseConnections`
    /// sets none.
    #[arg(long, env = "LANDLORD_DATABASE_CONNECTION_LIMIT", default_value_t = 20, value_parser = clap::value_parser!(i32).range(1..=10000))]
    pub database_connection_limit: i32,

    /// Image repository of dedicated-tier PostgreSQL servers; the tag is the major version.
    #[arg(
        long,
        env = "LANDLORD_POSTGRES_IMAGE",
        default_value = "docker.io/library/postgres"
    )]
    pub postgres_image: String,

    /// PostgreSQL major version of dedicated servers whose spec names none.
    #[arg(long, env = "LANDLORD_POSTGRES_VERSION", default_value = "16")]
    pub postgres_version: String,

    /// Volume size of dedicated servers whose spec names none.
    #[arg(long, env = "LANDLORD_POSTGRES_STORAGE", default_value = "10Gi")]
    pub postgres_storage: String,

    /// Image of tenant-runtime (the OFREP flag server) deployed per dedicated tenant and once,
    /// pooled, in the platform namespace.
    #[arg(
        long,
        env = "LANDLORD_RUNTIME_IMAGE",
        default_value = "ghcr.io/landlord-dev/tenant-runtime:0.1.0"
    )]
    pub runtime_image: String,

    /// CIDRs the operator's connections come from when it runs outside the cluster (a
    /// developer's machine): dedicated tenants' NetworkPolicy `landlord-allow-operator` admits
    /// them to their PostgreSQL server beside the operator's own namespace. Comma separated;
    /// none by default (in the cluster, the namespace suffices).
    #[arg(long, env = "LANDLORD_OPERATOR_SOURCE_CIDRS", value_delimiter = ',')]
    pub operator_source_cidrs: Vec<String>,

    /// Every pod Landlord builds in a tenant namespace (dedicated catalog Services,
    /// tenant-runtime, PostgreSQL) pulls its images with imagePullPolicy Always, so that the
    /// registry checks credentials on every start and no tenant runs a private image cached
    /// on the node for another. Keep the admission policy landlord-image-pull-policy, which
    /// refuses any other policy in tenant namespaces, installed exactly when this is on.
    #[arg(long, env = "LANDLORD_IMAGE_PULL_POLICY_ALWAYS", default_value_t = true, action = clap::ArgAction::Set)]
    pub image_pull_policy_always: bool,

    /// ClusterRole granting Secrets, which the operator binds to its own ServiceAccount in
    /// every tenant namespace and in the platform namespace (RoleBinding landlord-operator):
    /// the operator holds no cluster-wide right on Secrets. The chart creates it.
    #[arg(
        long,
        env = "LANDLORD_SECRETS_CLUSTER_ROLE",
        default_value = "landlord-secrets"
    )]
    pub secrets_cluster_role: String,

    /// NATS server (in operator/JWT mode) of the tenants' topics, e.g.
    /// nats://nats.nats.svc:4222, or a cluster's servers separated by commas; also the URL
    /// handed to the tenants, whose egress policy admits every port it lists. Without it,
    /// tenants with topics report NatsNotConfigured.
    #[arg(long, env = "LANDLORD_NATS_URL", requires_all = ["nats_signing_key_file", "nats_system_creds_file"])]
    pub nats_url: Option<String>,

    /// File holding the NATS operator signing key's seed (SO...); it signs the tenants'
    /// accounts.
    #[arg(long, env = "LANDLORD_NATS_SIGNING_KEY_FILE", value_name = "FILE")]
    pub nats_signing_key_file: Option<PathBuf>,

    /// `.creds` file of a NATS system-account user; it pushes and deletes the tenants'
    /// accounts.
    #[arg(long, env = "LANDLORD_NATS_SYSTEM_CREDS_FILE", value_name = "FILE")]
    pub nats_system_creds_file: Option<PathBuf>,

    /// Namespace the NATS server runs in: tenants with topics and Strict isolation may send
    /// to it on the URL's ports (NetworkPolicy landlord-egress). Leave unset when NATS runs
    /// outside the cluster, and give --nats-cidrs instead.
    #[arg(long, env = "LANDLORD_NATS_NAMESPACE")]
    pub nats_namespace: Option<String>,

    /// Labels of the NATS server's pods in --nats-namespace (comma-separated `key=value`):
    /// tenants' egress admits those pods only, not every pod of the namespace.
    #[arg(
        long,
        env = "LANDLORD_NATS_POD_SELECTOR",
        value_delimiter = ',',
        requires = "nats_namespace"
    )]
    pub nats_pod_selector: Vec<String>,

    /// Addresses of a NATS server outside the cluster (comma-separated CIDRs, e.g.
    /// 10.0.5.7/32): tenants with topics and Strict isolation may send to them on the URL's
    /// ports. Without this or --nats-namespace, their pods cannot reach NATS.
    #[arg(long, env = "LANDLORD_NATS_CIDRS", value_delimiter = ',')]
    pub nats_cidrs: Vec<String>,

    /// Size in bytes of a topic's stream when its spec sets no maxBytes.
    #[arg(long, env = "LANDLORD_NATS_DEFAULT_TOPIC_BYTES", default_value_t = 1 << 30, value_parser = clap::value_parser!(i64).range(1024..))]
    pub nats_default_topic_bytes: i64,

    /// Concurrent connections of a tenant's NATS account when spec.quota.nats.connections
    /// sets none (Landlord's own connection that manages the streams counts too).
    #[arg(long, env = "LANDLORD_NATS_DEFAULT_CONNECTIONS", default_value_t = TenantLimits::DEFAULT.connections, value_parser = clap::value_parser!(i64).range(2..=100_000))]
    pub nats_default_connections: i64,

    /// Subscriptions of one connection of a tenant when
    /// spec.quota.nats.subscriptionsPerConnection sets none.
    #[arg(long, env = "LANDLORD_NATS_DEFAULT_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = TenantLimits::DEFAULT.subscriptions_per_connection, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    pub nats_default_subscriptions_per_connection: i64,

    /// Largest message in bytes a tenant may publish when spec.quota.nats.maxPayloadBytes
    /// sets none.
    #[arg(long, env = "LANDLORD_NATS_DEFAULT_MAX_PAYLOAD_BYTES", default_value_t = TenantLimits::DEFAULT.max_payload_bytes, value_parser = clap::value_parser!(i64).range(1024..=67_108_864))]
    pub nats_default_max_payload_bytes: i64,

    /// Consumers of one of a tenant's streams when spec.quota.nats.consumersPerStream sets
    /// none.
    #[arg(long, env = "LANDLORD_NATS_DEFAULT_CONSUMERS_PER_STREAM", default_value_t = TenantLimits::DEFAULT.consumers_per_stream, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub nats_default_consumers_per_stream: i64,

    /// DNS server that Domain verification asks for TXT records (`ip` or `ip:port`).
    /// Default: the first nameserver of /etc/resolv.conf.
    #[arg(long, env = "LANDLORD_DNS_RESOLVER", value_parser = parse_dns_server)]
    pub dns_resolver: Option<std::net::SocketAddr>,

    /// Zones the platform owns (comma-separated). In them a tenant holds `<tenant>.<zone>`
    /// and the names below it without a TXT record; any other name in them is refused.
    #[arg(long, env = "LANDLORD_PRE_VERIFIED_ZONES", value_delimiter = ',')]
    pub pre_verified_zones: Vec<String>,

    /// Names no tenant may hold (comma-separated), each with the names below it: a bare
    /// label such as `login` is reserved directly under every pre-verified zone, a hostname
    /// such as `status.example.com` as it is.
    #[arg(long, env = "LANDLORD_RESERVED_HOSTNAMES", value_delimiter = ',')]
    pub reserved_hostnames: Vec<String>,

    /// Gateway (in --gateway-namespace) that Domains' HTTPRoutes attach to.
    #[arg(long, env = "LANDLORD_GATEWAY_NAME", default_value = "landlord")]
    pub gateway_name: String,

    /// Where a Domain with TLS gets its HTTPS listener: `ListenerSet` (attached to
    /// --gateway-name, which must admit ListenerSets from tenant namespaces) or `Gateway` (a
    /// Gateway of --https-gateway-class per Domain in the tenant's namespace, for Gateway API
    /// implementations that do not serve ListenerSets).
    #[arg(long, env = "LANDLORD_HTTPS_LISTENER", default_value = "ListenerSet", value_parser = ["ListenerSet", "Gateway"])]
    pub https_listener: String,

    /// Node labels the platform's shared workloads (the pool's service instances, the pooled
    /// tenant-runtime) require: comma-separated `key=value`.
    #[arg(long, env = "LANDLORD_POOL_NODE_SELECTOR", value_delimiter = ',')]
    pub pool_node_selector: Vec<String>,

    /// Node taints the platform's shared workloads tolerate: comma-separated
    /// `key[=value][:effect]` (kubectl taint's syntax; without a value, any value).
    #[arg(long, env = "LANDLORD_POOL_TOLERATIONS", value_delimiter = ',')]
    pub pool_tolerations: Vec<String>,

    /// GatewayClass of the Domains' Gateways (needed with --https-listener Gateway).
    #[arg(long, env = "LANDLORD_HTTPS_GATEWAY_CLASS")]
    pub https_gateway_class: Option<String>,

    /// cert-manager ClusterIssuer of Domains with managed TLS whose spec.tls.issuer is unset.
    #[arg(long, env = "LANDLORD_CLUSTER_ISSUER")]
    pub cluster_issuer: Option<String>,

    /// ClusterIssuers a Domain may name in spec.tls.issuer besides --cluster-issuer
    /// (comma-separated); any other issuer is refused.
    #[arg(long, env = "LANDLORD_CERTIFICATE_ISSUERS", value_delimiter = ',')]
    pub certificate_issuers: Vec<String>,

    /// ingressClassName of the Ingresses written where Gateway API is not installed.
    #[arg(long, env = "LANDLORD_INGRESS_CLASS")]
    pub ingress_class: Option<String>,

    /// Seconds between two lookups of an unverified Domain's TXT record, at first (later,
    /// the longer it stays unverified, the rarer, up to 15 minutes).
    #[arg(long, env = "LANDLORD_VERIFICATION_INTERVAL_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub verification_interval_seconds: u64,

    /// `postgres://` URL of the webhook outbox database (the operator creates its tables):
    /// where events wait until their WebhookEndpoints took them. Without it, no events are
    /// sent and endpoints report WebhooksNotConfigured. Holds a password: give it through
    /// the environment (a Secret), not the command line.
    #[arg(long, env = "LANDLORD_WEBHOOK_DATABASE_URL", hide_env_values = true)]
    pub webhook_database_url: Option<String>,

    /// Which WebhookEndpoints may send to private addresses (loopback, RFC 1918, link-local,
    /// CGNAT, IPv6 unique-local) and use plain http: none, platform (endpoints in the
    /// platform namespace, written by platform admins) or all (tenants' too: only where
    /// tenants are trusted, as a tenant could otherwise make the operator probe the cluster's
    /// network).
    #[arg(
        long,
        env = "LANDLORD_WEBHOOK_PRIVATE_NETWORKS",
        default_value = "platform"
    )]
    pub webhook_private_networks: landlord_controllers::webhooks::delivery::PrivateNetworks,

    /// Seconds one delivery attempt may take (connect, send, answer). A delivery whose
    /// sender died is sent again after twice this.
    #[arg(long, env = "LANDLORD_WEBHOOK_TIMEOUT_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub webhook_timeout_seconds: u64,
}

fn parse_dns_server(text: &str) -> Result<std::net::SocketAddr, String> {
    landlord_controllers::domain::dns::parse_server(text)
        .ok_or_else(|| format!("{text} is not an IP address or ip:port"))
}

impl RunArgs {
    fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "landlord".into());
            format!("{host}-{}", std::process::id())
        })
    }

    /// Where the pool and the pooled tenant-runtime run, from --pool-node-selector and
    /// --pool-tolerations; errors name the flag and the entry.
    fn pool_placement(&self) -> anyhow::Result<Placement> {
        let node_selector = labels("--pool-node-selector", &self.pool_node_selector)?;
        let tolerations = self
            .pool_tolerations
            .iter()
            .filter(|t| !t.trim().is_empty())
            .map(|text| {
                let (rest, effect) = match text.trim().rsplit_once(':') {
                    Some((rest, effect)) => (rest, Some(effect)),
                    None => (text.trim(), None),
                };
                let (key, value) = match rest.split_once('=') {
                    Some((key, value)) => (key, Some(value)),
                    None => (rest, None),
                };
                anyhow::ensure!(
                    is_label_key(key) && value.is_none_or(is_label_value),
                    "--pool-tolerations: {text:?}: the key must be a label key and the value a label value"
                );
                serde_json::from_value(serde_json::json!({
                    "key": key,
                    "operator": if value.is_some() { "Equal" } else { "Exists" },
                    "value": value,
                    "effect": effect,
                }))
                .with_context(|| {
                    format!("--pool-tolerations: {text:?} is not key[=value][:NoSchedule|PreferNoSchedule|NoExecute]")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Placement {
            node_selector,
            tolerations,
        })
    }

    /// Where Domains get their HTTPS listeners; `Gateway` needs --https-gateway-class.
    fn https_listener(&self) -> anyhow::Result<HttpsListener> {
        match (self.https_listener.as_str(), &self.https_gateway_class) {
            ("Gateway", Some(class)) => Ok(HttpsListener::Gateway {
                class: class.clone(),
            }),
            ("Gateway", None) => anyhow::bail!(
                "--https-listener Gateway needs --https-gateway-class (the GatewayClass of the Domains' Gateways)"
            ),
            (_, Some(_)) => {
                anyhow::bail!("--https-gateway-class is used only with --https-listener Gateway")
            }
            _ => Ok(HttpsListener::ListenerSet),
        }
    }

    /// The NATS settings, with the key material read from its files (never logged).
    fn nats_config(&self) -> anyhow::Result<Option<NatsConfig>> {
        let Some(url) = &self.nats_url else {
            return Ok(None);
        };
        let (Some(seed_file), Some(creds_file)) =
            (&self.nats_signing_key_file, &self.nats_system_creds_file)
        else {
            anyhow::bail!("--nats-url needs --nats-signing-key-file and --nats-system-creds-file");
        };
        let seed = std::fs::read_to_string(seed_file)
            .with_context(|| format!("--nats-signing-key-file: reading {}", seed_file.display()))?;
        let signing_key = NatsConfig::signing_key_from_seed(&seed)
            .map_err(|e| anyhow::anyhow!("--nats-signing-key-file {}: {e}", seed_file.display()))?;
        let system_creds = std::fs::read_to_string(creds_file).with_context(|| {
            format!("--nats-system-creds-file: reading {}", creds_file.display())
        })?;
        Ok(Some(NatsConfig {
            url: url.clone(),
            signing_key: Arc::new(signing_key),
            system_creds: system_creds.into(),
            network: landlord_controllers::config::NetworkLocation {
                namespace: match &self.nats_namespace {
                    Some(namespace) if !landlord_controllers::config::is_dns_label(namespace) => {
                        anyhow::bail!("--nats-namespace: {namespace:?} is not a DNS label")
                    }
                    namespace => namespace.clone(),
                },
                pod_selector: labels("--nats-pod-selector", &self.nats_pod_selector)?,
                cidrs: checked_cidrs("--nats-cidrs", &self.nats_cidrs)?,
            },
            default_topic_bytes: self.nats_default_topic_bytes,
            limits: TenantLimits {
                connections: self.nats_default_connections,
                subscriptions_per_connection: self.nats_default_subscriptions_per_connection,
                max_payload_bytes: self.nats_default_max_payload_bytes,
                consumers_per_stream: self.nats_default_consumers_per_stream,
            },
        }))
    }

    fn controller_config(&self) -> anyhow::Result<Config> {
        let servers = match &self.database_servers {
            Some(path) => {
                let yaml = std::fs::read_to_string(path)
                    .with_context(|| format!("--database-servers: reading {}", path.display()))?;
                parse_servers(&yaml)
                    .with_context(|| format!("--database-servers: {}", path.display()))?
            }
            None => Vec::new(),
        };
        if let Some(bad) = self.database_extensions.iter().find(|e| {
            e.is_empty()
                || !e
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        }) {
            anyhow::bail!("--database-extensions: {bad:?} is not an extension name");
        }
        let pre_verified_zones = dns_names("--pre-verified-zones", &self.pre_verified_zones)?;
        let reserved_hostnames = dns_names("--reserved-hostnames", &self.reserved_hostnames)?;
        let certificate_issuers = dns_names("--certificate-issuers", &self.certificate_issuers)?;
        let cluster_issuer = match &self.cluster_issuer {
            Some(issuer) => dns_names("--cluster-issuer", std::slice::from_ref(issuer))?
                .into_iter()
                .next(),
            None => None,
        };
        Ok(Config {
            platform_namespace: self.platform_namespace.clone(),
            gateway_namespace: self.gateway_namespace.clone(),
            dns_namespace: self.dns_namespace.clone(),
            concurrency: self.concurrency,
            database: DatabaseConfig {
                servers,
                extensions: self.database_extensions.clone(),
                default_connection_limit: self.database_connection_limit,
                postgres_image: self.postgres_image.clone(),
                default_version: self.postgres_version.clone(),
                default_storage: self.postgres_storage.clone(),
            },
            runtime_image: self.runtime_image.clone(),
            image_pull_policy_always: self.image_pull_policy_always,
            secrets_cluster_role: self.secrets_cluster_role.clone(),
            // Asked of the API server once connected (see `run`).
            service_account: None,
            operator_source_cidrs: checked_cidrs(
                "--operator-source-cidrs",
                &self.operator_source_cidrs,
            )?,
            pool_placement: self.pool_placement()?,
            nats: self.nats_config()?,
            domains: landlord_controllers::domain::DomainConfig {
                dns_resolver: self.dns_resolver,
                pre_verified_zones,
                reserved_hostnames,
                gateway_name: self.gateway_name.clone(),
                https_listener: self.https_listener()?,
                cluster_issuer,
                certificate_issuers,
                ingress_class: self.ingress_class.clone(),
                verification_interval: Duration::from_secs(self.verification_interval_seconds),
            },
            webhooks: self.webhook_database_url.as_ref().map(|url| {
                landlord_controllers::webhooks::WebhookConfig {
                    database_url: url.clone(),
                    private_networks: self.webhook_private_networks,
                    timeout: Duration::from_secs(self.webhook_timeout_seconds),
                }
            }),
            ..Config::default()
        })
    }
}

/// DNS names (zones, hostnames, labels, issuer names) of a list flag: trimmed, without a
/// trailing dot, lowercase (as the CRD's hostnames are, so that they compare); empty
/// entries dropped, anything else that is not a DNS name refused.
fn dns_names(flag: &str, values: &[String]) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for value in values {
        let name = value.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if name.len() > 253 || !name.split('.').all(label_ok) {
            anyhow::bail!("{flag}: {value:?} is not a DNS name");
        }
        names.push(name);
    }
    Ok(names)
}

async fn client(args: &RunArgs) -> anyhow::Result<Client> {
    let config = match &args.kubeconfig {
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

/// The CRDs the controllers watch. Without them the watches would fail in a loop, so the
/// operator waits (reporting not-ready) instead of crash-looping.
const CRDS: &[&str] = &[
    "tenants.landlord.dev",
    "services.landlord.dev",
    "domains.landlord.dev",
    "featureflagsets.landlord.dev",
    "webhookendpoints.landlord.dev",
];

async fn wait_for_crds(client: &Client) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let mut reported = false;
    loop {
        let mut missing = Vec::new();
        for name in CRDS {
            let established = match api.get_opt(name).await {
                Ok(Some(crd)) => crd
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True"),
                Ok(None) => false,
                Err(e) => {
                    warn!(error = %e, "reading CRDs failed");
                    false
                }
            };
            if !established {
                missing.push(*name);
            }
        }
        if missing.is_empty() {
            return;
        }
        if !reported {
            warn!(?missing, "waiting for the Landlord CRDs to be installed");
            reported = true;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// The ServiceAccount this process authenticates as (SelfSubjectReview, which every
/// authenticated identity may ask), or None for a user.
async fn service_account(
    client: &kube::Client,
) -> anyhow::Result<Option<landlord_controllers::config::ServiceAccountName>> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let review = kube::Api::<SelfSubjectReview>::all(client.clone())
        .create(
            &kube::api::PostParams::default(),
            &SelfSubjectReview::default(),
        )
        .await
        .context("asking the API server who the operator is (SelfSubjectReview)")?;
    let username = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default();
    let account = landlord_controllers::config::ServiceAccountName::from_username(&username);
    match &account {
        Some(account) => info!(
            namespace = %account.namespace,
            name = %account.name,
            "running as a ServiceAccount: it binds its Secrets role in the namespaces it keeps Secrets in"
        ),
        None => info!(user = %username, "running as a user: no Secrets role bindings"),
    }
    Ok(account)
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Configuration errors stop the operator before it connects anywhere.
    let mut config = args.controller_config()?;
    let client = client(&args).await?;
    config.service_account = service_account(&client).await?;
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry)?;
    let health = Arc::new(Health::default());
    let server = tokio::spawn(http::serve(args.probe_address, health.clone(), registry));

    let (stop_tx, stop_rx) = watch::channel(false);
    let caches = health.caches.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutdown requested");
        // Reconciles waiting for caches give up at once: a stopping controller no longer
        // feeds them.
        caches.stop();
        let _ = stop_tx.send(true);
    });

    tokio::select! {
        _ = wait_for_crds(&client) => {}
        _ = stopped(stop_rx.clone()) => return Ok(()),
        result = server => return Err(anyhow::anyhow!("HTTP server stopped: {result:?}")),
    }
    health.ready.store(true, Ordering::Relaxed);

    let identity = args.identity();
    let mut elector = args.leader_election.then(|| {
        let timing = Timing::for_lease(Duration::from_secs(args.lease_duration_seconds));
        Elector::new(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &identity,
            timing,
        )
    });
    // One term per leadership: a replica that loses the lease (it could not renew it within
    // the renew deadline, say through an API server outage) stops its controllers and
    // campaigns again in the same process, so it leads again as soon as the API server is
    // back rather than after a restart and its back-off.
    loop {
        if let Some(elector) = elector.as_mut() {
            tokio::select! {
                _ = elector.acquire() => {}
                _ = stopped(stop_rx.clone()) => return Ok(()),
            }
        }
        health.leader.store(true, Ordering::Relaxed);
        let (term_tx, term_rx) = watch::channel(false);
        let mut term = lead(
            &client,
            config.clone(),
            metrics.clone(),
            &identity,
            &health,
            term_rx,
        )
        .await;
        let lost = match elector.as_mut() {
            Some(elector) => {
                tokio::select! {
                    _ = elector.keep_renewing() => true,
                    _ = stopped(stop_rx.clone()) => false,
                }
            }
            _ => {
                stopped(stop_rx.clone()).await;
                false
            }
        };
        health.leader.store(false, Ordering::Relaxed);
        health.caches.stop();
        let _ = term_tx.send(true);
        // Graceful: in-flight reconciles finish, then the lease is handed over at once. Lost:
        // another replica may take the lease once it expires, so in-flight reconciles get
        // only until then (the lease outlives the renew deadline); reconciles are
        // idempotent, and aborted ones are redone by the next leader.
        let grace = match (&elector, lost) {
            (Some(elector), true) => elector
                .timing()
                .lease_duration
                .saturating_sub(elector.timing().renew_deadline),
            _ => Duration::from_secs(20),
        };
        if tokio::time::timeout(grace, &mut term).await.is_err() {
            warn!(
                seconds = grace.as_secs(),
                "controllers did not stop in time; aborting them"
            );
            term.abort();
            let _ = term.await;
        }
        if !lost {
            if let Some(elector) = elector.as_mut() {
                elector.release().await;
            }
            break;
        }
        error!("lost leadership: controllers stopped; campaigning again");
        health.caches.resume();
    }
    info!("stopped");
    Ok(())
}

/// Starts one leadership term's controllers (fresh caches and watches, so nothing of an
/// earlier term's view survives) and returns the task that runs them until `term` says stop.
async fn lead(
    client: &kube::Client,
    config: landlord_controllers::Config,
    metrics: Metrics,
    identity: &str,
    health: &Health,
    term: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut context = Context::new(client.clone(), config, metrics, Some(identity.to_string()));
    context.caches = health.caches.clone();
    let ctx = Arc::new(context);
    // The platform namespace's Secrets binding before the controllers read the tenant key
    // there (a missing platform namespace is waited for by the pool loop, which binds then).
    if let Err(e) = landlord_controllers::pool::ensure_operator_binding(&ctx).await {
        warn!(error = %e, "binding the operator's Secrets role in the platform namespace failed; the pool loop retries");
    }
    // Each kind several controllers read is watched once; every controller subscribes
    // before the watches start, so that each sees the first list.
    let reflectors = landlord_controllers::reflectors::Reflectors::new(&ctx);
    use landlord_controllers::{domain, flags, service, tenant, webhooks};
    let done = |name: &'static str| move |()| info!(controller = name, "controller stopped");
    let tenants = tenant::run(ctx.clone(), &reflectors, stopped(term.clone())).map(done("tenant"));
    let flag_sets =
        flags::run(ctx.clone(), &reflectors, stopped(term.clone())).map(done("featureflagset"));
    let services =
        service::run(ctx.clone(), &reflectors, stopped(term.clone())).map(done("service"));
    let domains = domain::run(ctx.clone(), &reflectors, stopped(term.clone())).map(done("domain"));
    let webhooks =
        webhooks::run(ctx.clone(), &reflectors, stopped(term.clone())).map(done("webhooks"));
    let pool = tenant::runtime::run_pool(ctx, stopped(term));
    let watches = reflectors.start();
    info!(identity = %identity, "controllers started");
    tokio::spawn(async move {
        tokio::join!(tenants, flag_sets, services, domains, webhooks, pool);
        drop(watches);
    })
}

/// Resolves once `rx` says stop.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_name_flags_are_normalised_and_checked() {
        let given: Vec<String> = [" Apps.Example.com. ", "", "login", "a-1.b"]
            .map(String::from)
            .into();
        assert_eq!(
            dns_names("--x", &given).expect("valid"),
            ["apps.example.com", "login", "a-1.b"]
        );
        for bad in ["*.example.com", "a..b", "-a.com", "a_b", "a b"] {
            let error = dns_names("--reserved-hostnames", &[bad.to_string()])
                .expect_err(bad)
                .to_string();
            assert!(error.starts_with("--reserved-hostnames:"), "{error}");
        }
    }

    fn parse(args: &[&str]) -> RunArgs {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            run: RunArgs,
        }
        <Command as clap::Parser>::try_parse_from(
            std::iter::once("landlord").chain(args.iter().copied()),
        )
        .expect("flags parse")
        .run
    }

    #[test]
    fn https_listeners_are_listener_sets_unless_a_gateway_class_is_named_with_gateway() {
        assert_eq!(
            parse(&[]).https_listener().expect("default"),
            HttpsListener::ListenerSet
        );
        assert_eq!(
            parse(&[
                "--https-listener",
                "Gateway",
                "--https-gateway-class",
                "traefik"
            ])
            .https_listener()
            .expect("gateway"),
            HttpsListener::Gateway {
                class: "traefik".into()
            }
        );
        let missing = parse(&["--https-listener", "Gateway"])
            .https_listener()
            .expect_err("no class")
            .to_string();
        assert!(missing.contains("--https-gateway-class"), "{missing}");
        let stray = parse(&["--https-gateway-class", "traefik"])
            .https_listener()
            .expect_err("class without Gateway")
            .to_string();
        assert!(stray.contains("--https-listener Gateway"), "{stray}");
    }

    #[test]
    fn pool_placement_reads_label_pairs_and_kubectl_taint_syntax() {
        let placement = parse(&[
            "--pool-node-selector",
            "landlord.dev/node=real,zone=a",
            "--pool-tolerations",
            "landlord.dev/real-node:NoSchedule,dedicated=pool,any",
        ])
        .pool_placement()
        .expect("valid");
        assert_eq!(
            serde_json::to_value(&placement).expect("json"),
            serde_json::json!({
                "nodeSelector": {"landlord.dev/node": "real", "zone": "a"},
                "tolerations": [
                    {"key": "landlord.dev/real-node", "operator": "Exists", "effect": "NoSchedule"},
                    {"key": "dedicated", "operator": "Equal", "value": "pool"},
                    {"key": "any", "operator": "Exists"},
                ],
            })
        );
        assert_eq!(
            parse(&[]).pool_placement().expect("none"),
            Placement::default()
        );
        let error = parse(&["--pool-node-selector", "real"])
            .pool_placement()
            .expect_err("no value")
            .to_string();
        assert!(error.contains("--pool-node-selector"), "{error}");
        for bad in ["=x", "a b=c", "k=v=w", "-k=v", "example.com/=v"] {
            let error = parse(&[&format!("--pool-node-selector={bad}")])
                .pool_placement()
                .expect_err(bad)
                .to_string();
            assert!(error.contains("--pool-node-selector"), "{bad}: {error}");
        }
        let error = parse(&["--pool-tolerations", "bad key:NoSchedule"])
            .pool_placement()
            .expect_err("bad key")
            .to_string();
        assert!(error.contains("--pool-tolerations"), "{error}");
        let error = parse(&["--pool-tolerations", "key:Sometimes"])
            .pool_placement()
            .expect_err("bad effect")
            .to_string();
        assert!(error.contains("--pool-tolerations"), "{error}");
    }
}

/// The labels of `pairs` (`key=value`, blank entries skipped), or an error naming `flag`
/// and the first entry that is not a label key and value.
fn labels(
    flag: &str,
    pairs: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut labels = std::collections::BTreeMap::new();
    for pair in pairs.iter().filter(|p| !p.trim().is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("{flag}: {pair:?} is not key=value"))?;
        let (key, value) = (key.trim(), value.trim());
        anyhow::ensure!(
            is_label_key(key) && is_label_value(value),
            "{flag}: {pair:?} is not a label key=value (key: an optional DNS subdomain and '/', then a name of at most 63 alphanumerics, '-', '_' or '.'; value: such a name or empty)"
        );
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(labels)
}

/// `cidrs`, or an error naming `flag` and the first that is not an address and a prefix
/// length that fits it (`10.0.0.0/8`, `2001:db8::/32`): a bad one would make tenants'
/// NetworkPolicies invalid.
fn checked_cidrs(flag: &str, cidrs: &[String]) -> anyhow::Result<Vec<String>> {
    match cidrs
        .iter()
        .find(|cidr| !landlord_controllers::config::is_cidr(cidr))
    {
        Some(bad) => anyhow::bail!("{flag}: {bad:?} is not a CIDR such as 10.0.0.0/8"),
        None => Ok(cidrs.to_vec()),
    }
}

#[cfg(test)]
mod network_flag_tests {
    use super::{checked_cidrs, labels};

    #[test]
    fn label_flags_are_checked_at_startup() {
        let pairs = [
            "app.kubernetes.io/name=nats".to_string(),
            " ".into(),
            "tier=".into(),
        ];
        let selector = labels("--nats-pod-selector", &pairs).expect("labels");
        assert_eq!(selector.len(), 2);
        assert_eq!(selector["app.kubernetes.io/name"], "nats");
        for bad in ["app", "app=-nats", "-app=nats", "Example.com/app=nats"] {
            let error = labels("--nats-pod-selector", &[bad.to_string()])
                .expect_err(bad)
                .to_string();
            assert!(error.contains("--nats-pod-selector"), "{error}");
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
    }

    #[test]
    fn cidr_flags_are_checked_at_startup() {
        for good in ["10.246.0.0/24", "0.0.0.0/0", "2001:db8::/32"] {
            assert!(
                checked_cidrs("--nats-cidrs", &[good.into()]).is_ok(),
                "{good}"
            );
        }
        for bad in [
            "10.246.0.0",
            "10.246.0.0/33",
            "10.0.0.0/+8",
            "10.0.0.0/",
            "example.com/8",
            "fd00::/129",
            "",
        ] {
            let cidrs = ["10.0.0.0/8".to_string(), bad.to_string()];
            let error = checked_cidrs("--operator-source-cidrs", &cidrs)
                .expect_err(bad)
                .to_string();
            assert!(error.contains("--operator-source-cidrs"), "{error}");
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
    }
}

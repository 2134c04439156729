//! Running the operator binary against the local stack, as its chart's ServiceAccount.
//!
//! The tests install the ServiceAccount and RBAC from `manifests/install/landlord.yaml` (the
//! chart rendered), request a token for that ServiceAccount and hand the operator a
//! kubeconfig with only that token, so every test proves the chart's RBAC is sufficient.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use anyhow::Context;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::{Api, Client, api::PostParams, config::Kubeconfig};

use crate::{Cluster, cluster::repo_root, logs, manifests, unique_name};

/// Namespace and name of the operator's ServiceAccount in the rendered chart.
pub const NAMESPACE: &str = "landlord-system";
pub const SERVICE_ACCOUNT: &str = "landlord";
/// The Lease the chart's RBAC lets the operator use (its Role names this one Lease).
pub const LEASE: &str = "landlord-leader";

/// Kinds of the install manifest that give the operator its identity and rights.
const RBAC_KINDS: &[&str] = &[
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// Installs the chart's ServiceAccount and RBAC and writes a kubeconfig that authenticates
/// as that ServiceAccount. Returns the kubeconfig's path.
pub async fn service_account_kubeconfig(
    cluster: &Cluster,
    client: &Client,
) -> anyhow::Result<PathBuf> {
    chart_kubeconfig(cluster, client, SERVICE_ACCOUNT).await
}

/// Installs the chart's ServiceAccounts and RBAC (from `manifests/install/landlord.yaml`) and
/// writes a kubeconfig that authenticates as the chart's ServiceAccount `service_account`
/// (in [`NAMESPACE`]) and nothing else. Returns the kubeconfig's path.
pub async fn chart_kubeconfig(
    cluster: &Cluster,
    client: &Client,
    service_account: &str,
) -> anyhow::Result<PathBuf> {
    let install = manifests::read_documents(&repo_root().join("manifests/install/landlord.yaml"))?;
    let rbac: Vec<_> = install
        .iter()
        .filter(|o| {
            o.types
                .as_ref()
                .is_some_and(|t| RBAC_KINDS.contains(&t.kind.as_str()))
        })
        .collect();
    anyhow::ensure!(
        rbac.iter()
            .any(|o| o.types.as_ref().is_some_and(|t| t.kind == "ClusterRole")),
        "manifests/install/landlord.yaml has no ClusterRole"
    );
    for object in rbac {
        manifests::apply(client, object, None).await?;
    }
    let token = token_for(client, NAMESPACE, service_account, &[]).await?;

    // Same server and CA as the admin kubeconfig, but only the ServiceAccount's token.
    let admin = Kubeconfig::read_from(cluster.var("KUBECONFIG"))?;
    let cluster_entry = admin
        .clusters
        .first()
        .context("admin kubeconfig without cluster")?
        .clone();
    let name = cluster_entry.name.clone();
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster_entry],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": service_account, "context": {"cluster": name, "user": service_account}}],
        "current-context": service_account,
    });
    let path =
        Path::new(cluster.var("LANDLORD_DEV_DIR")).join(format!("kubeconfig-{service_account}"));
    std::fs::write(&path, serde_yaml::to_string(&kubeconfig)?)?;
    Ok(path)
}

/// A token of ServiceAccount `namespace/name` for `audiences` (empty: the API server's
/// own), valid for six hours.
pub async fn token_for(
    client: &Client,
    namespace: &str,
    name: &str,
    audiences: &[&str],
) -> anyhow::Result<String> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            expiration_seconds: Some(6 * 3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), namespace);
    Ok(accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for ServiceAccount {namespace}/{name}"))?
        .status
        .context("token request without status")?
        .token)
}

/// A running `landlord run` process; killed when dropped.
pub struct Operator {
    child: Child,
    pub identity: String,
    /// The port of /healthz, /readyz and /metrics, once the operator has logged it.
    probe_port: OnceLock<u16>,
    pub log: PathBuf,
}

/// How to start an operator.
pub struct Options<'a> {
    pub binary: &'a Path,
    pub kubeconfig: &'a Path,
    pub lease_name: &'a str,
    pub lease_duration_seconds: u64,
    /// More flags of `landlord run`, e.g. `--database-servers <file>`.
    pub args: &'a [String],
}

impl Operator {
    /// Starts the operator and waits until its /readyz answers.
    pub async fn start(cluster: &Cluster, options: &Options<'_>) -> anyhow::Result<Self> {
        let mut operator = Self::start_unready(cluster, options)?;
        for _ in 0..150 {
            if let Ok(body) = operator.get("/readyz").await
                && body.starts_with("ok")
            {
                return Ok(operator);
            }
            if let Some(status) = operator.child.try_wait()? {
                anyhow::bail!(
                    "the operator exited with {status}; log: {}",
                    operator.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!(
            "the operator never became ready; log: {}",
            operator.log_text()
        )
    }

    /// The port of /healthz, /readyz and /metrics, read from the log ("serving /healthz,
    /// /readyz and /metrics") once the operator has bound it.
    pub fn probe_port(&self) -> Option<u16> {
        if let Some(port) = self.probe_port.get() {
            return Some(*port);
        }
        let bound = logs::bound_address(
            &self.log,
            "serving /healthz, /readyz and /metrics",
            "address",
        )?;
        Some(*self.probe_port.get_or_init(|| bound.port()))
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Starts the operator without waiting for anything.
    pub fn start_unready(cluster: &Cluster, options: &Options<'_>) -> anyhow::Result<Self> {
        let identity = unique_name("operator");
        let log = Path::new(cluster.var("LANDLORD_DEV_DIR"))
            .join("logs")
            .join(format!("{identity}.log"));
        std::fs::create_dir_all(log.parent().context("log path has a parent")?)?;
        let child = Command::new(options.binary)
            .args([
                "run",
                "--log-format",
                "json",
                "--lease-namespace",
                NAMESPACE,
            ])
            .arg("--kubeconfig")
            .arg(options.kubeconfig)
            .args(["--lease-name", options.lease_name, "--identity", &identity])
            .args([
                "--lease-duration-seconds",
                &options.lease_duration_seconds.to_string(),
            ])
            // Port 0: the kernel chooses, the operator logs what it bound (no race for a port).
            .args(["--probe-address", "127.0.0.1:0"])
            .args(options.args)
            // The local stack's NATS, unless the test points the operator elsewhere.
            .args(if options.args.iter().any(|a| a == "--nats-url") {
                Vec::new()
            } else {
                nats_args(cluster)
            })
            .env("RUST_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", options.binary.display()))?;
        Ok(Self {
            child,
            identity,
            probe_port: OnceLock::new(),
            log,
        })
    }

    /// GET on the operator's probe port; the body when the status is 200, else an error
    /// with the status line and the body.
    pub async fn get(&self, path: &str) -> anyhow::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let port = self
            .probe_port()
            .context("the operator has not logged its probe address yet")?;
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .context("malformed HTTP response")?;
        anyhow::ensure!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{path}: {head}: {body}"
        );
        Ok(body.to_string())
    }

    /// The value of a counter or gauge on /metrics, summed over all label sets.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = self.get("/metrics").await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Whether this replica says it leads.
    pub async fn is_leader(&self) -> bool {
        self.get("/readyz")
            .await
            .is_ok_and(|b| b.contains("leader: true"))
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
        anyhow::bail!("the operator did not stop within 30s of SIGTERM")
    }

    /// Kills the process at once (a crash, from the cluster's point of view).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status once the process has exited, without waiting.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    /// Stops the operator gracefully, so that it releases the Lease and the next test's
    /// operator leads at once.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) && self.terminate().is_err() {
            self.kill();
        }
    }
}

/// Starts one operator the way most tests run it: as the chart's ServiceAccount, holding
/// the test lease (`LEASE`, 15 seconds), with `args` added to the stack's own flags.
pub async fn start_as_chart(
    cluster: &Cluster,
    client: &Client,
    binary: &Path,
    args: &[String],
) -> anyhow::Result<Operator> {
    let kubeconfig = service_account_kubeconfig(cluster, client).await?;
    Operator::start(
        cluster,
        &Options {
            binary,
            kubeconfig: &kubeconfig,
            lease_name: LEASE,
            lease_duration_seconds: 15,
            args,
        },
    )
    .await
}

/// The flags that point the operator at the local stack's NATS server (operator mode: its
/// URL, the operator signing key and the system account's creds).
pub fn nats_args(cluster: &Cluster) -> Vec<String> {
    let vars = cluster.vars();
    [
        ("--nats-url", "LANDLORD_NATS_URL"),
        ("--nats-signing-key-file", "LANDLORD_NATS_SIGNING_KEY_FILE"),
        (
            "--nats-system-creds-file",
            "LANDLORD_NATS_SYSTEM_CREDS_FILE",
        ),
    ]
    .into_iter()
    .filter_map(|(flag, var)| Some([flag.to_string(), vars.get(var)?.clone()]))
    .flatten()
    .collect()
}

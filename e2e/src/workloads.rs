//! Pods that really run: the local stack's real nodes (containerd, kubelet, CNI, kube-proxy;
//! `e2e/scripts/real-nodes.sh`), and what a test needs to put its workloads there and read
//! what they did.
//!
//! Real nodes are tainted and labelled, so only what asks for them lands there: a Tenant
//! through its `spec.placement` ([`placement`]), a test's own pod through [`on_real_nodes`].

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::{DeleteParams, LogParams, PostParams},
};

use crate::{Cluster, wait};

/// PostgreSQL 15 (with `psql` and `sh`, so client pods use it too), as the real nodes pull
/// it from the stack's registry (built by `e2e/scripts/build-images.sh`).
pub const POSTGRES_IMAGE: &str = "docker.io/library/postgres:15";

/// The real nodes' label (`key`, `value`) and taint key, from the stack's env file. Errors
/// (loudly: a test that needs real nodes never passes without them) when the stack has none.
pub fn real_nodes(cluster: &Cluster) -> anyhow::Result<(String, String, String)> {
    let count: u32 = cluster
        .vars()
        .get("LANDLORD_REAL_NODES")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    anyhow::ensure!(
        count > 0,
        "this test runs pods on real nodes, and the local stack has none: start it with real nodes (e2e/cluster up, as root, LANDLORD_DEV_REAL_NODES unset or > 0)"
    );
    let (key, value) = cluster
        .var("LANDLORD_REAL_NODE_LABEL")
        .split_once('=')
        .context("LANDLORD_REAL_NODE_LABEL is key=value")?;
    Ok((
        key.to_string(),
        value.to_string(),
        cluster.var("LANDLORD_REAL_NODE_TAINT").to_string(),
    ))
}

/// A Tenant's `spec.placement` that puts its pods on the real nodes.
pub fn placement(cluster: &Cluster) -> anyhow::Result<serde_json::Value> {
    let (key, value, taint) = real_nodes(cluster)?;
    Ok(serde_json::json!({
        "nodeSelector": {key: value},
        "tolerations": [{"key": taint, "operator": "Exists", "effect": "NoSchedule"}],
    }))
}

/// Flags an operator running on this host needs for workloads on the real nodes: its
/// connections come from the node network (`--operator-source-cidrs`), which dedicated
/// tenants' NetworkPolicies must admit to their servers.
pub fn operator_args(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    real_nodes(cluster)?;
    Ok(vec![
        "--operator-source-cidrs".into(),
        cluster.var("LANDLORD_REAL_NODE_NETWORK").into(),
    ])
}

/// The stack's PostgreSQL and NATS as the real nodes' pods reach them: at the host's address
/// on the bridge (`LANDLORD_REAL_HOST_IP`), outside the cluster. Registers the PostgreSQL
/// server as the shared server `host` (a provisioner role of its own, with CREATEROLE and
/// CREATEDB but no superuser; its Secret in the operator's namespace) and points the
/// operator's NATS there, each with that address for the tenants' egress policy
/// (`network.cidrs`, `--nats-cidrs`). Returns the operator's flags.
pub async fn host_services_args(cluster: &Cluster, client: &Client) -> anyhow::Result<Vec<String>> {
    use sqlx::{Connection, Executor};
    use std::str::FromStr;

    real_nodes(cluster)?;
    let host = cluster.var("LANDLORD_REAL_HOST_IP");
    let admin = sqlx::postgres::PgConnectOptions::from_str(cluster.var("LANDLORD_POSTGRES_URL"))?;
    let role = crate::unique_name("provisioner");
    let password = crate::unique_name("pw");
    let mut conn = sqlx::PgConnection::connect_with(&admin).await?;
    conn.execute(
        format!("CREATE ROLE \"{role}\" LOGIN CREATEROLE CREATEDB PASSWORD '{password}'").as_str(),
    )
    .await?;
    conn.close().await?;
    crate::manifests::ensure_namespace(client, crate::operator::NAMESPACE).await?;
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": role},
        "stringData": {"username": role, "password": password},
    }))?;
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
        client.clone(),
        crate::operator::NAMESPACE,
    )
    .create(&PostParams::default(), &secret)
    .await?;
    let file = std::path::Path::new(cluster.var("LANDLORD_DEV_DIR"))
        .join(format!("{}.yaml", crate::unique_name("host-servers")));
    std::fs::write(
        &file,
        format!(
            "- name: host\n  host: {host}\n  port: {}\n  capacity: 100\n  sslMode: disable\n  adminSecret: {{namespace: {}, name: {role}}}\n  network: {{cidrs: [{host}/32]}}\n",
            admin.get_port(),
            crate::operator::NAMESPACE,
        ),
    )?;
    let mut args = vec![
        "--database-servers".to_string(),
        file.display().to_string(),
        "--nats-cidrs".to_string(),
        format!("{host}/32"),
    ];
    // With real nodes, the stack's NATS already listens (and its URL points) there.
    args.extend(crate::operator::nats_args(cluster));
    Ok(args)
}

/// The StorageClass of the real nodes' volumes (local volumes made by `e2e/cluster up`).
pub fn storage_class(cluster: &Cluster) -> &str {
    cluster.var("LANDLORD_REAL_STORAGE_CLASS")
}

/// `pod` (JSON) with the real nodes' nodeSelector and toleration added.
pub fn on_real_nodes(cluster: &Cluster, mut pod: serde_json::Value) -> anyhow::Result<Pod> {
    let placement = placement(cluster)?;
    let spec = pod
        .get_mut("spec")
        .and_then(|s| s.as_object_mut())
        .context("a pod with a spec")?;
    spec.insert("nodeSelector".into(), placement["nodeSelector"].clone());
    spec.insert("tolerations".into(), placement["tolerations"].clone());
    Ok(serde_json::from_value(pod)?)
}

/// A container that runs as the `restricted` Pod Security Standard asks (tenant namespaces
/// enforce it): non-root, no privilege escalation, every capability dropped, read-only root.
pub fn restricted_container(name: &str, image: &str, command: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "Always",
        "command": command,
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "runAsUser": 999,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    })
}

/// What a pod that ran to completion did.
#[derive(Debug)]
pub struct Outcome {
    /// `Succeeded` or `Failed`.
    pub phase: String,
    /// The first container's log.
    pub log: String,
}

/// Creates `pod` (with `restartPolicy: Never`) in `ns`, waits until it has run to completion
/// (`timeout`), and returns its phase and log; the pod is deleted afterwards. Errors when it
/// cannot be created or does not finish in time (naming its last status).
pub async fn run_to_completion(
    client: &Client,
    ns: &str,
    pod: Pod,
    timeout: Duration,
) -> anyhow::Result<Outcome> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let name = pod.metadata.name.clone().context("a named pod")?;
    pods.create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating pod {ns}/{name}"))?;
    let done = wait::until(&format!("pod {ns}/{name} to finish"), timeout, || async {
        let pod = pods.get(&name).await?;
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        Ok(matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase))
    })
    .await;
    let log = pods
        .logs(&name, &LogParams::default())
        .await
        .unwrap_or_else(|e| format!("(no log: {e})"));
    let status = pods
        .get(&name)
        .await
        .ok()
        .and_then(|p| p.status)
        .map(|s| serde_json::to_string(&s).unwrap_or_default());
    pods.delete(&name, &DeleteParams::default().grace_period(0))
        .await
        .ok();
    let phase = done.with_context(|| {
        format!(
            "pod {ns}/{name}: status {}, log:\n{log}",
            status.unwrap_or_default()
        )
    })?;
    Ok(Outcome { phase, log })
}

/// The edge of the real nodes for one test (`e2e/scripts/gateway.yaml` in `namespace`):
/// Traefik as the Gateway API implementation of GatewayClass `class`, the platform's Gateway
/// `landlord`, a CA ClusterIssuer `issuer`, and cert-manager's controllers as a child process
/// of the test (stopped on drop, with the cluster-scoped objects). cert-manager is started
/// here rather than by `e2e/cluster up`: it would otherwise act on the Certificates of the
/// tests that play cert-manager themselves.
pub struct Edge {
    cluster: &'static Cluster,
    /// The gateway namespace (the operator's `--gateway-namespace`).
    pub namespace: String,
    pub class: String,
    pub issuer: String,
    cert_manager: std::process::Child,
    log: std::path::PathBuf,
}

impl Edge {
    /// Installs the edge in `namespace` (created if missing) and waits (`timeout`) until
    /// Traefik is ready and the ClusterIssuer is. Errors when the stack has no real nodes
    /// or cert-manager, or when either is not ready in time (naming cert-manager's log).
    pub async fn install(
        cluster: &'static Cluster,
        client: &Client,
        namespace: &str,
        timeout: Duration,
    ) -> anyhow::Result<Edge> {
        let (_, _, taint) = real_nodes(cluster)?;
        let binary = cluster
            .vars()
            .get("LANDLORD_CERT_MANAGER")
            .context(
                "the stack has no cert-manager (LANDLORD_CERT_MANAGER): start it with real nodes",
            )?
            .clone();
        let class = format!("{namespace}-traefik");
        let issuer = format!("{namespace}-ca");
        crate::manifests::ensure_namespace(client, namespace).await?;
        let template =
            std::fs::read_to_string(crate::cluster::repo_root().join("e2e/scripts/gateway.yaml"))?;
        let text = template
            .replace("@NAMESPACE@", namespace)
            .replace("@CLASS@", &class)
            .replace("@ISSUER@", &issuer)
            .replace("@IMAGE@", cluster.var("LANDLORD_TRAEFIK_IMAGE"))
            .replace("@TAINT@", &taint);
        let log = std::path::Path::new(cluster.var("LANDLORD_DEV_DIR"))
            .join("logs")
            .join(format!("cert-manager-{namespace}.log"));
        let out = std::fs::File::create(&log)?;
        let cert_manager = std::process::Command::new(&binary)
            .args(["-kubeconfig", cluster.var("KUBECONFIG")])
            .args(["-cluster-resource-namespace", namespace])
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {binary}"))?;
        let edge = Edge {
            cluster,
            namespace: namespace.into(),
            class,
            issuer,
            cert_manager,
            log,
        };
        for object in crate::manifests::parse_documents(&text)? {
            crate::manifests::apply(client, &object, None).await?;
        }
        let deployments =
            Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), namespace);
        wait::until("Traefik ready", timeout, || async {
            let d = deployments.get("traefik").await?;
            Ok((d.status.and_then(|s| s.ready_replicas) == Some(1)).then_some(()))
        })
        .await?;
        let issuers = Api::<kube::api::DynamicObject>::all_with(
            client.clone(),
            &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
                "cert-manager.io",
                "v1",
                "ClusterIssuer",
            )),
        );
        wait::until(
            &format!("ClusterIssuer {} ready", edge.issuer),
            timeout,
            || async {
                let issuer = issuers.get(&edge.issuer).await?;
                let ready = issuer.data["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                Ok(ready.then_some(()))
            },
        )
        .await
        .with_context(|| edge.log_text())?;
        Ok(edge)
    }

    /// The operator's flags for this edge: its gateway namespace, a Gateway of its class per
    /// Domain with TLS (Traefik v3.6 serves no ListenerSets), and its ClusterIssuer.
    pub fn operator_args(&self) -> Vec<String> {
        vec![
            format!("--gateway-namespace={}", self.namespace),
            "--https-listener=Gateway".into(),
            format!("--https-gateway-class={}", self.class),
            format!("--cluster-issuer={}", self.issuer),
        ]
    }

    /// The CA certificate (PEM) that signs the issuer's certificates.
    pub async fn ca_pem(&self, client: &Client) -> anyhow::Result<Vec<u8>> {
        let secrets =
            Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &self.namespace);
        let secret = secrets.get(&format!("{}-ca", self.issuer)).await?;
        let data = secret.data.unwrap_or_default();
        Ok(data
            .get("ca.crt")
            .or_else(|| data.get("tls.crt"))
            .context("the CA Secret has no certificate")?
            .0
            .clone())
    }

    /// Traefik's Service address (`ClusterIP:port`), which this host reaches through the
    /// real nodes' kube-proxy.
    pub async fn address(
        &self,
        client: &Client,
        port: u16,
    ) -> anyhow::Result<std::net::SocketAddr> {
        let services =
            Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), &self.namespace);
        let ip = services
            .get("traefik")
            .await?
            .spec
            .and_then(|s| s.cluster_ip)
            .context("Traefik's Service has no cluster IP")?;
        Ok(std::net::SocketAddr::new(ip.parse()?, port))
    }

    /// cert-manager's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.cert_manager.kill().ok();
        self.cert_manager.wait().ok();
        let name = format!("traefik-{}", self.namespace);
        for (kind, name) in [
            ("clusterrolebinding", name.as_str()),
            ("clusterrole", name.as_str()),
            ("gatewayclass", self.class.as_str()),
            ("clusterissuer", self.issuer.as_str()),
            ("clusterissuer", &format!("{}-bootstrap", self.issuer)),
            ("namespace", self.namespace.as_str()),
        ] {
            self.cluster
                .kubectl(&["delete", kind, name, "--ignore-not-found", "--wait=false"])
                .ok();
        }
    }
}

/// An HTTP/1.1 GET of `path` over TLS to `address`, with `hostname` as SNI and Host (unless
/// `headers` name another Host), the server's certificate verified against `ca_pem` only. Returns the status code and body;
/// errors when the handshake fails (an unverifiable certificate among others).
pub async fn https_get(
    address: std::net::SocketAddr,
    hostname: &str,
    ca_pem: &[u8],
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, String)> {
    use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .with_context(|| format!("connecting to {address}"))??;
    let mut tls = connector
        .connect(ServerName::try_from(hostname.to_string())?, tcp)
        .await
        .with_context(|| format!("TLS handshake with {address} as {hostname}"))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request.push_str(&format!("Host: {hostname}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer))
        .await
        .context("reading the answer")??;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no status line in {head:?}"))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    Ok((
        status,
        if chunked {
            dechunk(body)?
        } else {
            body.to_string()
        },
    ))
}

/// The body of a `Transfer-Encoding: chunked` answer.
fn dechunk(mut rest: &str) -> anyhow::Result<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").context("a chunk size line")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)?;
        if size == 0 {
            return Ok(body);
        }
        body.push_str(after.get(..size).context("a chunk shorter than its size")?);
        rest = after.get(size + 2..).context("a chunk without its CRLF")?;
    }
}

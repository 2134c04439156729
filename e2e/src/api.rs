//! Running `landlord api` against the local stack, as the chart's API ServiceAccount, and
//! calling it over HTTP.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client as HttpClient, rt::TokioExecutor};
use k8s_openapi::api::{
    core::v1::ServiceAccount,
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use kube::{Api, Client, api::PostParams};
use serde_json::{Value, json};

use crate::{
    Cluster, logs,
    operator::{self, token_for},
    postgres::PgServer,
    unique_name,
};

/// The chart's ServiceAccount of the API (release `landlord`).
pub const SERVICE_ACCOUNT: &str = "landlord-api";
/// The audience the API accepts tokens for (the chart's default).
pub const AUDIENCE: &str = "landlord-api";

/// A running `landlord api` process; stopped when dropped.
pub struct ApiServer {
    child: Child,
    pub port: u16,
    pub probe_port: u16,
    pub log: PathBuf,
    /// The PostgreSQL server the API keeps tenants' API history in (`--database-url`).
    pub history: PgServer,
}

impl ApiServer {
    /// Starts `binary api` as the chart's API ServiceAccount (its RBAC installed from
    /// `manifests/install/landlord.yaml`), with a PostgreSQL server of its own for the API
    /// history, and waits until `/readyz` answers. Errors carry the process's log.
    pub async fn start(cluster: &Cluster, client: &Client, binary: &Path) -> anyhow::Result<Self> {
        Self::start_with(cluster, client, binary, &[]).await
    }

    /// [`ApiServer::start`] with more flags of `landlord api`.
    pub async fn start_with(
        cluster: &Cluster,
        client: &Client,
        binary: &Path,
        args: &[&str],
    ) -> anyhow::Result<Self> {
        let kubeconfig = operator::chart_kubeconfig(cluster, client, SERVICE_ACCOUNT).await?;
        let history = PgServer::start("api-history").await?;
        let log = Path::new(cluster.var("LANDLORD_DEV_DIR"))
            .join("logs")
            .join(format!("{}.log", unique_name("api")));
        std::fs::create_dir_all(log.parent().context("log path has a parent")?)?;
        let child = Command::new(binary)
            .args(["api", "--log-format", "json"])
            // Port 0: the kernel chooses, the API logs what it bound (no race for a port).
            .args(["--address", "127.0.0.1:0", "--probe-address", "127.0.0.1:0"])
            .args(args)
            .env("LANDLORD_API_DATABASE_URL", history.admin_url())
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {} api", binary.display()))?;
        let mut server = ApiServer {
            child,
            port: 0,
            probe_port: 0,
            log,
            history,
        };
        for _ in 0..150 {
            if server.port == 0 {
                let bound = |field| logs::bound_address(&server.log, "serving the API", field);
                if let (Some(api), Some(probes)) = (bound("address"), bound("probe_address")) {
                    (server.port, server.probe_port) = (api.port(), probes.port());
                }
            }
            if server.port != 0 {
                let ready = call(
                    "GET",
                    &format!("http://127.0.0.1:{}/readyz", server.probe_port),
                    None,
                    &[],
                    None,
                )
                .await;
                if ready.is_ok_and(|r| r.status == 200) {
                    return Ok(server);
                }
            }
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!("the API exited with {status}; log: {}", server.log_text());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("the API never became ready; log: {}", server.log_text())
    }

    /// The API's `/metrics` (Prometheus text).
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let answer = call(
            "GET",
            &format!("http://127.0.0.1:{}/metrics", self.probe_port),
            None,
            &[],
            None,
        )
        .await?;
        anyhow::ensure!(answer.status == 200, "GET /metrics: {}", answer.status);
        Ok(answer.text)
    }

    /// `http://127.0.0.1:<port>` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A request to the API: `token` as bearer, extra `headers`, a JSON `body` (sent as
    /// `content_type`).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<(&str, &Value)>,
    ) -> anyhow::Result<Response> {
        call(method, &self.url(path), token, headers, body).await
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An answer: status, headers and the body (parsed as JSON when it is JSON, else `Null`).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Response {
    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<(&str, &Value)>,
) -> anyhow::Result<Response> {
    let client: HttpClient<_, Full<Bytes>> = HttpClient::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let bytes = match body {
        Some((content_type, value)) => {
            request = request.header("content-type", content_type);
            serde_json::to_vec(value)?
        }
        None => Vec::new(),
    };
    let response = tokio::time::timeout(
        Duration::from_secs(90),
        client.request(request.body(Full::new(Bytes::from(bytes)))?),
    )
    .await
    .with_context(|| format!("{method} {url}: no answer within 90 s"))?
    .with_context(|| format!("{method} {url}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&body).to_string();
    Ok(Response {
        status,
        headers,
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
        text,
    })
}

/// The rows of a `GET /v1/tenants/{name}/history` answer as (caller, action, status),
/// newest first.
pub fn history_rows(page: &Value) -> Vec<(String, String, u64)> {
    page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    (
                        i["caller"].as_str().unwrap_or_default().to_string(),
                        i["action"].as_str().unwrap_or_default().to_string(),
                        i["status"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A ServiceAccount `name` in `namespace`, bound (when `tenant_verbs` is not empty) to a
/// ClusterRole of its own with those verbs on Tenants; returns a token for the API's
/// audience and the ServiceAccount's user name.
pub async fn caller(
    client: &Client,
    namespace: &str,
    name: &str,
    tenant_verbs: &[&str],
) -> anyhow::Result<(String, String)> {
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": namespace}}))?;
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &account)
        .await?;
    if !tenant_verbs.is_empty() {
        let role_name = format!("{namespace}-{name}");
        let role: ClusterRole = serde_json::from_value(json!({
            "metadata": {"name": role_name, "labels": {"landlord.dev/e2e": "true"}},
            "rules": [{"apiGroups": ["landlord.dev"], "resources": ["tenants"], "verbs": tenant_verbs}],
        }))?;
        Api::<ClusterRole>::all(client.clone())
            .create(&PostParams::default(), &role)
            .await?;
        let binding: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": role_name, "labels": {"landlord.dev/e2e": "true"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }))?;
        Api::<ClusterRoleBinding>::all(client.clone())
            .create(&PostParams::default(), &binding)
            .await?;
    }
    let token = token_for(client, namespace, name, &[AUDIENCE]).await?;
    Ok((token, format!("system:serviceaccount:{namespace}:{name}")))
}

/// The version of schemathesis (PyPI) the contract test runs.
pub const SCHEMATHESIS: &str = "4.32.5";

/// The `st` command of schemathesis [`SCHEMATHESIS`], installed with pip into a virtual
/// environment under `~/.cache/landlord` on first use. Errors (with pip's output) when
/// `python3 -m venv` or the install fails: the test that needs it fails, it is not skipped.
pub fn schemathesis() -> anyhow::Result<PathBuf> {
    let home = std::env::var("HOME").context("HOME is not set")?;
    let venv = Path::new(&home)
        .join(".cache/landlord")
        .join(format!("schemathesis-{SCHEMATHESIS}"));
    let st = venv.join("bin/st");
    if st.exists() {
        return Ok(st);
    }
    let run = |command: &mut Command| -> anyhow::Result<()> {
        let output = command
            .output()
            .with_context(|| format!("running {command:?}"))?;
        anyhow::ensure!(
            output.status.success(),
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    };
    // pip writes `st` last: a failed install is taken up again by the next run.
    if !venv.join("bin/pip").exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        &format!("schemathesis=={SCHEMATHESIS}"),
    ]))?;
    anyhow::ensure!(
        st.exists(),
        "pip installed schemathesis without {}",
        st.display()
    );
    Ok(st)
}

/// A server-sent event stream, parsed by eventsource-stream (not Landlord's code).
pub type EventStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = anyhow::Result<eventsource_stream::Event>> + Send>,
>;

impl ApiServer {
    /// `GET path` as `token`, read as server-sent events: the events as they arrive when the
    /// API answers 200 with `text/event-stream`, else its answer.
    pub async fn events(
        &self,
        path: &str,
        token: &str,
    ) -> anyhow::Result<Result<EventStream, Response>> {
        use eventsource_stream::Eventsource;
        use futures::StreamExt;
        let url = self.url(path);
        let client: HttpClient<_, Full<Bytes>> =
            HttpClient::builder(TokioExecutor::new()).build_http();
        let request = http::Request::get(&url)
            .header("authorization", format!("Bearer {token}"))
            .header("accept", "text/event-stream")
            .body(Full::new(Bytes::new()))?;
        let response = tokio::time::timeout(Duration::from_secs(90), client.request(request))
            .await
            .with_context(|| format!("GET {url}: no answer within 90 s"))?
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let streaming = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if status != 200 || !streaming {
            let body = response.into_body().collect().await?.to_bytes();
            return Ok(Err(Response {
                status,
                headers,
                json: serde_json::from_slice(&body).unwrap_or(Value::Null),
                text: String::from_utf8_lossy(&body).to_string(),
            }));
        }
        let events = http_body_util::BodyDataStream::new(response.into_body())
            .eventsource()
            .map(|event| event.map_err(|e| anyhow::anyhow!("reading the event stream: {e}")));
        Ok(Ok(Box::pin(events)))
    }
}

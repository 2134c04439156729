//! The official OpenFeature OFREP providers (npm `@openfeature/ofrep-provider` on the server
//! SDK, `@openfeature/ofrep-web-provider` on the web SDK) against the real `tenant-runtime`
//! binary, which watches ConfigMaps on the local control plane. The flags are written
//! directly in the contract's format (the flags controller is not under test here).
//!
//! The runtime runs with the rights Landlord gives it, not as the admin: the dedicated
//! instance with the ServiceAccount, Role and RoleBinding the operator builds
//! (`landlord_controllers::tenant::runtime::dedicated`), the pooled one with the chart's
//! ClusterRole for the pool. So these tests also prove that RBAC is enough.
//!
//! The pooled one gets a tenant key, as the operator hands it over, and is called with what a
//! shared tenant's route sends: `X-Landlord-Tenant` and the assertion the operator signs
//! (`landlord_controllers::pool::assertion`).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::Context as _;
use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::{ConfigMap, Namespace, ServiceAccount},
    rbac::v1::{Role, RoleBinding},
};
use kube::{
    Api, Client, Resource,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    config::Kubeconfig,
};
use landlord_controllers::{
    Config, pool,
    runtime::{self, RuntimeStack},
};
use landlord_crds::Tenant;
use landlord_e2e::{
    cluster, cluster::repo_root, logs, manifests, manifests::install_crds, unique_name, wait,
};
use serde_json::{Value, json};
use tenant_runtime::server::SERVING;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
    sync::OnceCell,
};

const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Labelled ConfigMaps (64 KiB each) someone writes outside the tenant namespaces.
const FOREIGN_CONFIG_MAPS: usize = 40;
/// The pooled runtime's tenant key in these tests.
const KEY: &str = "test-tenant-key-0123456789abcdefghijklmnop";

/// Installs the provider script's pinned dependencies (`npm ci`) once per test run, in a copy
/// under the target directory so the source tree stays clean.
async fn client_dir() -> anyhow::Result<&'static Path> {
    static DIR: OnceCell<PathBuf> = OnceCell::const_new();
    DIR.get_or_try_init(|| async {
        let source = repo_root().join("tenant-runtime/tests/ofrep-client");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ofrep-client");
        std::fs::create_dir_all(&dir)?;
        for file in ["package.json", "package-lock.json", "client.mjs"] {
            std::fs::copy(source.join(file), dir.join(file))
                .with_context(|| format!("copying {file}"))?;
        }
        // Reinstall only when the lockfile changed since the last install.
        let lock = std::fs::read(dir.join("package-lock.json"))?;
        let stamp = dir.join("node_modules/.installed-lock");
        if std::fs::read(&stamp).ok().as_deref() != Some(lock.as_slice()) {
            let output = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .output()
                .await
                .context(
                    "running npm ci (node and npm are required: apt-get install nodejs npm)",
                )?;
            anyhow::ensure!(
                output.status.success(),
                "npm ci failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            std::fs::write(&stamp, &lock)?;
        }
        Ok(dir)
    })
    .await
    .map(PathBuf::as_path)
}

/// `wait::until` for checks that need `&mut` state (a provider process): polls until `check`
/// gives a value, failing after `timeout` with the last reason.
async fn until_mut<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "not yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A running `tenant-runtime`; killed when dropped.
struct Runtime {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Runtime {
    /// Starts the binary with `kubeconfig` (a ServiceAccount's token) and waits for /readyz.
    async fn start(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(kubeconfig, args, &[]).await
    }

    /// [`Runtime::start`] with environment variables (the tenant keys).
    async fn start_with(
        kubeconfig: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let cluster = cluster();
        let log = Path::new(cluster.var("LANDLORD_DEV_DIR"))
            .join("logs")
            .join(format!("{}.log", unique_name("tenant-runtime")));
        std::fs::create_dir_all(log.parent().context("log dir")?)?;
        let child = Command::new(env!("CARGO_BIN_EXE_tenant-runtime"))
            .env_remove(pool::KEY_ENV)
            .env_remove(pool::SECONDARY_KEY_ENV)
            .envs(env.iter().copied())
            .args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            // Port 0: the kernel chooses, the runtime logs what it bound (no race for a port).
            .args(["--listen", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting tenant-runtime")?;
        let mut runtime = Self {
            child,
            port: 0,
            log,
        };
        for _ in 0..120 {
            if let Some(status) = runtime.child.try_wait()? {
                anyhow::bail!(
                    "tenant-runtime exited with {status}: {}",
                    runtime.log_text()
                );
            }
            if runtime.port == 0
                && let Some(bound) = logs::bound_address(&runtime.log, SERVING, "address")
            {
                runtime.port = bound.port();
            }
            if runtime.port != 0
                && http(runtime.port, "GET", "/readyz", &[], "")
                    .await
                    .is_ok_and(|r| r.status == 200)
            {
                return Ok(runtime);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        anyhow::bail!("tenant-runtime never became ready: {}", runtime.log_text())
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A counter of /metrics, summed over the label sets that contain `labels`.
    async fn metric(&self, name: &str, labels: &str) -> anyhow::Result<f64> {
        let text = http(self.port, "GET", "/metrics", &[], "").await?.body;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }
}

/// The provider script, kept running so its providers (and the web provider's polling) live
/// across flag changes.
struct Provider {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Provider {
    /// Starts the script and waits until both providers are initialized.
    async fn start(
        url: &str,
        tenant: Option<&str>,
        assertion: Option<&str>,
    ) -> anyhow::Result<Self> {
        let (provider, hello) = Self::start_any(url, tenant, assertion).await?;
        anyhow::ensure!(hello == json!({"ready": true, "web": "READY"}), "{hello}");
        Ok(provider)
    }

    /// Starts the script; returns it with its first line (which says whether the web
    /// provider initialized).
    async fn start_any(
        url: &str,
        tenant: Option<&str>,
        assertion: Option<&str>,
    ) -> anyhow::Result<(Self, Value)> {
        let dir = client_dir().await?;
        let mut command = Command::new("node");
        command
            .arg("client.mjs")
            .current_dir(dir)
            .env("OFREP_URL", url)
            .env("OFREP_POLL_MS", "300")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(tenant) = tenant {
            command.env("OFREP_TENANT", tenant);
        }
        if let Some(assertion) = assertion {
            command.env("OFREP_ASSERTION", assertion);
        }
        let mut child = command.spawn().context("starting node client.mjs")?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut provider = Self {
            _child: child,
            stdin,
            stdout,
        };
        let hello = provider.read().await?;
        Ok((provider, hello))
    }

    async fn read(&mut self) -> anyhow::Result<Value> {
        let line = tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
            .await
            .context("no answer from the provider script")??
            .context("the provider script exited")?;
        Ok(serde_json::from_str(&line)?)
    }

    /// Evaluates `flags` (key, type, default) through both providers.
    async fn evaluate(&mut self, flags: &[(&str, &str, Value)]) -> anyhow::Result<Value> {
        let flags: Vec<Value> = flags
            .iter()
            .map(|(key, type_, default)| json!({"key": key, "type": type_, "default": default}))
            .collect();
        let request = json!({ "flags": flags }).to_string() + "\n";
        self.stdin.write_all(request.as_bytes()).await?;
        let answer = self.read().await?;
        anyhow::ensure!(answer.get("error").is_none(), "{answer}");
        Ok(answer)
    }
}

struct HttpReply {
    status: u16,
    headers: String,
    body: String,
}

/// A minimal HTTP/1.0 request (no client library needed for a handful of probes).
async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<HttpReply> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok(HttpReply {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    })
}

/// Applies an object as the operator would (server-side apply), without ownerReferences:
/// the Tenant they would point at does not exist in these tests.
async fn apply_as_operator<K>(client: &Client, namespace: &str, mut object: K) -> anyhow::Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    object.meta_mut().owner_references = None;
    let name = object.meta().name.clone().context("name")?;
    Api::<K>::namespaced(client.clone(), namespace)
        .patch(
            &name,
            &PatchParams::apply("landlord/tenant-runtime").force(),
            &Patch::Apply(&object),
        )
        .await?;
    Ok(())
}

/// A kubeconfig that authenticates as a ServiceAccount (a fresh token), for the runtime.
async fn service_account_kubeconfig(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<PathBuf> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for {namespace}/{name}"))?
        .status
        .context("token request without status")?
        .token;
    let cluster = cluster();
    let admin = Kubeconfig::read_from(cluster.var("KUBECONFIG"))?;
    let entry = admin
        .clusters
        .first()
        .context("admin kubeconfig without cluster")?
        .clone();
    let cluster_name = entry.name.clone();
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [entry],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": cluster_name, "user": name}}],
        "current-context": name,
    });
    let path =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kubeconfig-{namespace}-{name}"));
    std::fs::write(&path, serde_json::to_string(&kubeconfig)?)?;
    Ok(path)
}

/// The dedicated runtime's ServiceAccount, Role and RoleBinding, as the operator builds
/// them for `tenant`; returns a kubeconfig of that ServiceAccount.
async fn dedicated_identity(client: &Client, tenant: &str) -> anyhow::Result<PathBuf> {
    let object: Tenant = serde_json::from_value(json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": tenant, "uid": "00000000-0000-0000-0000-000000000000"},
        "spec": {"tier": "dedicated"},
    }))?;
    let owner = object
        .controller_owner_ref(&())
        .context("owner reference")?;
    let RuntimeStack {
        service_account,
        role,
        role_binding,
        ..
    } = runtime::dedicated(&object, &owner, &Config::default());
    let ns = object.namespace_name();
    apply_as_operator(client, &ns, service_account).await?;
    apply_as_operator::<Role>(client, &ns, role.context("a dedicated runtime has a Role")?).await?;
    apply_as_operator::<RoleBinding>(client, &ns, role_binding.context("and a RoleBinding")?)
        .await?;
    service_account_kubeconfig(client, &ns, runtime::NAME).await
}

/// The pool's ServiceAccount in the platform namespace (the operator creates it) and the
/// chart's ClusterRole and binding for it; returns a kubeconfig of that ServiceAccount.
async fn pooled_identity(client: &Client) -> anyhow::Result<PathBuf> {
    let platform = Config::default().platform_namespace;
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": platform}}))?;
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    let RuntimeStack {
        service_account, ..
    } = runtime::pooled(&Config::default());
    apply_as_operator(client, &platform, service_account).await?;
    let install = manifests::read_documents(&repo_root().join("manifests/install/landlord.yaml"))?;
    let mut applied = 0;
    for object in install.iter().filter(|o| {
        o.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/component"))
            .map(String::as_str)
            == Some("runtime")
    }) {
        manifests::apply(client, object, None).await?;
        applied += 1;
    }
    anyhow::ensure!(
        applied == 2,
        "the install manifest has {applied} runtime RBAC objects, not 2"
    );
    service_account_kubeconfig(client, &platform, runtime::NAME).await
}

fn labels(tenant: &str) -> Value {
    json!({"app.kubernetes.io/managed-by": "landlord", "landlord.dev/tenant": tenant})
}

/// Writes (creates or replaces) a ConfigMap as Landlord would: labelled, and owned by the
/// tenant's Tenant (the runtime serves nothing else).
async fn write_config_map(
    client: &Client,
    namespace: &str,
    name: &str,
    tenant: &str,
    data: Value,
) -> anyhow::Result<()> {
    let mut labels = labels(tenant);
    if name == "landlord-flags" {
        labels["landlord.dev/component"] = "flags".into();
    }
    let owner = Api::<Tenant>::all(client.clone())
        .get(tenant)
        .await
        .with_context(|| format!("Tenant {tenant}"))?
        .controller_owner_ref(&())
        .context("Tenant without uid")?;
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": [owner]},
        "data": data,
    });
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::apply("landlord/flags").force(),
            &Patch::Apply(&cm),
        )
        .await?;
    Ok(())
}

/// The contract's `flags.json`.
fn flags_json(tenant: &str, flags: Value) -> Value {
    let revision = format!("{:x}", {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        flags.to_string().hash(&mut h);
        h.finish()
    });
    json!({"flags.json": json!({"tenant": tenant, "revision": revision, "flags": flags}).to_string()})
}

async fn write_flags(client: &Client, ns: &str, tenant: &str, flags: Value) -> anyhow::Result<()> {
    write_config_map(
        client,
        ns,
        "landlord-flags",
        tenant,
        flags_json(tenant, flags),
    )
    .await
}

fn flag(type_: &str, value: Value, variant: &str, reason: &str) -> Value {
    json!({"type": type_, "value": value, "variant": variant, "reason": reason, "source": "landlord-platform/product"})
}

/// A Tenant of `tier` (no operator runs here, so nothing reconciles it: it only owns the
/// ConfigMaps the tests write) and its namespace, labelled as Landlord labels it.
async fn tenant_namespace(client: &Client, tenant: &str, tier: &str) -> anyhow::Result<String> {
    install_crds(client).await?;
    let object: Tenant = serde_json::from_value(json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": tenant, "labels": {"landlord.dev/e2e": "true"}},
        "spec": {"tier": tier},
    }))?;
    Api::<Tenant>::all(client.clone())
        .create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("creating Tenant {tenant}"))?;
    let name = format!("tenant-{tenant}");
    let mut labels = labels(tenant);
    labels["landlord.dev/tier"] = tier.into();
    labels["landlord.dev/e2e"] = "true".into();
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok(name)
}

/// Deletes a namespace `tenant_namespace` made, and its Tenant.
async fn delete_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
    if let Some(tenant) = name.strip_prefix("tenant-") {
        let _ = Api::<Tenant>::all(client.clone())
            .delete(tenant, &DeleteParams::default())
            .await;
    }
}

const FLAGS: &[(&str, &str)] = &[
    ("dark-mode", "boolean"),
    ("banner", "string"),
    ("seats", "integer"),
    ("ratio", "float"),
    ("theme", "object"),
];

fn requests() -> Vec<(&'static str, &'static str, Value)> {
    let default = |t: &str| match t {
        "boolean" => json!(false),
        "string" => json!("none"),
        "object" => json!({}),
        _ => json!(0),
    };
    FLAGS.iter().map(|(k, t)| (*k, *t, default(t))).collect()
}

#[tokio::test]
async fn an_official_provider_evaluates_a_dedicated_tenants_flags_and_sees_a_change()
-> anyhow::Result<()> {
    let client = cluster().client().await?;
    let tenant = unique_name("rt");
    let ns = tenant_namespace(&client, &tenant, "dedicated").await?;
    let result = async {
        write_flags(&client, &ns, &tenant, json!({
            "dark-mode": flag("boolean", json!(true), "on", "TARGETING_MATCH"),
            "banner": flag("string", json!("spring"), "spring", "DEFAULT"),
            "seats": flag("integer", json!(25), "pro", "STATIC"),
            "ratio": flag("float", json!(0.5), "half", "STATIC"),
            "theme": flag("object", json!({"color": "teal", "logo": "acme.svg"}), "brand", "TARGETING_MATCH"),
        }))
        .await?;
        write_config_map(&client, &ns, "landlord-tenant", &tenant, json!({
            "name": tenant, "tier": "dedicated", "plan": "enterprise", "namespace": ns, "suspended": "false"}))
        .await?;
        write_config_map(&client, &ns, "landlord-config", &tenant, json!({"brandColor": "teal"})).await?;

        let kubeconfig = dedicated_identity(&client, &tenant).await?;
        let runtime = Runtime::start(&kubeconfig, &["--tenant", &tenant, "--namespace", &ns]).await?;
        let mut provider = Provider::start(&runtime.url(), None, None).await?;
        let answer = provider.evaluate(&requests()).await?;
        for side in ["server", "web"] {
            let got = &answer[side];
            let expect = |key: &str, value: Value, variant: &str, reason: &str| {
                assert_eq!(
                    got[key],
                    json!({"value": value, "variant": variant, "reason": reason, "errorCode": null}),
                    "{side} {key}: {answer}"
                );
            };
            expect("dark-mode", json!(true), "on", "TARGETING_MATCH");
            // Landlord's DEFAULT is the spec's STATIC (see ofrep.rs).
            expect("banner", json!("spring"), "spring", "STATIC");
            expect("seats", json!(25), "pro", "STATIC");
            expect("ratio", json!(0.5), "half", "STATIC");
            expect("theme", json!({"color": "teal", "logo": "acme.svg"}), "brand", "TARGETING_MATCH");
        }
        let missing = provider.evaluate(&[("no-such-flag", "string", json!("fallback"))]).await?;
        assert_eq!(missing["server"]["no-such-flag"]["value"], "fallback");
        assert_eq!(missing["server"]["no-such-flag"]["errorCode"], "FLAG_NOT_FOUND");
        assert_eq!(missing["web"]["no-such-flag"]["errorCode"], "FLAG_NOT_FOUND");

        // The web provider polls with If-None-Match: unchanged flags cost a 304.
        wait::until("a 304 to the web provider's polling", CHANGE_TIMEOUT, || async {
            let n = runtime.metric("tenant_runtime_requests_total", r#"outcome="not_modified""#).await?;
            Ok((n > 0.0).then_some(()))
        })
        .await?;

        // Change the flags; both providers see it, without a restart.
        write_flags(&client, &ns, &tenant, json!({
            "dark-mode": flag("boolean", json!(false), "off", "DEFAULT"),
            "banner": flag("string", json!("summer"), "summer", "TARGETING_MATCH"),
            "seats": flag("integer", json!(50), "enterprise", "TARGETING_MATCH"),
            "ratio": flag("float", json!(0.25), "quarter", "STATIC"),
            "theme": flag("object", json!({"color": "red"}), "sale", "STATIC"),
        }))
        .await?;
        let changed = until_mut("both providers to see the change", CHANGE_TIMEOUT, async || {
            let answer = provider.evaluate(&requests()).await?;
            let seen = ["server", "web"].iter().all(|side| {
                answer[side]["dark-mode"]["value"] == json!(false)
                    && answer[side]["theme"]["value"] == json!({"color": "red"})
            });
            // The web provider's change event can trail the values it already serves by a
            // poll: wait for it too (asserted below) rather than race it.
            let announced = answer["webChanges"].as_u64() >= Some(1);
            Ok((seen && announced).then_some(answer))
        })
        .await?;
        for side in ["server", "web"] {
            let got = &changed[side];
            assert_eq!(got["dark-mode"]["variant"], "off", "{changed}");
            assert_eq!(got["dark-mode"]["reason"], "STATIC", "{changed}");
            assert_eq!(got["banner"]["value"], "summer", "{changed}");
            assert_eq!(got["banner"]["reason"], "TARGETING_MATCH", "{changed}");
            assert_eq!(got["seats"]["value"], 50, "{changed}");
            assert_eq!(got["ratio"]["value"], 0.25, "{changed}");
        }
        assert!(changed["webChanges"].as_u64() >= Some(1), "{changed}");

        // The bulk endpoint's ETag, directly.
        let body = r#"{"context":{"targetingKey":"u"}}"#;
        let first = http(runtime.port, "POST", "/ofrep/v1/evaluate/flags", &[], body).await?;
        assert_eq!(first.status, 200, "{}", first.body);
        let etag = first
            .headers
            .lines()
            .find_map(|l| l.strip_prefix("etag: "))
            .context("no ETag")?
            .trim()
            .to_string();
        let again = http(runtime.port, "POST", "/ofrep/v1/evaluate/flags", &[("If-None-Match", &etag)], body).await?;
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());

        // The tenant's context; a request naming another tenant is refused.
        let context = http(runtime.port, "GET", "/v1/tenant", &[], "").await?;
        assert_eq!(context.status, 200);
        let context: Value = serde_json::from_str(&context.body)?;
        assert_eq!(context["tier"], "dedicated");
        assert_eq!(context["plan"], "enterprise");
        assert_eq!(context["config"], json!({"brandColor": "teal"}));
        let other = http(runtime.port, "GET", "/v1/tenant", &[("X-Landlord-Tenant", "someone-else")], "").await?;
        assert_eq!(other.status, 403, "{}", other.body);
        Ok::<_, anyhow::Error>(())
    }
    .await;
    delete_namespace(&client, &ns).await;
    result
}

#[tokio::test]
async fn the_pooled_runtime_serves_the_tenant_its_route_asserts_and_nothing_else()
-> anyhow::Result<()> {
    let client = cluster().client().await?;
    let (alpha, beta, silo) = (unique_name("rta"), unique_name("rtb"), unique_name("rtd"));
    let mut namespaces = Vec::new();
    let result = async {
        for (tenant, tier, banner) in [
            (&alpha, "shared", "alpha"),
            (&beta, "shared", "beta"),
            (&silo, "dedicated", "silo"),
        ] {
            let ns = tenant_namespace(&client, tenant, tier).await?;
            namespaces.push(ns.clone());
            write_flags(
                &client,
                &ns,
                tenant,
                json!({"banner": flag("string", json!(banner), banner, "STATIC")}),
            )
            .await?;
        }
        let kubeconfig = pooled_identity(&client).await?;
        // Without a tenant key the pooled instance does not start at all.
        let keyless = Runtime::start(&kubeconfig, &[]).await;
        let refused = keyless.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("LANDLORD_TENANT_KEY"), "{refused}");

        let runtime = Runtime::start_with(&kubeconfig, &[], &[(pool::KEY_ENV, KEY)]).await?;
        // What each tenant's route sends: its name and the operator's assertion of it.
        let asserted = |tenant: &str| pool::assertion(KEY.as_bytes(), tenant);
        let request = [("banner", "string", json!("none"))];
        let mut a = Provider::start(&runtime.url(), Some(&alpha), Some(&asserted(&alpha))).await?;
        let mut b = Provider::start(&runtime.url(), Some(&beta), Some(&asserted(&beta))).await?;
        for (provider, expected) in [(&mut a, "alpha"), (&mut b, "beta")] {
            let answer = provider.evaluate(&request).await?;
            assert_eq!(answer["server"]["banner"]["value"], expected, "{answer}");
            assert_eq!(answer["web"]["banner"]["value"], expected, "{answer}");
        }

        // No header: rejected, and the provider falls back to the code default.
        let body = r#"{"context":{}}"#;
        let bare = http(
            runtime.port,
            "POST",
            "/ofrep/v1/evaluate/flags/banner",
            &[],
            body,
        )
        .await?;
        assert_eq!(bare.status, 400, "{}", bare.body);
        assert!(bare.body.contains("MissingTenant"), "{}", bare.body);
        let (mut anonymous, hello) = Provider::start_any(&runtime.url(), None, None).await?;
        assert!(
            hello["web"]
                .as_str()
                .is_some_and(|s| s.starts_with("ERROR")),
            "{hello}"
        );
        let answer = anonymous.evaluate(&request).await?;
        for side in ["server", "web"] {
            assert_eq!(answer[side]["banner"]["value"], "none", "{answer}");
            assert_eq!(answer[side]["banner"]["reason"], "ERROR", "{answer}");
        }
        // The attack: a caller that reaches the pool without passing through alpha's route
        // names alpha. The bare header (the old contract) is refused, to both providers and
        // to plain requests, for flags and for the tenant's context.
        for path in [
            "/ofrep/v1/evaluate/flags/banner",
            "/ofrep/v1/evaluate/flags",
        ] {
            let bare = http(
                runtime.port,
                "POST",
                path,
                &[("X-Landlord-Tenant", &alpha)],
                body,
            )
            .await?;
            assert_eq!(bare.status, 401, "{path}: {}", bare.body);
            assert!(bare.body.contains("MissingAssertion"), "{}", bare.body);
            assert!(
                !bare.body.contains("alpha"),
                "no flag value leaks: {}",
                bare.body
            );
        }
        let context = http(
            runtime.port,
            "GET",
            "/v1/tenant",
            &[("X-Landlord-Tenant", &alpha)],
            "",
        )
        .await?;
        assert_eq!(context.status, 401, "{}", context.body);
        let (mut header_only, _) = Provider::start_any(&runtime.url(), Some(&alpha), None).await?;
        let answer = header_only.evaluate(&request).await?;
        for side in ["server", "web"] {
            assert_eq!(answer[side]["banner"]["value"], "none", "{answer}");
        }
        // beta (which may read its own HTTPRoute, so knows its own assertion) names alpha
        // with it: refused. So is an assertion made with any other key.
        let beta_assertion = asserted(&beta);
        let other_key = pool::assertion(b"another-platform-key-0123456789abcdef", &alpha);
        for forged in [beta_assertion.as_str(), other_key.as_str(), "v1.", &alpha] {
            let answer = http(
                runtime.port,
                "GET",
                "/v1/tenant",
                &[
                    ("X-Landlord-Tenant", &alpha),
                    ("X-Landlord-Tenant-Assertion", forged),
                ],
                "",
            )
            .await?;
            assert_eq!(answer.status, 403, "{forged}: {}", answer.body);
            assert!(answer.body.contains("ForgedAssertion"), "{}", answer.body);
        }
        // The route-made request is served (plain HTTP too, not only the providers).
        let routed = http(
            runtime.port,
            "POST",
            "/ofrep/v1/evaluate/flags/banner",
            &[
                ("X-Landlord-Tenant", &alpha),
                ("X-Landlord-Tenant-Assertion", &asserted(&alpha)),
            ],
            body,
        )
        .await?;
        assert_eq!(routed.status, 200, "{}", routed.body);
        assert_eq!(
            serde_json::from_str::<Value>(&routed.body)?["value"],
            "alpha"
        );

        // A dedicated tenant is not served by the pool, even asserted.
        let dedicated = http(
            runtime.port,
            "POST",
            "/ofrep/v1/evaluate/flags/banner",
            &[
                ("X-Landlord-Tenant", &silo),
                ("X-Landlord-Tenant-Assertion", &asserted(&silo)),
            ],
            body,
        )
        .await?;
        assert_eq!(dedicated.status, 404, "{}", dedicated.body);
        assert!(
            dedicated.body.contains("UnknownTenant"),
            "{}",
            dedicated.body
        );

        // Whoever may write ConfigMaps in some namespace outside the tenant namespaces (which
        // admission protects) puts Landlord's labels and names on large ConfigMaps of its own:
        // they never reach the runtime's cache.
        let cached = || runtime.metric("tenant_runtime_cached_config_maps", "");
        let before = cached().await?;
        let foreign = unique_name("rt-foreign");
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": foreign, "labels": {"landlord.dev/e2e": "true"}}}))?,
            )
            .await?;
        namespaces.push(foreign.clone());
        let filler = "x".repeat(64 * 1024);
        for i in 0..FOREIGN_CONFIG_MAPS {
            let name = if i == 0 { "landlord-flags".to_string() } else { format!("blob-{i}") };
            let cm: ConfigMap = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels(&alpha)},
                "data": {"flags.json": filler},
            }))?;
            Api::<ConfigMap>::namespaced(client.clone(), &foreign)
                .create(&PostParams::default(), &cm)
                .await?;
        }

        // A change to one tenant's flags reaches that tenant only.
        write_flags(
            &client,
            &namespaces[0],
            &alpha,
            json!({"banner": flag("string", json!("alpha-2"), "v2", "TARGETING_MATCH")}),
        )
        .await?;
        until_mut(
            "tenant alpha to see its change",
            CHANGE_TIMEOUT,
            async || {
                let answer = a.evaluate(&request).await?;
                Ok((answer["server"]["banner"]["value"] == "alpha-2"
                    && answer["web"]["banner"]["value"] == "alpha-2")
                    .then_some(()))
            },
        )
        .await?;
        let answer = b.evaluate(&request).await?;
        assert_eq!(answer["server"]["banner"]["value"], "beta", "{answer}");
        assert_eq!(answer["web"]["banner"]["value"], "beta", "{answer}");
        // The watch delivered the foreign ConfigMaps before alpha's change (one ordered
        // stream): none of them was cached. At most the three ConfigMaps of the dedicated
        // test, which runs beside this one, may have arrived meanwhile.
        let after = cached().await?;
        assert!(
            after - before <= 3.0,
            "the cache grew from {before} to {after} ConfigMaps with {FOREIGN_CONFIG_MAPS} foreign ones"
        );
        for code in ["MissingTenant", "MissingAssertion", "ForgedAssertion"] {
            assert!(
                runtime
                    .metric(
                        "tenant_runtime_rejections_total",
                        &format!(r#"code="{code}""#)
                    )
                    .await?
                    >= 1.0,
                "{code}"
            );
        }
        // No key reaches the log.
        assert!(!runtime.log_text().contains(KEY));
        Ok::<_, anyhow::Error>(())
    }
    .await;
    for ns in &namespaces {
        delete_namespace(&client, ns).await;
    }
    result
}

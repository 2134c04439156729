//! Tenant databases end to end: the real operator binary (as the chart's ServiceAccount),
//! real PostgreSQL servers that each test starts for itself (so it can stop and restart
//! them), and the local control plane.
//!
//! The servers' admin is a non-superuser with CREATEROLE and CREATEDB, as on managed
//! PostgreSQL services. Tests run one at a time, each with an operator of its own.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::Context;
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{Event, PersistentVolumeClaim, Secret, Service},
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use landlord_crds::{Tenant, conditions, tenant::Phase};
use landlord_e2e::{
    TestNamespace,
    api::{ApiServer, caller},
    audit, operator,
    postgres::PgServer,
    tenants::{self, Harness, tenant},
    unique_name, wait,
};
use sqlx::{Connection, Executor, PgConnection, Row};

const LANDLORD: &str = env!("CARGO_BIN_EXE_landlord");
const TIMEOUT: Duration = Duration::from_secs(90);
const PROVISIONER: &str = "landlord_provisioner";

/// The PostgreSQL servers this test started and registered with its operator.
struct Servers {
    /// (server name in the operator's configuration, the server)
    servers: Vec<(String, PgServer)>,
}

impl Servers {
    fn server(&self, name: &str) -> anyhow::Result<&PgServer> {
        self.servers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
            .with_context(|| format!("no server {name}"))
    }
}

/// Starts one PostgreSQL server per `(name, capacity)`, registers them with a fresh operator.
async fn harness(servers: &[(&str, u32)]) -> anyhow::Result<Harness<Servers>> {
    let setup = Harness::setup(LANDLORD).await?.timeout(TIMEOUT);
    let (cluster, client) = (setup.cluster, &setup.client);
    // The operator's namespace, where the admin Secrets live, comes with its RBAC.
    operator::service_account_kubeconfig(cluster, client).await?;
    let secrets = Api::<Secret>::namespaced(client.clone(), operator::NAMESPACE);
    let mut started = Vec::new();
    let mut yaml = String::new();
    for (name, capacity) in servers {
        let server = PgServer::start(name).await?;
        let password = unique_name("admin-pw");
        server.create_provisioner(PROVISIONER, &password).await?;
        let secret_name = unique_name(&format!("pg-{name}"));
        secrets
            .create(
                &PostParams::default(),
                &Secret {
                    metadata: ObjectMeta {
                        name: Some(secret_name.clone()),
                        ..Default::default()
                    },
                    string_data: Some(BTreeMap::from([
                        ("username".to_string(), PROVISIONER.to_string()),
                        ("password".to_string(), password),
                    ])),
                    ..Default::default()
                },
            )
            .await?;
        yaml.push_str(&format!(
            "- name: {name}\n  host: 127.0.0.1\n  port: {}\n  capacity: {capacity}\n  sslMode: disable\n  adminSecret: {{namespace: {}, name: {secret_name}}}\n",
            server.port,
            operator::NAMESPACE
        ));
        started.push((name.to_string(), server));
    }
    let file = PathBuf::from(cluster.var("LANDLORD_DEV_DIR"))
        .join(format!("{}.yaml", unique_name("db-servers")));
    std::fs::write(&file, yaml)?;
    let args = vec![
        "--database-servers".to_string(),
        file.display().to_string(),
        "--database-extensions".to_string(),
        "citext,pg_trgm,pgcrypto".to_string(),
        "--postgres-image".to_string(),
        "registry.example/postgres".to_string(),
    ];
    setup
        .args(args)
        .start_with(Servers { servers: started })
        .await
}

fn shared(extra: serde_json::Value) -> serde_json::Value {
    let mut spec = serde_json::json!({"tier": "shared", "database": {"deletionPolicy": "Delete"}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    spec
}

/// The Tenant's condition of `type_`.
fn condition(
    tenant: &Tenant,
    type_: &str,
) -> anyhow::Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    tenants::condition(tenant, type_)
        .cloned()
        .with_context(|| format!("Tenant {} has no {type_} condition", tenant.name_any()))
}

async fn credentials(client: &Client, tenant: &str) -> anyhow::Result<BTreeMap<String, String>> {
    tenants::database_credentials(client, &format!("tenant-{tenant}")).await
}

async fn connect(uri: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnection::connect(uri).await
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// Role and database of a tenant as the server has them: (roles, databases, can login).
async fn server_objects(
    server: &PgServer,
    tenant: &str,
) -> anyhow::Result<(i64, i64, Option<bool>)> {
    let ident = format!("t_{}", tenant.replace('-', "_"));
    let mut conn = server.connect_admin().await?;
    let roles: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = $1")
        .bind(&ident)
        .fetch_one(&mut conn)
        .await?;
    let databases: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&ident)
        .fetch_one(&mut conn)
        .await?;
    let login: Option<bool> =
        sqlx::query_scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1")
            .bind(&ident)
            .fetch_optional(&mut conn)
            .await?;
    Ok((roles, databases, login))
}

/// `call` again while it answers 404, for up to 30 s: a Tenant's admin sees it through the
/// API once the API server's authorizer has learnt of the operator's binding.
async fn once_visible<F>(mut call: impl FnMut() -> F) -> anyhow::Result<landlord_e2e::api::Response>
where
    F: std::future::Future<Output = anyhow::Result<landlord_e2e::api::Response>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = call().await?;
        if answer.status != 404 || std::time::Instant::now() >= deadline {
            return Ok(answer);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_password_rotated_through_the_api_works_once_and_the_tenant_reads_who_did_it()
-> anyhow::Result<()> {
    let h = harness(&[("main", 10)]).await?;
    let mut api = ApiServer::start(h.cluster, &h.client, std::path::Path::new(LANDLORD)).await?;
    let ns = TestNamespace::new(&h.client, "api-rotate").await?;
    let (platform, platform_user) =
        caller(&h.client, &ns.name, "platform", &["get", "list", "patch"]).await?;
    let (admin, admin_user) = caller(&h.client, &ns.name, "admin", &[]).await?;
    let (stranger, _) = caller(&h.client, &ns.name, "stranger", &[]).await?;
    let name = unique_name("db-api");
    h.create_tenant(
        &name,
        shared(serde_json::json!({
            "admins": [{"kind": "ServiceAccount", "name": "admin", "namespace": ns.name}]
        })),
    )
    .await?;
    h.wait_condition(&name, "Ready", "True", None).await?;
    let before = credentials(&h.client, &name).await?;
    let rotate = format!("/v1/tenants/{name}/database/rotate-password");
    let history = format!("/v1/tenants/{name}/history");

    // The tenant's admin reads its Tenant but may not patch it (`kubectl auth can-i patch
    // tenant` says no for it): refused by RBAC, and the password stays.
    let refused = once_visible(|| api.call("POST", &rotate, Some(&admin), &[], None)).await?;
    assert_eq!(refused.status, 403, "{}", refused.text);
    // A caller who may not read the Tenant learns nothing of it.
    for path in [&rotate, &history] {
        let method = if path == &rotate { "POST" } else { "GET" };
        let answer = api.call(method, path, Some(&stranger), &[], None).await?;
        assert_eq!(answer.status, 404, "{method} {path}: {}", answer.text);
    }

    // The platform admin rotates, waiting for the operation.
    let key = [("idempotency-key", "rotate-1"), ("prefer", "wait=60")];
    let rotated = api
        .call("POST", &rotate, Some(&platform), &key, None)
        .await?;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(rotated.json["kind"], "rotatePassword", "{}", rotated.text);
    assert_eq!(rotated.json["state"], "succeeded", "{}", rotated.text);
    let operation = rotated.json["id"]
        .as_str()
        .context("an operation id")?
        .to_string();
    let request_id = rotated.header("x-request-id").to_string();
    let after = credentials(&h.client, &name).await?;
    assert_ne!(after["password"], before["password"]);
    connect(&after["uri"])
        .await
        .context("the rotated password connects")?
        .close()
        .await?;
    let err = connect(&before["uri"])
        .await
        .expect_err("the old password still works");
    assert_eq!(sqlstate(&err).as_deref(), Some("28P01"), "{err}");
    let status = h.tenants().get(&name).await?.status.context("status")?;
    let asked = h
        .tenants()
        .get(&name)
        .await?
        .annotations()
        .get("landlord.dev/rotate-database-password")
        .cloned();
    assert_eq!(
        status.database.and_then(|d| d.password_rotation),
        asked,
        "the status shows the rotation asked"
    );

    // The same request again (a retry): the same operation, and no second rotation.
    let again = api
        .call("POST", &rotate, Some(&platform), &key, None)
        .await?;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["id"], operation.as_str(), "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(
        credentials(&h.client, &name).await?["password"],
        after["password"]
    );
    let polled = api
        .call(
            "GET",
            &format!("/v1/operations/{operation}"),
            Some(&platform),
            &[],
            None,
        )
        .await?;
    assert_eq!(polled.json["state"], "succeeded", "{}", polled.text);

    // The API server's audit log: the annotation was written as the platform admin, under
    // the API's request id.
    let patches: Vec<serde_json::Value> = audit::requests_on(h.cluster, "tenants", &name)?
        .into_iter()
        .filter(|e| e["verb"] == "patch" && e["auditID"] == request_id.as_str())
        .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(
        patches[0]["impersonatedUser"]["username"],
        platform_user.as_str()
    );

    // The tenant's admin reads the history: every write through the API, newest first, the
    // refused one too.
    let read = api.call("GET", &history, Some(&admin), &[], None).await?;
    assert_eq!(read.status, 200, "{}", read.text);
    let items = read.json["items"].as_array().context("items")?;
    let summary = landlord_e2e::api::history_rows(&read.json);
    let action = "rotateTenantDatabasePassword".to_string();
    assert_eq!(
        summary,
        [
            (platform_user.clone(), action.clone(), 200),
            (platform_user.clone(), action.clone(), 200),
            (admin_user.clone(), action, 403),
        ],
        "{}",
        read.text
    );
    assert_eq!(items[1]["requestId"], request_id.as_str());
    assert_eq!(items[1]["operation"], operation.as_str());
    assert_eq!(items[1]["path"], rotate.as_str());
    // Pages: one at a time, then the rest.
    let first = api
        .call(
            "GET",
            &format!("{history}?limit=1"),
            Some(&admin),
            &[],
            None,
        )
        .await?;
    let cursor = first.json["nextCursor"].as_str().context("a next page")?;
    let rest = api
        .call(
            "GET",
            &format!("{history}?limit=5&cursor={cursor}"),
            Some(&admin),
            &[],
            None,
        )
        .await?;
    assert_eq!(
        rest.json["items"].as_array().map(Vec::len),
        Some(2),
        "{}",
        rest.text
    );
    assert!(rest.json.get("nextCursor").is_none(), "{}", rest.text);
    // Reading it is `get tenants/history` (asked of the API server): the platform caller
    // here may patch Tenants but was granted no history.
    let denied = api
        .call("GET", &history, Some(&platform), &[], None)
        .await?;
    assert_eq!(denied.status, 403, "{}", denied.text);
    // No password in the history or the API's log.
    for text in [read.text.as_str(), api.log_text().as_str()] {
        for password in [&before["password"], &after["password"]] {
            assert!(
                !text.contains(password.as_str()),
                "a password leaked: {text}"
            );
        }
    }

    // The history's database down: writes are still made and answered (the audit log has
    // them), and the failure is counted.
    api.history.stop()?;
    let unrecorded = api
        .call(
            "POST",
            &rotate,
            Some(&platform),
            &[("prefer", "wait=60")],
            None,
        )
        .await?;
    assert_eq!(unrecorded.status, 200, "{}", unrecorded.text);
    assert_eq!(unrecorded.json["state"], "succeeded", "{}", unrecorded.text);
    let metrics = api.metrics().await?;
    assert!(
        metrics.contains("landlord_api_history_failures_total 1"),
        "{metrics}"
    );
    let down = api.call("GET", &history, Some(&admin), &[], None).await?;
    assert_eq!(down.status, 503, "{}", down.text);
    assert_eq!(down.header("retry-after"), "5");

    h.delete_tenant(&name).await?;
    ns.cleanup().await
}

#[tokio::test]
async fn a_shared_tenant_gets_an_isolated_database_and_no_password_leaks() -> anyhow::Result<()> {
    let h = harness(&[("main", 50)]).await?;
    let api = h.tenants();
    let (a, b) = (unique_name("db-a"), unique_name("db-b"));
    h.create_tenant(
        &a,
        shared(serde_json::json!({
            "database": {"extensions": ["citext", "pg_trgm"], "deletionPolicy": "Delete"},
            "quota": {"databaseConnections": 7}
        })),
    )
    .await?;
    h.create_tenant(&b, shared(serde_json::json!({}))).await?;
    let ready = h.wait_condition(&a, "Ready", "True", None).await?;
    h.wait_condition(&b, "Ready", "True", None).await?;

    let status = ready
        .status
        .clone()
        .context("status")?
        .database
        .context("status.database")?;
    let ident_a = format!("t_{}", a.replace('-', "_"));
    assert_eq!(status.server.as_deref(), Some("main"));
    assert_eq!(status.name.as_deref(), Some(ident_a.as_str()));
    assert_eq!(status.secret.as_deref(), Some("landlord-database"));
    let database_ready = condition(&ready, "DatabaseReady")?;
    assert_eq!(
        (
            database_ready.status.as_str(),
            database_ready.reason.as_str()
        ),
        ("True", "Provisioned")
    );

    let creds_a = credentials(&h.client, &a).await?;
    let creds_b = credentials(&h.client, &b).await?;
    for key in ["host", "port", "dbname", "user", "password", "uri"] {
        assert!(
            creds_a.get(key).is_some_and(|v| !v.is_empty()),
            "Secret key {key}"
        );
    }
    assert_eq!(creds_a["user"], ident_a);
    assert_eq!(creds_a["port"], h.server("main")?.port.to_string());

    // The Secret connects to the tenant's own database, which has its extensions.
    let mut conn_a = connect(&creds_a["uri"])
        .await
        .context("tenant A connects with its Secret")?;
    conn_a
        .execute("CREATE TABLE secrets (v text); INSERT INTO secrets VALUES ('a-only')")
        .await?;
    let extensions: Vec<String> =
        sqlx::query_scalar("SELECT extname::text FROM pg_extension ORDER BY 1")
            .fetch_all(&mut conn_a)
            .await?;
    assert!(
        extensions.contains(&"citext".to_string()) && extensions.contains(&"pg_trgm".to_string()),
        "{extensions:?}"
    );
    let limit: i32 =
        sqlx::query_scalar("SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut conn_a)
            .await?;
    assert_eq!(
        limit, 7,
        "connection limit from spec.quota.databaseConnections"
    );

    // A's role may not create roles or databases.
    for statement in ["CREATE ROLE intruder", "CREATE DATABASE intruder"] {
        let err = conn_a.execute(statement).await.expect_err(statement);
        assert_eq!(
            sqlstate(&err).as_deref(),
            Some("42501"),
            "{statement}: {err}"
        );
    }
    // B cannot connect to A's database (CONNECT revoked from PUBLIC), so cannot read its tables.
    let b_into_a = creds_b["uri"].replace(
        &format!("/{}?", creds_b["dbname"]),
        &format!("/{}?", creds_a["dbname"]),
    );
    let err = connect(&b_into_a)
        .await
        .expect_err("B connects to A's database");
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    // Nor can A reach B's.
    let a_into_b = creds_a["uri"].replace(
        &format!("/{}?", creds_a["dbname"]),
        &format!("/{}?", creds_b["dbname"]),
    );
    assert!(
        connect(&a_into_b).await.is_err(),
        "A connects to B's database"
    );

    // Rotation: a new password works, the old one no longer does.
    let old = creds_a["password"].clone();
    conn_a.close().await?;
    let rotated = h.rotate_database_password(&a, "1", &old).await?;
    connect(&rotated["uri"])
        .await
        .context("the rotated password connects")?
        .close()
        .await?;
    let err = connect(&creds_a["uri"])
        .await
        .expect_err("the old password still works");
    assert_eq!(sqlstate(&err).as_deref(), Some("28P01"), "{err}");

    // No generated password anywhere it must not be.
    let passwords = [
        old.as_str(),
        rotated["password"].as_str(),
        creds_b["password"].as_str(),
    ];
    let pg_log = h.server("main")?.log_text();
    assert!(pg_log.contains("CREATE ROLE"), "the statement log is on");
    assert!(pg_log.contains("SCRAM-SHA-256$"), "roles get verifiers");
    let operator_log = h.operator.log_text();
    let mut events = String::new();
    for ns in [
        format!("tenant-{a}"),
        format!("tenant-{b}"),
        "default".to_string(),
    ] {
        for e in Api::<Event>::namespaced(h.client.clone(), &ns)
            .list(&ListParams::default())
            .await?
        {
            events.push_str(&serde_json::to_string(&e)?);
        }
    }
    let statuses = serde_json::to_string(&(api.get(&a).await?.status, api.get(&b).await?.status))?;
    let metrics = h.operator.get("/metrics").await?;
    for password in passwords {
        assert!(
            !pg_log.contains(password),
            "a password is in the PostgreSQL log"
        );
        assert!(
            !operator_log.contains(password),
            "a password is in the operator log"
        );
        assert!(!events.contains(password), "a password is in an event");
        assert!(!statuses.contains(password), "a password is in a status");
        assert!(!metrics.contains(password), "a password is in the metrics");
    }

    h.delete_tenants(&[&a, &b]).await?;
    Ok(())
}

#[tokio::test]
async fn tenants_spread_by_load_explicit_placement_is_honoured_and_capacity_holds()
-> anyhow::Result<()> {
    let h = harness(&[("east", 3), ("west", 3)]).await?;
    let names: Vec<String> = (0..4).map(|_| unique_name("spread")).collect();
    for name in &names {
        h.create_tenant(name, shared(serde_json::json!({}))).await?;
    }
    let mut per_server: BTreeMap<String, u32> = BTreeMap::new();
    for name in &names {
        let t = h.wait_condition(name, "Ready", "True", None).await?;
        let server = t
            .status
            .and_then(|s| s.database)
            .and_then(|d| d.server)
            .context("placement")?;
        *per_server.entry(server).or_default() += 1;
    }
    assert_eq!(
        per_server,
        BTreeMap::from([("east".into(), 2), ("west".into(), 2)]),
        "spread by load"
    );

    // An explicit choice wins over load: east gets a third even though loads are equal.
    let pinned = unique_name("pinned");
    h.create_tenant(
        &pinned,
        shared(serde_json::json!({"database": {"server": "east", "deletionPolicy": "Delete"}})),
    )
    .await?;
    let t = h.wait_condition(&pinned, "Ready", "True", None).await?;
    assert_eq!(
        t.status
            .and_then(|s| s.database)
            .and_then(|d| d.server)
            .as_deref(),
        Some("east")
    );
    assert_eq!(server_objects(h.server("east")?, &pinned).await?.0, 1);

    // East is now full (3/3): a fourth explicit request is refused with a reason.
    let overflow = unique_name("overflow");
    h.create_tenant(
        &overflow,
        shared(serde_json::json!({"database": {"server": "east", "deletionPolicy": "Delete"}})),
    )
    .await?;
    let t = h
        .wait_condition(&overflow, "DatabaseReady", "False", Some("CapacityFull"))
        .await?;
    let ready = condition(&t, "Ready")?;
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains("east"), "{}", ready.message);
    assert_eq!(
        server_objects(h.server("east")?, &overflow).await?,
        (0, 0, None),
        "nothing made on a full server"
    );

    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    all.extend([pinned.as_str(), overflow.as_str()]);
    h.delete_tenants(&all).await?;
    Ok(())
}

#[tokio::test]
async fn a_server_outage_is_reported_and_tenants_recover_by_themselves() -> anyhow::Result<()> {
    let mut h = harness(&[("flaky", 10)]).await?;
    let name = unique_name("outage");
    h.create_tenant(&name, shared(serde_json::json!({})))
        .await?;
    h.wait_condition(&name, "Ready", "True", None).await?;

    h.servers[0].1.stop()?;
    let t = h
        .wait_condition(&name, "DatabaseReady", "False", Some("ServerUnreachable"))
        .await?;
    let status = t.status.context("status")?;
    let ready = conditions::find(&status.conditions, "Ready").context("Ready")?;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "ServerUnreachable")
    );
    assert!(
        ready.message.contains("flaky"),
        "names the server: {}",
        ready.message
    );
    assert_eq!(status.phase, Some(Phase::Degraded));
    // The probe runs every few seconds on its own; a reconcile may have seen the outage first.
    wait::until("the probe reports the server down", TIMEOUT, || async {
        let up = h
            .operator
            .metric("landlord_database_server_up{server=\"flaky\"}")
            .await?;
        Ok((up == 0.0).then_some(()))
    })
    .await?;

    h.servers[0].1.start_again().await?;
    let t = h.wait_condition(&name, "Ready", "True", None).await?;
    assert_eq!(t.status.and_then(|s| s.phase), Some(Phase::Ready));
    connect(&credentials(&h.client, &name).await?["uri"])
        .await?
        .close()
        .await?;

    h.delete_tenants(&[&name]).await?;
    Ok(())
}

/// Issue 12: a server whose postmaster hangs (SIGSTOP) keeps answering on the sessions it
/// already has, but takes no new one, which is what a tenant's service needs. The probe opens
/// a new session with a timeout, so the outage reaches the tenants' status while it lasts.
#[tokio::test]
async fn a_hung_server_is_reported_although_its_open_sessions_answer() -> anyhow::Result<()> {
    let h = harness(&[("wedged", 10)]).await?;
    let name = unique_name("hung");
    h.create_tenant(&name, shared(serde_json::json!({})))
        .await?;
    h.wait_condition(&name, "Ready", "True", None).await?;
    let mut open = connect(&credentials(&h.client, &name).await?["uri"]).await?;

    h.servers[0].1.hang()?;
    let result = async {
        // What fooled a pooled probe: the open session still answers.
        let one: i32 = tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::query_scalar("SELECT 1").fetch_one(&mut open),
        )
        .await
        .context("an open session of the hung server answers")??;
        assert_eq!(one, 1);
        let t = h
            .wait_condition(&name, "DatabaseReady", "False", Some("ServerUnreachable"))
            .await?;
        let ready = tenants::condition(&t, "Ready").context("Ready")?;
        assert_eq!(ready.status, "False");
        assert!(ready.message.contains("wedged"), "{}", ready.message);
        wait::until("the probe reports the server down", TIMEOUT, || async {
            let up = h
                .operator
                .metric("landlord_database_server_up{server=\"wedged\"}")
                .await?;
            Ok((up == 0.0).then_some(()))
        })
        .await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    h.servers[0].1.resume()?;
    result?;

    let t = h.wait_condition(&name, "Ready", "True", None).await?;
    assert_eq!(t.status.and_then(|s| s.phase), Some(Phase::Ready));
    h.delete_tenants(&[&name]).await?;
    Ok(())
}

#[tokio::test]
async fn retain_keeps_the_data_delete_drops_it_and_a_namesake_adopts_only_when_asked()
-> anyhow::Result<()> {
    let h = harness(&[("keep", 10)]).await?;
    let api = h.tenants();
    let server = h.server("keep")?;
    let (kept, dropped) = (unique_name("kept"), unique_name("dropped"));
    h.create_tenant(
        &kept,
        shared(serde_json::json!({"database": {"deletionPolicy": "Retain"}})),
    )
    .await?;
    h.create_tenant(
        &dropped,
        shared(serde_json::json!({"database": {"deletionPolicy": "Delete"}})),
    )
    .await?;
    h.wait_condition(&kept, "Ready", "True", None).await?;
    h.wait_condition(&dropped, "Ready", "True", None).await?;
    let mut conn = connect(&credentials(&h.client, &kept).await?["uri"]).await?;
    conn.execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (42)")
        .await?;
    conn.close().await?;

    h.delete_tenants(&[&kept, &dropped]).await?;
    assert_eq!(
        server_objects(server, &kept).await?,
        (1, 1, Some(false)),
        "Retain: data kept, login off"
    );
    assert_eq!(
        server_objects(server, &dropped).await?,
        (0, 0, None),
        "Delete: no database, no orphan role"
    );

    // A new Tenant of the same name does not silently inherit the data...
    h.create_tenant(
        &kept,
        shared(serde_json::json!({"database": {"deletionPolicy": "Delete"}})),
    )
    .await?;
    let t = h
        .wait_condition(&kept, "DatabaseReady", "False", Some("NameConflict"))
        .await?;
    assert_eq!(t.status.and_then(|s| s.phase), Some(Phase::Failed));
    // ...until it asks to adopt it; then the retained rows are there, with a new password.
    api.patch(
        &kept,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"landlord.dev/adopt-database": "true"}}})),
    )
    .await?;
    h.wait_condition(&kept, "Ready", "True", None).await?;
    let mut conn = connect(&credentials(&h.client, &kept).await?["uri"]).await?;
    let id: i32 = sqlx::query("SELECT id FROM orders")
        .fetch_one(&mut conn)
        .await?
        .try_get(0)?;
    assert_eq!(id, 42);
    conn.close().await?;

    h.delete_tenants(&[&kept]).await?;
    assert_eq!(server_objects(server, &kept).await?, (0, 0, None));
    Ok(())
}

#[tokio::test]
async fn applying_twice_or_killing_the_operator_midway_leaves_one_role_and_one_database()
-> anyhow::Result<()> {
    let mut h = harness(&[("solo", 100)]).await?;
    let api = h.tenants();
    let names: Vec<String> = (0..6).map(|_| unique_name("crash")).collect();
    let params = PatchParams::apply("e2e-test").force();
    for name in &names {
        api.patch(
            name,
            &params,
            &Patch::Apply(&tenant(name, shared(serde_json::json!({})))?),
        )
        .await?;
    }
    // Kill the operator as soon as the first database exists, while the rest are in flight.
    let server = h.server("solo")?;
    wait::until("a first database", TIMEOUT, || async {
        let mut conn = server.connect_admin().await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 't\\_crash\\_%'",
        )
        .fetch_one(&mut conn)
        .await?;
        Ok((n > 0).then_some(()))
    })
    .await?;
    h.operator.kill();
    // The same manifests again, then a new operator.
    for name in &names {
        api.patch(
            name,
            &params,
            &Patch::Apply(&tenant(name, shared(serde_json::json!({})))?),
        )
        .await?;
    }
    h.operator = h.start_operator().await?;
    for name in &names {
        h.wait_condition(name, "Ready", "True", None).await?;
        connect(&credentials(&h.client, name).await?["uri"])
            .await?
            .close()
            .await?;
        assert_eq!(
            server_objects(h.server("solo")?, name).await?,
            (1, 1, Some(true)),
            "{name}"
        );
    }
    let mut conn = h.server("solo")?.connect_admin().await?;
    let (roles, databases): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_roles WHERE rolname LIKE 't\\_%'), \
         (SELECT count(*) FROM pg_database WHERE datname LIKE 't\\_%')",
    )
    .fetch_one(&mut conn)
    .await?;
    assert_eq!(
        (roles, databases),
        (6, 6),
        "exactly one role and one database per tenant"
    );
    conn.close().await?;

    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    h.delete_tenants(&all).await?;
    Ok(())
}

#[tokio::test]
async fn bad_input_ends_in_a_clear_condition_without_a_retry_storm() -> anyhow::Result<()> {
    let h = harness(&[("strict", 10)]).await?;
    let ext = unique_name("badext");
    h.create_tenant(&ext, shared(serde_json::json!({"database": {"extensions": ["plpython3u"], "deletionPolicy": "Delete"}}))).await?;
    let t = h
        .wait_condition(&ext, "DatabaseReady", "False", Some("ExtensionNotAllowed"))
        .await?;
    let c = condition(&t, "DatabaseReady")?;
    assert!(
        c.message
            .starts_with("spec.database.extensions: plpython3u"),
        "{}",
        c.message
    );
    assert_eq!(t.status.and_then(|s| s.phase), Some(Phase::Failed));
    assert_eq!(
        server_objects(h.server("strict")?, &ext).await?,
        (0, 0, None)
    );

    // A role of that name made outside Landlord: never taken over.
    let squat = unique_name("squat");
    let mut conn = h.server("strict")?.connect_admin().await?;
    conn.execute(format!("CREATE ROLE t_{}", squat.replace('-', "_")).as_str())
        .await?;
    conn.close().await?;
    h.create_tenant(&squat, shared(serde_json::json!({})))
        .await?;
    let t = h
        .wait_condition(&squat, "DatabaseReady", "False", Some("NameConflict"))
        .await?;
    let c = condition(&t, "DatabaseReady")?;
    assert!(c.message.contains("not made by Landlord"), "{}", c.message);

    // Settled: no retry storm. Once both namespaces are ready (the quota controller's first
    // count reconciles each tenant once more), over 15 seconds at most a couple of
    // reconciles happen, where a 10s recheck loop would add more per tenant and an error
    // backoff many more.
    for name in [&ext, &squat] {
        h.wait_condition(name, "NamespaceReady", "True", None)
            .await?;
    }
    let before = h
        .operator
        .metric("landlord_reconciles_total{controller=\"tenant\"}")
        .await?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let after = h
        .operator
        .metric("landlord_reconciles_total{controller=\"tenant\"}")
        .await?;
    assert!(
        after - before <= 2.0,
        "{} reconciles in 15s",
        after - before
    );

    h.delete_tenants(&[&ext, &squat]).await?;
    Ok(())
}

/// The image tag of the dedicated server's StatefulSet in `ns`.
async fn server_image(client: &Client, ns: &str) -> anyhow::Result<String> {
    let set = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .get("landlord-postgres")
        .await?;
    set.spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.image)
        .context("the server's image")
}

/// Expand writes (PersistentVolumeClaim growth) the operator made so far.
async fn expand_writes(operator: &operator::Operator) -> anyhow::Result<f64> {
    let text = operator.get("/metrics").await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("landlord_api_writes_total") && l.contains("verb=\"expand\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// The storage of a claim's spec request or, with `capacity`, of its status.
fn claim_storage(claim: &PersistentVolumeClaim, capacity: bool) -> Option<String> {
    let map = if capacity {
        claim.status.as_ref()?.capacity.clone()?
    } else {
        claim.spec.as_ref()?.resources.as_ref()?.requests.clone()?
    };
    map.get("storage").map(|q| q.0.clone())
}

#[tokio::test]
async fn a_dedicated_server_keeps_its_major_version_and_its_volume_only_grows() -> anyhow::Result<()>
{
    let h = harness(&[]).await?;
    let api = h.tenants();
    let name = unique_name("dedgrow");
    let ns = format!("tenant-{name}");
    h.create_tenant(
        &name,
        serde_json::json!({"tier": "dedicated", "database": {"storage": "2Gi"}}),
    )
    .await?;
    h.wait_condition(&name, "DatabaseReady", "True", Some("Provisioned"))
        .await?;
    // Made without a version: the operator's default, which the server keeps from now on.
    let image = server_image(&h.client, &ns).await?;
    let running = image
        .rsplit_once(':')
        .context("a tagged image")?
        .1
        .to_string();
    let other = if running == "17" { "16" } else { "17" };

    // Naming another major version for the first time: refused in status, image untouched.
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"database": {"version": other}}})),
    )
    .await?;
    let refused = h
        .wait_condition(
            &name,
            "DatabaseReady",
            "False",
            Some("VersionChangeRefused"),
        )
        .await?;
    let message = condition(&refused, "DatabaseReady")?.message;
    assert!(
        message.contains("spec.database.version")
            && message.contains(other)
            && message.contains(&running),
        "{message}"
    );
    assert_eq!(server_image(&h.client, &ns).await?, image);

    // Changing a version once set, or shrinking the volume: refused at apply time, naming
    // the field.
    let third = if other == "15" { "14" } else { "15" };
    for (patch, field) in [
        (
            serde_json::json!({"spec": {"database": {"version": third}}}),
            "spec.database.version",
        ),
        (
            serde_json::json!({"spec": {"database": {"storage": "1Gi"}}}),
            "spec.database.storage",
        ),
    ] {
        let error = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch.clone()))
            .await
            .expect_err("refused by the CRD");
        let kube::Error::Api(status) = error else {
            anyhow::bail!("{patch}: not an API refusal: {error}");
        };
        assert_eq!(status.code, 422, "{patch}: {status:?}");
        assert!(
            status.message.contains(field),
            "{patch}: {}",
            status.message
        );
    }

    // Removing the version goes back to "whatever the server runs".
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"database": {"version": null}}})),
    )
    .await?;
    h.wait_condition(&name, "DatabaseReady", "True", Some("Provisioned"))
        .await?;
    assert_eq!(server_image(&h.client, &ns).await?, image);

    // Growing: the claim (not the immutable template) is raised once, the volume follows.
    let before = expand_writes(&h.operator).await?;
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"database": {"storage": "3Gi"}}})),
    )
    .await?;
    let claims = Api::<PersistentVolumeClaim>::namespaced(h.client.clone(), &ns);
    let claim = wait::until("the claim holds 3Gi", TIMEOUT, || async {
        let claim = claims.get("data-landlord-postgres-0").await?;
        Ok((claim_storage(&claim, true).as_deref() == Some("3Gi")).then_some(claim))
    })
    .await?;
    assert_eq!(claim_storage(&claim, false).as_deref(), Some("3Gi"));
    let volume = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .context("a bound claim")?;
    let pv = Api::<k8s_openapi::api::core::v1::PersistentVolume>::all(h.client.clone())
        .get(&volume)
        .await?;
    assert_eq!(
        pv.spec
            .and_then(|s| s.capacity)
            .and_then(|c| c.get("storage").cloned())
            .map(|q| q.0)
            .as_deref(),
        Some("3Gi")
    );
    h.wait_condition(&name, "DatabaseReady", "True", Some("Provisioned"))
        .await?;
    assert_eq!(expand_writes(&h.operator).await? - before, 1.0);
    // At rest (past the operator's 10 s recheck): no further write to the claim.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(expand_writes(&h.operator).await? - before, 1.0);

    h.delete_tenants(&[&name]).await?;
    Ok(())
}

#[tokio::test]
async fn a_dedicated_tenant_gets_its_own_server() -> anyhow::Result<()> {
    let h = harness(&[]).await?;
    let api = h.tenants();
    let name = unique_name("ded");
    h.create_tenant(
        &name,
        serde_json::json!({
            "tier": "dedicated",
            "database": {"version": "15", "storage": "3Gi", "deletionPolicy": "Retain"}
        }),
    )
    .await?;
    let t = h
        .wait_condition(&name, "DatabaseReady", "True", Some("Provisioned"))
        .await?;
    let ns = format!("tenant-{name}");
    // DatabaseReady is True only once the StatefulSet reports a ready pod.
    let set = Api::<StatefulSet>::namespaced(h.client.clone(), &ns)
        .get("landlord-postgres")
        .await?;
    assert!(
        set.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
            >= 1,
        "{:?}",
        set.status
    );
    let spec = set.spec.context("spec")?;
    let pod = spec.template.spec.context("pod spec")?;
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("registry.example/postgres:15")
    );
    let security = pod.containers[0]
        .security_context
        .clone()
        .context("securityContext")?;
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        pod.security_context.and_then(|s| s.run_as_non_root),
        Some(true)
    );
    let claim = Api::<PersistentVolumeClaim>::namespaced(h.client.clone(), &ns)
        .get("data-landlord-postgres-0")
        .await?;
    let requested = claim
        .spec
        .and_then(|s| s.resources)
        .and_then(|r| r.requests)
        .unwrap_or_default();
    assert_eq!(requested.get("storage").map(|q| q.0.as_str()), Some("3Gi"));
    Api::<Service>::namespaced(h.client.clone(), &ns)
        .get("landlord-postgres")
        .await?;
    let creds = credentials(&h.client, &name).await?;
    assert_eq!(creds["host"], format!("landlord-postgres.{ns}.svc"));
    let database = t
        .status
        .and_then(|s| s.database)
        .context("status.database")?;
    assert_eq!(database.server, None);
    assert_eq!(database.secret.as_deref(), Some("landlord-database"));
    // The pod was admitted under the namespace's `restricted` Pod Security Standard.
    wait::until("a postgres pod", TIMEOUT, || async {
        let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(h.client.clone(), &ns)
            .list(&ListParams::default().labels("app.kubernetes.io/name=postgres"))
            .await?;
        Ok((!pods.items.is_empty()).then_some(()))
    })
    .await?;

    // Suspending stops the server; DatabaseReady says so and the volume stays.
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"suspended": true}})),
    )
    .await?;
    h.wait_condition(&name, "DatabaseReady", "True", Some("Suspended"))
        .await?;
    let set = Api::<StatefulSet>::namespaced(h.client.clone(), &ns)
        .get("landlord-postgres")
        .await?;
    assert_eq!(set.spec.and_then(|s| s.replicas), Some(0));

    // Retain: the volume outlives the namespace.
    let volume = Api::<PersistentVolumeClaim>::namespaced(h.client.clone(), &ns)
        .get("data-landlord-postgres-0")
        .await?
        .spec
        .and_then(|s| s.volume_name)
        .context("the claim is bound")?;
    h.delete_tenants(&[&name]).await?;
    let pv = Api::<k8s_openapi::api::core::v1::PersistentVolume>::all(h.client.clone())
        .get(&volume)
        .await?;
    assert_eq!(
        pv.spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.clone())
            .as_deref(),
        Some("Retain")
    );
    assert_eq!(pv.labels().get("landlord.dev/tenant"), Some(&name));
    Ok(())
}

/// Whether `member` is a member of `role` (directly or not), as the superuser sees it.
async fn member_of(server: &PgServer, member: &str, role: &str) -> anyhow::Result<bool> {
    let mut conn = server.connect_admin().await?;
    let yes: bool = sqlx::query_scalar("SELECT pg_has_role($1, $2, 'MEMBER')")
        .bind(member)
        .bind(role)
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(yes)
}

/// `uri` with its database name swapped for `database`.
fn into_database(creds: &BTreeMap<String, String>, database: &str) -> String {
    creds["uri"].replace(&format!("/{}?", creds["dbname"]), &format!("/{database}?"))
}

/// The attack of issue 11 item 1 and its variants: a shared tenant, with its own
/// credentials, plants objects that shadow every catalog name the operator reads, points its
/// database's `search_path` at them, and makes the operator reconcile it through every SQL
/// path (extensions, suspension, resumption, rotation, deletion). Each planted object would
/// grant the victim's role to the attacker if it ran with the admin's rights. None may run.
#[tokio::test]
async fn a_tenant_cannot_run_code_as_the_admin_or_reach_another_tenants_database()
-> anyhow::Result<()> {
    let h = harness(&[("pool", 10)]).await?;
    let api = h.tenants();
    let (victim, mallory) = (unique_name("victim"), unique_name("mallory"));
    let (victim_role, mallory_role) = (
        format!("t_{}", victim.replace('-', "_")),
        format!("t_{}", mallory.replace('-', "_")),
    );
    h.create_tenant(&victim, shared(serde_json::json!({})))
        .await?;
    h.create_tenant(
        &mallory,
        shared(
            serde_json::json!({"database": {"extensions": ["citext"], "deletionPolicy": "Delete"}}),
        ),
    )
    .await?;
    h.wait_condition(&victim, "Ready", "True", None).await?;
    h.wait_condition(&mallory, "Ready", "True", None).await?;
    let server = h.server("pool")?;
    let victim_creds = credentials(&h.client, &victim).await?;
    connect(&victim_creds["uri"])
        .await?
        .execute("CREATE TABLE customers (name text); INSERT INTO customers VALUES ('ada')")
        .await?;

    // Rule 3: the admin holds no inherited rights of either tenant role at rest.
    for role in [&victim_role, &mallory_role] {
        let mut conn = server.connect_admin().await?;
        let inherits: bool = sqlx::query_scalar("SELECT pg_has_role($1, $2, 'USAGE')")
            .bind(PROVISIONER)
            .bind(role)
            .fetch_one(&mut conn)
            .await?;
        assert!(!inherits, "the admin inherits the rights of {role}");
    }

    // The trap, planted with mallory's own credentials in its own database.
    let creds = credentials(&h.client, &mallory).await?;
    let mut m = connect(&creds["uri"]).await?;
    let grant = format!("GRANT {victim_role} TO {mallory_role}");
    m.execute(
        format!(
            "CREATE FUNCTION public.pwn() RETURNS boolean LANGUAGE plpgsql AS $$ \
             BEGIN EXECUTE '{grant}'; RETURN true; END $$"
        )
        .as_str(),
    )
    .await?;
    // Every catalog relation and function the operator's statements name, shadowed.
    for statement in [
        "CREATE VIEW public.pg_extension AS SELECT e.extname FROM pg_catalog.pg_extension e WHERE public.pwn()",
        "CREATE VIEW public.pg_roles AS SELECT * FROM pg_catalog.pg_roles WHERE public.pwn()",
        "CREATE VIEW public.pg_database AS SELECT * FROM pg_catalog.pg_database WHERE public.pwn()",
        "CREATE VIEW public.pg_stat_activity AS SELECT * FROM pg_catalog.pg_stat_activity WHERE public.pwn()",
        "CREATE FUNCTION public.shobj_description(oid, text) RETURNS text LANGUAGE sql AS $$ SELECT CASE WHEN public.pwn() THEN 'x' END $$",
        "CREATE FUNCTION public.pg_has_role(oid, oid, text) RETURNS boolean LANGUAGE sql AS $$ SELECT public.pwn() $$",
        "CREATE FUNCTION public.pg_terminate_backend(integer) RETURNS boolean LANGUAGE sql AS $$ SELECT public.pwn() $$",
        "CREATE FUNCTION public.current_setting(text, boolean) RETURNS text LANGUAGE sql AS $$ SELECT CASE WHEN public.pwn() THEN '0' END $$",
    ] {
        m.execute(statement)
            .await
            .with_context(|| statement.to_string())?;
    }
    m.execute(
        format!("ALTER DATABASE {mallory_role} SET search_path = public, pg_catalog").as_str(),
    )
    .await?;
    m.execute(format!("ALTER ROLE {mallory_role} SET search_path = public, pg_catalog").as_str())
        .await?;
    m.close().await?;

    // The trap is armed: a privileged session in mallory's database falls into it (here the
    // superuser's, which is then undone).
    {
        let mut su =
            sqlx::PgConnection::connect_with(&server.admin_options().database(&mallory_role))
                .await?;
        let _: Vec<String> = sqlx::query_scalar("SELECT extname::text FROM pg_extension")
            .fetch_all(&mut su)
            .await?;
        su.close().await?;
        assert!(
            member_of(server, &mallory_role, &victim_role).await?,
            "the planted view did not run: the test proves nothing"
        );
        let mut su = server.connect_admin().await?;
        su.execute(format!("REVOKE {victim_role} FROM {mallory_role}").as_str())
            .await?;
        su.close().await?;
    }
    // The same trap in the maintenance database, where the admin does connect (public was
    // writable there before PostgreSQL 15; planted by the superuser to stand for that).
    {
        let mut su = server.connect_admin().await?;
        su.execute(
            format!(
                "CREATE FUNCTION public.pwn() RETURNS boolean LANGUAGE plpgsql AS $$ \
                 BEGIN EXECUTE '{grant}'; RETURN true; END $$; \
                 CREATE VIEW public.pg_roles AS SELECT * FROM pg_catalog.pg_roles WHERE public.pwn(); \
                 CREATE VIEW public.pg_database AS SELECT * FROM pg_catalog.pg_database WHERE public.pwn(); \
                 CREATE FUNCTION public.shobj_description(oid, text) RETURNS text LANGUAGE sql AS $$ SELECT CASE WHEN public.pwn() THEN 'x' END $$; \
                 GRANT EXECUTE ON FUNCTION public.pwn() TO PUBLIC; \
                 GRANT SELECT ON public.pg_roles, public.pg_database TO PUBLIC; \
                 ALTER DATABASE postgres SET search_path = public, pg_catalog"
            )
            .as_str(),
        )
        .await?;
        su.close().await?;
    }

    // Every SQL path of the operator, each waited for by its effect.
    // 1. Extensions (a new one, and the dropped citext again).
    let mut m = connect(&creds["uri"]).await?;
    m.execute("DROP EXTENSION citext").await?;
    m.close().await?;
    api.patch(
        &mallory,
        &PatchParams::default(),
        &Patch::Merge(
            serde_json::json!({"spec": {"database": {"extensions": ["citext", "pg_trgm"]}}}),
        ),
    )
    .await?;
    wait::until("mallory's extensions created", TIMEOUT, || async {
        let mut m = connect(&creds["uri"]).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_catalog.pg_extension WHERE extname IN ('citext', 'pg_trgm')",
        )
        .fetch_one(&mut m)
        .await?;
        m.close().await?;
        Ok((n == 2).then_some(()))
    })
    .await?;
    // 2. Suspension (login disabled, sessions ended), then resumption.
    let mut held = connect(&creds["uri"]).await?;
    api.patch(
        &mallory,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"suspended": true}})),
    )
    .await?;
    h.wait_condition(&mallory, "DatabaseReady", "True", Some("Suspended"))
        .await?;
    // Sessions are ended in the reconcile that reports the suspension.
    assert!(
        held.execute("SELECT 1").await.is_err(),
        "mallory's session outlived its suspension"
    );
    api.patch(
        &mallory,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"suspended": false}})),
    )
    .await?;
    h.wait_condition(&mallory, "DatabaseReady", "True", Some("Provisioned"))
        .await?;
    // 3. Rotation.
    let rotated = h
        .rotate_database_password(&mallory, "1", &creds["password"])
        .await?;

    // No trap ran: mallory is no member of the victim's role and cannot enter its database.
    assert!(
        !member_of(server, &mallory_role, &victim_role).await?,
        "mallory became a member of {victim_role}"
    );
    let err = connect(&into_database(&rotated, &victim_role))
        .await
        .expect_err("mallory connects to the victim's database");
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    let mut m = connect(&rotated["uri"]).await?;
    let err = m
        .execute(format!("SET ROLE {victim_role}").as_str())
        .await
        .expect_err("mallory takes the victim's role");
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    m.close().await?;
    // The victim's data is intact and still its own.
    let mut v = connect(&victim_creds["uri"]).await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM customers")
        .fetch_one(&mut v)
        .await?;
    assert_eq!(rows, 1);
    v.close().await?;

    // 4. Deletion (drops mallory's database as its owner, then the role).
    h.delete_tenants(&[&mallory]).await?;
    let mut su = server.connect_admin().await?;
    su.execute("ALTER DATABASE postgres RESET search_path")
        .await?;
    su.close().await?;
    assert_eq!(server_objects(server, &mallory).await?.0, 0, "role dropped");
    let mut su = server.connect_admin().await?;
    let granted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_catalog.pg_auth_members m \
         JOIN pg_catalog.pg_roles r ON r.oid = m.roleid WHERE r.rolname = $1",
    )
    .bind(&victim_role)
    .fetch_one(&mut su)
    .await?;
    assert_eq!(granted, 0, "someone holds the victim's role");
    su.close().await?;

    h.delete_tenants(&[&victim]).await?;
    Ok(())
}

/// Tenants on a shared server cannot lock the operator out: their connection limits are
/// only granted while they leave the operator its connections, so a tenant using all of
/// its own still leaves the operator able to suspend it.
#[tokio::test]
async fn tenants_cannot_exhaust_a_shared_servers_connections() -> anyhow::Result<()> {
    let mut h = harness(&[("small", 10)]).await?;
    {
        // 40 slots, 3 of them the superuser's: 37 for everyone else, 6 the operator's.
        let server = &mut h.servers[0].1;
        let mut su = server.connect_admin().await?;
        su.execute("ALTER SYSTEM SET max_connections = 40").await?;
        su.close().await?;
        server.stop()?;
        server.start_again().await?;
    }
    let api = h.tenants();
    let (hog, late) = (unique_name("hog"), unique_name("late"));
    let with_limit = |n: i32| shared(serde_json::json!({"quota": {"databaseConnections": n}}));
    h.create_tenant(&hog, with_limit(20)).await?;
    h.wait_condition(&hog, "Ready", "True", None).await?;
    h.create_tenant(&late, with_limit(20)).await?;
    let t = h
        .wait_condition(
            &late,
            "DatabaseReady",
            "False",
            Some("ConnectionBudgetExceeded"),
        )
        .await?;
    let message = condition(&t, "DatabaseReady")?.message;
    for needle in [
        "spec.quota.databaseConnections",
        "server small",
        "40 of the 37",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
    assert_eq!(server_objects(h.server("small")?, &late).await?.0, 0);
    api.patch(
        &late,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"quota": {"databaseConnections": 5}}})),
    )
    .await?;
    h.wait_condition(&late, "Ready", "True", None).await?;

    // The hog takes every connection its role may have; one more is refused by PostgreSQL.
    let creds = credentials(&h.client, &hog).await?;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect(&creds["uri"]).await?);
    }
    let err = connect(&creds["uri"]).await.expect_err("a 21st connection");
    assert_eq!(sqlstate(&err).as_deref(), Some("53300"), "{err}");
    // The operator still works on this server: it suspends the hog and ends its sessions.
    api.patch(
        &hog,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"suspended": true}})),
    )
    .await?;
    h.wait_condition(&hog, "DatabaseReady", "True", Some("Suspended"))
        .await?;
    // Sessions are ended in the reconcile that reports the suspension.
    for conn in held.iter_mut() {
        assert!(
            conn.execute("SELECT 1").await.is_err(),
            "a session of the hog outlived its suspension"
        );
    }

    h.delete_tenants(&[&hog, &late]).await?;
    Ok(())
}

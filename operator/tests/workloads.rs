//! Real workloads: Tenants whose pods run on the local stack's real nodes (containerd,
//! kubelet, CNI, kube-proxy, CoreDNS; see `e2e/scripts/real-nodes.sh`), with the real
//! operator binary as the chart's ServiceAccount. Nothing here is played by kwok: a server
//! is Ready because PostgreSQL answered its readiness probe, and a row is read back because
//! a pod wrote it over the cluster's network.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{Pod, Service},
};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use landlord_e2e::{
    audit,
    tenants::{self, Harness},
    unique_name, wait,
    workloads::{self, POSTGRES_IMAGE},
};
use sqlx::{
    Connection, Executor, PgConnection,
    postgres::{PgConnectOptions, PgSslMode},
};

const LANDLORD: &str = env!("CARGO_BIN_EXE_landlord");
/// Real PostgreSQL initialising a data directory on a small machine takes seconds, not the
/// instant kwok takes.
const TIMEOUT: Duration = Duration::from_secs(180);
/// Where the catalog Services live (the operator's default `--platform-namespace`).
const PLATFORM: &str = "landlord-platform";

/// An operator of this test's own (extensions citext and pgcrypto allowed, the host's
/// node-network address admitted to dedicated servers), once the platform namespace exists.
async fn harness() -> anyhow::Result<Harness> {
    let setup = Harness::setup(LANDLORD).await?.timeout(TIMEOUT);
    landlord_e2e::manifests::ensure_namespace(&setup.client, PLATFORM).await?;
    let real_nodes = workloads::operator_args(setup.cluster)?;
    setup
        .args(["--database-extensions", "citext,pgcrypto"])
        .args(real_nodes)
        .start()
        .await
}

/// Creates a dedicated Tenant `<prefix>-<random>` whose pods run on the real nodes, with a
/// PostgreSQL 15 server on a local volume (dropped with the Tenant); `extra` adds to its
/// spec (`database` field by field). Returns its name, without waiting.
async fn dedicated_on_real_nodes(
    h: &Harness,
    prefix: &str,
    extra: serde_json::Value,
) -> anyhow::Result<String> {
    let mut spec = serde_json::json!({
        "tier": "dedicated",
        "placement": workloads::placement(h.cluster)?,
        "database": {
            "version": "15",
            "storageClassName": workloads::storage_class(h.cluster),
            "deletionPolicy": "Delete",
        },
    });
    for (key, value) in extra.as_object().into_iter().flatten() {
        match (
            key.as_str(),
            value.as_object(),
            spec["database"].as_object_mut(),
        ) {
            ("database", Some(fields), Some(database)) => {
                database.extend(fields.clone());
            }
            _ => spec[key] = value.clone(),
        }
    }
    let name = unique_name(prefix);
    h.create_tenant(&name, spec).await?;
    Ok(name)
}

/// Shell that waits (up to 30 s) until the tenant's own server answers: a new pod's network
/// takes a moment to be up, so a refusal seen before this would prove nothing. (Its own
/// egress rules may still be missing for a moment after: kube-router programs them once the
/// pod has its address, and until then its packets pass unfiltered. Refusals by the
/// destination's ingress rules hold from the start; a check of the pod's own egress waits
/// for its rules with [`dials`].) Reads the host and port from `DATABASE_URL`, or the host from `OWN`
/// (a dedicated server, port 5432) when set.
const WAIT_FOR_OWN_SERVER: &str = "rest=${DATABASE_URL#*@}; at=${rest%%/*}; \
    own=${OWN:-${at%%:*}}; port=5432; [ -z \"$OWN\" ] && port=${at##*:}; i=0; \
    until pg_isready -q -h \"$own\" -p \"$port\" -t 1; do i=$((i+1)); \
    if [ $i -ge 30 ]; then echo \"own server $own:$port unreachable\"; exit 3; fi; sleep 1; done; ";

/// A client pod in the tenant's namespace on a real node, with the credentials Secret the
/// operator wrote as `DATABASE_URL`, running `script` with `sh` once its own server answers.
fn client_pod(cluster: &landlord_e2e::Cluster, name: &str, script: &str) -> anyhow::Result<Pod> {
    let script = format!("{WAIT_FOR_OWN_SERVER}{script}");
    let mut container =
        workloads::restricted_container("psql", POSTGRES_IMAGE, &["sh", "-c", &script]);
    container["env"] = serde_json::json!([{
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "landlord-database", "key": "uri"}},
    }]);
    workloads::on_real_nodes(
        cluster,
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "containers": [container],
            },
        }),
    )
}

/// Lets the operator's last writes come back as watch events, then asserts from the audit
/// log that it writes nothing for 20 s: an unchanged world causes no write.
async fn assert_at_rest(cluster: &landlord_e2e::Cluster, world: &str) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = audit::end(cluster)?;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (_, writes) = audit::operator_writes(cluster, start)?;
    anyhow::ensure!(
        writes.is_empty(),
        "at rest ({world}), the operator wrote {} times:\n{}",
        writes.len(),
        writes.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn a_dedicated_tenants_postgresql_runs_on_a_real_node_and_its_credentials_work_from_a_pod()
-> anyhow::Result<()> {
    let h = harness().await?;
    let name = dedicated_on_real_nodes(
        &h,
        "realdb",
        serde_json::json!({"database": {"storage": "1Gi", "extensions": ["citext"]}}),
    )
    .await?;
    let ns = format!("tenant-{name}");
    h.wait_condition(&name, "DatabaseReady", "True", Some("Provisioned"))
        .await?;

    // The server runs on a real node, in a container that started.
    let pods = Api::<Pod>::namespaced(h.client.clone(), &ns);
    let server = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=postgres"))
        .await?
        .items
        .into_iter()
        .next()
        .context("the server's pod")?;
    let node = server
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .context("a scheduled pod")?;
    assert!(
        node.starts_with("landlord-real-"),
        "{} on {node}",
        server.name_any()
    );
    let started = server
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.running.as_ref())
        .is_some();
    assert!(started, "the server's container runs: {:?}", server.status);
    // A running dedicated server, probed by the operator, causes no write.
    assert_at_rest(h.cluster, "a dedicated tenant with its server running").await?;

    // A pod of the tenant writes a row with the credentials from landlord-database, reads it
    // back, and finds the extension the spec asked for.
    let outcome = workloads::run_to_completion(
        &h.client,
        &ns,
        client_pod(
            h.cluster,
            "writer",
            "psql \"$DATABASE_URL\" -v ON_ERROR_STOP=1 -At \
             -c 'CREATE TABLE orders (id int PRIMARY KEY, customer citext)' \
             -c \"INSERT INTO orders VALUES (42, 'ACME')\" \
             -c \"SELECT id FROM orders WHERE customer = 'acme'\" \
             -c \"SELECT extname FROM pg_extension WHERE extname = 'citext'\"",
        )?,
        TIMEOUT,
    )
    .await?;
    assert_eq!(outcome.phase, "Succeeded", "{}", outcome.log);
    let lines: Vec<&str> = outcome.log.lines().collect();
    assert!(
        lines.contains(&"42") && lines.contains(&"citext"),
        "{}",
        outcome.log
    );

    // The same credentials with another password are refused by the server.
    let outcome = workloads::run_to_completion(
        &h.client,
        &ns,
        client_pod(
            h.cluster,
            "intruder",
            "scheme=${DATABASE_URL%%://*}; rest=${DATABASE_URL#*://}; \
             psql \"$scheme://${rest%%:*}:not-the-password@${rest#*@}\" -At -c 'SELECT 1'",
        )?,
        TIMEOUT,
    )
    .await?;
    assert_eq!(outcome.phase, "Failed", "{}", outcome.log);
    assert!(
        outcome.log.contains("password authentication failed"),
        "{}",
        outcome.log
    );

    // The volume's StorageClass cannot change once set: refused at apply time, naming it.
    let error = h
        .tenants()
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"database": {"storageClassName": "another"}}}),
            ),
        )
        .await
        .expect_err("refused by the CRD");
    let kube::Error::Api(status) = error else {
        anyhow::bail!("not an API refusal: {error}");
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status.message.contains("spec.database.storageClassName"),
        "{}",
        status.message
    );

    h.delete_tenant(&name).await?;
    Ok(())
}

/// A session with the dedicated server from this test's host, as `credentials` say, at the
/// server's Service address (the host reaches Services through a real node, as the operator
/// does when it runs outside the cluster).
async fn connect_as(
    client: &kube::Client,
    ns: &str,
    credentials: &BTreeMap<String, String>,
) -> Result<PgConnection, sqlx::Error> {
    let ip = Api::<Service>::namespaced(client.clone(), ns)
        .get("landlord-postgres")
        .await
        .ok()
        .and_then(|s| s.spec?.cluster_ip)
        .unwrap_or_default();
    let options = PgConnectOptions::new()
        .host(&ip)
        .port(5432)
        .username(&credentials["user"])
        .password(&credentials["password"])
        .database(&credentials["dbname"])
        .ssl_mode(PgSslMode::Disable);
    tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(&options))
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

/// [`connect_as`], retrying for up to 30 s while nothing answers: a server pod's
/// NetworkPolicy rules are programmed a moment after it is Ready. A refusal by PostgreSQL
/// itself (a wrong password) is returned at once.
async fn connect_when_up(
    client: &kube::Client,
    ns: &str,
    credentials: &BTreeMap<String, String>,
) -> anyhow::Result<PgConnection> {
    let mut last = None;
    for _ in 0..30 {
        match connect_as(client, ns, credentials).await {
            Ok(conn) => return Ok(conn),
            Err(e @ (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)) => last = Some(e),
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(last
        .map(anyhow::Error::from)
        .unwrap_or_else(|| anyhow::anyhow!("no attempt")))
    .context(format!("the server of {ns} does not answer"))
}

#[tokio::test]
async fn a_dedicated_server_takes_later_extensions_rotates_its_password_and_stops_while_suspended()
-> anyhow::Result<()> {
    let h = harness().await?;
    let name = dedicated_on_real_nodes(
        &h,
        "realday2",
        serde_json::json!({"database": {"extensions": ["citext"]}}),
    )
    .await?;
    let ns = format!("tenant-{name}");
    h.wait_condition(&name, "DatabaseReady", "True", Some("Provisioned"))
        .await?;
    let first = tenants::database_credentials(&h.client, &ns).await?;
    let mut conn = connect_when_up(&h.client, &ns, &first).await?;
    conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
        .await?;
    conn.close().await?;
    let sets = Api::<StatefulSet>::namespaced(h.client.clone(), &ns);
    let generation = sets.get("landlord-postgres").await?.metadata.generation;

    // An extension added to a running server is created in its database, and the server
    // is not restarted for it.
    h.patch_spec(
        &name,
        serde_json::json!({"database": {"extensions": ["citext", "pgcrypto"]}}),
    )
    .await?;
    wait::until("pgcrypto in the tenant's database", TIMEOUT, || async {
        let mut conn = connect_as(&h.client, &ns, &first).await?;
        let found: Option<String> =
            sqlx::query_scalar("SELECT extname::text FROM pg_extension WHERE extname = 'pgcrypto'")
                .fetch_optional(&mut conn)
                .await?;
        conn.close().await?;
        Ok(found.map(|_| ()))
    })
    .await?;
    assert_eq!(
        sets.get("landlord-postgres").await?.metadata.generation,
        generation,
        "the server's StatefulSet changed for an extension"
    );

    // Rotation: the Secret gets a new password, which the server accepts; the old one is
    // refused.
    let rotated = h
        .rotate_database_password(&name, "1", &first["password"])
        .await?;
    let mut conn = connect_when_up(&h.client, &ns, &rotated).await?;
    let kept: i32 = sqlx::query_scalar("SELECT x FROM kept")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(kept, 7);
    conn.close().await?;
    let refused = connect_as(&h.client, &ns, &first)
        .await
        .expect_err("the old password still works");
    assert_eq!(
        refused
            .as_database_error()
            .and_then(|d| d.code())
            .as_deref(),
        Some("28P01"),
        "{refused}"
    );

    // Suspension stops the server's pod: nothing answers; resuming brings the data back.
    h.patch_spec(&name, serde_json::json!({"suspended": true}))
        .await?;
    h.wait_condition(&name, "DatabaseReady", "True", Some("Suspended"))
        .await?;
    let pods = Api::<Pod>::namespaced(h.client.clone(), &ns);
    wait::until("the server's pod to stop", TIMEOUT, || async {
        let left = pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=postgres"))
            .await?;
        Ok(left.items.is_empty().then_some(()))
    })
    .await?;
    assert!(
        connect_as(&h.client, &ns, &rotated).await.is_err(),
        "a suspended tenant's server accepted a login"
    );
    h.patch_spec(&name, serde_json::json!({"suspended": false}))
        .await?;
    h.wait_condition(&name, "DatabaseReady", "True", Some("Provisioned"))
        .await?;
    let mut conn = connect_when_up(&h.client, &ns, &rotated).await?;
    let kept: i32 = sqlx::query_scalar("SELECT x FROM kept")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(kept, 7);
    conn.close().await?;

    h.delete_tenant(&name).await?;
    Ok(())
}

/// Whether a pod in `ns` gets an answer from PostgreSQL at `host` (a name or an address)
/// within 3 s, once it reaches its own tenant's server: `pg_isready` exits 0 for an answer,
/// 2 for none (dropped or refused packets).
async fn reaches(h: &Harness, ns: &str, host: &str) -> anyhow::Result<bool> {
    let script = format!("{WAIT_FOR_OWN_SERVER}pg_isready -h {host} -p 5432 -t 3");
    let mut container =
        workloads::restricted_container("probe", POSTGRES_IMAGE, &["sh", "-c", &script]);
    container["env"] =
        serde_json::json!([{"name": "OWN", "value": format!("landlord-postgres.{ns}.svc")}]);
    let pod = workloads::on_real_nodes(
        h.cluster,
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": unique_name("probe")},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "containers": [container],
            },
        }),
    )?;
    let outcome = workloads::run_to_completion(&h.client, ns, pod, TIMEOUT).await?;
    match outcome.phase.as_str() {
        "Succeeded" => Ok(true),
        _ if outcome.log.trim_end().ends_with("no response") => Ok(false),
        _ => anyhow::bail!("pg_isready to {host} from {ns}: {}", outcome.log),
    }
}

/// Waits until a pod in `ns` reaching `host` gives `expected` (the NetworkPolicy
/// implementation applies a change within seconds, not at once).
async fn until_reaches(h: &Harness, ns: &str, host: &str, expected: bool) -> anyhow::Result<()> {
    wait::until(
        &format!("{ns} reaching {host}: {expected}"),
        Duration::from_secs(60),
        || async { Ok((reaches(h, ns, host).await? == expected).then_some(())) },
    )
    .await
}

#[tokio::test]
async fn network_policies_stop_real_packets_between_tenants_and_let_allowed_peers_through()
-> anyhow::Result<()> {
    let h = harness().await?;
    let a = dedicated_on_real_nodes(&h, "walla", serde_json::json!({})).await?;
    let b = dedicated_on_real_nodes(&h, "wallb", serde_json::json!({})).await?;
    for name in [&a, &b] {
        h.wait_condition(name, "DatabaseReady", "True", Some("Provisioned"))
            .await?;
    }
    let (ns_a, ns_b) = (format!("tenant-{a}"), format!("tenant-{b}"));
    let server_a = format!("landlord-postgres.{ns_a}.svc");
    let server_b = format!("landlord-postgres.{ns_b}.svc");
    let pod_ip_b = Api::<Pod>::namespaced(h.client.clone(), &ns_b)
        .get("landlord-postgres-0")
        .await?
        .status
        .and_then(|s| s.pod_ip)
        .context("B's server has an address")?;

    // A reaches its own server by its name: cluster DNS and its own namespace are open.
    until_reaches(&h, &ns_a, &server_a, true).await?;
    // A cannot reach B's server, neither through its Service nor at its pod's address
    // (checked once A's pod is walled in, not inside kube-router's unfiltered window).
    assert!(
        !dials(&h, &ns_a, &format!("{server_b}:5432")).await?,
        "tenant {a} reached {server_b}"
    );
    assert!(
        !dials(&h, &ns_a, &format!("{pod_ip_b}:5432")).await?,
        "tenant {a} reached B's server pod at {pod_ip_b}"
    );

    // Each wall alone: B admits A (an allowed Ingress peer) and A lets its traffic out
    // (IngressOnly): it arrives. A back to Strict: its own egress wall stops it. A open
    // again, and B withdraws: B's ingress wall stops it.
    let b_admits_a = serde_json::json!({"network": {"allowedPeers": [{
        "direction": "Ingress",
        "namespaceSelector": {"kubernetes.io/metadata.name": ns_a},
        "ports": [5432],
    }]}});
    h.patch_spec(&b, b_admits_a).await?;
    h.patch_spec(
        &a,
        serde_json::json!({"network": {"isolation": "IngressOnly"}}),
    )
    .await?;
    until_reaches(&h, &ns_a, &server_b, true).await?;
    h.patch_spec(&a, serde_json::json!({"network": {"isolation": "Strict"}}))
        .await?;
    until_reaches(&h, &ns_a, &server_b, false).await?;
    h.patch_spec(
        &a,
        serde_json::json!({"network": {"isolation": "IngressOnly"}}),
    )
    .await?;
    until_reaches(&h, &ns_a, &server_b, true).await?;
    h.patch_spec(&b, serde_json::json!({"network": {"allowedPeers": []}}))
        .await?;
    until_reaches(&h, &ns_a, &server_b, false).await?;

    h.delete_tenants(&[&a, &b]).await?;
    Ok(())
}

/// The stack's test catalog Service image (`e2e/images/echo`): shows its `LANDLORD_*`
/// variables at `/`, its tenant's flags (from tenant-runtime) at `/flags`, and is its own
/// client (`echo get URL`).
const ECHO_IMAGE: &str = "landlord.local/echo:1";

/// GETs `url` from a pod in `ns` on a real node; the body, or an error naming the pod's log.
async fn get_in_cluster<F>(h: &Harness<F>, ns: &str, url: &str) -> anyhow::Result<String> {
    let outcome = probe_in_cluster(h, ns, url, 30).await?;
    anyhow::ensure!(
        outcome.phase == "Succeeded",
        "GET {url} from {ns}: {}",
        outcome.log
    );
    Ok(outcome.log)
}

/// Runs `echo get url attempts` in a pod in `ns` on a real node (each attempt bounded by
/// 10 s) and returns what it did.
async fn probe_in_cluster<F>(
    h: &Harness<F>,
    ns: &str,
    url: &str,
    attempts: u32,
) -> anyhow::Result<workloads::Outcome> {
    echo_client(h, ns, &["get", url, &attempts.to_string()]).await
}

/// Runs the echo image as its own client (`/echo <args>`) in a pod in `ns` on a real node
/// and returns what it did.
async fn echo_client<F>(
    h: &Harness<F>,
    ns: &str,
    args: &[&str],
) -> anyhow::Result<workloads::Outcome> {
    let mut command = vec!["/echo"];
    command.extend_from_slice(args);
    let pod = workloads::on_real_nodes(
        h.cluster,
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": unique_name(args.first().copied().unwrap_or("echo"))},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "containers": [workloads::restricted_container("echo", ECHO_IMAGE, &command)],
            },
        }),
    )?;
    workloads::run_to_completion(&h.client, ns, pod, TIMEOUT).await
}

/// Creates the catalog Service `name` in the platform namespace running the echo image (one
/// replica, port `http` 8080, ready once `/healthz` answers), with `spec` added to its spec;
/// returns the catalog's API.
async fn echo_service(
    client: &kube::Client,
    name: &str,
    spec: serde_json::Value,
) -> anyhow::Result<Api<landlord_crds::Service>> {
    let mut service = serde_json::json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "Service",
        "metadata": {"name": name, "namespace": PLATFORM},
        "spec": {
            "image": ECHO_IMAGE,
            "ports": [{"name": "http", "port": 8080}],
            "replicas": 1,
            "readinessProbe": {"path": "/healthz", "port": "http", "periodSeconds": 2},
        },
    });
    for (key, value) in spec.as_object().context("spec: an object")? {
        service["spec"][key] = value.clone();
    }
    let catalog = Api::<landlord_crds::Service>::namespaced(client.clone(), PLATFORM);
    catalog
        .create(&PostParams::default(), &serde_json::from_value(service)?)
        .await?;
    Ok(catalog)
}

#[tokio::test]
async fn a_dedicated_service_instance_runs_with_its_tenant_context_and_reads_its_flags_in_cluster()
-> anyhow::Result<()> {
    let h = harness().await?;
    let service = unique_name("echo");
    let catalog = echo_service(
        &h.client,
        &service,
        serde_json::json!({"tiers": ["dedicated"], "uses": {"database": true, "flags": true}}),
    )
    .await?;
    let name = dedicated_on_real_nodes(
        &h,
        "realsvc",
        serde_json::json!({"plan": "enterprise", "services": [{"name": service}]}),
    )
    .await?;
    let ns = format!("tenant-{name}");
    h.wait_condition(&name, "ServicesReady", "True", None)
        .await?;

    // From inside the tenant's namespace: the instance's environment is the documented
    // contract, secrets only present, not shown.
    let body = get_in_cluster(&h, &ns, &format!("http://{service}.{ns}.svc:8080/")).await?;
    let shown: serde_json::Value = serde_json::from_str(body.trim())
        .with_context(|| format!("the echo service's answer: {body}"))?;
    let env = &shown["env"];
    assert_eq!(env["LANDLORD_TENANT"], name.as_str(), "{shown}");
    assert_eq!(env["LANDLORD_TENANT_TIER"], "dedicated", "{shown}");
    assert_eq!(env["LANDLORD_TENANT_PLAN"], "enterprise", "{shown}");
    assert_eq!(
        env["LANDLORD_DATABASE_HOST"],
        format!("landlord-postgres.{ns}.svc").as_str(),
        "{shown}"
    );
    assert_eq!(env["LANDLORD_DATABASE_PASSWORD"], "set", "{shown}");
    let flags_url = env["LANDLORD_FLAGS_URL"]
        .as_str()
        .context("LANDLORD_FLAGS_URL")?;
    assert!(flags_url.contains(&ns), "{flags_url}");

    // The instance reaches its tenant's own tenant-runtime (on a real node too) and gets an
    // OFREP answer for its tenant.
    let flags = get_in_cluster(&h, &ns, &format!("http://{service}.{ns}.svc:8080/flags")).await?;
    let flags: serde_json::Value = serde_json::from_str(flags.trim())
        .with_context(|| format!("OFREP bulk answer: {flags}"))?;
    assert!(flags["flags"].is_array(), "{flags}");

    h.delete_tenant(&name).await?;
    catalog.delete(&service, &Default::default()).await?;
    Ok(())
}

/// The zone the HTTPS test's operator treats as the platform's own (`--pre-verified-zones`):
/// `<tenant>.<zone>` is the tenant's without a TXT record.
const EDGE_ZONE: &str = "apps.landlord.test";

/// Creates Domain `ns/name` for `hostname` with a managed certificate and waits until it is
/// Ready (cert-manager issued it, the route and the HTTPS listener are in place); errors
/// with cert-manager's log when it is not in time.
async fn managed_domain_ready(
    h: &Harness<workloads::Edge>,
    ns: &str,
    name: &str,
    hostname: &str,
) -> anyhow::Result<landlord_crds::Domain> {
    let domains = Api::<landlord_crds::Domain>::namespaced(h.client.clone(), ns);
    domains
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "apiVersion": "landlord.dev/v1alpha1", "kind": "Domain",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"hostname": hostname, "tls": {"mode": "Managed"}},
            }))?,
        )
        .await?;
    // Ready, and Routed says so from Traefik's own report on the route (both parents: the
    // platform Gateway and the Domain's HTTPS listener).
    wait::until(
        &format!("Domain {ns}/{name} Ready, its route accepted by Traefik"),
        TIMEOUT,
        || async {
            let domain = domains.get(name).await?;
            let holds = |type_: &str, reason: Option<&str>| {
                domain.status.as_ref().is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == type_
                            && c.status == "True"
                            && reason.is_none_or(|r| c.reason == r)
                            && (reason.is_none()
                                || c.message.contains("traefik.io/gateway-controller"))
                    })
                })
            };
            Ok(
                (holds("Ready", None) && holds("Routed", Some("HTTPRouteAccepted")))
                    .then_some(domain),
            )
        },
    )
    .await
    .with_context(|| h.fixture.log_text())
}

#[tokio::test]
async fn a_managed_tls_domain_serves_https_through_the_gateway_with_a_certificate_that_verifies()
-> anyhow::Result<()> {
    let setup = Harness::setup(LANDLORD).await?.timeout(TIMEOUT);
    landlord_e2e::manifests::ensure_namespace(&setup.client, PLATFORM).await?;
    let edge =
        workloads::Edge::install(setup.cluster, &setup.client, &unique_name("edge"), TIMEOUT)
            .await?;
    let real_nodes = workloads::operator_args(setup.cluster)?;
    let (label, value, taint) = workloads::real_nodes(setup.cluster)?;
    let h = setup
        .args(real_nodes)
        .args(edge.operator_args())
        .args([
            format!("--pre-verified-zones={EDGE_ZONE}"),
            // The pool and the pooled tenant-runtime on the real nodes too.
            format!("--pool-node-selector={label}={value}"),
            format!("--pool-tolerations={taint}:NoSchedule"),
        ])
        .start_with(edge)
        .await?;

    let service = unique_name("web");
    let catalog = echo_service(
        &h.client,
        &service,
        serde_json::json!({"path": "/", "tiers": ["dedicated", "shared"]}),
    )
    .await?;
    let name = unique_name("https");
    h.create_tenant(
        &name,
        serde_json::json!({
            "tier": "dedicated",
            "plan": "enterprise",
            "placement": workloads::placement(h.cluster)?,
            "services": [{"name": service}],
            // Egress open: the walls tested below are the pool's own (ingress), not this
            // tenant's egress policy, which its admins may change.
            "network": {"isolation": "IngressOnly"},
        }),
    )
    .await?;
    let shared = unique_name("pooled");
    h.create_tenant(
        &shared,
        serde_json::json!({"tier": "shared", "services": [{"name": service}]}),
    )
    .await?;
    let ns = format!("tenant-{name}");
    // Ready, not only ServicesReady: until the quota controller has counted the namespace's
    // ResourceQuota, the API server refuses the Domains it covers (NamespaceReady says so).
    h.wait_condition(&name, "Ready", "True", None).await?;
    h.wait_condition(&shared, "Ready", "True", None).await?;

    // The customer's Domain with a managed certificate: cert-manager issues it from the CA,
    // the operator gives it an HTTPS listener (a Gateway of Traefik's class) and a route.
    let hostname = format!("{name}.{EDGE_ZONE}");
    let domain_ready = managed_domain_ready(&h, &ns, "shop", &hostname).await?;
    let status = domain_ready.status.as_ref().context("Domain status")?;
    assert_eq!(
        status.url.as_deref(),
        Some(format!("https://{hostname}").as_str())
    );

    // From this host, through Traefik's Service: TLS with the Domain's hostname as SNI, the
    // certificate verified against the CA and nothing else, then the tenant's own pod
    // answers with its tenant context. Traefik picks the route up a moment after it exists.
    let ca = h.fixture.ca_pem(&h.client).await?;
    let address = h.fixture.address(&h.client, 443).await?;
    let (code, body) = wait::until(
        &format!("https://{hostname}/ through {address}"),
        TIMEOUT,
        || async {
            Ok(
                match workloads::https_get(address, &hostname, &ca, "/", &[]).await {
                    Ok((200, body)) => Some((200, body)),
                    _ => None,
                },
            )
        },
    )
    .await?;
    assert_eq!(code, 200);
    let shown: serde_json::Value = serde_json::from_str(body.trim())
        .with_context(|| format!("the echo service's answer: {body}"))?;
    assert_eq!(shown["env"]["LANDLORD_TENANT"], name.as_str(), "{shown}");
    assert_eq!(shown["env"]["LANDLORD_TENANT_TIER"], "dedicated", "{shown}");

    // Routing is by Host, not by the certificate: the same TLS session asking for a name
    // no route holds gets Traefik's 404, not this tenant's pod.
    let (code, body) = workloads::https_get(
        address,
        &hostname,
        &ca,
        "/",
        &[("Host", &format!("someone-else.{EDGE_ZONE}"))],
    )
    .await?;
    assert_eq!(code, 404, "{body}");

    // A shared tenant's Domain routes to the pool (in the platform namespace, on a real
    // node): the route sets the tenant header, whatever the client sent, and the assertion
    // the pool checks it with.
    let shared_ns = format!("tenant-{shared}");
    let shared_host = format!("{shared}.{EDGE_ZONE}");
    managed_domain_ready(&h, &shared_ns, "app", &shared_host).await?;
    let forged = [
        ("X-Landlord-Tenant", name.as_str()),
        ("X_Landlord_Tenant", name.as_str()),
    ];
    let body = wait::until(
        &format!("https://{shared_host}/ through {address}"),
        TIMEOUT,
        || async {
            Ok(
                match workloads::https_get(address, &shared_host, &ca, "/", &forged).await {
                    Ok((200, body)) => Some(body),
                    _ => None,
                },
            )
        },
    )
    .await?;
    let shown: serde_json::Value =
        serde_json::from_str(body.trim()).with_context(|| format!("the pool's answer: {body}"))?;
    assert_eq!(shown["env"]["LANDLORD_TENANT_TIER"], "shared", "{shown}");
    assert_eq!(
        shown["headers"]["X-Landlord-Tenant"],
        shared.as_str(),
        "{shown}"
    );
    assert!(
        shown["headers"]["X-Landlord-Tenant-Assertion"].is_string(),
        "no assertion reached the pool: {shown}"
    );
    assert!(
        !body.contains(&name),
        "the forged tenant {name} reached the pool: {shown}"
    );

    // The pool's instance reads the shared tenant's flags from the pooled tenant-runtime (on
    // a real node), passing the route's header and assertion on: an OFREP answer.
    let (code, flags) = workloads::https_get(address, &shared_host, &ca, "/flags", &forged).await?;
    assert_eq!(code, 200, "{flags}");
    let flags: serde_json::Value = serde_json::from_str(flags.trim())
        .with_context(|| format!("OFREP bulk answer through the pool: {flags}"))?;
    assert!(flags["flags"].is_array(), "{flags}");

    // At rest on real nodes, with Traefik and cert-manager writing the status of the objects
    // Landlord made (routes, Gateways, Certificates) and pods running: the operator writes
    // nothing.
    assert_at_rest(h.cluster, "two tenants with Domains served by Traefik").await?;

    // The walls around the pool, with packets: the dedicated tenant's pod (which reaches its
    // own instance, proving its network is up) gets no answer from the pool's instances nor
    // from the pooled tenant-runtime; only the gateway namespace and the pool reach them.
    // The same addresses answer a pod of the gateway namespace, so the refusals are the walls.
    get_in_cluster(&h, &ns, &format!("http://{service}.{ns}.svc:8080/healthz")).await?;
    for url in [
        format!("http://{service}.{PLATFORM}.svc:8080/healthz"),
        format!("http://landlord-runtime.{PLATFORM}.svc:8080/healthz"),
    ] {
        get_in_cluster(&h, &h.fixture.namespace, &url).await?;
        // Three attempts (up to 33 s): the connection itself fails (no answer or a refusal),
        // not the name or the pod.
        let refused = probe_in_cluster(&h, &ns, &url, 3).await?;
        assert_eq!(
            refused.phase, "Failed",
            "a tenant's pod reached {url}: {}",
            refused.log
        );
        assert!(
            refused.log.contains(&format!("GET {url}:"))
                && !refused.log.contains("no such host")
                && (refused.log.contains("Timeout") || refused.log.contains("refused")),
            "{url} failed for another reason than the wall: {}",
            refused.log
        );
    }

    h.delete_tenants(&[&name, &shared]).await?;
    catalog.delete(&service, &Default::default()).await?;
    Ok(())
}

/// Whether a pod in `ns` opens a connection to `address` (three attempts, each bounded by
/// 3 s) once its egress rules are in place: a new pod's packets pass unfiltered until
/// kube-router has programmed them, so the pod first waits until the stack's registry (which
/// answers pods, but no tenant's egress policy admits) refuses it. False only when the
/// connection itself fails (dropped or refused), never for another reason.
async fn dials(h: &Harness, ns: &str, address: &str) -> anyhow::Result<bool> {
    let wall = h.cluster.var("LANDLORD_REGISTRY");
    let outcome = echo_client(h, ns, &["dial", address, "3", wall]).await?;
    match outcome.phase.as_str() {
        "Succeeded" => Ok(true),
        _ if outcome.log.contains(&format!("DIAL {address}:")) => Ok(false),
        _ => anyhow::bail!("dialling {address} from {ns}: {}", outcome.log),
    }
}

/// The walls of a Strict tenant towards what is its own outside its namespace, with real
/// packets: the shared PostgreSQL server its database was placed on and the NATS server of
/// its topics, both outside the cluster (the stack's own, at the host's address on the
/// bridge; the platform names their addresses, `network.cidrs` and `--nats-cidrs`). A
/// tenant with a database and topics reaches both, the database with its own credentials;
/// a tenant with neither reaches neither, until it gets a topic: then NATS, and still not
/// the database server.
#[tokio::test]
async fn strict_tenants_reach_their_shared_database_and_nats_outside_the_cluster_and_nothing_else()
-> anyhow::Result<()> {
    let setup = Harness::setup(LANDLORD).await?.timeout(TIMEOUT);
    landlord_e2e::manifests::ensure_namespace(&setup.client, PLATFORM).await?;
    let real_nodes = workloads::operator_args(setup.cluster)?;
    let host_services = workloads::host_services_args(setup.cluster, &setup.client).await?;
    let h = setup.args(real_nodes).args(host_services).start().await?;
    let host = h.cluster.var("LANDLORD_REAL_HOST_IP");
    let port_of = |var: &str| -> anyhow::Result<String> {
        let url = h.cluster.var(var);
        let at = url.rsplit('@').next().unwrap_or(url);
        let port = at.rsplit(':').next().context("a port")?;
        Ok(port.split('/').next().unwrap_or(port).to_string())
    };
    let database = format!("{host}:{}", port_of("LANDLORD_POSTGRES_URL")?);
    let nats = format!("{host}:{}", port_of("LANDLORD_NATS_URL")?);

    let user = unique_name("strict-user");
    h.create_tenant(
        &user,
        serde_json::json!({"tier": "shared", "database": {"enabled": true}, "topics": [{"name": "orders"}]}),
    )
    .await?;
    let bare = unique_name("strict-bare");
    h.create_tenant(&bare, serde_json::json!({"tier": "shared"}))
        .await?;
    h.wait_condition(&user, "Ready", "True", None).await?;
    h.wait_condition(&bare, "Ready", "True", None).await?;
    let (ns_user, ns_bare) = (format!("tenant-{user}"), format!("tenant-{bare}"));

    // Its own database, on the shared server outside the cluster: its egress rule admits it,
    // and its credentials work there.
    assert!(
        dials(&h, &ns_user, &database).await?,
        "{user} could not reach its shared server at {database}"
    );
    let pod = client_pod(
        h.cluster,
        &unique_name("psql"),
        "psql \"$DATABASE_URL\" -tAc 'select current_database()'",
    )?;
    let outcome = workloads::run_to_completion(&h.client, &ns_user, pod, TIMEOUT).await?;
    assert_eq!(outcome.phase, "Succeeded", "{}", outcome.log);
    let credentials =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.client.clone(), &ns_user)
            .get("landlord-database")
            .await?;
    let name = credentials
        .data
        .unwrap_or_default()
        .get("dbname")
        .map(|b| String::from_utf8_lossy(&b.0).to_string())
        .context("the credentials name the database")?;
    assert_eq!(outcome.log.trim(), name, "{}", outcome.log);
    // Its topics' NATS server.
    assert!(
        dials(&h, &ns_user, &nats).await?,
        "{user} (with topics) could not reach NATS at {nats}"
    );

    // The tenant with neither: both walls hold.
    assert!(
        !dials(&h, &ns_bare, &nats).await?,
        "{bare} (no topics) reached NATS at {nats}"
    );
    assert!(
        !dials(&h, &ns_bare, &database).await?,
        "{bare} (no database) reached the shared server at {database}"
    );
    // A topic opens NATS to it (so the refusal above was the wall, not the path); the
    // database server stays closed.
    h.patch_spec(&bare, serde_json::json!({"topics": [{"name": "events"}]}))
        .await?;
    wait::until(
        &format!("{bare} reaching NATS once it has a topic"),
        Duration::from_secs(90),
        || async { Ok(dials(&h, &ns_bare, &nats).await?.then_some(())) },
    )
    .await?;
    assert!(
        !dials(&h, &ns_bare, &database).await?,
        "{bare} (no database) reached the shared server at {database}"
    );

    h.delete_tenants(&[&user, &bare]).await?;
    Ok(())
}

/// Starts the echo image in `ns` on a real node as pod `name` with `labels`, listening on
/// `port`, and waits until it is Ready; its address.
async fn echo_pod(
    h: &Harness,
    ns: &str,
    name: &str,
    labels: serde_json::Value,
    port: u16,
) -> anyhow::Result<String> {
    let listen = format!("--listen=:{port}");
    let mut container = workloads::restricted_container("echo", ECHO_IMAGE, &["/echo", &listen]);
    container["readinessProbe"] =
        serde_json::json!({"httpGet": {"path": "/readyz", "port": port}, "periodSeconds": 1});
    let pod = workloads::on_real_nodes(
        h.cluster,
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"automountServiceAccountToken": false, "containers": [container]},
        }),
    )?;
    let pods = Api::<Pod>::namespaced(h.client.clone(), ns);
    pods.create(&PostParams::default(), &pod).await?;
    wait::until(&format!("pod {ns}/{name} Ready"), TIMEOUT, || async {
        let status = pods.get(name).await?.status.unwrap_or_default();
        let ready = status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        Ok(status.pod_ip.filter(|_| ready))
    })
    .await
}

/// A platform service inside the cluster, named by its namespace and its pods' labels
/// (`--nats-namespace`, `--nats-pod-selector`), with real packets: a Strict tenant with
/// topics reaches the NATS server's pod on the URL's ports, and not another pod of the same
/// namespace on the same port.
#[tokio::test]
async fn a_strict_tenant_reaches_the_pods_the_platform_names_in_a_services_namespace_and_no_other()
-> anyhow::Result<()> {
    let setup = Harness::setup(LANDLORD).await?.timeout(TIMEOUT);
    let services = landlord_e2e::TestNamespace::new(&setup.client, "nats-home").await?;
    // The pods below stand in for the NATS server in the cluster; the stack's own server,
    // listed second, is the one the operator talks to (so topics are provisioned and the
    // tenant deletes cleanly). Tenants' egress admits the pods on both ports, and nothing
    // at the stack's address (no CIDR is given).
    let url = format!(
        "nats://nats.{}.svc:4222,{}",
        services.name,
        setup.cluster.var("LANDLORD_NATS_URL")
    );
    let mut args = workloads::operator_args(setup.cluster)?;
    args.extend(
        [
            "--nats-url",
            &url,
            "--nats-signing-key-file",
            setup.cluster.var("LANDLORD_NATS_SIGNING_KEY_FILE"),
            "--nats-system-creds-file",
            setup.cluster.var("LANDLORD_NATS_SYSTEM_CREDS_FILE"),
            "--nats-namespace",
            &services.name,
            "--nats-pod-selector",
            "app.kubernetes.io/name=nats",
        ]
        .map(String::from),
    );
    let h = setup.args(args).start().await?;
    let nats = echo_pod(
        &h,
        &services.name,
        "nats-0",
        serde_json::json!({"app.kubernetes.io/name": "nats"}),
        4222,
    )
    .await?;
    let neighbour = echo_pod(
        &h,
        &services.name,
        "neighbour",
        serde_json::json!({"app.kubernetes.io/name": "metrics"}),
        4222,
    )
    .await?;

    let tenant = unique_name("podsel");
    h.create_tenant(
        &tenant,
        serde_json::json!({"tier": "shared", "topics": [{"name": "orders"}]}),
    )
    .await?;
    let ns = format!("tenant-{tenant}");
    let policies =
        Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(h.client.clone(), &ns);
    wait::until(
        &format!("{ns}'s egress to the NATS pods"),
        TIMEOUT,
        || async {
            let rules = match policies.get_opt("landlord-egress").await? {
                Some(policy) => policy.spec.and_then(|s| s.egress).unwrap_or_default(),
                None => Vec::new(),
            };
            Ok(rules
                .iter()
                .flat_map(|rule| rule.to.clone().unwrap_or_default())
                .any(|peer| peer.pod_selector.is_some())
                .then_some(()))
        },
    )
    .await?;

    assert!(
        dials(&h, &ns, &format!("{nats}:4222")).await?,
        "{tenant} could not reach the NATS pod at {nats}"
    );
    assert!(
        !dials(&h, &ns, &format!("{neighbour}:4222")).await?,
        "{tenant} reached another pod of NATS's namespace at {neighbour}"
    );

    h.delete_tenants(&[&tenant]).await?;
    Ok(())
}

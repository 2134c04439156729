//! Real workloads: Tenants whose pods run on the local stack's real nodes (containerd,
//! kubelet, CNI, kube-proxy, CoreDNS; see `e2e/scripts/real-nodes.sh`), with the real
//! operator binary as the chart's ServiceAccount. Nothing here is played by kwok: a server
//! is Ready because PostgreSQL answered its readiness probe, and a row is read back because
//! a pod wrote it over the cluster's network.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use landlord_e2e::{
    tenants::Harness,
    unique_name,
    workloads::{self, POSTGRES_IMAGE},
};

const LANDLORD: &str = env!("CARGO_BIN_EXE_landlord");
/// Real PostgreSQL initialising a data directory on a small machine takes seconds, not the
/// instant kwok takes.
const TIMEOUT: Duration = Duration::from_secs(180);

/// A client pod in the tenant's namespace on a real node, with the credentials Secret the
/// operator wrote as `DATABASE_URL`, running `script` with `sh`.
fn client_pod(cluster: &landlord_e2e::Cluster, name: &str, script: &str) -> anyhow::Result<Pod> {
    let mut container =
        workloads::restricted_container("psql", POSTGRES_IMAGE, &["sh", "-c", script]);
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

#[tokio::test]
async fn a_dedicated_tenants_postgresql_runs_on_a_real_node_and_its_credentials_work_from_a_pod()
-> anyhow::Result<()> {
    let h = Harness::setup(LANDLORD)
        .await?
        .timeout(TIMEOUT)
        .args(["--database-extensions", "citext,pgcrypto"])
        .start()
        .await?;
    let placement = workloads::placement(h.cluster)?;
    let class = workloads::storage_class(h.cluster).to_string();
    let name = unique_name("realdb");
    let ns = format!("tenant-{name}");
    h.create_tenant(
        &name,
        serde_json::json!({
            "tier": "dedicated",
            "placement": placement,
            "database": {
                "version": "15",
                "storageClassName": class,
                "storage": "1Gi",
                "extensions": ["citext"],
                "deletionPolicy": "Delete",
            },
        }),
    )
    .await?;
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

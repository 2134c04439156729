//! The operator waits for its CRDs (reporting not ready) instead of crash-looping, and starts
//! reconciling once they are installed. Runs on a stack of its own, which starts without the
//! CRDs.

use std::{path::Path, time::Duration};

use anyhow::Context;

use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::{Api, api::PostParams};
use landlord_crds::{Tenant, tenant::Phase};
use landlord_e2e::{
    Cluster,
    cluster::repo_root,
    manifests::install_crds,
    operator::{self, Operator, Options},
    tenants, unique_name, wait,
};

#[tokio::test]
async fn operator_waits_for_its_crds_then_reconciles() -> anyhow::Result<()> {
    let cluster = Cluster::up_in(
        &repo_root()
            .join("target")
            .join(unique_name("landlord-dev-nocrd")),
    )?;
    let result = scenario(&cluster).await;
    cluster.clean()?;
    result
}

async fn scenario(cluster: &Cluster) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let kubeconfig = operator::service_account_kubeconfig(cluster, &client).await?;
    let binary = Path::new(env!("CARGO_BIN_EXE_landlord"));
    let options = Options {
        binary,
        kubeconfig: &kubeconfig,
        lease_name: operator::LEASE,
        lease_duration_seconds: 6,
        args: &[],
    };
    let mut operator = Operator::start_unready(cluster, &options)?;

    // Without CRDs: alive, not ready, and still running a while later.
    wait::until(
        "operator answers /healthz",
        Duration::from_secs(20),
        || async { Ok(operator.get("/healthz").await.ok()) },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(operator.get("/readyz").await.is_err(), "ready without CRDs");
    assert!(
        operator.running(),
        "the operator exited without its CRDs: {}",
        operator.log_text()
    );
    assert!(
        operator
            .log_text()
            .contains("waiting for the Landlord CRDs"),
        "log: {}",
        operator.log_text()
    );

    install_crds(&client).await?;
    wait::until(
        "operator ready once the CRDs exist",
        Duration::from_secs(30),
        || async { Ok(Some(operator.get("/readyz").await?)) },
    )
    .await
    .with_context(|| format!("operator log: {}", operator.log_text()))?;
    let name = unique_name("late");
    let tenant: Tenant = serde_json::from_value(serde_json::json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": name}, "spec": {"tier": "shared"}
    }))?;
    Api::<Tenant>::all(client.clone())
        .create(&PostParams::default(), &tenant)
        .await?;
    // The CRDs are minutes old at most here, so the quota controller first has to discover
    // them (every 30 s) and recount the tenant's quota (every 15 s on the local stack) before
    // the namespace is usable (NamespaceReady waits for it).
    tenants::wait_phase(&client, &name, Phase::Ready, Duration::from_secs(120))
        .await
        .with_context(|| format!("operator log: {}", operator.log_text()))?;
    drop(operator);
    a_cache_that_never_syncs_is_named_by_readyz(cluster, &client, &options).await
}

/// Issue 12: without the right to list StatefulSets (a chart edited by hand, an aggregated
/// role gone), the Tenant controller's StatefulSet cache never syncs. The operator stays up,
/// /readyz says which cache it waits for, and once the right is back it becomes ready.
async fn a_cache_that_never_syncs_is_named_by_readyz(
    cluster: &Cluster,
    client: &kube::Client,
    options: &Options<'_>,
) -> anyhow::Result<()> {
    let roles = Api::<ClusterRole>::all(client.clone());
    let mut role = roles.get("landlord").await?;
    let full = role.rules.clone();
    for rule in role.rules.iter_mut().flatten() {
        if let Some(resources) = rule.resources.as_mut() {
            resources.retain(|r| r != "statefulsets");
        }
    }
    role.metadata.managed_fields = None;
    roles
        .replace("landlord", &PostParams::default(), &role)
        .await?;
    let operator = Operator::start_unready(cluster, options)?;
    // Every cache is pending at first; the others sync within moments, the StatefulSet
    // cache never does.
    let body = wait::until(
        "/readyz to name the StatefulSet cache alone",
        Duration::from_secs(60),
        || async {
            Ok(match operator.get("/readyz").await {
                Err(e)
                    if e.to_string()
                        .ends_with("caches not synced: tenant/StatefulSet") =>
                {
                    Some(e.to_string())
                }
                _ => None,
            })
        },
    )
    .await?;
    assert!(body.contains("503"), "{body}");
    assert!(
        operator
            .log_text()
            .contains("a watch failed; it is retried with backoff"),
        "the failing watch is logged: {}",
        operator.log_text()
    );

    let mut role = roles.get("landlord").await?;
    role.rules = full;
    role.metadata.managed_fields = None;
    roles
        .replace("landlord", &PostParams::default(), &role)
        .await?;
    wait::until(
        "/readyz ok once the right is back",
        Duration::from_secs(120),
        || async { Ok(operator.get("/readyz").await.ok()) },
    )
    .await?;
    Ok(())
}

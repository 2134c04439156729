//! High availability: two operator processes share one Lease; only the leader reconciles,
//! and when it dies (or stops gracefully) the standby takes over and provisions new Tenants.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use landlord_crds::tenant::Phase;
use landlord_e2e::{
    Cluster, cluster,
    manifests::install_crds,
    operator::{self, Operator, Options},
    outage::ApiOutage,
    tenants, unique_name, wait,
};

const LEASE_SECONDS: u64 = 6;
/// How long a Tenant may take to be Ready, or gone once deleted.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The spec of the Tenants the operators provision.
fn shared() -> serde_json::Value {
    serde_json::json!({"tier": "shared"})
}

async fn holder(client: &Client, lease: &str) -> anyhow::Result<Option<String>> {
    let lease = Api::<Lease>::namespaced(client.clone(), operator::NAMESPACE)
        .get_opt(lease)
        .await?;
    Ok(lease
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}

async fn pair(
    cluster: &Cluster,
    client: &Client,
    lease: &str,
) -> anyhow::Result<(Operator, Operator)> {
    let kubeconfig = operator::service_account_kubeconfig(cluster, client).await?;
    let options = Options {
        binary: Path::new(env!("CARGO_BIN_EXE_landlord")),
        kubeconfig: &kubeconfig,
        lease_name: lease,
        lease_duration_seconds: LEASE_SECONDS,
        args: &[],
    };
    let first = Operator::start(cluster, &options).await?;
    wait::until("first operator leads", Duration::from_secs(30), || async {
        Ok(first.is_leader().await.then_some(()))
    })
    .await?;
    let second = Operator::start(cluster, &options).await?;
    Ok((first, second))
}

/// Kills the leader (SIGKILL: no release) or stops it (SIGTERM: release) and returns how long
/// the standby took to lead and to provision a new Tenant.
async fn failover(graceful: bool) -> anyhow::Result<()> {
    // Operators reconcile every Tenant in the cluster: one pair at a time, so the Tenants a
    // test watches are provisioned by that test's operators only.
    let _serial = tenants::serial().await;
    let cluster = cluster();
    let client = cluster.client().await?;
    install_crds(&client).await?;
    let lease = operator::LEASE;
    let (mut leader, standby) = pair(cluster, &client, lease).await?;
    assert_eq!(
        holder(&client, lease).await?.as_deref(),
        Some(leader.identity.as_str())
    );

    let before = unique_name("before");
    tenants::create(&client, &before, shared()).await?;
    tenants::wait_phase(&client, &before, Phase::Ready, TIMEOUT).await?;
    assert!(!standby.is_leader().await, "the standby claims to lead");
    assert_eq!(
        standby.metric("landlord_reconciles_total").await?,
        0.0,
        "the standby reconciled"
    );
    assert!(
        leader.metric("landlord_reconciles_total").await? > 0.0,
        "the leader did not reconcile"
    );

    let stopped = Instant::now();
    if graceful {
        let status = leader.terminate()?;
        assert!(status.success(), "graceful stop exited with {status}");
    } else {
        leader.kill();
    }
    wait::until(
        "standby leads",
        Duration::from_secs(LEASE_SECONDS * 4),
        || async { Ok(standby.is_leader().await.then_some(())) },
    )
    .await?;
    let took_over = stopped.elapsed();
    let after = unique_name("after");
    tenants::create(&client, &after, shared()).await?;
    tenants::wait_phase(&client, &after, Phase::Ready, TIMEOUT).await?;
    let provisioned = stopped.elapsed();
    assert_eq!(
        holder(&client, lease).await?.as_deref(),
        Some(standby.identity.as_str())
    );
    println!(
        "failover ({}): standby leading after {:.1}s, new Tenant Ready {:.1}s after the leader stopped (lease {}s)",
        if graceful {
            "SIGTERM, lease released"
        } else {
            "SIGKILL, lease expires"
        },
        took_over.as_secs_f64(),
        provisioned.as_secs_f64(),
        LEASE_SECONDS
    );
    if graceful {
        assert!(
            took_over < Duration::from_secs(LEASE_SECONDS),
            "a released lease should be taken at once, took {took_over:?}"
        );
    }
    tenants::delete(&client, &[&before, &after], TIMEOUT).await
}

#[tokio::test]
async fn standby_takes_over_when_the_leader_is_killed() -> anyhow::Result<()> {
    failover(false).await
}

#[tokio::test]
async fn standby_takes_over_at_once_when_the_leader_stops_gracefully() -> anyhow::Result<()> {
    failover(true).await
}

/// An API server outage of 60 s, as the operator sees it (its connections go through a proxy
/// the test cuts): the leader cannot renew its lease, stops its controllers and campaigns
/// again in the same process; once the API server is back it leads again and provisions a
/// Tenant created during the outage and one created right after it, each within 30 s.
// Multi-threaded: the proxy keeps serving while `Operator::terminate` blocks a thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_rides_out_an_api_server_outage_without_restarting() -> anyhow::Result<()> {
    const OUTAGE: Duration = Duration::from_secs(60);
    const RECOVERY: Duration = Duration::from_secs(30);
    let _serial = tenants::serial().await;
    let cluster = cluster();
    let client = cluster.client().await?;
    install_crds(&client).await?;
    let kubeconfig = operator::service_account_kubeconfig(cluster, &client).await?;
    let outage = ApiOutage::start(&kubeconfig).await?;
    let options = Options {
        binary: Path::new(env!("CARGO_BIN_EXE_landlord")),
        kubeconfig: outage.kubeconfig(),
        lease_name: operator::LEASE,
        lease_duration_seconds: LEASE_SECONDS,
        args: &[],
    };
    let mut leader = Operator::start(cluster, &options).await?;
    wait::until("the operator leads", Duration::from_secs(30), || async {
        Ok(leader.is_leader().await.then_some(()))
    })
    .await?;
    let before = unique_name("before-outage");
    tenants::create(&client, &before, shared()).await?;
    tenants::wait_phase(&client, &before, Phase::Ready, TIMEOUT).await?;

    let cut = Instant::now();
    outage.cut();
    // It cannot prove it holds the lease past the renew deadline: it stops leading.
    wait::until(
        "the leader steps down",
        Duration::from_secs(LEASE_SECONDS * 3),
        || async { Ok((!leader.is_leader().await).then_some(())) },
    )
    .await?;
    let during = unique_name("during-outage");
    tenants::create(&client, &during, shared()).await?;
    tokio::time::sleep(OUTAGE.saturating_sub(cut.elapsed())).await;
    assert!(
        leader.try_wait()?.is_none(),
        "the operator exited during the outage; log: {}",
        leader.log_text()
    );

    outage.restore();
    let after = unique_name("after-outage");
    tenants::create(&client, &after, shared()).await?;
    for name in [&during, &after] {
        tenants::wait_phase(&client, name, Phase::Ready, RECOVERY)
            .await
            .with_context(|| format!("log: {}", leader.log_text()))?;
    }
    assert!(leader.is_leader().await, "the operator leads again");
    assert_eq!(
        holder(&client, operator::LEASE).await?.as_deref(),
        Some(leader.identity.as_str())
    );
    assert!(
        leader.log_text().contains("lost leadership"),
        "the outage did not cost the lease"
    );
    tenants::delete(&client, &[&before, &during, &after], TIMEOUT).await?;
    let status = leader.terminate()?;
    assert!(status.success(), "graceful stop exited with {status}");
    Ok(())
}

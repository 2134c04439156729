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

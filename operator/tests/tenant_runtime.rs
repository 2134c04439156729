//! tenant-runtime deployed by the real operator (as the chart's ServiceAccount): its own
//! instance for a dedicated tenant, nothing for a shared one, and one pooled instance in the
//! platform namespace. kwok runs the pods, so the Deployments become Available.
//!
//! And the walls of the platform namespace: the NetworkPolicies that admit only the gateway's
//! namespace and pool pods to the pool and the pooled runtime, and the tenant key the pool
//! checks the routes' assertions with. The local stack's kwok pods carry no packets, so the
//! policies' content is checked against the real API server; the key is checked by use
//! (tenant-runtime's tests run the pooled binary with it).

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::Deployment,
        core::v1::{Namespace, Secret, Service, ServiceAccount},
        networking::v1::NetworkPolicy,
        rbac::v1::{Role, RoleBinding},
    },
};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use landlord_controllers::{
    pool,
    runtime::{self, NAME},
};
use landlord_crds::{Tenant, conditions, tenant::Phase};
use landlord_e2e::{
    manifests::{ensure_namespace, ensure_platform_namespace},
    tenants::Harness,
    unique_name, wait,
};

const TIMEOUT: Duration = Duration::from_secs(90);
const PLATFORM_NAMESPACE: &str = "landlord-platform";

const LANDLORD: &str = env!("CARGO_BIN_EXE_landlord");

/// Creates a Tenant of `tier` named `<prefix>-<random>` and waits until it is Ready.
async fn ready_tenant(h: &Harness, prefix: &str, tier: &str) -> anyhow::Result<Tenant> {
    // A quota with limits: the runtime pod must declare its resources to be admitted.
    let spec = serde_json::json!({"tier": tier, "plan": "pro", "quota": {"limits": {"cpu": "2", "memory": "2Gi"}}});
    let name = h.new_tenant(prefix, spec).await?;
    h.wait_phase(&name, Phase::Ready).await
}

fn runtime_condition(tenant: &Tenant) -> anyhow::Result<(String, String)> {
    let status = tenant.status.as_ref().context("no status")?;
    let c = conditions::find(&status.conditions, "RuntimeReady").context("no RuntimeReady")?;
    Ok((c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn a_dedicated_tenant_gets_its_runtime_a_shared_tenant_uses_the_pool() -> anyhow::Result<()> {
    let setup = Harness::setup(LANDLORD).await?.timeout(TIMEOUT);
    ensure_namespace(&setup.client, PLATFORM_NAMESPACE).await?;
    let h = setup.start().await?;
    let client = h.client.clone();

    let dedicated = ready_tenant(&h, "rtded", "dedicated").await?;
    let name = dedicated.metadata.name.clone().context("name")?;
    let ns = dedicated.namespace_name();
    // Ready implies RuntimeReady, which waits for the Deployment to be Available.
    assert_eq!(
        runtime_condition(&dedicated)?,
        ("True".to_string(), "Available".to_string())
    );
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get(NAME)
        .await?;
    assert!(runtime::available(&deployment), "{:?}", deployment.status);
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .context("pod spec")?;
    assert_eq!(pod.service_account_name.as_deref(), Some(NAME));
    assert_eq!(
        pod.containers[0].args.as_deref().map(|a| a[..2].to_vec()),
        Some(vec!["--tenant".to_string(), name.clone()])
    );
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("ghcr.io/landlord-dev/tenant-runtime:0.1.0")
    );
    let service = Api::<Service>::namespaced(client.clone(), &ns)
        .get(NAME)
        .await?;
    let port = &service.spec.and_then(|s| s.ports).context("ports")?[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .get(NAME)
        .await?;
    let role = Api::<Role>::namespaced(client.clone(), &ns)
        .get(NAME)
        .await?;
    let rules = role.rules.context("rules")?;
    assert!(
        rules.iter().all(|r| r.verbs == ["get", "list", "watch"]
            && r.resources.as_deref() == Some(&["configmaps".to_string()][..])),
        "the runtime's Role grants more than reading ConfigMaps: {rules:?}"
    );
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .get(NAME)
        .await?;

    // Drift: a deleted runtime Deployment comes back.
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .delete(NAME, &DeleteParams::default())
        .await?;
    wait::until("the runtime Deployment to come back", TIMEOUT, || async {
        let d = Api::<Deployment>::namespaced(client.clone(), &ns)
            .get_opt(NAME)
            .await?;
        Ok(d.filter(|d| d.metadata.deletion_timestamp.is_none())
            .filter(runtime::available)
            .map(|_| ()))
    })
    .await?;

    let shared = ready_tenant(&h, "rtshr", "shared").await?;
    assert_eq!(
        runtime_condition(&shared)?,
        ("True".to_string(), "Pooled".to_string())
    );
    let none = Api::<Deployment>::namespaced(client.clone(), &shared.namespace_name())
        .get_opt(NAME)
        .await?;
    assert!(none.is_none(), "a shared tenant got its own runtime");

    // The pool, in the platform namespace, for every shared tenant.
    let pool = wait::until("the pooled runtime to be Available", TIMEOUT, || async {
        let d = Api::<Deployment>::namespaced(client.clone(), PLATFORM_NAMESPACE)
            .get_opt(NAME)
            .await?;
        Ok(d.filter(runtime::available))
    })
    .await?;
    let args = pool
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers[0].args.clone().unwrap_or_default())
        .unwrap_or_default();
    assert!(!args.iter().any(|a| a == "--tenant"), "{args:?}");
    Api::<Service>::namespaced(client.clone(), PLATFORM_NAMESPACE)
        .get(NAME)
        .await?;

    h.delete_tenant(&name).await?;
    h.delete_tenant(shared.metadata.name.as_deref().unwrap_or_default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn the_pool_admits_only_the_gateway_and_pool_pods_and_holds_the_tenant_key()
-> anyhow::Result<()> {
    let setup = Harness::setup(LANDLORD).await?.timeout(TIMEOUT);
    let client = setup.client.clone();
    let (platform, gateway) = (unique_name("platform"), unique_name("gateway"));
    // Labelled as a platform namespace: the operator-scope admission policy lets the
    // operator write only in tenant namespaces, its own, and platform namespaces.
    ensure_platform_namespace(&client, &platform).await?;
    let args = [
        format!("--platform-namespace={platform}"),
        format!("--gateway-namespace={gateway}"),
    ];
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &platform);
    let secrets = Api::<Secret>::namespaced(client.clone(), &platform);
    let result = async {
        let mut h = setup.args(args).start().await?;
        let key = wait::until("the tenant key", TIMEOUT, || async {
            Ok(secrets.get_opt(pool::KEYS_SECRET).await?)
        })
        .await?;
        let primary = key
            .data
            .as_ref()
            .and_then(|d| d.get(pool::PRIMARY))
            .context("no primary key")?;
        assert!(primary.0.len() >= pool::MIN_KEY_BYTES, "a short key");
        assert!(
            !h.operator
                .log_text()
                .contains(&String::from_utf8_lossy(&primary.0).to_string()),
            "the key reached the operator's log"
        );

        let pool_policy = wait::until("the pool's NetworkPolicies", TIMEOUT, || async {
            let both = (
                policies.get_opt(pool::POOL_POLICY).await?,
                policies.get_opt(pool::RUNTIME_POLICY).await?,
            );
            Ok(match both {
                (Some(pool), Some(_)) => Some(pool),
                _ => None,
            })
        })
        .await?;
        // Both policies, as the real API server stored them: ingress only, from the gateway's
        // namespace and from pool pods of this namespace, and nothing else.
        let peers = serde_json::json!([{"from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": gateway}}},
            {"podSelector": {
                "matchLabels": {"app.kubernetes.io/managed-by": "landlord"},
                "matchExpressions": [{"key": "landlord.dev/service", "operator": "Exists"}]}}
        ]}]);
        let runtime_policy = policies.get(pool::RUNTIME_POLICY).await?;
        for policy in [&pool_policy, &runtime_policy] {
            let spec = serde_json::to_value(policy.spec.as_ref().context("spec")?)?;
            assert_eq!(
                spec["policyTypes"],
                serde_json::json!(["Ingress"]),
                "{spec}"
            );
            assert_eq!(spec["ingress"], peers, "{spec}");
        }
        // The policies select the pods they wall: the pooled runtime's, and a pool's (every
        // catalog Service's pod carries landlord.dev/service).
        let runtime_pods = wait::until("the pooled runtime", TIMEOUT, || async {
            Ok(Api::<Deployment>::namespaced(client.clone(), &platform)
                .get_opt(NAME)
                .await?)
        })
        .await?
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.labels)
        .context("pod labels")?;
        let selector = runtime_policy
            .spec
            .as_ref()
            .and_then(|s| s.pod_selector.as_ref())
            .and_then(|s| s.match_labels.clone())
            .context("runtime pod selector")?;
        for (k, v) in &selector {
            assert_eq!(runtime_pods.get(k), Some(v), "{k}");
        }
        assert_eq!(
            serde_json::to_value(&pool_policy.spec.as_ref().context("spec")?.pod_selector)?,
            serde_json::json!({
                "matchLabels": {"app.kubernetes.io/managed-by": "landlord"},
                "matchExpressions": [{"key": "landlord.dev/service", "operator": "Exists"}]})
        );

        // The platform admin rotates the key while the operator is down, and someone deletes a
        // policy. A new operator puts the policy back, keeps the admin's key, and writes
        // nothing else.
        h.operator.terminate()?;
        let rotated = "a-key-the-platform-admin-chose-0123456789";
        let patch = serde_json::json!({"data": {
            pool::PRIMARY: ByteString(rotated.into()),
            pool::SECONDARY: ByteString(primary.0.clone()),
        }});
        let key = secrets
            .patch(
                pool::KEYS_SECRET,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        policies
            .delete(pool::POOL_POLICY, &DeleteParams::default())
            .await?;
        let runtime_version = runtime_policy.metadata.resource_version.clone();
        h.operator = h.start_operator().await?;
        wait::until("the deleted policy to come back", TIMEOUT, || async {
            Ok(policies.get_opt(pool::POOL_POLICY).await?)
        })
        .await?;
        let after = secrets.get(pool::KEYS_SECRET).await?;
        assert_eq!(
            after.metadata.resource_version,
            key.metadata.resource_version
        );
        assert_eq!(
            after.data.as_ref().and_then(|d| d.get(pool::PRIMARY)),
            Some(&ByteString(rotated.into()))
        );
        assert_eq!(
            policies
                .get(pool::RUNTIME_POLICY)
                .await?
                .metadata
                .resource_version,
            runtime_version,
            "an unchanged policy was written"
        );
        // The pooled runtime reads both keys from the Secret, by reference.
        let env = Api::<Deployment>::namespaced(client.clone(), &platform)
            .get(NAME)
            .await?
            .spec
            .and_then(|s| s.template.spec)
            .map(|p| p.containers[0].env.clone().unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(env[1..], pool::key_env()[..]);
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = Api::<Namespace>::all(client.clone())
        .delete(&platform, &DeleteParams::default())
        .await;
    result
}

/// The pool serves every shared tenant, so a pool Landlord cannot put in place is every
/// shared tenant's `RuntimeReady`, with the API server's reason and the object named; once
/// the cause is gone, the next pass of the pool loop clears it on every shared tenant.
#[tokio::test]
async fn a_refused_pool_reaches_every_shared_tenants_status() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::ResourceQuota;
    use kube::api::PostParams;

    // The pool loop passes every minute: waits for it to clear take up to two passes.
    let setup = Harness::setup(LANDLORD)
        .await?
        .timeout(Duration::from_secs(150));
    let client = setup.client.clone();
    let platform = unique_name("platform");
    ensure_platform_namespace(&client, &platform).await?;
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), &platform);
    // No Deployment may be created in the platform namespace: the pooled runtime's is refused.
    let quota: ResourceQuota = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "no-deployments"},
        "spec": {"hard": {"count/deployments.apps": "0"}},
    }))?;
    quotas.create(&PostParams::default(), &quota).await?;
    // Counted first, so that the refusal is the quota's ("exceeded quota").
    wait::until("the quota counted", TIMEOUT, || async {
        let quota = quotas.get("no-deployments").await?;
        Ok(quota.status.and_then(|s| s.hard).map(|_| ()))
    })
    .await?;
    let result = async {
        let h = setup
            .args([format!("--platform-namespace={platform}")])
            .start()
            .await?;
        let spec = serde_json::json!({"tier": "shared", "plan": "pro"});
        let name = h.new_tenant("pool-refused", spec).await?;
        let refused = h
            .wait_condition(&name, "RuntimeReady", "False", Some("QuotaExceeded"))
            .await?;
        let condition = conditions::find(
            &refused.status.context("status")?.conditions,
            "RuntimeReady",
        )
        .cloned()
        .context("RuntimeReady")?;
        assert_eq!(condition.status, "False");
        for part in [platform.as_str(), "Deployment", NAME, "exceeded quota"] {
            assert!(
                condition.message.contains(part),
                "{part}: {}",
                condition.message
            );
        }
        // The cause goes: the next pass puts the pool in place and clears it.
        quotas
            .delete("no-deployments", &DeleteParams::default())
            .await?;
        let back = h
            .wait_condition(&name, "RuntimeReady", "True", Some("Pooled"))
            .await?;
        assert_eq!(runtime_condition(&back)?.1, "Pooled");
        h.delete_tenant(&name).await
    }
    .await;
    let _ = Api::<Namespace>::all(client.clone())
        .delete(&platform, &DeleteParams::default())
        .await;
    result
}

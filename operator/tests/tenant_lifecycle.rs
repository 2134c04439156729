//! The Tenant lifecycle end to end: the real operator binary, authenticated as the chart's
//! ServiceAccount, against the local control plane.
//!
//! Tests in this file share the cluster-wide Tenant watch, so they run one at a time, each
//! with an operator (and a Lease) of its own.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, LimitRange, Namespace, Pod, ResourceQuota, Service},
    networking::v1::NetworkPolicy,
    rbac::v1::{Role, RoleBinding},
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use landlord_crds::{Tenant, conditions, tenant::Phase};
use landlord_e2e::{
    Cluster,
    audit::operator_writes,
    cluster,
    manifests::install_crds,
    operator::{self, Operator},
    unique_name, wait,
};
use tokio::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::const_new(());
const READY_TIMEOUT: Duration = Duration::from_secs(60);

struct Harness {
    cluster: &'static Cluster,
    client: Client,
    operator: Operator,
    _serial: MutexGuard<'static, ()>,
}

async fn harness() -> anyhow::Result<Harness> {
    let serial = SERIAL.lock().await;
    let cluster = cluster();
    let client = cluster.client().await?;
    install_crds(&client).await?;
    let operator = operator::start_as_chart(
        cluster,
        &client,
        env!("CARGO_BIN_EXE_landlord").as_ref(),
        &[],
    )
    .await?;
    Ok(Harness {
        cluster,
        client,
        operator,
        _serial: serial,
    })
}

fn tenant(name: &str, spec: serde_json::Value) -> anyhow::Result<Tenant> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "landlord.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": name, "labels": {"landlord.dev/e2e": "true"}},
        "spec": spec,
    }))?)
}

async fn wait_phase(api: &Api<Tenant>, name: &str, phase: Phase) -> anyhow::Result<Tenant> {
    wait::until(
        &format!("Tenant {name} phase {phase:?}"),
        READY_TIMEOUT,
        || async {
            let t = api.get(name).await?;
            let current = t.status.as_ref().and_then(|s| s.phase);
            if current == Some(phase) {
                Ok(Some(t))
            } else {
                anyhow::bail!("phase is {current:?}, status {:?}", t.status)
            }
        },
    )
    .await
}

/// Creates a Tenant named `<prefix>-<random>` and waits until it is Ready.
async fn ready_tenant(
    h: &Harness,
    prefix: &str,
    spec: serde_json::Value,
) -> anyhow::Result<(Api<Tenant>, String)> {
    let tenants = Api::<Tenant>::all(h.client.clone());
    let name = unique_name(prefix);
    tenants
        .create(&PostParams::default(), &tenant(&name, spec)?)
        .await?;
    wait_phase(&tenants, &name, Phase::Ready).await?;
    Ok((tenants, name))
}

async fn delete_tenant(client: &Client, name: &str) -> anyhow::Result<()> {
    let api = Api::<Tenant>::all(client.clone());
    api.delete(name, &DeleteParams::default()).await?;
    wait::until(
        &format!("Tenant {name} deleted"),
        Duration::from_secs(90),
        || async { Ok(api.get_opt(name).await?.is_none().then_some(())) },
    )
    .await
}

#[tokio::test]
async fn tenant_becomes_ready_with_every_child() -> anyhow::Result<()> {
    let h = harness().await?;
    let name = unique_name("ready");
    let tenants = Api::<Tenant>::all(h.client.clone());
    let spec = serde_json::json!({
        "tier": "dedicated",
        "plan": "enterprise",
        "displayName": "Ready Corp",
        "admins": [{"kind": "User", "name": h.cluster.user_name()}],
        "viewers": [{"kind": "Group", "name": "auditors"}],
        "quota": {
            "requests": {"cpu": "2", "memory": "4Gi", "storage": "10Gi"},
            "limits": {"cpu": "4000m", "memory": "8Gi"},
            "objects": {"pods": 20, "services": 5}
        },
        "network": {"allowedPeers": [{"direction": "Egress", "cidr": "10.20.0.0/16", "ports": [443]}]},
        "config": {"brandColor": "teal"}
    });
    tenants
        .create(&PostParams::default(), &tenant(&name, spec)?)
        .await?;
    let ready = wait_phase(&tenants, &name, Phase::Ready).await?;
    let ns = format!("tenant-{name}");

    let status = ready.status.clone().context("status")?;
    assert_eq!(status.namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(status.observed_generation, ready.metadata.generation);
    for type_ in ["Ready", "NamespaceReady"] {
        let c = conditions::find(&status.conditions, type_)
            .with_context(|| format!("no {type_} condition"))?;
        assert_eq!(c.status, "True", "{type_}: {c:?}");
        assert!(
            !c.reason.is_empty() && c.reason.chars().next().is_some_and(char::is_uppercase),
            "{type_} reason {:?}",
            c.reason
        );
        assert_eq!(c.observed_generation, ready.metadata.generation);
    }
    assert!(
        ready
            .finalizers()
            .iter()
            .any(|f| f == landlord_crds::CLEANUP_FINALIZER),
        "no cleanup finalizer"
    );

    let namespace = Api::<Namespace>::all(h.client.clone()).get(&ns).await?;
    assert_eq!(
        namespace
            .labels()
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    assert_eq!(
        namespace.owner_references()[0].uid,
        ready.uid().unwrap_or_default()
    );

    let quota = Api::<ResourceQuota>::namespaced(h.client.clone(), &ns)
        .get("landlord-quota")
        .await?;
    let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
    for (key, value) in [
        ("requests.cpu", "2"),
        ("limits.cpu", "4"),
        ("pods", "20"),
        ("services.nodeports", "0"),
        ("services.loadbalancers", "0"),
        ("requests.storage", "10Gi"),
    ] {
        assert_eq!(
            hard.get(key).map(|q| q.0.as_str()),
            Some(value),
            "quota {key}"
        );
    }
    Api::<LimitRange>::namespaced(h.client.clone(), &ns)
        .get("landlord-limits")
        .await?;
    let roles = Api::<Role>::namespaced(h.client.clone(), &ns);
    roles.get("landlord-tenant-admin").await?;
    roles.get("landlord-tenant-viewer").await?;
    let admin_binding = Api::<RoleBinding>::namespaced(h.client.clone(), &ns)
        .get("landlord-tenant-admin")
        .await?;
    assert_eq!(
        admin_binding.subjects.unwrap_or_default()[0].name,
        h.cluster.user_name()
    );
    let policies = Api::<NetworkPolicy>::namespaced(h.client.clone(), &ns)
        .list(&Default::default())
        .await?;
    let mut names: Vec<_> = policies.items.iter().map(|p| p.name_any()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "landlord-allow-gateway",
            "landlord-allow-same-namespace",
            "landlord-allowed-peers",
            "landlord-default-deny",
            "landlord-egress"
        ]
    );
    let config_maps = Api::<ConfigMap>::namespaced(h.client.clone(), &ns);
    let identity = config_maps
        .get("landlord-tenant")
        .await?
        .data
        .unwrap_or_default();
    assert_eq!(identity.get("plan").map(String::as_str), Some("enterprise"));
    assert_eq!(identity.get("tier").map(String::as_str), Some("dedicated"));
    assert_eq!(
        config_maps
            .get("landlord-config")
            .await?
            .data
            .unwrap_or_default()
            .get("brandColor")
            .map(String::as_str),
        Some("teal")
    );

    // Structured logs: every line of a reconcile carries the tenant's name.
    let log = h.operator.log_text();
    let tagged = format!("\"tenant\":\"{name}\"");
    assert!(
        log.lines()
            .any(|l| l.starts_with('{') && l.contains(&tagged)),
        "no JSON log line carries {tagged}"
    );

    let columns = h.cluster.kubectl_ok(&["get", "tenant", &name])?;
    let header: Vec<_> = columns
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "TIER", "PLAN", "PHASE", "READY", "AGE"],
        "kubectl get columns"
    );
    assert!(
        columns.contains("dedicated") && columns.contains("Ready") && columns.contains("True"),
        "{columns}"
    );

    delete_tenant(&h.client, &name).await
}

/// What the non-admin user may and may not do once it is a tenant admin.
#[tokio::test]
async fn tenant_admin_works_in_its_namespace_and_cannot_escape() -> anyhow::Result<()> {
    let h = harness().await?;
    let tenants = Api::<Tenant>::all(h.client.clone());
    let mine = unique_name("mine");
    let other = unique_name("other");
    tenants
        .create(&PostParams::default(), &tenant(&mine, serde_json::json!({"tier": "dedicated", "admins": [{"kind": "User", "name": h.cluster.user_name()}]}))?)
        .await?;
    tenants
        .create(
            &PostParams::default(),
            &tenant(&other, serde_json::json!({"tier": "shared"}))?,
        )
        .await?;
    wait_phase(&tenants, &mine, Phase::Ready).await?;
    wait_phase(&tenants, &other, Phase::Ready).await?;
    let ns = format!("tenant-{mine}");
    let other_ns = format!("tenant-{other}");
    let user = h.cluster.user_client().await?;

    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "app"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "app"}},
            "template": {"metadata": {"labels": {"app": "app"}}, "spec": {
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "app", "image": "registry.invalid/app:1",
                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
            }}
        }
    }))?;
    Api::<Deployment>::namespaced(user.clone(), &ns)
        .create(&PostParams::default(), &deployment)
        .await
        .context("tenant admin creates a Deployment")?;

    let forbidden =
        |what: &str, result: Result<(), kube::Error>, code: u16, text: &str| match result {
            Err(kube::Error::Api(s)) if s.code == code && s.message.contains(text) => Ok(()),
            other => Err(anyhow::anyhow!(
                "{what}: expected {code} containing {text:?}, got {other:?}"
            )),
        };
    forbidden(
        "reading another tenant's pods",
        Api::<Pod>::namespaced(user.clone(), &other_ns)
            .list(&Default::default())
            .await
            .map(|_| ()),
        403,
        "forbidden",
    )?;
    let merge = |v: serde_json::Value| Patch::Merge(v);
    forbidden(
        "editing the quota",
        Api::<ResourceQuota>::namespaced(user.clone(), &ns)
            .patch(
                "landlord-quota",
                &PatchParams::default(),
                &merge(serde_json::json!({"spec": {"hard": {"pods": "1000"}}})),
            )
            .await
            .map(|_| ()),
        403,
        "forbidden",
    )?;
    forbidden(
        "deleting a network policy",
        Api::<NetworkPolicy>::namespaced(user.clone(), &ns)
            .delete("landlord-default-deny", &DeleteParams::default())
            .await
            .map(|_| ()),
        403,
        "forbidden",
    )?;
    forbidden(
        "editing a role binding",
        Api::<RoleBinding>::namespaced(user.clone(), &ns)
            .patch(
                "landlord-tenant-admin",
                &PatchParams::default(),
                &merge(serde_json::json!({"metadata": {"labels": {"x": "y"}}})),
            )
            .await
            .map(|_| ()),
        403,
        "forbidden",
    )?;
    let pod = |spec: serde_json::Value| -> anyhow::Result<Pod> {
        Ok(serde_json::from_value(
            serde_json::json!({"metadata": {"name": unique_name("pod")}, "spec": spec}),
        )?)
    };
    let pods = Api::<Pod>::namespaced(user.clone(), &ns);
    forbidden(
        "a privileged pod",
        pods.create(&PostParams::default(), &pod(serde_json::json!({"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": true}}]}))?)
            .await
            .map(|_| ()),
        403,
        "violates PodSecurity",
    )?;
    forbidden(
        "a hostPath pod",
        pods.create(
            &PostParams::default(),
            &pod(serde_json::json!({"containers": [{"name": "c", "image": "x"}], "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}))?,
        )
        .await
        .map(|_| ()),
        403,
        "hostPath",
    )?;
    let node_port: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "exposed"},
        "spec": {"type": "NodePort", "selector": {"app": "app"}, "ports": [{"port": 80}]}
    }))?;
    forbidden(
        "a NodePort Service",
        Api::<Service>::namespaced(user.clone(), &ns)
            .create(&PostParams::default(), &node_port)
            .await
            .map(|_| ()),
        403,
        "services.nodeports",
    )?;

    delete_tenant(&h.client, &mine).await?;
    delete_tenant(&h.client, &other).await
}

#[tokio::test]
async fn deleted_or_edited_children_are_restored() -> anyhow::Result<()> {
    let h = harness().await?;
    let tenants = Api::<Tenant>::all(h.client.clone());
    let name = unique_name("drift");
    tenants
        .create(
            &PostParams::default(),
            &tenant(
                &name,
                serde_json::json!({"tier": "shared", "quota": {"objects": {"pods": 7}}}),
            )?,
        )
        .await?;
    wait_phase(&tenants, &name, Phase::Ready).await?;
    let ns = format!("tenant-{name}");
    let policies = Api::<NetworkPolicy>::namespaced(h.client.clone(), &ns);
    let quotas = Api::<ResourceQuota>::namespaced(h.client.clone(), &ns);

    policies
        .delete("landlord-default-deny", &DeleteParams::default())
        .await?;
    wait::until(
        "deleted network policy restored",
        Duration::from_secs(15),
        || async { Ok(policies.get_opt("landlord-default-deny").await?.map(|_| ())) },
    )
    .await?;

    quotas
        .delete("landlord-quota", &DeleteParams::default())
        .await?;
    wait::until(
        "deleted quota restored",
        Duration::from_secs(15),
        || async { Ok(quotas.get_opt("landlord-quota").await?.map(|_| ())) },
    )
    .await?;

    let edit = serde_json::json!({"spec": {"hard": {"pods": "500"}}});
    quotas
        .patch(
            "landlord-quota",
            &PatchParams::default(),
            &Patch::Merge(&edit),
        )
        .await?;
    wait::until("edited quota restored", Duration::from_secs(15), || async {
        let hard = quotas
            .get("landlord-quota")
            .await?
            .spec
            .and_then(|s| s.hard)
            .unwrap_or_default();
        Ok((hard.get("pods").map(|q| q.0.as_str()) == Some("7")).then_some(()))
    })
    .await?;

    let bindings = Api::<RoleBinding>::namespaced(h.client.clone(), &ns);
    bindings
        .delete("landlord-tenant-admin", &DeleteParams::default())
        .await?;
    wait::until(
        "deleted role binding restored",
        Duration::from_secs(15),
        || async { Ok(bindings.get_opt("landlord-tenant-admin").await?.map(|_| ())) },
    )
    .await?;
    delete_tenant(&h.client, &name).await
}

#[tokio::test]
async fn ready_tenant_causes_no_writes_for_30_seconds() -> anyhow::Result<()> {
    let h = harness().await?;
    let tenants = Api::<Tenant>::all(h.client.clone());
    let name = unique_name("quiet");
    let spec = serde_json::json!({"tier": "shared", "plan": "pro", "quota": {"requests": {"cpu": "1000m", "memory": "1024Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}}, "config": {"a": "b"}});
    tenants
        .create(&PostParams::default(), &tenant(&name, spec)?)
        .await?;
    wait_phase(&tenants, &name, Phase::Ready).await?;
    // Let the watch events of the operator's own writes come back and be reconciled.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (start, _) = operator_writes(h.cluster, 0)?;
    let reconciles_before = h.operator.metric("landlord_reconciles_total").await?;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (_, writes) = operator_writes(h.cluster, start)?;
    assert!(
        writes.is_empty(),
        "the operator wrote {} times to an unchanged world:\n{}",
        writes.len(),
        writes.join("\n")
    );
    // The check is only meaningful if the operator was looking: prove it was alive and
    // reconciling by touching the Tenant's labels (no spec change), which must not write either.
    let touch = serde_json::json!({"metadata": {"labels": {"touched": "yes"}}});
    tenants
        .patch(&name, &PatchParams::default(), &Patch::Merge(&touch))
        .await?;
    wait::until(
        "a reconcile of the touched Tenant",
        Duration::from_secs(15),
        || async {
            Ok(
                (h.operator.metric("landlord_reconciles_total").await? > reconciles_before)
                    .then_some(()),
            )
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, writes) = operator_writes(h.cluster, start)?;
    assert!(
        writes.is_empty(),
        "a label-only change caused writes:\n{}",
        writes.join("\n")
    );
    delete_tenant(&h.client, &name).await
}

#[tokio::test]
async fn suspend_and_resume() -> anyhow::Result<()> {
    let h = harness().await?;
    let (tenants, name) =
        ready_tenant(&h, "sleepy", serde_json::json!({"tier": "dedicated"})).await?;
    let set = |suspended: bool| serde_json::json!({"spec": {"suspended": suspended}});
    tenants
        .patch(&name, &PatchParams::default(), &Patch::Merge(set(true)))
        .await?;
    let suspended = wait_phase(&tenants, &name, Phase::Suspended).await?;
    let ready = conditions::find(
        &suspended.status.clone().unwrap_or_default().conditions,
        "Ready",
    )
    .cloned()
    .context("Ready")?;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Suspended")
    );
    let identity = Api::<ConfigMap>::namespaced(h.client.clone(), &format!("tenant-{name}"))
        .get("landlord-tenant")
        .await?;
    assert_eq!(
        identity
            .data
            .unwrap_or_default()
            .get("suspended")
            .map(String::as_str),
        Some("true")
    );
    tenants
        .patch(&name, &PatchParams::default(), &Patch::Merge(set(false)))
        .await?;
    wait_phase(&tenants, &name, Phase::Ready).await?;
    delete_tenant(&h.client, &name).await
}

#[tokio::test]
async fn deletion_removes_the_namespace_before_the_tenant() -> anyhow::Result<()> {
    let h = harness().await?;
    let (tenants, name) = ready_tenant(&h, "gone", serde_json::json!({"tier": "shared"})).await?;
    let ns = format!("tenant-{name}");
    // Content in the namespace keeps it terminating for a moment, so the order is visible.
    Api::<ConfigMap>::namespaced(h.client.clone(), &ns)
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    finalizers: Some(vec!["landlord.dev/e2e-hold".into()]),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    tenants.delete(&name, &DeleteParams::default()).await?;
    let terminating = wait_phase(&tenants, &name, Phase::Terminating).await?;
    assert!(terminating.metadata.deletion_timestamp.is_some());
    let namespaces = Api::<Namespace>::all(h.client.clone());
    wait::until("namespace terminating", Duration::from_secs(20), || async {
        Ok(namespaces
            .get(&ns)
            .await?
            .metadata
            .deletion_timestamp
            .map(|_| ()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        tenants.get_opt(&name).await?.is_some(),
        "the Tenant went away while its namespace was still terminating"
    );
    let release = serde_json::json!({"metadata": {"finalizers": null}});
    Api::<ConfigMap>::namespaced(h.client.clone(), &ns)
        .patch("data", &PatchParams::default(), &Patch::Merge(&release))
        .await?;
    wait::until(
        "Tenant gone after its namespace",
        Duration::from_secs(90),
        || async {
            let ns_gone = namespaces.get_opt(&ns).await?.is_none();
            let tenant_gone = tenants.get_opt(&name).await?.is_none();
            anyhow::ensure!(
                ns_gone || !tenant_gone,
                "the Tenant is gone but namespace {ns} is not"
            );
            Ok((ns_gone && tenant_gone).then_some(()))
        },
    )
    .await
}

#[tokio::test]
async fn release_annotation_frees_a_tenant_whose_cleanup_cannot_finish() -> anyhow::Result<()> {
    let h = harness().await?;
    let (tenants, name) = ready_tenant(&h, "stuck", serde_json::json!({"tier": "shared"})).await?;
    let ns = format!("tenant-{name}");
    let config_maps = Api::<ConfigMap>::namespaced(h.client.clone(), &ns);
    config_maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("stuck".into()),
                    finalizers: Some(vec!["landlord.dev/e2e-hold".into()]),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    tenants.delete(&name, &DeleteParams::default()).await?;
    wait_phase(&tenants, &name, Phase::Terminating).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        tenants.get_opt(&name).await?.is_some(),
        "cleanup should be stuck on the namespace"
    );
    let annotate =
        serde_json::json!({"metadata": {"annotations": {"landlord.dev/release": "true"}}});
    tenants
        .patch(&name, &PatchParams::default(), &Patch::Merge(&annotate))
        .await?;
    wait::until("released Tenant gone", Duration::from_secs(30), || async {
        Ok(tenants.get_opt(&name).await?.is_none().then_some(()))
    })
    .await?;
    let unblock = serde_json::json!({"metadata": {"finalizers": null}});
    config_maps
        .patch("stuck", &PatchParams::default(), &Patch::Merge(&unblock))
        .await?;
    Ok(())
}

#[tokio::test]
async fn pre_existing_namespace_is_a_conflict_until_adopted() -> anyhow::Result<()> {
    let h = harness().await?;
    let tenants = Api::<Tenant>::all(h.client.clone());
    let namespaces = Api::<Namespace>::all(h.client.clone());
    let name = unique_name("squat");
    let ns = format!("tenant-{name}");
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    tenants
        .create(
            &PostParams::default(),
            &tenant(&name, serde_json::json!({"tier": "shared"}))?,
        )
        .await?;
    let failed = wait_phase(&tenants, &name, Phase::Failed).await?;
    let status = failed.status.clone().unwrap_or_default();
    let condition = conditions::find(&status.conditions, "NamespaceReady")
        .cloned()
        .context("NamespaceReady")?;
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "NamespaceConflict")
    );
    assert!(
        condition.message.contains(&ns) && condition.message.contains("landlord.dev/adopt"),
        "{}",
        condition.message
    );
    let ready = conditions::find(&status.conditions, "Ready")
        .cloned()
        .context("Ready")?;
    assert!(
        ready.message.contains("NamespaceReady"),
        "Ready must name the blocking part: {}",
        ready.message
    );
    assert!(
        Api::<ResourceQuota>::namespaced(h.client.clone(), &ns)
            .get_opt("landlord-quota")
            .await?
            .is_none(),
        "a squatted namespace was modified"
    );

    let adopt = serde_json::json!({"metadata": {"annotations": {"landlord.dev/adopt": name}}});
    namespaces
        .patch(&ns, &PatchParams::default(), &Patch::Merge(&adopt))
        .await?;
    wait_phase(&tenants, &name, Phase::Ready).await?;
    let adopted = namespaces.get(&ns).await?;
    assert_eq!(adopted.labels().get("landlord.dev/tenant"), Some(&name));
    delete_tenant(&h.client, &name).await
}

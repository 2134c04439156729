//! The Tenant lifecycle end to end: the real operator binary, authenticated as the chart's
//! ServiceAccount, against the local control plane.
//!
//! Tests in this file share the cluster-wide Tenant watch, so they run one at a time, each
//! with an operator (and a Lease) of its own.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, LimitRange, Namespace, Pod, ResourceQuota, Secret, Service},
    networking::v1::NetworkPolicy,
    rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use landlord_crds::{Tenant, conditions, tenant::Phase};
use landlord_e2e::{
    audit::{self, operator_writes},
    operator,
    tenants::{self, Harness, tenant},
    unique_name, wait,
};

const LANDLORD: &str = env!("CARGO_BIN_EXE_landlord");

#[tokio::test]
async fn tenant_becomes_ready_with_every_child() -> anyhow::Result<()> {
    let h = Harness::start(LANDLORD).await?;
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
    let ready = h.wait_phase(&name, Phase::Ready).await?;
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
            // A dedicated tenant: the operator may reach its server.
            "landlord-allow-operator",
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

    // Structured logs: every line of a reconcile carries the object it is about (one field,
    // `object`, for every controller).
    let log = h.operator.log_text();
    let tagged = format!("\"object\":\"Tenant {name}\"");
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

    h.delete_tenant(&name).await
}

/// What the non-admin user may and may not do once it is a tenant admin.
#[tokio::test]
async fn tenant_admin_works_in_its_namespace_and_cannot_escape() -> anyhow::Result<()> {
    let h = Harness::start(LANDLORD).await?;
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
    h.wait_phase(&mine, Phase::Ready).await?;
    h.wait_phase(&other, Phase::Ready).await?;
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
                "containers": [{"name": "app", "image": "registry.invalid/app:1", "imagePullPolicy": "Always",
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
    // NetworkPolicies and RoleBindings are the tenant's to write (mtb.rs), but not
    // Landlord's own.
    forbidden(
        "deleting a network policy",
        Api::<NetworkPolicy>::namespaced(user.clone(), &ns)
            .delete("landlord-default-deny", &DeleteParams::default())
            .await
            .map(|_| ()),
        403,
        "landlord-managed-objects",
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
        "landlord-managed-objects",
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
        "spec.type: NodePort is not allowed",
    )?;
    let services = Api::<Service>::namespaced(user.clone(), &ns);
    let load_balancer: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "exposed"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "app"}, "ports": [{"port": 80}]}
    }))?;
    forbidden(
        "a LoadBalancer Service",
        services
            .create(&PostParams::default(), &load_balancer)
            .await
            .map(|_| ()),
        403,
        "spec.type: LoadBalancer is not allowed",
    )?;
    // CVE-2020-8554: a Service whose external IP is the shared database server's address
    // would capture every pod's connections to it, the operator's included.
    let capture: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pg"},
        "spec": {"selector": {"app": "fakepg"}, "ports": [{"port": 5432}], "externalIPs": ["10.20.30.40"]}
    }))?;
    forbidden(
        "a Service with externalIPs",
        services
            .create(&PostParams::default(), &capture)
            .await
            .map(|_| ()),
        403,
        "spec.externalIPs: not allowed",
    )?;
    // CVE-2021-25740: hand-written endpoints would point a Service's name anywhere.
    let endpoints: k8s_openapi::api::core::v1::Endpoints =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pg"},
            "subsets": [{"addresses": [{"ip": "10.20.30.40"}], "ports": [{"port": 5432}]}]
        }))?;
    forbidden(
        "writing Endpoints",
        Api::<k8s_openapi::api::core::v1::Endpoints>::namespaced(user.clone(), &ns)
            .create(&PostParams::default(), &endpoints)
            .await
            .map(|_| ()),
        403,
        "cannot create resource \"endpoints\"",
    )?;
    let slice: k8s_openapi::api::discovery::v1::EndpointSlice =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pg", "labels": {"kubernetes.io/service-name": "pg"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.20.30.40"]}],
            "ports": [{"port": 5432}]
        }))?;
    forbidden(
        "writing EndpointSlices",
        Api::<k8s_openapi::api::discovery::v1::EndpointSlice>::namespaced(user.clone(), &ns)
            .create(&PostParams::default(), &slice)
            .await
            .map(|_| ()),
        403,
        "cannot create resource \"endpointslices\"",
    )?;

    h.delete_tenant(&mine).await?;
    h.delete_tenant(&other).await
}

#[tokio::test]
async fn deleted_or_edited_children_are_restored() -> anyhow::Result<()> {
    let h = Harness::start(LANDLORD).await?;
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
    h.wait_phase(&name, Phase::Ready).await?;
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
    h.delete_tenant(&name).await
}

#[tokio::test]
async fn ready_tenant_causes_no_writes_for_30_seconds() -> anyhow::Result<()> {
    let h = Harness::start(LANDLORD).await?;
    let tenants = Api::<Tenant>::all(h.client.clone());
    let name = unique_name("quiet");
    let spec = serde_json::json!({"tier": "shared", "plan": "pro", "quota": {"requests": {"cpu": "1000m", "memory": "1024Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}}, "config": {"a": "b"}});
    tenants
        .create(&PostParams::default(), &tenant(&name, spec)?)
        .await?;
    h.wait_phase(&name, Phase::Ready).await?;
    // Let the watch events of the operator's own writes come back and be reconciled.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = audit::end(h.cluster)?;
    let reconciles_before = h.reconciles().await?;
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
    h.wait_reconcile("a reconcile of the touched Tenant", reconciles_before)
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, writes) = operator_writes(h.cluster, start)?;
    assert!(
        writes.is_empty(),
        "a label-only change caused writes:\n{}",
        writes.join("\n")
    );
    h.delete_tenant(&name).await
}

#[tokio::test]
async fn suspend_and_resume() -> anyhow::Result<()> {
    let h = Harness::start(LANDLORD).await?;
    let name = h
        .ready_tenant("sleepy", serde_json::json!({"tier": "dedicated"}))
        .await?;
    let tenants = h.tenants();
    let set = |suspended: bool| serde_json::json!({"spec": {"suspended": suspended}});
    tenants
        .patch(&name, &PatchParams::default(), &Patch::Merge(set(true)))
        .await?;
    let suspended = h.wait_phase(&name, Phase::Suspended).await?;
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
    h.wait_phase(&name, Phase::Ready).await?;
    h.delete_tenant(&name).await
}

#[tokio::test]
async fn deletion_removes_the_namespace_before_the_tenant() -> anyhow::Result<()> {
    let h = Harness::start(LANDLORD).await?;
    let name = h
        .ready_tenant("gone", serde_json::json!({"tier": "shared"}))
        .await?;
    let tenants = h.tenants();
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
    let terminating = h.wait_phase(&name, Phase::Terminating).await?;
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
    let h = Harness::start(LANDLORD).await?;
    let name = h
        .ready_tenant("stuck", serde_json::json!({"tier": "shared"}))
        .await?;
    let tenants = h.tenants();
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
    h.wait_phase(&name, Phase::Terminating).await?;
    // Status says what blocks (the namespace's own conditions name the finalizer) and how to
    // release the Tenant.
    let ready = wait::until(
        "Ready naming the foreign finalizer",
        Duration::from_secs(60),
        || async {
            let t = tenants.get(&name).await?;
            let ready = t
                .status
                .as_ref()
                .and_then(|s| conditions::find(&s.conditions, "Ready").cloned());
            Ok(ready.filter(|r| r.message.contains("landlord.dev/e2e-hold")))
        },
    )
    .await?;
    assert_eq!(ready.reason, "NamespaceTerminating", "{ready:?}");
    assert!(
        ready.message.contains(&format!("namespace {ns}"))
            && ready.message.contains("landlord.dev/release=true"),
        "{}",
        ready.message
    );
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
    let h = Harness::start(LANDLORD).await?;
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
    let failed = h.wait_phase(&name, Phase::Failed).await?;
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
    h.wait_phase(&name, Phase::Ready).await?;
    let adopted = namespaces.get(&ns).await?;
    assert_eq!(adopted.labels().get("landlord.dev/tenant"), Some(&name));
    h.delete_tenant(&name).await
}

/// Issue 11 item 2: a tenant admin, with its own credentials, cannot forge, change, freeze,
/// delete or relabel what Landlord wrote in its namespace, nor label its own objects as
/// Landlord's; a child someone made `immutable` (here the platform admin, whom admission
/// lets through) is made again, and the suspension behind it still takes effect.
#[tokio::test]
async fn tenant_admin_cannot_touch_landlords_objects_and_a_frozen_child_is_remade()
-> anyhow::Result<()> {
    let h = Harness::start(LANDLORD).await?;
    let tenants = Api::<Tenant>::all(h.client.clone());
    let name = unique_name("walls");
    let spec = serde_json::json!({
        "tier": "dedicated",
        "admins": [{"kind": "User", "name": h.cluster.user_name()}],
        "database": {"deletionPolicy": "Delete"},
    });
    tenants
        .create(&PostParams::default(), &tenant(&name, spec)?)
        .await?;
    h.wait_phase(&name, Phase::Ready).await?;
    let ns = format!("tenant-{name}");
    let user = h.cluster.user_client().await?;
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=landlord");
    let config_maps = Api::<ConfigMap>::namespaced(h.client.clone(), &ns)
        .list(&managed)
        .await?;
    let secrets = Api::<Secret>::namespaced(h.client.clone(), &ns)
        .list(&managed)
        .await?;
    let names = |items: &[ConfigMap]| items.iter().map(|c| c.name_any()).collect::<Vec<_>>();
    assert!(
        names(&config_maps.items).contains(&"landlord-flags".to_string()),
        "{:?}",
        names(&config_maps.items)
    );
    assert!(!secrets.items.is_empty(), "the dedicated tier has Secrets");

    let refused = |what: String, result: Result<(), kube::Error>| match result {
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("Landlord") => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("landlord.dev/") => Ok(()),
        other => Err(anyhow::anyhow!(
            "{what}: expected a refusal by admission, got {other:?}"
        )),
    };
    let user_cms = Api::<ConfigMap>::namespaced(user.clone(), &ns);
    let user_secrets = Api::<Secret>::namespaced(user.clone(), &ns);
    let merge = |v: serde_json::Value| Patch::Merge(v);
    let attacks = [
        serde_json::json!({"data": {"forged": "true"}}),
        serde_json::json!({"immutable": true}),
        serde_json::json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": null}}}),
        serde_json::json!({"metadata": {"labels": {"landlord.dev/tenant": "someone-else"}}}),
    ];
    for cm in &config_maps.items {
        let cm = cm.name_any();
        for attack in &attacks {
            refused(
                format!("patching ConfigMap {cm} with {attack}"),
                user_cms
                    .patch(&cm, &PatchParams::default(), &merge(attack.clone()))
                    .await
                    .map(|_| ()),
            )?;
        }
        refused(
            format!("deleting ConfigMap {cm}"),
            user_cms
                .delete(&cm, &DeleteParams::default())
                .await
                .map(|_| ()),
        )?;
    }
    for secret in &secrets.items {
        let secret = secret.name_any();
        refused(
            format!("patching Secret {secret}"),
            user_secrets
                .patch(
                    &secret,
                    &PatchParams::default(),
                    &merge(serde_json::json!({"stringData": {"password": "forged"}})),
                )
                .await
                .map(|_| ()),
        )?;
        refused(
            format!("deleting Secret {secret}"),
            user_secrets
                .delete(&secret, &DeleteParams::default())
                .await
                .map(|_| ()),
        )?;
    }
    // Landlord's other kinds, through the rights the tenant-admin Role does grant.
    refused(
        "scaling Landlord's Deployment landlord-runtime".into(),
        Api::<Deployment>::namespaced(user.clone(), &ns)
            .patch(
                "landlord-runtime",
                &PatchParams::default(),
                &merge(serde_json::json!({"spec": {"replicas": 5}})),
            )
            .await
            .map(|_| ()),
    )?;
    match Api::<Deployment>::namespaced(user.clone(), &ns)
        .patch_scale(
            "landlord-runtime",
            &PatchParams::default(),
            &merge(serde_json::json!({"spec": {"replicas": 5}})),
        )
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => anyhow::bail!("scaling landlord-runtime through its scale subresource: {other:?}"),
    }
    refused(
        "deleting Landlord's Service landlord-postgres".into(),
        Api::<Service>::namespaced(user.clone(), &ns)
            .delete("landlord-postgres", &DeleteParams::default())
            .await
            .map(|_| ()),
    )?;
    // Objects of its own that claim to be Landlord's, or another tenant's.
    let own = |name: &str, labels: serde_json::Value| -> anyhow::Result<ConfigMap> {
        Ok(serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": labels},
            "data": {"k": "v"}
        }))?)
    };
    refused(
        "creating a ConfigMap labelled as Landlord's".into(),
        user_cms
            .create(
                &PostParams::default(),
                &own(
                    "fake-flags",
                    serde_json::json!({"app.kubernetes.io/managed-by": "landlord", "landlord.dev/component": "flags"}),
                )?,
            )
            .await
            .map(|_| ()),
    )?;
    refused(
        "creating a ConfigMap labelled as another tenant's".into(),
        user_cms
            .create(
                &PostParams::default(),
                &own("other", serde_json::json!({"landlord.dev/tenant": "acme"}))?,
            )
            .await
            .map(|_| ()),
    )?;
    // The same user may write its own objects: the refusals above are the policy's, not
    // missing rights.
    user_cms
        .create(
            &PostParams::default(),
            &own("mine", serde_json::json!({"app": "mine"}))?,
        )
        .await
        .context("the tenant admin creates its own ConfigMap")?;
    user_cms
        .delete("mine", &DeleteParams::default())
        .await
        .context("and deletes it")?;

    // Frozen by someone admission trusts: the operator makes it again, and the suspension
    // it would otherwise have blocked takes effect.
    let admin_cms = Api::<ConfigMap>::namespaced(h.client.clone(), &ns);
    let before = admin_cms.get("landlord-flags").await?;
    admin_cms
        .patch(
            "landlord-flags",
            &PatchParams::default(),
            &merge(serde_json::json!({"immutable": true, "data": {"flags.json": "{}"}})),
        )
        .await?;
    tenants
        .patch(
            &name,
            &PatchParams::default(),
            &merge(serde_json::json!({"spec": {"suspended": true}})),
        )
        .await?;
    h.wait_phase(&name, Phase::Suspended).await?;
    let after = wait::until(
        "landlord-flags made again",
        tenants::READY_TIMEOUT,
        || async {
            let now = admin_cms.get("landlord-flags").await?;
            Ok((now.uid() != before.uid()).then_some(now))
        },
    )
    .await?;
    assert_eq!(after.data, before.data, "the operator's flags are back");
    assert_ne!(after.immutable, Some(true));
    let runtime = Api::<Deployment>::namespaced(h.client.clone(), &ns)
        .get("landlord-runtime")
        .await?;
    assert_eq!(
        runtime.spec.and_then(|s| s.replicas),
        Some(0),
        "suspension reached the workloads"
    );

    h.delete_tenant(&name).await
}

/// Issue 11 item 7: objects that merely carry Landlord's labels (here in a namespace no
/// admission protects, by someone with rights there) never reach the operator's caches, so
/// nobody can grow its memory with large labelled objects of their own.
#[tokio::test]
async fn labelled_objects_landlord_does_not_own_stay_out_of_its_cache() -> anyhow::Result<()> {
    let h = Harness::start(LANDLORD).await?;
    let name = h
        .ready_tenant("owner", serde_json::json!({"tier": "shared"}))
        .await?;
    let sandbox = unique_name("sandbox");
    Api::<Namespace>::all(h.client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": sandbox}}))?,
        )
        .await?;
    let blob = "x".repeat(256 * 1024);
    let forged = Api::<ConfigMap>::namespaced(h.client.clone(), &sandbox);
    for i in 0..20 {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("junk-{i}"), "labels": {
                "app.kubernetes.io/managed-by": "landlord",
                "landlord.dev/tenant": name,
                "landlord.dev/component": "flags",
            }},
            "data": {"blob": blob},
        }))?;
        forged.create(&PostParams::default(), &cm).await?;
    }
    // A Tenant made after them: once its ConfigMaps are cached, the junk (older events of
    // the same watch) would be too.
    let later = h
        .ready_tenant("later", serde_json::json!({"tier": "shared"}))
        .await?;
    let all = Api::<ConfigMap>::all(h.client.clone());
    let owned = || async {
        let list = all
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=landlord"))
            .await?;
        let labelled = list.items.len();
        let owned = list
            .items
            .iter()
            .filter(|c| {
                c.owner_references()
                    .iter()
                    .any(|o| o.api_version.starts_with("landlord.dev/"))
            })
            .count();
        anyhow::Ok((labelled, owned))
    };
    let cached = wait::until(
        "the cache holds exactly the owned ConfigMaps",
        tenants::READY_TIMEOUT,
        || async {
            let (labelled, owned) = owned().await?;
            let cached = h
                .operator
                .metric("landlord_cached_objects{kind=\"ConfigMap\"}")
                .await?;
            anyhow::ensure!(labelled >= owned + 20, "the junk is listed by the label");
            Ok((cached == owned as f64).then_some(cached))
        },
    )
    .await?;
    assert!(
        cached >= 2.0,
        "the tenants' own ConfigMaps are cached: {cached}"
    );

    Api::<Namespace>::all(h.client.clone())
        .delete(&sandbox, &DeleteParams::default())
        .await?;
    h.delete_tenant(&later).await?;
    h.delete_tenant(&name).await
}

/// Issue 11 item 5: the operator's own ServiceAccount, used directly (as a compromised
/// operator would), cannot write outside tenant and platform namespaces, cannot write Roles
/// or RoleBindings other than Landlord's, nor give those more than Landlord gives, nor take
/// over a system namespace, nor read or write a Secret outside the namespaces where it keeps
/// them.
#[tokio::test]
async fn the_operators_account_cannot_write_beyond_what_landlord_is_for() -> anyhow::Result<()> {
    let h = Harness::start(LANDLORD).await?;
    let name = h
        .ready_tenant("scope", serde_json::json!({"tier": "shared"}))
        .await?;
    let ns = format!("tenant-{name}");
    let kubeconfig = operator::service_account_kubeconfig(h.cluster, &h.client).await?;
    let op = landlord_e2e::cluster::client_for(&kubeconfig).await?;
    let refused = |what: &str, result: Result<(), kube::Error>| match result {
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(()),
        other => Err(anyhow::anyhow!("{what}: expected 403, got {other:?}")),
    };
    let role = |namespace: &str, name: &str, rules: serde_json::Value| -> anyhow::Result<Role> {
        Ok(serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace}, "rules": rules,
        }))?)
    };
    let reads =
        serde_json::json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]);
    refused(
        "a Role in kube-system",
        Api::<Role>::namespaced(op.clone(), "kube-system")
            .create(
                &PostParams::default(),
                &role("kube-system", "landlord-tenant-admin", reads.clone())?,
            )
            .await
            .map(|_| ()),
    )?;
    let cm: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "landlord-probe"}}))?;
    refused(
        "a ConfigMap in kube-system",
        Api::<ConfigMap>::namespaced(op.clone(), "kube-system")
            .create(&PostParams::default(), &cm)
            .await
            .map(|_| ()),
    )?;
    refused(
        "a Role of another name in a tenant namespace",
        Api::<Role>::namespaced(op.clone(), &ns)
            .create(
                &PostParams::default(),
                &role(&ns, "takeover", reads.clone())?,
            )
            .await
            .map(|_| ()),
    )?;
    refused(
        "widening landlord-tenant-admin to everything",
        Api::<Role>::namespaced(op.clone(), &ns)
            .patch(
                "landlord-tenant-admin",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})),
            )
            .await
            .map(|_| ()),
    )?;
    refused(
        "letting landlord-tenant-admin bind roles",
        Api::<Role>::namespaced(op.clone(), &ns)
            .patch(
                "landlord-tenant-admin",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind", "escalate"]}]})),
            )
            .await
            .map(|_| ()),
    )?;
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "landlord-tenant-viewer", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "mallory"}],
    }))?;
    refused(
        "binding cluster-admin",
        Api::<RoleBinding>::namespaced(op.clone(), &ns)
            .patch(
                "landlord-tenant-viewer",
                &PatchParams::apply("evil").force(),
                &Patch::Apply(&binding),
            )
            .await
            .map(|_| ()),
    )?;
    // Cluster-scoped RBAC: only each Tenant's read access, as the operator writes it. Each
    // of these the API server's escalation check would let through (the operator holds
    // these rights itself); the operator-scope policy does not.
    let access = format!("landlord:tenant:{name}");
    let uid = h.tenants().get(&name).await?.metadata.uid.context("uid")?;
    // Each attack but the one it tests passes every other rule: owned by the Tenant it is
    // named after, so the refusal comes from the rule under test.
    let owned_by = |tenant: &str, uid: &str| {
        serde_json::json!([{"apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "name": tenant, "uid": uid}])
    };
    let cluster_role = |name: &str, owner: &str, rules: serde_json::Value| {
        serde_json::from_value::<ClusterRole>(serde_json::json!({
            "metadata": {"name": name, "ownerReferences": owned_by(owner, &uid)},
            "rules": rules,
        }))
    };
    let tenant_reads = |names: serde_json::Value, verbs: serde_json::Value| {
        serde_json::json!([{"apiGroups": ["landlord.dev"], "resources": ["tenants"],
            "resourceNames": names, "verbs": verbs}])
    };
    let get = serde_json::json!(["get"]);
    let future = unique_name("future");
    // Refused by the operator-scope policy (each of these RBAC alone would allow).
    let refused_by_policy = |what: &str, result: Result<(), kube::Error>| match result {
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("Landlord operator") => {
            Ok(())
        }
        other => Err(anyhow::anyhow!(
            "{what}: expected the operator-scope policy's 403, got {other:?}"
        )),
    };
    for (what, role) in [
        (
            "a ClusterRole of another name",
            cluster_role(
                "landlord-extra",
                &name,
                tenant_reads(serde_json::json!([name]), get.clone()),
            )?,
        ),
        (
            // resourceNames [""] matches every list and watch without a name.
            "a ClusterRole named after no Tenant, listing every Tenant",
            cluster_role(
                "landlord:tenant:",
                &name,
                tenant_reads(
                    serde_json::json!([""]),
                    serde_json::json!(["list", "watch"]),
                ),
            )?,
        ),
        (
            // Staged for a Tenant not made yet, its readers chosen by the attacker.
            "a future Tenant's ClusterRole owned by nobody",
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("landlord:tenant:{future}")},
                "rules": tenant_reads(serde_json::json!([future]), get.clone()),
            }))?,
        ),
        (
            "its Tenant's ClusterRole reading every Tenant",
            cluster_role(
                &access,
                &name,
                serde_json::json!([{"apiGroups": ["landlord.dev"], "resources": ["tenants"], "verbs": ["get", "list"]}]),
            )?,
        ),
        (
            "its Tenant's ClusterRole reading another Tenant",
            cluster_role(
                &access,
                &name,
                tenant_reads(serde_json::json!(["someone-else"]), get.clone()),
            )?,
        ),
        (
            "its Tenant's ClusterRole reading ConfigMaps",
            cluster_role(&access, &name, reads.clone())?,
        ),
    ] {
        refused_by_policy(
            what,
            Api::<ClusterRole>::all(op.clone())
                .patch(
                    &role.name_any(),
                    &PatchParams::apply("evil").force(),
                    &Patch::Apply(&role),
                )
                .await
                .map(|_| ()),
        )?;
    }
    // (A new binding, owned as the policy asks: a roleRef cannot change once set.)
    let nobody = unique_name("nobody");
    let unbound = format!("landlord:tenant:{nobody}");
    let cluster_binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": unbound, "ownerReferences": owned_by(&nobody, &uid)},
        // The operator's own ClusterRole (the chart's).
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "landlord"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "mallory"}],
    }))?;
    refused_by_policy(
        "binding its own ClusterRole to someone",
        Api::<ClusterRoleBinding>::all(op.clone())
            .patch(
                &unbound,
                &PatchParams::apply("evil").force(),
                &Patch::Apply(&cluster_binding),
            )
            .await
            .map(|_| ()),
    )?;
    // What the operator wrote is intact.
    let role = Api::<ClusterRole>::all(h.client.clone())
        .get(&access)
        .await?;
    assert_eq!(
        serde_json::to_value(&role.rules)?,
        serde_json::json!([
            {"apiGroups": ["landlord.dev"], "resources": ["tenants"], "resourceNames": [name], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["landlord.dev"], "resources": ["tenants/status"], "resourceNames": [name], "verbs": ["get"]},
            {"apiGroups": ["landlord.dev"], "resources": ["tenants/history"], "resourceNames": [name], "verbs": ["get"]},
        ])
    );
    refused(
        "labelling kube-system as a tenant namespace",
        Api::<Namespace>::all(op.clone())
            .patch(
                "kube-system",
                &PatchParams::default(),
                &Patch::Merge(
                    serde_json::json!({"metadata": {"labels": {"landlord.dev/tenant": name}}}),
                ),
            )
            .await
            .map(|_| ()),
    )?;
    refused(
        "deleting namespace default",
        Api::<Namespace>::all(op.clone())
            .delete("default", &DeleteParams::default())
            .await
            .map(|_| ()),
    )?;
    // Secrets: none outside the namespaces where the operator keeps them. A Secret of the
    // admin's in kube-system and in a namespace of nobody's, read by name and by listing.
    let elsewhere = unique_name("nobodys");
    Api::<Namespace>::all(h.client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": elsewhere}}))?,
        )
        .await?;
    let probe: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "landlord-scope-probe"}, "stringData": {"token": "not-the-operators"}
    }))?;
    for namespace in ["kube-system", elsewhere.as_str()] {
        Api::<Secret>::namespaced(h.client.clone(), namespace)
            .create(&PostParams::default(), &probe)
            .await
            .with_context(|| format!("the admin writes a Secret in {namespace}"))?;
        refused(
            &format!("reading a Secret in {namespace}"),
            Api::<Secret>::namespaced(op.clone(), namespace)
                .get("landlord-scope-probe")
                .await
                .map(|_| ()),
        )?;
        refused(
            &format!("listing Secrets in {namespace}"),
            Api::<Secret>::namespaced(op.clone(), namespace)
                .list(&ListParams::default())
                .await
                .map(|_| ()),
        )?;
    }
    refused(
        "listing Secrets cluster-wide",
        Api::<Secret>::all(op.clone())
            .list(&ListParams::default())
            .await
            .map(|_| ()),
    )?;
    refused(
        "creating a Secret in a namespace of nobody's",
        Api::<Secret>::namespaced(op.clone(), &elsewhere)
            .create(&PostParams::default(), &probe)
            .await
            .map(|_| ()),
    )?;
    // Nor can it bind itself (or anyone) Secrets where it has none, or hand its Secrets
    // role to someone else where it has.
    let secrets_binding = |namespace: &str,
                           subject_ns: &str,
                           subject: &str|
     -> anyhow::Result<RoleBinding> {
        Ok(serde_json::from_value(serde_json::json!({
            "metadata": {"name": "landlord-operator", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "landlord-secrets"},
            "subjects": [{"kind": "ServiceAccount", "name": subject, "namespace": subject_ns}],
        }))?)
    };
    refused(
        "binding itself Secrets in a namespace of nobody's",
        Api::<RoleBinding>::namespaced(op.clone(), &elsewhere)
            .create(
                &PostParams::default(),
                &secrets_binding(&elsewhere, operator::NAMESPACE, operator::SERVICE_ACCOUNT)?,
            )
            .await
            .map(|_| ()),
    )?;
    refused(
        "binding the Secrets role to the tenant's default ServiceAccount",
        Api::<RoleBinding>::namespaced(op.clone(), &ns)
            .patch(
                "landlord-operator",
                &PatchParams::apply("landlord-attack").force(),
                &Patch::Apply(&secrets_binding(&ns, &ns, "default")?),
            )
            .await
            .map(|_| ()),
    )?;
    Api::<Secret>::namespaced(h.client.clone(), "kube-system")
        .delete("landlord-scope-probe", &DeleteParams::default())
        .await?;
    Api::<Namespace>::all(h.client.clone())
        .delete(&elsewhere, &DeleteParams::default())
        .await?;

    // What it is for still works with the same credentials: its binding is in place in the
    // tenant namespace, where it reads and writes Secrets.
    let binding = Api::<RoleBinding>::namespaced(h.client.clone(), &ns)
        .get("landlord-operator")
        .await
        .context("the operator binds its Secrets role in the tenant namespace")?;
    assert_eq!(binding.role_ref.name, "landlord-secrets");
    let mine = Api::<Secret>::namespaced(op.clone(), &ns);
    mine.create(&PostParams::default(), &probe)
        .await
        .context("the operator's account writes a Secret in a tenant namespace")?;
    mine.get("landlord-scope-probe").await?;
    mine.delete("landlord-scope-probe", &DeleteParams::default())
        .await?;
    let mine = Api::<ConfigMap>::namespaced(op.clone(), &ns);
    mine.create(&PostParams::default(), &cm)
        .await
        .context("the operator's account writes in a tenant namespace")?;
    mine.delete("landlord-probe", &DeleteParams::default())
        .await?;

    h.delete_tenant(&name).await
}

/// Specs the API server stores in another spelling than they were written in (quantities in
/// exponent and fraction forms, an admin ServiceAccount whose subject the server stores
/// without `apiGroup`, small object quotas, defaults left out), in both tiers: once Ready,
/// forced reconciles of all of them write nothing.
fn generated_specs() -> Vec<serde_json::Value> {
    let cpus = [
        ("12e-1", "2"),
        ("1200m", "2000m"),
        ("1.5", "3e0"),
        ("0.5", "1"),
    ];
    let memories = [
        ("1Gi", "2Gi"),
        ("1024Mi", "2048Mi"),
        ("1e9", "2e9"),
        ("1073741824", "2147483648"),
    ];
    let defaults = [
        ("5e-1", "100m"),
        ("500m", "0.1"),
        ("250m", "1e-1"),
        ("1", "100m"),
    ];
    (0..6)
        .map(|i| {
            let (cpu, cpu_limit) = cpus[i % cpus.len()];
            let (memory, memory_limit) = memories[i % memories.len()];
            let (default_limit, default_request) = defaults[i % defaults.len()];
            let plan = ["free", "pro", "enterprise"][i % 3];
            let mut spec = serde_json::json!({
                "tier": if i % 3 == 2 { "dedicated" } else { "shared" },
                "plan": plan,
                "displayName": format!("Generated {i}"),
                "admins": [
                    {"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"},
                    {"kind": "User", "name": format!("user{i}@example.com")},
                    {"kind": "Group", "name": "ops"},
                ],
                "viewers": [{"kind": "Group", "name": "support"}],
                "quota": {
                    "requests": {"cpu": cpu, "memory": memory},
                    "limits": {"cpu": cpu_limit, "memory": memory_limit},
                    "objects": {"configMaps": 3 + i, "secrets": i % 2, "pods": 20, "services": 5},
                    "containerDefaults": {
                        "request": {"cpu": default_request, "memory": "64Mi"},
                        "limit": {"cpu": default_limit, "memory": "128Mi"},
                    },
                },
                "config": {"brand.name": format!("Brand {i}"), "locale": "en-GB"},
            });
            if i % 2 == 1 {
                spec["network"] = serde_json::json!({
                    "isolation": "Strict",
                    "allowedPeers": [{"direction": "Egress", "cidr": "203.0.113.0/24", "ports": [443]}],
                });
            }
            if i == 2 {
                spec["database"] = serde_json::json!({"deletionPolicy": "Delete"});
                spec["topics"] = serde_json::json!([{"name": "orders", "maxAge": "24h"}]);
            }
            spec
        })
        .collect()
}

#[tokio::test]
async fn every_accepted_spelling_causes_no_writes_at_rest() -> anyhow::Result<()> {
    let h = Harness::start(LANDLORD).await?;
    let tenants = Api::<Tenant>::all(h.client.clone());
    let mut names = Vec::new();
    for (i, spec) in generated_specs().into_iter().enumerate() {
        let name = unique_name(&format!("spell{i}"));
        tenants
            .create(&PostParams::default(), &tenant(&name, spec)?)
            .await?;
        names.push(name);
    }
    for name in &names {
        h.wait_phase(name, Phase::Ready).await?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = audit::end(h.cluster)?;
    // Force a reconcile of each (a label-only change) and wait until the operator looked.
    let before = h.operator.metric("landlord_reconciles_total").await?;
    for name in &names {
        let touch = serde_json::json!({"metadata": {"labels": {"touched": "yes"}}});
        tenants
            .patch(name, &PatchParams::default(), &Patch::Merge(&touch))
            .await?;
    }
    let wanted = before + names.len() as f64;
    wait::until(
        "a reconcile of every touched Tenant",
        Duration::from_secs(30),
        || async {
            Ok((h.operator.metric("landlord_reconciles_total").await? >= wanted).then_some(()))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, writes) = operator_writes(h.cluster, start)?;
    assert!(
        writes.is_empty(),
        "forced reconciles of unchanged Tenants wrote {} times:\n{}",
        writes.len(),
        writes.join("\n")
    );
    for name in &names {
        h.delete_tenant(name).await?;
    }
    Ok(())
}

/// A quota smaller than what Landlord keeps in the namespace: Landlord's own objects are
/// added to it, so the stack is Ready and the tenant still has its own share.
#[tokio::test]
async fn a_small_object_quota_still_fits_landlords_own_objects() -> anyhow::Result<()> {
    let h = Harness::start(LANDLORD).await?;
    let name = h
        .ready_tenant(
            "tight",
            serde_json::json!({
                "tier": "dedicated",
                "quota": {"objects": {"configMaps": 3, "secrets": 1}},
                "database": {"deletionPolicy": "Delete"},
                "topics": [{"name": "orders"}],
            }),
        )
        .await?;
    let ns = format!("tenant-{name}");
    let secrets = Api::<Secret>::namespaced(h.client.clone(), &ns);
    let own = |n: &str| Secret {
        metadata: ObjectMeta {
            name: Some(n.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    secrets.create(&PostParams::default(), &own("mine")).await?;
    match secrets
        .create(&PostParams::default(), &own("one-too-many"))
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("exceeded quota") => {}
        other => anyhow::bail!("the tenant's second own Secret: {other:?}"),
    }
    h.delete_tenant(&name).await
}

/// Issue 11 item 7: the Domains and FeatureFlagSets a tenant may write (each held in the
/// operator's memory) are always counted by its quota; past it, the API server refuses.
#[tokio::test]
async fn a_tenant_cannot_create_landlords_kinds_beyond_its_quota() -> anyhow::Result<()> {
    let h = Harness::start(LANDLORD).await?;
    let name = h
        .ready_tenant(
            "counted",
            serde_json::json!({
                "tier": "shared",
                "admins": [{"kind": "User", "name": h.cluster.user_name()}],
                "quota": {"objects": {"domains": 1, "featureFlagSets": 1, "webhookEndpoints": 1}},
            }),
        )
        .await?;
    let ns = format!("tenant-{name}");
    let user = h.cluster.user_client().await?;
    let domain = |n: &str| -> anyhow::Result<landlord_crds::Domain> {
        Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Domain",
            "metadata": {"name": n, "namespace": ns},
            "spec": {"hostname": format!("{n}.{name}.example.org"), "tls": {"mode": "None"},
                     "routes": [{"pathPrefix": "/", "service": "web"}]},
        }))?)
    };
    let set = |n: &str| -> anyhow::Result<landlord_crds::FeatureFlagSet> {
        Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "FeatureFlagSet",
            "metadata": {"name": n, "namespace": ns},
            "spec": {"flags": [{"name": "beta", "type": "boolean",
                     "variants": {"on": {"boolean": true}}, "defaultVariant": "on"}]},
        }))?)
    };
    let hook = |n: &str| -> anyhow::Result<landlord_crds::WebhookEndpoint> {
        Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "WebhookEndpoint",
            "metadata": {"name": n, "namespace": ns},
            "spec": {"url": "https://hooks.example.org/landlord", "secretRef": {"name": "hook"}},
        }))?)
    };
    let domains = Api::<landlord_crds::Domain>::namespaced(user.clone(), &ns);
    let sets = Api::<landlord_crds::FeatureFlagSet>::namespaced(user.clone(), &ns);
    let hooks = Api::<landlord_crds::WebhookEndpoint>::namespaced(user.clone(), &ns);
    // The quota controller counts asynchronously: the first create may race its status.
    wait::until(
        "the quota counts Landlord's kinds",
        tenants::READY_TIMEOUT,
        || async {
            let q = Api::<ResourceQuota>::namespaced(h.client.clone(), &ns)
                .get("landlord-quota")
                .await?;
            let used = q.status.and_then(|s| s.used).unwrap_or_default();
            Ok((used.contains_key("count/domains.landlord.dev")
                && used.contains_key("count/webhookendpoints.landlord.dev"))
            .then_some(()))
        },
    )
    .await?;
    domains
        .create(&PostParams::default(), &domain("first")?)
        .await
        .context("the first Domain fits")?;
    sets.create(&PostParams::default(), &set("first")?)
        .await
        .context("the first FeatureFlagSet fits")?;
    hooks
        .create(&PostParams::default(), &hook("first")?)
        .await
        .context("the first WebhookEndpoint fits")?;
    for (what, result) in [
        (
            "a second Domain",
            domains
                .create(&PostParams::default(), &domain("second")?)
                .await
                .map(|_| ()),
        ),
        (
            "a second FeatureFlagSet",
            sets.create(&PostParams::default(), &set("second")?)
                .await
                .map(|_| ()),
        ),
        (
            "a second WebhookEndpoint",
            hooks
                .create(&PostParams::default(), &hook("second")?)
                .await
                .map(|_| ()),
        ),
    ] {
        match result {
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("exceeded quota") => {}
            other => anyhow::bail!("{what}: expected the quota's refusal, got {other:?}"),
        }
    }

    h.delete_tenant(&name).await
}

/// A Tenant the operator cannot decode (stored while its CRD was looser than the operator's
/// types: a CRD from another release, or edited by hand) is reported on itself and stalls
/// nothing: the operator lists, becomes ready and provisions the other Tenants. Before, the
/// one object failed every list page of the Tenant watch, which then retried forever.
#[tokio::test]
async fn an_undecodable_tenant_is_reported_and_stalls_nothing() -> anyhow::Result<()> {
    use k8s_openapi::{
        api::events::v1::Event,
        apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    };
    use kube::{
        Resource,
        api::{ApiResource, DynamicObject},
    };

    let setup = Harness::setup(LANDLORD).await?;
    let client = setup.client.clone();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let raw = Api::<DynamicObject>::all_with(client.clone(), &ApiResource::erase::<Tenant>(&()));
    let bad = unique_name("undecodable");
    // For a moment spec.tier takes any string, as under a CRD the operator was not built for.
    let loosen = serde_json::json!([{"op": "remove",
        "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/tier/enum"}]);
    crds.patch(
        "tenants.landlord.dev",
        &PatchParams::default(),
        &Patch::<()>::Json(serde_json::from_value(loosen)?),
    )
    .await?;
    let stored = async {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": Tenant::api_version(&()), "kind": "Tenant",
            "metadata": {"name": bad, "labels": {tenants::E2E_LABEL: "true"}},
            "spec": {"tier": "platinum"},
        }))?;
        // The schema change reaches the API server's handler shortly after the update.
        wait::until(
            "the loosened CRD to admit tier platinum",
            Duration::from_secs(30),
            || async {
                match raw.create(&PostParams::default(), &object).await {
                    Ok(created) => Ok(Some(created)),
                    Err(e) => anyhow::bail!("{e}"),
                }
            },
        )
        .await
    }
    .await;
    // The CRD as the operator's release has it, whatever happened.
    landlord_e2e::manifests::install_crds_on(&client).await?;
    stored?;

    let result = async {
        let h = setup.start().await?;
        // The watch was not stalled: another Tenant is provisioned.
        let good = h
            .ready_tenant("beside-undecodable", serde_json::json!({"tier": "shared"}))
            .await?;
        // The undecodable one is reported on itself, naming the field.
        let reported = wait::until(
            "the report on the undecodable Tenant",
            Duration::from_secs(30),
            || async {
                let object = raw.get(&bad).await?;
                let conditions = object.data["status"]["conditions"].clone();
                let ready = conditions
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned());
                match ready {
                    Some(c) if c["reason"] == "ObjectUndecodable" => Ok(Some(c)),
                    other => anyhow::bail!("Ready is {other:?}"),
                }
            },
        )
        .await?;
        assert_eq!(reported["status"], "False");
        let message = reported["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("Tenant {bad}")), "{message}");
        assert!(message.contains("spec.tier"), "{message}");
        assert!(message.contains("platinum"), "{message}");
        assert_eq!(
            h.operator.metric("landlord_undecodable_objects").await?,
            1.0
        );
        let events = Api::<Event>::all(client.clone())
            .list(&ListParams::default())
            .await?;
        assert!(
            events
                .items
                .iter()
                .any(|e| e.reason.as_deref() == Some("ObjectUndecodable")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(bad.as_str())),
            "no ObjectUndecodable event for Tenant {bad}"
        );
        assert!(
            h.operator.log_text().contains(&format!("Tenant {bad}")),
            "the warning does not name the Tenant"
        );
        // Nothing of its stack was made: it was left alone.
        assert!(
            Api::<Namespace>::all(client.clone())
                .get_opt(&format!("tenant-{bad}"))
                .await?
                .is_none()
        );
        // Deleted, it is no longer counted.
        raw.delete(&bad, &DeleteParams::default()).await?;
        wait::until(
            "the undecodable count back to 0",
            Duration::from_secs(30),
            || async {
                let count = h.operator.metric("landlord_undecodable_objects").await?;
                if count == 0.0 {
                    Ok(Some(()))
                } else {
                    anyhow::bail!("count {count}")
                }
            },
        )
        .await?;
        h.delete_tenant(&good).await
    }
    .await;
    // Gone whatever happened (it has no finalizer: the operator never took it on).
    let _ = raw.delete(&bad, &DeleteParams::default()).await;
    result
}

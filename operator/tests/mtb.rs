//! The multi-tenancy benchmark (kubectl-mtb of kubernetes-sigs/multi-tenancy, with the checks
//! its README lists as pending) performed as a tenant admin: the non-admin user listed in a
//! Tenant's `spec.admins`, against the real operator, RBAC and admission policies.
//!
//! Each check asserts the result the README's Security model table gives it, failing ones
//! included: when a failing check starts to pass (or the reverse), this test fails, so the
//! table is updated with it. Pods and Services are created as server-side dry runs, which run
//! every admission check and store nothing.

use std::collections::BTreeSet;

use anyhow::Context;
use k8s_openapi::api::{
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    core::v1::{Pod, ResourceQuota, Service},
    networking::v1::NetworkPolicy,
    rbac::v1::{Role, RoleBinding},
};
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, ListParams, PostParams},
    discovery::{ApiResource, Discovery, Scope, verbs},
};
use landlord_crds::{Tenant, tenant::Phase};
use landlord_e2e::{
    tenants::{Harness, tenant},
    unique_name,
};

const LANDLORD: &str = env!("CARGO_BIN_EXE_landlord");

/// Whether the API server lets `client` do `verb` (SelfSubjectAccessReview, as kubectl-mtb
/// asks).
async fn can(
    client: &Client,
    namespace: &str,
    group: &str,
    resource: &str,
    verb: &str,
    name: Option<&str>,
) -> anyhow::Result<bool> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                verb: Some(verb.into()),
                name: name.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// A resource the API server serves, as kubectl-mtb's discovery (by the cluster admin) sees
/// it.
struct Served {
    resource: ApiResource,
    namespaced: bool,
    /// Objects of it can be listed and deleted.
    deletable: bool,
}

async fn served(admin: &Client) -> anyhow::Result<Vec<Served>> {
    let discovery = Discovery::new(admin.clone()).run().await?;
    Ok(discovery
        .groups()
        .flat_map(|group| group.recommended_resources())
        .map(|(resource, capabilities)| Served {
            deletable: capabilities.supports_operation(verbs::DELETE)
                && capabilities.supports_operation(verbs::LIST),
            namespaced: capabilities.scope == Scope::Namespaced,
            resource,
        })
        .collect())
}

/// `result` is a refusal (403, or 422 for a field the API server itself refuses) whose
/// message contains every one of `texts`.
fn refused<T: std::fmt::Debug>(
    check: &str,
    result: Result<T, kube::Error>,
    texts: &[&str],
) -> anyhow::Result<()> {
    match result {
        Err(kube::Error::Api(s))
            if [403, 422].contains(&s.code) && texts.iter().all(|t| s.message.contains(t)) =>
        {
            Ok(())
        }
        other => anyhow::bail!("{check}: expected a refusal naming {texts:?}, got {other:?}"),
    }
}

/// A pod that every wall admits: the `restricted` Pod Security Standard and
/// `imagePullPolicy: Always`. Each check changes one thing in it.
fn admitted_pod() -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": "mtb"},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "app", "image": "registry.invalid/app:1", "imagePullPolicy": "Always",
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            }],
        }
    })
}

/// `value` with the field at `pointer` set (its parent object must exist).
fn with(mut value: serde_json::Value, pointer: &str, set: serde_json::Value) -> serde_json::Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let object = value
        .pointer_mut(parent)
        .and_then(|p| p.as_object_mut())
        .expect("the parent is an object of the fixture");
    object.insert(key.to_string(), set);
    value
}

#[tokio::test]
async fn the_multi_tenancy_benchmark_as_a_tenant_admin() -> anyhow::Result<()> {
    let h = Harness::start(LANDLORD).await?;
    let (cluster, admin) = (h.cluster, h.client.clone());
    let tenants = Api::<Tenant>::all(admin.clone());
    let mine = unique_name("mtb");
    let other = unique_name("mtb-other");
    tenants
        .create(
            &PostParams::default(),
            &tenant(
                &mine,
                serde_json::json!({
                    "tier": "dedicated",
                    "admins": [{"kind": "User", "name": cluster.user_name()}],
                    "quota": {
                        "requests": {"cpu": "2", "memory": "4Gi"},
                        "limits": {"cpu": "4", "memory": "8Gi"},
                        "objects": {"pods": 20, "services": 10, "configMaps": 20, "secrets": 20, "persistentVolumeClaims": 5},
                    },
                }),
            )?,
        )
        .await?;
    tenants
        .create(
            &PostParams::default(),
            &tenant(&other, serde_json::json!({"tier": "dedicated"}))?,
        )
        .await?;
    h.wait_phase(&mine, Phase::Ready).await?;
    h.wait_phase(&other, Phase::Ready).await?;
    let ns = format!("tenant-{mine}");
    let other_ns = format!("tenant-{other}");
    let user = cluster.user_client().await?;
    let all = served(&admin).await?;
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let pods = Api::<Pod>::namespaced(user.clone(), &ns);
    let try_pod = |value: serde_json::Value| {
        let pods = pods.clone();
        let dry = dry.clone();
        async move {
            let pod: Pod = serde_json::from_value(value)?;
            anyhow::Ok(pods.create(&dry, &pod).await)
        }
    };
    try_pod(admitted_pod())
        .await?
        .context("the baseline pod every pod check changes one field of is admitted")?;

    // 1. Block access to cluster resources (MTB-PL1-CC-CPI-1): no get or update on any
    //    cluster-scoped resource. Pass.
    let mut open = Vec::new();
    for served in all.iter().filter(|s| !s.namespaced) {
        let (group, resource) = (&served.resource.group, &served.resource.plural);
        for verb in ["get", "update"] {
            if can(&user, "", group, resource, verb, None).await? {
                open.push(format!("{verb} {resource}.{group}"));
            }
        }
    }
    anyhow::ensure!(
        open.is_empty(),
        "1. cluster resources: the tenant admin may {open:?}"
    );

    // 2. Block multitenant resources (MTB-PL1-BC-CPI-2): objects labelled as Landlord's
    //    cannot be deleted by the tenant. Fails for pods only, by design: deleting a pod of
    //    Landlord's workloads is allowed (its controller makes it again at once).
    let mut deletable = BTreeSet::new();
    let mut seen = 0;
    for served in all.iter().filter(|s| s.namespaced && s.deletable) {
        let api = Api::<DynamicObject>::namespaced_with(user.clone(), &ns, &served.resource);
        // What the tenant cannot even list, it cannot delete by name from a list either.
        let Ok(list) = api
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=landlord"))
            .await
        else {
            continue;
        };
        for object in list.items {
            seen += 1;
            let name = object.metadata.name.clone().unwrap_or_default();
            let params = DeleteParams {
                dry_run: true,
                ..Default::default()
            };
            if api.delete(&name, &params).await.is_ok() {
                deletable.insert(served.resource.plural.clone());
            }
        }
    }
    anyhow::ensure!(seen > 5, "2. only {seen} Landlord objects were visible");
    anyhow::ensure!(
        deletable == BTreeSet::from(["pods".to_string()]),
        "2. multitenant resources: the tenant admin may delete Landlord's {deletable:?} (only pods are expected)"
    );

    // 3. Block add capabilities (MTB-PL1-BC-CPI-3). Pass (Pod Security `restricted`).
    refused(
        "3. add capabilities",
        try_pod(with(
            admitted_pod(),
            "/spec/containers/0/securityContext/capabilities",
            serde_json::json!({"drop": ["ALL"], "add": ["NET_ADMIN"]}),
        ))
        .await?,
        &["violates PodSecurity", "capabilities"],
    )?;
    // 4. Require run as non-root user (MTB-PL1-BC-CPI-4). Pass.
    refused(
        "4. run as root",
        try_pod(with(
            admitted_pod(),
            "/spec/securityContext",
            serde_json::json!({"runAsNonRoot": false, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}}),
        ))
        .await?,
        &["violates PodSecurity", "runAsNonRoot"],
    )?;
    // 5. Block privileged containers (MTB-PL1-BC-CPI-5). Pass.
    refused(
        "5. privileged",
        try_pod(with(
            admitted_pod(),
            "/spec/containers/0/securityContext",
            // The API server itself refuses privileged with allowPrivilegeEscalation false.
            serde_json::json!({"privileged": true, "capabilities": {"drop": ["ALL"]}}),
        ))
        .await?,
        &["violates PodSecurity", "privileged"],
    )?;
    let mut escalating = admitted_pod();
    escalating["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] =
        serde_json::json!(true);
    // 6. Block privilege escalation (MTB-PL1-BC-CPI-6). Pass.
    refused(
        "6. privilege escalation",
        try_pod(escalating).await?,
        &["violates PodSecurity", "allowPrivilegeEscalation"],
    )?;

    // 7. Configure namespace resource quotas (MTB-PL1-CC-FNS-1): the tenant can read a quota
    //    on cpu, memory and ephemeral-storage. Fails: Landlord sets cpu and memory (from
    //    spec.quota), never ephemeral-storage.
    let quotas = Api::<ResourceQuota>::namespaced(user.clone(), &ns)
        .list(&Default::default())
        .await
        .context("7. the tenant admin reads its quotas")?;
    let hard: BTreeSet<String> = quotas
        .items
        .iter()
        .flat_map(|q| q.spec.iter().flat_map(|s| s.hard.iter().flatten()))
        .map(|(k, _)| k.clone())
        .collect();
    let covers = |word: &str| hard.iter().any(|k| k.contains(word));
    anyhow::ensure!(
        covers("cpu") && covers("memory") && !covers("ephemeral-storage"),
        "7. resource quotas: expected cpu and memory without ephemeral-storage, got {hard:?}"
    );
    // 8. Configure namespace object limits (MTB-PL1-CC-FNS-2). Fails: the counts are those of
    //    spec.quota.objects and node ports and load balancers (always 0); replicationcontrollers
    //    and resourcequotas are never counted.
    let missing: Vec<_> = [
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
    ]
    .into_iter()
    .filter(|k| !hard.contains(*k))
    .collect();
    anyhow::ensure!(
        missing == ["replicationcontrollers", "resourcequotas"],
        "8. object limits: missing {missing:?}"
    );

    // 9. Block use of host path volumes (MTB-PL1-BC-HI-1). Pass.
    let host_path = |path: &str| {
        let mut pod = admitted_pod();
        pod["spec"]["volumes"] = serde_json::json!([{"name": "host", "hostPath": {"path": path}}]);
        pod["spec"]["containers"][0]["volumeMounts"] =
            serde_json::json!([{"name": "host", "mountPath": "/host"}]);
        pod
    };
    refused(
        "9. host path",
        try_pod(host_path("/tmp")).await?,
        &["violates PodSecurity", "hostPath"],
    )?;
    // 10. Block use of bind mounts (the same check, on a host socket). Pass.
    refused(
        "10. bind mount",
        try_pod(host_path("/run/containerd/containerd.sock")).await?,
        &["violates PodSecurity", "hostPath"],
    )?;
    // 11. Block use of NodePort services (MTB-PL1-BC-HI-1). Pass (admission names the field).
    let services = Api::<Service>::namespaced(user.clone(), &ns);
    let service = |spec: serde_json::Value| -> anyhow::Result<Service> {
        Ok(serde_json::from_value(
            serde_json::json!({"metadata": {"name": "mtb"}, "spec": spec}),
        )?)
    };
    refused(
        "11. NodePort",
        services
            .create(
                &dry,
                &service(serde_json::json!({"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]}))?,
            )
            .await,
        &["landlord-tenant-services", "spec.type: NodePort"],
    )?;
    // 12. Block use of host networking and ports (MTB-PL1-BC-HI-3). Pass.
    let mut host_network = admitted_pod();
    host_network["spec"]["hostNetwork"] = serde_json::json!(true);
    refused(
        "12. host network",
        try_pod(host_network).await?,
        &["violates PodSecurity", "hostNetwork"],
    )?;
    let mut host_port = admitted_pod();
    host_port["spec"]["containers"][0]["ports"] =
        serde_json::json!([{"containerPort": 8080, "hostPort": 8080}]);
    refused(
        "12. host port",
        try_pod(host_port).await?,
        &["violates PodSecurity", "hostPort"],
    )?;
    // 13. Block use of host PID (MTB-PL1-BC-HI-4). Pass.
    let mut host_pid = admitted_pod();
    host_pid["spec"]["hostPID"] = serde_json::json!(true);
    refused(
        "13. host PID",
        try_pod(host_pid).await?,
        &["violates PodSecurity", "hostPID"],
    )?;
    // 14. Block use of host IPC (MTB-PL1-BC-HI-5). Pass.
    let mut host_ipc = admitted_pod();
    host_ipc["spec"]["hostIPC"] = serde_json::json!(true);
    refused(
        "14. host IPC",
        try_pod(host_ipc).await?,
        &["violates PodSecurity", "hostIPC"],
    )?;

    // 15. Block modification of resource quotas (MTB-PL1-CC-TI-1). Pass.
    for verb in ["create", "update", "patch", "delete", "deletecollection"] {
        anyhow::ensure!(
            !can(&user, &ns, "", "resourcequotas", verb, None).await?,
            "15. the tenant admin may {verb} resourcequotas"
        );
    }
    // 16. Block access to other tenant resources (MTB-PL1-CC-TI-2): no get or update on any
    //     namespaced resource in another tenant's namespace. Pass.
    let mut open = Vec::new();
    for served in all.iter().filter(|s| s.namespaced) {
        let (group, resource) = (&served.resource.group, &served.resource.plural);
        for verb in ["get", "update"] {
            if can(&user, &other_ns, group, resource, verb, None).await? {
                open.push(format!("{verb} {resource}.{group}"));
            }
        }
    }
    anyhow::ensure!(
        open.is_empty(),
        "16. other tenant: the tenant admin may {open:?} in {other_ns}"
    );

    // 17. Require always imagePullPolicy (MTB-PL1-CC-DI-1). Pass (admission names the field
    //     and says to set it).
    refused(
        "17. imagePullPolicy Never",
        try_pod(with(
            admitted_pod(),
            "/spec/containers/0/imagePullPolicy",
            serde_json::json!("Never"),
        ))
        .await?,
        &[
            "landlord-image-pull-policy",
            "spec.containers[app].imagePullPolicy is Never",
            "must set imagePullPolicy: Always",
        ],
    )?;
    let mut unset = admitted_pod();
    if let Some(c) = unset["spec"]["containers"][0].as_object_mut() {
        c.remove("imagePullPolicy");
    }
    refused(
        "17. imagePullPolicy unset (IfNotPresent once defaulted)",
        try_pod(unset).await?,
        &["spec.containers[app].imagePullPolicy is IfNotPresent"],
    )?;
    // Landlord's own pods in the namespace pull Always (the operator's default), so they
    // are admitted: the runtime's pods exist.
    let own = Api::<Pod>::namespaced(admin.clone(), &ns)
        .list(&ListParams::default().labels("app.kubernetes.io/name=landlord-runtime"))
        .await?;
    anyhow::ensure!(
        !own.items.is_empty()
            && own.items.iter().all(|p| p.spec.iter().all(|s| s
                .containers
                .iter()
                .all(|c| c.image_pull_policy.as_deref() == Some("Always")))),
        "17. Landlord's runtime pods run and pull Always: {:?}",
        own.items
            .iter()
            .map(|p| p.metadata.name.clone())
            .collect::<Vec<_>>()
    );

    // 18. Block role privilege escalation (MTB-PL2-CC-TI-1): no `escalate` on Roles, no
    //     `bind` of cluster-admin. Pass.
    anyhow::ensure!(
        !can(
            &user,
            &ns,
            "rbac.authorization.k8s.io",
            "roles",
            "escalate",
            None
        )
        .await?,
        "18. the tenant admin may escalate roles"
    );
    anyhow::ensure!(
        !can(
            &user,
            &ns,
            "rbac.authorization.k8s.io",
            "clusterroles",
            "bind",
            Some("cluster-admin")
        )
        .await?,
        "18. the tenant admin may bind cluster-admin"
    );

    // 19. Create Role Bindings (MTB-PL2-BC-OPS-3): every verb on roles and rolebindings, then
    //     a Role and a binding to it. Pass; RBAC's escalation check refuses granting more than
    //     the admin holds.
    for resource in ["roles", "rolebindings"] {
        for verb in [
            "get",
            "list",
            "create",
            "update",
            "patch",
            "watch",
            "delete",
            "deletecollection",
        ] {
            anyhow::ensure!(
                can(
                    &user,
                    &ns,
                    "rbac.authorization.k8s.io",
                    resource,
                    verb,
                    None
                )
                .await?,
                "19. the tenant admin may not {verb} {resource}"
            );
        }
    }
    let roles = Api::<Role>::namespaced(user.clone(), &ns);
    let role: Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }))?;
    roles
        .create(&PostParams::default(), &role)
        .await
        .context("19. the tenant admin creates a Role")?;
    let bindings = Api::<RoleBinding>::namespaced(user.clone(), &ns);
    let binding = |name: &str, kind: &str, role: &str| -> anyhow::Result<RoleBinding> {
        Ok(serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "a-colleague"}],
        }))?)
    };
    bindings
        .create(
            &PostParams::default(),
            &binding("pod-reader", "Role", "pod-reader")?,
        )
        .await
        .context("19. the tenant admin binds its own Role")?;
    bindings
        .create(
            &dry,
            &binding("colleague", "Role", "landlord-tenant-admin")?,
        )
        .await
        .context("19. the tenant admin grants its own admin Role to a colleague")?;
    refused(
        "19. binding cluster-admin",
        bindings
            .create(&dry, &binding("root", "ClusterRole", "cluster-admin")?)
            .await,
        &["attempting to grant RBAC permissions not currently held"],
    )?;
    let node_reader: Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "escalated"},
        "rules": [{"apiGroups": [""], "resources": ["pods/ephemeralcontainers", "resourcequotas"], "verbs": ["update"]}],
    }))?;
    refused(
        "19. a Role with rights the admin lacks",
        roles.create(&dry, &node_reader).await,
        &["attempting to grant RBAC permissions not currently held"],
    )?;
    refused(
        "19. Landlord's own binding",
        bindings
            .delete("landlord-tenant-admin", &DeleteParams::default())
            .await,
        &["landlord-managed-objects"],
    )?;

    // 20. Create Network Policies (MTB-PL2-BC-OPS-4). Pass: policies whose peers are pods of
    //     the namespace; anything naming other namespaces, addresses or everyone is refused.
    for verb in [
        "get",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
    ] {
        anyhow::ensure!(
            can(
                &user,
                &ns,
                "networking.k8s.io",
                "networkpolicies",
                verb,
                None
            )
            .await?,
            "20. the tenant admin may not {verb} networkpolicies"
        );
    }
    let policies = Api::<NetworkPolicy>::namespaced(user.clone(), &ns);
    let policy = |spec: serde_json::Value| -> anyhow::Result<NetworkPolicy> {
        Ok(serde_json::from_value(
            serde_json::json!({"metadata": {"name": "mine"}, "spec": spec}),
        )?)
    };
    policies
        .create(
            &PostParams::default(),
            &policy(serde_json::json!({
                "podSelector": {"matchLabels": {"app": "db"}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 5432}]}],
                "egress": [{"to": [{"podSelector": {}}]}],
            }))?,
        )
        .await
        .context("20. the tenant admin creates a policy between its own pods")?;
    for (what, spec, field) in [
        (
            "another namespace",
            serde_json::json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
            "spec.ingress[].from",
        ),
        (
            "an address block",
            serde_json::json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}),
            "spec.egress[].to",
        ),
        (
            "every source",
            serde_json::json!({"podSelector": {}, "ingress": [{}]}),
            "spec.ingress[].from",
        ),
        (
            "every destination",
            serde_json::json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 443}]}]}),
            "spec.egress[].to",
        ),
    ] {
        refused(
            &format!("20. a policy opening {what}"),
            policies.create(&dry, &policy(spec)?).await,
            &["landlord-tenant-network-policies", field],
        )?;
    }
    refused(
        "20. Landlord's own policy",
        policies
            .delete("landlord-default-deny", &DeleteParams::default())
            .await,
        &["landlord-managed-objects"],
    )?;

    // 21. Default deny network connections across tenants (MTB-PL1-BC-NI-1). Pass where the
    //     CNI enforces NetworkPolicy: the other tenant's namespace denies everything by
    //     default and none of its policies admits another tenant's namespace.
    let theirs = Api::<NetworkPolicy>::namespaced(admin.clone(), &other_ns)
        .list(&Default::default())
        .await?;
    let deny = theirs
        .items
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("landlord-default-deny"))
        .and_then(|p| p.spec.clone())
        .context("21. the other tenant has landlord-default-deny")?;
    anyhow::ensure!(
        deny.pod_selector == Some(Default::default())
            && deny.policy_types == Some(vec!["Ingress".to_string(), "Egress".to_string()])
            && deny.ingress.is_none()
            && deny.egress.is_none(),
        "21. landlord-default-deny denies all: {deny:?}"
    );
    let text = serde_json::to_string(&theirs.items)?;
    anyhow::ensure!(
        !text.contains(&ns) && !text.contains("\"namespaceSelector\":{}"),
        "21. a policy of {other_ns} admits {ns} or every namespace"
    );

    // 22. Require PVC reclaim policy `delete` (pending in kubectl-mtb). Not enforced by
    //     Landlord: a PVC's volume gets the reclaim policy of the platform's StorageClass; the
    //     tenant cannot choose another, as it writes no PersistentVolumes or StorageClasses.
    for (group, resource) in [
        ("", "persistentvolumes"),
        ("storage.k8s.io", "storageclasses"),
    ] {
        anyhow::ensure!(
            !can(&user, "", group, resource, "create", None).await?,
            "22. the tenant admin may create {resource}"
        );
    }
    // 23. Require CAP_DROP_ALL (pending in kubectl-mtb). Pass.
    refused(
        "23. capabilities not dropped",
        try_pod(with(
            admitted_pod(),
            "/spec/containers/0/securityContext/capabilities",
            serde_json::json!({}),
        ))
        .await?,
        &["violates PodSecurity", "capabilities.drop=[\"ALL\"]"],
    )?;
    // 24. Create Namespaces (pending in kubectl-mtb, self-service). Fails by design: a tenant
    //     is one namespace, made by the platform through its Tenant.
    anyhow::ensure!(
        !can(&user, "", "", "namespaces", "create", None).await?,
        "24. the tenant admin may create namespaces"
    );
    // 25. Create the same CRD as different tenants (MTB-PL3-BC-CPV-1). Fails by design: CRDs
    //     are cluster-wide; tenants share the platform's.
    anyhow::ensure!(
        !can(
            &user,
            "",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "create",
            None
        )
        .await?,
        "25. the tenant admin may create CRDs"
    );

    // Beyond the benchmark: the edge. A Gateway, ListenerSet or HTTPRoute of the tenant's own
    // would claim a hostname at the platform's gateway (Traefik serves every Gateway of its
    // class), and a ReferenceGrant would open its Services to other namespaces' routes. Only
    // the operator writes them, for verified Domains: the tenant admin's attempts are refused.
    for (kind, spec) in [
        (
            "Gateway",
            serde_json::json!({"gatewayClassName": "traefik", "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP", "hostname": "victim.example.com"}]}),
        ),
        (
            "ListenerSet",
            serde_json::json!({"parentRef": {"name": "landlord", "namespace": "landlord-gateway"},
                "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "victim.example.com"}]}),
        ),
        (
            "HTTPRoute",
            serde_json::json!({"parentRefs": [{"name": "landlord", "namespace": "landlord-gateway"}],
                "hostnames": ["victim.example.com"]}),
        ),
        (
            "ReferenceGrant",
            serde_json::json!({"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": other_ns}],
                "to": [{"group": "", "kind": "Service"}]}),
        ),
    ] {
        let object: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": kind,
            "metadata": {"name": "mine", "namespace": ns}, "spec": spec,
        }))?;
        let answer = landlord_e2e::manifests::create(&user, &object, Some(&ns), false).await?;
        anyhow::ensure!(
            matches!(&answer, Err(kube::Error::Api(status))
                if status.code == 403 && status.message.contains("cannot create resource")),
            "the tenant admin's {kind} in {ns} was not refused: {answer:?}"
        );
    }

    for name in [&mine, &other] {
        tenants.delete(name, &DeleteParams::default()).await?;
    }
    Ok(())
}

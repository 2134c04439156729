//! The desired in-cluster objects of a tenant's namespace: pure functions of the Tenant and
//! the operator's configuration, unit-tested on fixtures.
//!
//! Every object has a fixed name, so changing the spec changes objects in place and nothing
//! needs pruning; every object carries the tenant's labels and an ownerReference to the
//! Tenant, so the garbage collector removes it with the Tenant.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        core::v1::{
            ConfigMap, LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota,
            ResourceQuotaSpec,
        },
        networking::v1::{
            IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule,
            NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
        },
        rbac::v1::{
            ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef,
            Subject as RbacSubject,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use kube::{Resource, ResourceExt};
use landlord_crds::{
    Tenant,
    tenant::{ComputeResources, Direction, Isolation, NetworkPeer, Subject, SubjectKind},
};

use crate::{
    config::{Config, NetworkLocation},
    labels, quantity,
};

/// Names of the objects Landlord keeps in every tenant namespace.
pub mod names {
    pub const ADMIN: &str = "landlord-tenant-admin";
    pub const VIEWER: &str = "landlord-tenant-viewer";
    /// Binds the operator's Secrets ClusterRole to its own ServiceAccount.
    pub const OPERATOR: &str = crate::secrets_access::BINDING;
    pub const QUOTA: &str = "landlord-quota";
    pub const LIMITS: &str = "landlord-limits";
    pub const DEFAULT_DENY: &str = "landlord-default-deny";
    pub const SAME_NAMESPACE: &str = "landlord-allow-same-namespace";
    pub const GATEWAY: &str = "landlord-allow-gateway";
    pub const EGRESS: &str = "landlord-egress";
    pub const PEERS: &str = "landlord-allowed-peers";
    /// Dedicated tier: the operator may reach the tenant's PostgreSQL server.
    pub const OPERATOR_ACCESS: &str = "landlord-allow-operator";
    /// Tenant identity (name, tier, plan, ...) for the tenant's services.
    pub const IDENTITY: &str = "landlord-tenant";
    /// The tenant's white-label `spec.config`, key for key.
    pub const CONFIG: &str = "landlord-config";

    /// The cluster-scoped ClusterRole and ClusterRoleBinding that let the tenant's admins and
    /// viewers read their own Tenant: `landlord:tenant:<tenant>`.
    pub fn tenant_access(tenant: &str) -> String {
        format!("{TENANT_ACCESS_PREFIX}{tenant}")
    }
    /// What every [`tenant_access`] name starts with (the operator-scope admission policy
    /// allows the operator no other ClusterRole or ClusterRoleBinding).
    pub const TENANT_ACCESS_PREFIX: &str = "landlord:tenant:";
}

/// Everything the namespace part of a tenant consists of.
#[derive(Clone, Debug, PartialEq)]
pub struct NamespaceStack {
    pub namespace: Namespace,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
    pub quota: ResourceQuota,
    pub limit_range: LimitRange,
    pub network_policies: Vec<NetworkPolicy>,
    pub config_maps: Vec<ConfigMap>,
    /// Read access to the Tenant itself for its admins and viewers (see [`tenant_access`]).
    pub access: TenantAccess,
}

/// A ClusterRole that reads one Tenant (`get`, `list` and `watch` limited to its name by
/// `resourceNames`, its `status`, and its API history: the API's virtual `history`
/// subresource), and its binding to the Tenant's `spec.admins` and
/// `spec.viewers`: so `kubectl get tenant <name>` and the API's `GET /v1/tenants/<name>`
/// work for them, and nothing else cluster-scoped does. Tenant admins change what they own
/// through their namespace (Domains, FeatureFlagSets, workloads); the Tenant's spec is what
/// the platform sells (tier, plan, quota, database size), so it stays the platform's to
/// change.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantAccess {
    pub role: ClusterRole,
    pub binding: ClusterRoleBinding,
}

/// Builds [`TenantAccess`]: both objects named [`names::tenant_access`], owned by the
/// Tenant (the garbage collector removes them with it).
pub fn tenant_access(tenant: &Tenant, owner: &OwnerReference) -> TenantAccess {
    let tenant_name = tenant.name_any();
    let name = names::tenant_access(&tenant_name);
    let meta = ObjectMeta {
        name: Some(name.clone()),
        labels: Some(labels::tenant_labels(&tenant_name)),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    };
    let only = |resources: &[&str], verbs: &[&str]| PolicyRule {
        resource_names: Some(vec![tenant_name.clone()]),
        ..rule(&["landlord.dev"], resources, verbs)
    };
    let mut subjects = rbac_subjects(&tenant.spec.admins);
    for subject in rbac_subjects(&tenant.spec.viewers) {
        if !subjects.contains(&subject) {
            subjects.push(subject);
        }
    }
    TenantAccess {
        role: ClusterRole {
            metadata: meta.clone(),
            rules: Some(vec![
                only(&["tenants"], READ),
                only(&["tenants/status"], &["get"]),
                // The API's virtual subresource: GET /v1/tenants/{name}/history.
                only(&["tenants/history"], &["get"]),
            ]),
            aggregation_rule: None,
        },
        binding: ClusterRoleBinding {
            metadata: meta,
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name,
            },
            subjects: Some(subjects),
        },
    }
}

/// Builds the namespace stack of a tenant. `owner` is the Tenant's controller reference
/// (it needs the Tenant's uid, which only the API server assigns).
pub fn namespace_stack(tenant: &Tenant, owner: &OwnerReference, config: &Config) -> NamespaceStack {
    let meta = |name: &str| labels::child_meta(tenant, owner, name);
    NamespaceStack {
        namespace: namespace(tenant, owner),
        roles: vec![
            Role {
                metadata: meta(names::ADMIN),
                rules: Some(admin_rules()),
            },
            Role {
                metadata: meta(names::VIEWER),
                rules: Some(viewer_rules()),
            },
        ],
        role_bindings: [
            Some(binding(
                meta(names::ADMIN),
                names::ADMIN,
                &tenant.spec.admins,
            )),
            Some(binding(
                meta(names::VIEWER),
                names::VIEWER,
                &tenant.spec.viewers,
            )),
            crate::secrets_access::binding(meta(names::OPERATOR), config),
        ]
        .into_iter()
        .flatten()
        .collect(),
        quota: ResourceQuota {
            metadata: meta(names::QUOTA),
            spec: Some(quota_spec(tenant)),
            ..Default::default()
        },
        limit_range: LimitRange {
            metadata: meta(names::LIMITS),
            spec: Some(limit_range_spec(tenant, config)),
        },
        network_policies: network_policies(tenant, config)
            .into_iter()
            .map(|(name, spec)| NetworkPolicy {
                metadata: meta(name),
                spec: Some(spec),
            })
            .collect(),
        config_maps: vec![
            ConfigMap {
                metadata: meta(names::IDENTITY),
                data: Some(identity(tenant)),
                ..Default::default()
            },
            ConfigMap {
                metadata: meta(names::CONFIG),
                data: Some(tenant.spec.config.clone()),
                ..Default::default()
            },
        ],
        access: tenant_access(tenant, owner),
    }
}

/// The controller reference every child of a Tenant carries.
pub fn owner_reference(tenant: &Tenant) -> Option<OwnerReference> {
    tenant.controller_owner_ref(&())
}

fn namespace(tenant: &Tenant, owner: &OwnerReference) -> Namespace {
    let mut labels = labels::tenant_labels(&tenant.name_any());
    // Pod Security Standards: the tenant's pods run `restricted`, whoever creates them.
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            "restricted".into(),
        );
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            "latest".into(),
        );
    }
    labels.insert("landlord.dev/tier".into(), tenant.spec.tier.as_str().into());
    Namespace {
        metadata: ObjectMeta {
            name: Some(tenant.namespace_name()),
            labels: Some(labels),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |items: &[&str]| Some(items.iter().map(|s| s.to_string()).collect());
    PolicyRule {
        api_groups: strings(groups),
        resources: strings(resources),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// What a tenant admin may do in its namespace: run workloads and manage their
/// configuration, grant its own rights to others and narrow traffic between its own pods,
/// but only read its quota and limits.
///
/// Admission bounds the writes further: Landlord's own objects are the operator's
/// (`landlord-managed-objects`), Services get no external IPs, node ports or load balancers
/// (`landlord-tenant-services`), pods pull Always (`landlord-image-pull-policy`) and the
/// tenant's NetworkPolicies name only pods of the namespace (`landlord-tenant-network-policies`).
/// Roles and RoleBindings need no policy of their own: without `escalate` and `bind`, the API
/// server's escalation check lets the admin grant only rights it already holds here.
fn admin_rules() -> Vec<PolicyRule> {
    vec![
        // No `endpoints` (nor EndpointSlices) writes: hand-written endpoints point a Service's
        // name at any address, e.g. another tenant's pods or the database server
        // (CVE-2021-25740); Services with selectors get theirs from Kubernetes.
        rule(
            &[""],
            &[
                "pods",
                "services",
                "configmaps",
                "secrets",
                "persistentvolumeclaims",
                "serviceaccounts",
            ],
            WRITE,
        ),
        rule(
            &[""],
            &[
                "pods/log",
                "pods/status",
                "endpoints",
                "events",
                "resourcequotas",
                "limitranges",
            ],
            READ,
        ),
        rule(
            &[""],
            &["pods/exec", "pods/portforward"],
            &["create", "get"],
        ),
        // No `scale` subresources: a Scale carries no labels, so admission could not tell
        // Landlord's workloads (which a suspended tenant would scale back up) from the
        // tenant's own. The tenant scales its own through the workload itself.
        rule(
            &["apps"],
            &["deployments", "statefulsets", "replicasets"],
            WRITE,
        ),
        rule(&["batch"], &["jobs", "cronjobs"], WRITE),
        rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
        rule(&["policy"], &["poddisruptionbudgets"], WRITE),
        rule(
            &["landlord.dev"],
            &["domains", "featureflagsets", "webhookendpoints"],
            WRITE,
        ),
        rule(
            &["landlord.dev"],
            &[
                "domains/status",
                "featureflagsets/status",
                "webhookendpoints/status",
            ],
            READ,
        ),
        rule(&["networking.k8s.io"], &["networkpolicies"], WRITE),
        rule(&["networking.k8s.io"], &["ingresses"], READ),
        rule(
            &["rbac.authorization.k8s.io"],
            &["roles", "rolebindings"],
            WRITE,
        ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(&["events.k8s.io"], &["events"], READ),
    ]
}

/// What a tenant viewer may read: everything the admin works with, except Secrets.
fn viewer_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &[""],
            &[
                "pods",
                "pods/log",
                "services",
                "endpoints",
                "configmaps",
                "persistentvolumeclaims",
                "serviceaccounts",
                "events",
                "resourcequotas",
                "limitranges",
            ],
            READ,
        ),
        rule(
            &["apps"],
            &["deployments", "statefulsets", "replicasets"],
            READ,
        ),
        rule(&["batch"], &["jobs", "cronjobs"], READ),
        rule(&["autoscaling"], &["horizontalpodautoscalers"], READ),
        rule(&["policy"], &["poddisruptionbudgets"], READ),
        rule(
            &["landlord.dev"],
            &[
                "domains",
                "featureflagsets",
                "webhookendpoints",
                "domains/status",
                "featureflagsets/status",
                "webhookendpoints/status",
            ],
            READ,
        ),
        rule(
            &["networking.k8s.io"],
            &["networkpolicies", "ingresses"],
            READ,
        ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(&["events.k8s.io"], &["events"], READ),
    ]
}

fn binding(metadata: ObjectMeta, role: &str, subjects: &[Subject]) -> RoleBinding {
    RoleBinding {
        metadata,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: role.into(),
        },
        subjects: Some(rbac_subjects(subjects)),
    }
}

/// The RBAC subjects of a Tenant's `spec.admins` or `spec.viewers`, in the form the API
/// server stores (so comparing with the live binding finds no drift).
fn rbac_subjects(subjects: &[Subject]) -> Vec<RbacSubject> {
    subjects
        .iter()
        .map(|s| match s.kind {
            SubjectKind::User => RbacSubject {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "User".into(),
                name: s.name.clone(),
                namespace: None,
            },
            SubjectKind::Group => RbacSubject {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "Group".into(),
                name: s.name.clone(),
                namespace: None,
            },
            SubjectKind::ServiceAccount => RbacSubject {
                api_group: Some(String::new()),
                kind: "ServiceAccount".into(),
                name: s.name.clone(),
                namespace: s.namespace.clone(),
            },
        })
        .collect()
}

/// Domains a tenant's namespace holds when `spec.quota.objects.domains` is unset.
pub const DEFAULT_DOMAINS: i32 = 20;
/// FeatureFlagSets a tenant's namespace holds when `spec.quota.objects.featureFlagSets` is
/// unset.
pub const DEFAULT_FEATURE_FLAG_SETS: i32 = 20;

/// WebhookEndpoints a tenant may create in its namespace when
/// `spec.quota.objects.webhookEndpoints` is unset: each is a fan-out of every event of the
/// tenant, delivered and retried by the operator.
pub const DEFAULT_WEBHOOK_ENDPOINTS: i32 = 5;

fn quota_spec(tenant: &Tenant) -> ResourceQuotaSpec {
    // A tenant never gets node ports or cloud load balancers: traffic enters through the
    // platform's gateway only. Landlord's own kinds that a tenant writes are always counted:
    // the operator holds every Domain and FeatureFlagSet in memory.
    let objects = tenant.spec.quota.as_ref().and_then(|q| q.objects.as_ref());
    let count = |value: Option<i32>, default: i32| Quantity(value.unwrap_or(default).to_string());
    let mut hard = BTreeMap::from([
        ("services.nodeports".to_string(), Quantity("0".into())),
        ("services.loadbalancers".to_string(), Quantity("0".into())),
        (
            "count/domains.landlord.dev".to_string(),
            count(objects.and_then(|o| o.domains), DEFAULT_DOMAINS),
        ),
        (
            "count/featureflagsets.landlord.dev".to_string(),
            count(
                objects.and_then(|o| o.feature_flag_sets),
                DEFAULT_FEATURE_FLAG_SETS,
            ),
        ),
        (
            "count/webhookendpoints.landlord.dev".to_string(),
            count(
                objects.and_then(|o| o.webhook_endpoints),
                DEFAULT_WEBHOOK_ENDPOINTS,
            ),
        ),
    ]);
    if let Some(quota) = &tenant.spec.quota {
        let mut put = |key: &str, value: Option<&Quantity>| {
            if let Some(v) = value {
                hard.insert(key.to_string(), v.clone());
            }
        };
        if let Some(r) = &quota.requests {
            put("requests.cpu", r.cpu.as_ref());
            put("requests.memory", r.memory.as_ref());
            put("requests.storage", r.storage.as_ref());
        }
        if let Some(l) = &quota.limits {
            put("limits.cpu", l.cpu.as_ref());
            put("limits.memory", l.memory.as_ref());
        }
        if let Some(o) = &quota.objects {
            // The tenant's own objects, plus Landlord's (see `footprint`).
            let own = super::footprint::footprint(tenant);
            let plus = |v: Option<i32>, n| v.map(|v| super::footprint::hard(v, n));
            for (key, value) in [
                ("pods", o.pods),
                ("services", plus(o.services, own.services)),
                ("configmaps", plus(o.config_maps, own.config_maps)),
                ("secrets", plus(o.secrets, own.secrets)),
                (
                    "persistentvolumeclaims",
                    plus(o.persistent_volume_claims, own.persistent_volume_claims),
                ),
            ] {
                if let Some(v) = value {
                    hard.insert(key.to_string(), Quantity(v.to_string()));
                }
            }
        }
    }
    ResourceQuotaSpec {
        hard: Some(hard),
        ..Default::default()
    }
}

/// The LimitRange gives containers that declare nothing the tenant's (or the operator's)
/// defaults, never above the namespace's total limits, so that such pods fit the quota.
fn limit_range_spec(tenant: &Tenant, config: &Config) -> LimitRangeSpec {
    let defaults = tenant
        .spec
        .quota
        .as_ref()
        .and_then(|q| q.container_defaults.clone())
        .unwrap_or_default();
    let ceiling = tenant
        .spec
        .quota
        .as_ref()
        .and_then(|q| q.limits.clone())
        .unwrap_or_default();
    let pick = |given: Option<&ComputeResources>, cpu: &str, memory: &str| {
        let given = given.cloned().unwrap_or_default();
        BTreeMap::from([
            (
                "cpu".to_string(),
                at_most(
                    given.cpu.unwrap_or_else(|| Quantity(cpu.into())),
                    ceiling.cpu.as_ref(),
                ),
            ),
            (
                "memory".to_string(),
                at_most(
                    given.memory.unwrap_or_else(|| Quantity(memory.into())),
                    ceiling.memory.as_ref(),
                ),
            ),
        ])
    };
    let limit = pick(
        defaults.limit.as_ref(),
        &config.default_limit_cpu,
        &config.default_limit_memory,
    );
    let mut request = pick(
        defaults.request.as_ref(),
        &config.default_request_cpu,
        &config.default_request_memory,
    );
    // A default request above the default limit would make every such pod invalid.
    for (key, value) in request.iter_mut() {
        if let Some(l) = limit.get(key) {
            *value = at_most(value.clone(), Some(l));
        }
    }
    LimitRangeSpec {
        limits: vec![LimitRangeItem {
            type_: "Container".into(),
            default: Some(limit),
            default_request: Some(request),
            ..Default::default()
        }],
    }
}

fn at_most(value: Quantity, ceiling: Option<&Quantity>) -> Quantity {
    match (
        quantity::nanos(&value.0),
        ceiling.and_then(|c| quantity::nanos(&c.0)),
    ) {
        (Some(v), Some(c)) if v > c => ceiling.cloned().unwrap_or(value),
        _ => value,
    }
}

fn name_selector(namespace: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_string(),
            namespace.to_string(),
        )])),
        ..Default::default()
    }
}

fn all_pods() -> LabelSelector {
    LabelSelector::default()
}

fn types(types: &[&str]) -> Option<Vec<String>> {
    Some(types.iter().map(|t| t.to_string()).collect())
}

fn port(protocol: &str, number: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(number)),
        ..Default::default()
    }
}

/// The peers of `location`: its namespace (only the pods its pod selector names, when it
/// has one) and its CIDRs.
fn peers(location: &NetworkLocation) -> Vec<NetworkPolicyPeer> {
    let mut peers: Vec<NetworkPolicyPeer> = location
        .namespace
        .iter()
        .map(|namespace| NetworkPolicyPeer {
            namespace_selector: Some(name_selector(namespace)),
            pod_selector: (!location.pod_selector.is_empty()).then(|| LabelSelector {
                match_labels: Some(location.pod_selector.clone()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    peers.extend(location.cidrs.iter().map(|cidr| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.clone(),
            except: None,
        }),
        ..Default::default()
    }));
    peers
}

/// Egress to `location` on the TCP `ports`; None when it names nowhere (a rule without
/// peers would admit every destination) or no port (a rule without ports admits every one).
fn egress_to(location: &NetworkLocation, ports: &[i32]) -> Option<NetworkPolicyEgressRule> {
    let to = peers(location);
    (!to.is_empty() && !ports.is_empty()).then(|| NetworkPolicyEgressRule {
        to: Some(to),
        ports: Some(ports.iter().map(|&number| port("TCP", number)).collect()),
    })
}

/// The network walls: deny everything, then allow same-namespace traffic, ingress from the
/// platform gateway, egress to DNS, to the shared PostgreSQL server the tenant's database is
/// on and (for a tenant with topics) to NATS, where the platform says where they are —
/// everything, in `IngressOnly` mode — and the spec's peers.
fn network_policies(tenant: &Tenant, config: &Config) -> Vec<(&'static str, NetworkPolicySpec)> {
    let network = tenant.spec.network.clone().unwrap_or_default();
    let egress = match network.isolation {
        Isolation::Strict => {
            let mut rules = vec![NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    namespace_selector: Some(name_selector(&config.dns_namespace)),
                    ..Default::default()
                }]),
                ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
            }];
            // The shared server the database was placed on (a dedicated one is in the
            // namespace, which is open).
            let placed = tenant
                .status
                .as_ref()
                .and_then(|s| s.database.as_ref())
                .and_then(|d| d.server.as_deref());
            let enabled = tenant.spec.database.as_ref().is_some_and(|d| d.enabled);
            if tenant.spec.tier == landlord_crds::tenant::Tier::Shared
                && enabled
                && let Some(server) = config
                    .database
                    .servers
                    .iter()
                    .find(|server| Some(server.name.as_str()) == placed)
            {
                rules.extend(egress_to(&server.network, &[i32::from(server.port)]));
            }
            if let Some(nats) = &config.nats
                && !tenant.spec.topics.is_empty()
            {
                rules.extend(egress_to(&nats.network, &nats.ports()));
            }
            rules
        }
        Isolation::IngressOnly => vec![NetworkPolicyEgressRule::default()],
    };
    let peer = |p: &NetworkPeer| NetworkPolicyPeer {
        ip_block: p.cidr.as_ref().map(|cidr| IPBlock {
            cidr: cidr.clone(),
            except: None,
        }),
        namespace_selector: p.namespace_selector.as_ref().map(|l| LabelSelector {
            match_labels: Some(l.clone()),
            ..Default::default()
        }),
        pod_selector: p.pod_selector.as_ref().map(|l| LabelSelector {
            match_labels: Some(l.clone()),
            ..Default::default()
        }),
    };
    let ports = |p: &NetworkPeer| {
        (!p.ports.is_empty()).then(|| p.ports.iter().map(|n| port("TCP", n.0)).collect())
    };
    let peers_in = network
        .allowed_peers
        .iter()
        .filter(|p| p.direction == Direction::Ingress)
        .map(|p| NetworkPolicyIngressRule {
            from: Some(vec![peer(p)]),
            ports: ports(p),
        })
        .collect();
    let peers_out = network
        .allowed_peers
        .iter()
        .filter(|p| p.direction == Direction::Egress)
        .map(|p| NetworkPolicyEgressRule {
            to: Some(vec![peer(p)]),
            ports: ports(p),
        })
        .collect();
    let mut policies = vec![
        (
            names::DEFAULT_DENY,
            NetworkPolicySpec {
                pod_selector: Some(all_pods()),
                policy_types: types(&["Ingress", "Egress"]),
                ..Default::default()
            },
        ),
        (
            names::SAME_NAMESPACE,
            NetworkPolicySpec {
                pod_selector: Some(all_pods()),
                policy_types: types(&["Ingress", "Egress"]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(all_pods()),
                        ..Default::default()
                    }]),
                    ports: None,
                }]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(all_pods()),
                        ..Default::default()
                    }]),
                    ports: None,
                }]),
            },
        ),
        (
            names::GATEWAY,
            NetworkPolicySpec {
                pod_selector: Some(all_pods()),
                policy_types: types(&["Ingress"]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(name_selector(&config.gateway_namespace)),
                        ..Default::default()
                    }]),
                    ports: None,
                }]),
                ..Default::default()
            },
        ),
        (
            names::EGRESS,
            NetworkPolicySpec {
                pod_selector: Some(all_pods()),
                policy_types: types(&["Egress"]),
                egress: Some(egress),
                ..Default::default()
            },
        ),
        (
            names::PEERS,
            NetworkPolicySpec {
                pod_selector: Some(all_pods()),
                policy_types: types(&["Ingress", "Egress"]),
                ingress: Some(peers_in),
                egress: Some(peers_out),
            },
        ),
    ];
    // Tiers never change, so a tenant never needs this policy removed.
    if tenant.spec.tier == landlord_crds::tenant::Tier::Dedicated {
        policies.push((names::OPERATOR_ACCESS, operator_access(tenant, config)));
    }
    policies
}

/// Ingress to the dedicated PostgreSQL server's pods on 5432 from the operator: its own
/// namespace when it runs as a ServiceAccount, and `--operator-source-cidrs` when it runs
/// outside the cluster. Without either, the policy has no rule and admits nothing (a rule
/// with no peers would admit every source).
fn operator_access(tenant: &Tenant, config: &Config) -> NetworkPolicySpec {
    let from = peers(&NetworkLocation {
        namespace: config
            .service_account
            .as_ref()
            .map(|account| account.namespace.clone()),
        cidrs: config.operator_source_cidrs.clone(),
        ..NetworkLocation::default()
    });
    NetworkPolicySpec {
        pod_selector: Some(LabelSelector {
            match_labels: Some(crate::database::desired::server_selector(
                &tenant.name_any(),
            )),
            ..Default::default()
        }),
        policy_types: types(&["Ingress"]),
        // No rule (not an empty list, which the API server would not keep): the policy
        // type Ingress alone admits nothing.
        ingress: (!from.is_empty()).then(|| {
            vec![NetworkPolicyIngressRule {
                from: Some(from),
                ports: Some(vec![port("TCP", 5432)]),
            }]
        }),
        ..Default::default()
    }
}

/// The tenant's identity as its services see it.
fn identity(tenant: &Tenant) -> BTreeMap<String, String> {
    let spec = &tenant.spec;
    let mut data = BTreeMap::from([
        ("name".to_string(), tenant.name_any()),
        ("tier".to_string(), spec.tier.as_str().to_string()),
        ("namespace".to_string(), tenant.namespace_name()),
        ("suspended".to_string(), spec.suspended.to_string()),
    ]);
    if let Some(plan) = &spec.plan {
        data.insert("plan".into(), plan.clone());
    }
    if let Some(display_name) = &spec.display_name {
        data.insert("displayName".into(), display_name.clone());
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(yaml: &str) -> Tenant {
        let mut tenant: Tenant = serde_yaml::from_str(yaml).expect("fixture parses");
        tenant.metadata.uid = Some("uid-1".into());
        tenant
    }

    /// The egress rules of the tenant's `landlord-egress` NetworkPolicy.
    fn egress_rules(t: &Tenant, config: &Config) -> Vec<NetworkPolicyEgressRule> {
        let owner = owner_reference(t).expect("fixture has a uid");
        namespace_stack(t, &owner, config).network_policies[3]
            .spec
            .clone()
            .and_then(|s| s.egress)
            .unwrap_or_default()
    }

    fn stack(yaml: &str) -> NamespaceStack {
        let t = tenant(yaml);
        let owner = owner_reference(&t).expect("fixture has a uid");
        namespace_stack(&t, &owner, &Config::default())
    }

    const ACME: &str = r##"
apiVersion: landlord.dev/v1alpha1
kind: Tenant
metadata: {name: acme}
spec:
  tier: shared
  plan: pro
  admins:
    - {kind: User, name: alice}
    - {kind: ServiceAccount, name: ci, namespace: tools}
  quota:
    requests: {cpu: "2", memory: 4Gi}
    limits: {cpu: "4", memory: 8Gi}
    objects: {pods: 20}
  config: {brandColor: "#ff0000"}
"##;

    #[test]
    fn namespace_is_named_after_the_tenant_and_enforces_restricted() {
        let s = stack(ACME);
        let labels = s.namespace.metadata.labels.clone().unwrap_or_default();
        assert_eq!(s.namespace.metadata.name.as_deref(), Some("tenant-acme"));
        assert_eq!(
            labels
                .get("pod-security.kubernetes.io/enforce")
                .map(String::as_str),
            Some("restricted")
        );
        assert_eq!(labels.get(labels::TENANT).map(String::as_str), Some("acme"));
        let owner = &s.namespace.metadata.owner_references.unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("Tenant", Some(true))
        );
    }

    #[test]
    fn explicit_namespace_is_used() {
        let s = stack(
            "apiVersion: landlord.dev/v1alpha1\nkind: Tenant\nmetadata: {name: a}\nspec: {tier: dedicated, namespace: custom-ns}\n",
        );
        assert_eq!(s.namespace.metadata.name.as_deref(), Some("custom-ns"));
        assert!(
            s.roles
                .iter()
                .all(|r| r.metadata.namespace.as_deref() == Some("custom-ns"))
        );
    }

    #[test]
    fn the_operator_binds_its_secrets_role_to_itself_only_when_it_is_a_service_account() {
        let t = tenant(ACME);
        let owner = owner_reference(&t).expect("uid");
        let as_user = namespace_stack(&t, &owner, &Config::default());
        assert!(
            as_user
                .role_bindings
                .iter()
                .all(|b| b.metadata.name.as_deref() != Some(names::OPERATOR))
        );
        let config = Config {
            service_account: Some(crate::config::ServiceAccountName {
                namespace: "landlord-system".into(),
                name: "landlord".into(),
            }),
            ..Config::default()
        };
        let stack = namespace_stack(&t, &owner, &config);
        let binding = stack
            .role_bindings
            .iter()
            .find(|b| b.metadata.name.as_deref() == Some(names::OPERATOR))
            .expect("the operator's binding");
        assert_eq!(
            (
                binding.role_ref.kind.as_str(),
                binding.role_ref.name.as_str()
            ),
            ("ClusterRole", "landlord-secrets")
        );
        let subjects = binding.subjects.clone().unwrap_or_default();
        assert_eq!(subjects.len(), 1);
        assert_eq!(
            (
                subjects[0].kind.as_str(),
                subjects[0].name.as_str(),
                subjects[0].namespace.as_deref()
            ),
            ("ServiceAccount", "landlord", Some("landlord-system"))
        );
        assert_eq!(binding.metadata.namespace.as_deref(), Some("tenant-acme"));
    }

    #[test]
    fn admins_are_bound_to_the_admin_role() {
        let s = stack(ACME);
        let admin = s
            .role_bindings
            .iter()
            .find(|b| b.metadata.name.as_deref() == Some(names::ADMIN))
            .expect("admin binding");
        let subjects = admin.subjects.clone().unwrap_or_default();
        assert_eq!(subjects.len(), 2);
        assert_eq!(
            (subjects[0].kind.as_str(), subjects[0].name.as_str()),
            ("User", "alice")
        );
        assert_eq!(subjects[1].namespace.as_deref(), Some("tools"));
        assert_eq!(admin.role_ref.name, names::ADMIN);
    }

    #[test]
    fn admins_and_viewers_read_their_own_tenant_and_nothing_else_cluster_scoped() {
        let s = stack(&format!(
            "{ACME}  viewers:\n    - {{kind: Group, name: support}}\n    - {{kind: User, name: alice}}\n"
        ));
        let TenantAccess { role, binding } = &s.access;
        assert_eq!(role.metadata.name.as_deref(), Some("landlord:tenant:acme"));
        assert_eq!(role.metadata.namespace, None);
        let rules = role.rules.clone().unwrap_or_default();
        assert!(rules.iter().all(|r| {
            r.api_groups.as_deref() == Some(&["landlord.dev".to_string()][..])
                && r.resource_names.as_deref() == Some(&["acme".to_string()][..])
                && r.verbs.iter().all(|v| READ.contains(&v.as_str()))
        }));
        let resources: Vec<_> = rules
            .iter()
            .flat_map(|r| r.resources.clone().unwrap_or_default())
            .collect();
        assert_eq!(resources, ["tenants", "tenants/status", "tenants/history"]);
        assert_eq!(
            (
                binding.role_ref.kind.as_str(),
                binding.role_ref.name.as_str()
            ),
            ("ClusterRole", "landlord:tenant:acme")
        );
        // Admins and viewers, each once (alice is both).
        let subjects: Vec<_> = binding
            .subjects
            .iter()
            .flatten()
            .map(|s| (s.kind.as_str(), s.name.as_str()))
            .collect();
        assert_eq!(
            subjects,
            [
                ("User", "alice"),
                ("ServiceAccount", "ci"),
                ("Group", "support")
            ]
        );
        let owner = &binding
            .metadata
            .owner_references
            .clone()
            .unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Tenant", "acme")
        );
    }

    fn admin_rules_of(s: &NamespaceStack) -> Vec<PolicyRule> {
        s.roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(names::ADMIN))
            .and_then(|r| r.rules.clone())
            .expect("admin role with rules")
    }

    fn admin_may(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
        rules.iter().any(|r| {
            r.api_groups.iter().flatten().any(|g| g == group)
                && r.resources.iter().flatten().any(|x| x == resource)
                && r.verbs.iter().any(|v| v == verb)
        })
    }

    #[test]
    fn admin_role_cannot_edit_quota_limits_or_endpoints_nor_escalate() {
        let rules = admin_rules_of(&stack(ACME));
        for (group, protected) in [
            ("", "resourcequotas"),
            ("", "limitranges"),
            ("", "namespaces"),
            ("", "endpoints"),
            ("discovery.k8s.io", "endpointslices"),
            ("", "services/status"),
            ("apps", "deployments/scale"),
        ] {
            for verb in ["create", "update", "patch", "delete", "deletecollection"] {
                assert!(
                    !admin_may(&rules, group, protected, verb),
                    "admin may {verb} {protected}"
                );
            }
        }
        for rule in &rules {
            for verb in ["*", "escalate", "bind", "impersonate"] {
                assert!(!rule.verbs.iter().any(|v| v == verb), "{verb} in {rule:?}");
            }
            assert!(
                !rule.resources.iter().flatten().any(|r| r == "*"),
                "wildcard in {rule:?}"
            );
        }
        // Reading endpoints stays: it shows which pods back a Service.
        assert!(admin_may(&rules, "", "endpoints", "list"));
    }

    #[test]
    fn admin_role_grants_self_service_roles_bindings_and_network_policies() {
        let rules = admin_rules_of(&stack(ACME));
        for (group, resource) in [
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "rolebindings"),
            ("networking.k8s.io", "networkpolicies"),
        ] {
            for verb in WRITE {
                assert!(
                    admin_may(&rules, group, resource, verb),
                    "admin may not {verb} {resource}"
                );
            }
        }
        assert!(!admin_may(
            &rules,
            "networking.k8s.io",
            "ingresses",
            "create"
        ));
    }

    #[test]
    fn quota_has_spec_values_and_forbids_node_ports_and_load_balancers() {
        let hard = stack(ACME)
            .quota
            .spec
            .and_then(|s| s.hard)
            .unwrap_or_default();
        assert_eq!(hard.get("requests.cpu"), Some(&Quantity("2".into())));
        assert_eq!(hard.get("limits.memory"), Some(&Quantity("8Gi".into())));
        assert_eq!(hard.get("pods"), Some(&Quantity("20".into())));
        assert_eq!(hard.get("services.nodeports"), Some(&Quantity("0".into())));
        assert_eq!(
            hard.get("services.loadbalancers"),
            Some(&Quantity("0".into()))
        );
        assert!(!hard.contains_key("requests.storage"));
    }

    #[test]
    fn quota_always_counts_landlords_kinds_that_tenants_write() {
        let defaults = stack(
            "apiVersion: landlord.dev/v1alpha1\nkind: Tenant\nmetadata: {name: a}\nspec: {tier: shared}\n",
        );
        let hard = defaults.quota.spec.and_then(|s| s.hard).unwrap_or_default();
        assert_eq!(
            hard.get("count/domains.landlord.dev"),
            Some(&Quantity(DEFAULT_DOMAINS.to_string()))
        );
        assert_eq!(
            hard.get("count/featureflagsets.landlord.dev"),
            Some(&Quantity(DEFAULT_FEATURE_FLAG_SETS.to_string()))
        );
        let set = stack(
            "apiVersion: landlord.dev/v1alpha1\nkind: Tenant\nmetadata: {name: a}\nspec: {tier: shared, quota: {objects: {domains: 2, featureFlagSets: 0}}}\n",
        );
        let hard = set.quota.spec.and_then(|s| s.hard).unwrap_or_default();
        assert_eq!(
            hard.get("count/domains.landlord.dev"),
            Some(&Quantity("2".into()))
        );
        assert_eq!(
            hard.get("count/featureflagsets.landlord.dev"),
            Some(&Quantity("0".into()))
        );
    }

    #[test]
    fn limit_range_defaults_never_exceed_the_namespace_limits() {
        let s = stack(
            "apiVersion: landlord.dev/v1alpha1\nkind: Tenant\nmetadata: {name: a}\nspec: {tier: shared, quota: {limits: {cpu: 500m, memory: 256Mi}}}\n",
        );
        let item = &s.limit_range.spec.expect("spec").limits[0];
        let default = item.default.clone().unwrap_or_default();
        let request = item.default_request.clone().unwrap_or_default();
        assert_eq!(default.get("cpu"), Some(&Quantity("500m".into())));
        assert_eq!(default.get("memory"), Some(&Quantity("256Mi".into())));
        assert_eq!(request.get("cpu"), Some(&Quantity("100m".into())));
        assert_eq!(request.get("memory"), Some(&Quantity("128Mi".into())));
    }

    #[test]
    fn only_a_dedicated_tenants_server_admits_the_operator_from_its_namespace_and_cidrs() {
        let dedicated = tenant(
            "apiVersion: landlord.dev/v1alpha1\nkind: Tenant\nmetadata: {name: acme}\nspec: {tier: dedicated}\n",
        );
        let owner = owner_reference(&dedicated).expect("fixture has a uid");
        let config = Config {
            service_account: Some(crate::config::ServiceAccountName {
                namespace: "landlord-system".into(),
                name: "landlord".into(),
            }),
            operator_source_cidrs: vec!["10.246.0.0/24".into()],
            ..Config::default()
        };
        let s = namespace_stack(&dedicated, &owner, &config);
        let policy = s
            .network_policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(names::OPERATOR_ACCESS))
            .and_then(|p| p.spec.clone())
            .expect("a dedicated tenant admits the operator");
        assert_eq!(
            serde_json::to_value(&policy).expect("serialisable"),
            serde_json::json!({
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "postgres", "landlord.dev/tenant": "acme"}},
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "landlord-system"}}},
                        {"ipBlock": {"cidr": "10.246.0.0/24"}}
                    ],
                    "ports": [{"protocol": "TCP", "port": 5432}]
                }]
            })
        );
        assert!(
            stack(ACME)
                .network_policies
                .iter()
                .all(|p| p.metadata.name.as_deref() != Some(names::OPERATOR_ACCESS)),
            "a shared tenant has no server of its own to admit the operator to"
        );
        // An operator with neither a namespace nor CIDRs (a user's kubeconfig): no rule at
        // all, never a rule without peers, which would admit everyone.
        let alone = namespace_stack(&dedicated, &owner, &Config::default());
        let policy = alone
            .network_policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(names::OPERATOR_ACCESS))
            .and_then(|p| p.spec.clone())
            .expect("the policy");
        assert_eq!(policy.ingress, None);
        assert_eq!(policy.policy_types, Some(vec!["Ingress".to_string()]));
    }

    #[test]
    fn strict_isolation_denies_by_default_and_allows_dns_only() {
        let s = stack(ACME);
        let names: Vec<_> = s
            .network_policies
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(
            names,
            [
                names::DEFAULT_DENY,
                names::SAME_NAMESPACE,
                names::GATEWAY,
                names::EGRESS,
                names::PEERS
            ]
        );
        let egress = s.network_policies[3]
            .spec
            .clone()
            .and_then(|s| s.egress)
            .unwrap_or_default();
        assert_eq!(egress.len(), 1);
        let ports: Vec<_> = egress[0]
            .ports
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|p| p.port.clone())
            .collect();
        assert_eq!(
            ports,
            [Some(IntOrString::Int(53)), Some(IntOrString::Int(53))]
        );
    }

    #[test]
    fn a_tenant_with_topics_may_reach_nats_on_its_ports_only() {
        let nats = crate::nats::NatsConfig {
            url: "nats://nats-0.nats-system.svc:4333,nats://nats-1.nats-system.svc:4334".into(),
            signing_key: std::sync::Arc::new(nkeys::KeyPair::new(nkeys::KeyPairType::Operator)),
            system_creds: "".into(),
            network: NetworkLocation {
                namespace: Some("nats-system".into()),
                pod_selector: BTreeMap::from([("app.kubernetes.io/name".into(), "nats".into())]),
                cidrs: vec![],
            },
            default_topic_bytes: 1024,
            limits: crate::nats::TenantLimits::DEFAULT,
        };
        let config = Config {
            nats: Some(nats),
            ..Config::default()
        };
        let egress = |yaml: &str| egress_rules(&tenant(yaml), &config);
        assert_eq!(egress(ACME).len(), 1, "no topics, no NATS");
        let with_topics = format!("{ACME}  topics: [{{name: orders}}]\n");
        let rules = egress(&with_topics);
        assert_eq!(rules.len(), 2);
        let nats_rule = &rules[1];
        let ports: Vec<_> = nats_rule
            .ports
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.protocol, p.port))
            .collect();
        assert_eq!(
            ports,
            [
                (Some("TCP".into()), Some(IntOrString::Int(4333))),
                (Some("TCP".into()), Some(IntOrString::Int(4334)))
            ],
            "every server of the URL, TCP only"
        );
        let to = nats_rule.to.clone().unwrap_or_default();
        assert_eq!(to.len(), 1, "{to:?}");
        let selector = |s: Option<LabelSelector>| s.and_then(|s| s.match_labels);
        assert_eq!(
            selector(to[0].namespace_selector.clone()),
            Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".into(),
                "nats-system".into()
            )]))
        );
        assert_eq!(
            selector(to[0].pod_selector.clone()),
            Some(BTreeMap::from([(
                "app.kubernetes.io/name".into(),
                "nats".into()
            )])),
            "only the NATS server's pods of its namespace"
        );
    }

    /// A Strict shared tenant may reach the shared server its database was placed on, at the
    /// addresses and on the port the platform gave for it, and no other server; a server the
    /// platform said nothing about, or a dedicated tenant, adds no rule.
    #[test]
    fn a_strict_shared_tenant_may_reach_its_own_shared_server_and_nats_where_they_are() {
        let server = |name: &str, port: u16, cidrs: &[&str]| {
            let yaml = format!(
                "{{name: {name}, host: h, port: {port}, capacity: 1, adminSecret: {{namespace: n, name: s}}, network: {{cidrs: {cidrs:?}}}}}"
            );
            serde_yaml::from_str::<crate::database::ServerConfig>(&yaml).expect("server")
        };
        let mut config = Config::default();
        config.database.servers = vec![
            server("pg-a", 6432, &["10.246.0.1/32"]),
            server("pg-b", 5432, &["10.9.9.9/32"]),
            server("pg-c", 5432, &[]),
        ];
        config.nats = Some(crate::nats::NatsConfig {
            url: "nats://10.246.0.1:4999".into(),
            signing_key: std::sync::Arc::new(nkeys::KeyPair::new(nkeys::KeyPairType::Operator)),
            system_creds: "".into(),
            network: NetworkLocation {
                cidrs: vec!["10.246.0.1/32".into()],
                ..NetworkLocation::default()
            },
            default_topic_bytes: 1024,
            limits: crate::nats::TenantLimits::DEFAULT,
        });
        let egress = |yaml: &str, placed: Option<&str>| {
            let mut t = tenant(yaml);
            if let Some(server) = placed {
                t.status = Some(
                    serde_json::from_value(serde_json::json!({"database": {"server": server}}))
                        .expect("status"),
                );
            }
            egress_rules(&t, &config)
        };
        let destinations = |rules: &[NetworkPolicyEgressRule]| -> Vec<(String, i32)> {
            rules
                .iter()
                .skip(1) // DNS
                .flat_map(|rule| {
                    let port = match rule.ports.clone().unwrap_or_default()[0].port {
                        Some(IntOrString::Int(port)) => port,
                        _ => 0,
                    };
                    rule.to
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |peer| (peer.ip_block.map(|b| b.cidr).unwrap_or_default(), port))
                })
                .collect()
        };
        let with_database = format!("{ACME}  database: {{enabled: true}}\n");
        assert!(
            destinations(&egress(&with_database, None)).is_empty(),
            "not placed yet"
        );
        assert_eq!(
            destinations(&egress(&with_database, Some("pg-a"))),
            [("10.246.0.1/32".to_string(), 6432)],
            "its own server only, on its port"
        );
        assert!(
            destinations(&egress(ACME, Some("pg-a"))).is_empty(),
            "a database no longer enabled keeps its placement, not its way to the server"
        );
        assert!(
            destinations(&egress(&with_database, Some("pg-c"))).is_empty(),
            "a server without a network location adds no rule (never one without peers)"
        );
        let with_topics = format!("{with_database}  topics: [{{name: orders}}]\n");
        assert_eq!(
            destinations(&egress(&with_topics, Some("pg-b"))),
            [
                ("10.9.9.9/32".to_string(), 5432),
                ("10.246.0.1/32".to_string(), 4999)
            ]
        );
        let dedicated = with_database.replace("tier: shared", "tier: dedicated");
        assert!(
            destinations(&egress(&dedicated, Some("pg-a"))).is_empty(),
            "a dedicated tenant's server is in its own namespace"
        );
    }

    #[test]
    fn ingress_only_isolation_opens_egress() {
        let s = stack(
            "apiVersion: landlord.dev/v1alpha1\nkind: Tenant\nmetadata: {name: a}\nspec: {tier: shared, network: {isolation: IngressOnly}}\n",
        );
        let egress = s.network_policies[3]
            .spec
            .clone()
            .and_then(|s| s.egress)
            .unwrap_or_default();
        assert_eq!(egress, vec![NetworkPolicyEgressRule::default()]);
    }

    #[test]
    fn allowed_peers_become_rules_in_their_direction() {
        let s = stack(
            "apiVersion: landlord.dev/v1alpha1\nkind: Tenant\nmetadata: {name: a}\nspec: {tier: shared, network: {allowedPeers: [{direction: Egress, cidr: 10.0.0.0/8, ports: [5432]}, {direction: Ingress, namespaceSelector: {team: ops}}]}}\n",
        );
        let peers = s.network_policies[4].spec.clone().expect("spec");
        let egress = peers.egress.unwrap_or_default();
        let ingress = peers.ingress.unwrap_or_default();
        assert_eq!(egress.len(), 1);
        assert_eq!(ingress.len(), 1);
        let to = &egress[0].to.clone().unwrap_or_default()[0];
        assert_eq!(
            to.ip_block.as_ref().map(|b| b.cidr.as_str()),
            Some("10.0.0.0/8")
        );
    }

    #[test]
    fn config_maps_carry_identity_and_white_label_config() {
        let s = stack(ACME);
        let identity = s.config_maps[0].data.clone().unwrap_or_default();
        assert_eq!(identity.get("tier").map(String::as_str), Some("shared"));
        assert_eq!(identity.get("plan").map(String::as_str), Some("pro"));
        let config = s.config_maps[1].data.clone().unwrap_or_default();
        assert_eq!(
            config.get("brandColor").map(String::as_str),
            Some("#ff0000")
        );
    }
}

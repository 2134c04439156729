//! The Tenant: one customer of the platform, and everything Landlord provisions for it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Condition};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::schema;

/// A customer of the platform. Landlord turns each Tenant into an isolated, running stack:
/// a namespace with RBAC, quotas and network walls, a database, topics, the product's
/// services, domains and feature flags, and reports its health in `status`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landlord.dev",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    shortname = "tn",
    category = "landlord",
    status = "TenantStatus",
    printcolumn(name = "Tier", type_ = "string", json_path = ".spec.tier"),
    printcolumn(name = "Plan", type_ = "string", json_path = ".spec.plan"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".status.namespace", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 56 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a lowercase DNS label of at most 56 characters (it names the tenant-<name> namespace and the database role)"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.__namespace__) == has(oldSelf.__namespace__) && (!has(self.__namespace__) || self.__namespace__ == oldSelf.__namespace__)")
        .message("spec.namespace is immutable: it cannot be set, changed or removed after creation")
        .field_path(".namespace"),
    validation = Rule::new("!has(self.database) || self.tier == 'dedicated' || (!has(self.database.storage) && !has(self.database.version))")
        .message("spec.database.storage and spec.database.version apply only to tier dedicated; shared-tier databases live on a platform server")
        .field_path(".database"),
    validation = Rule::new("!has(self.database) || self.tier == 'shared' || !has(self.database.server)")
        .message("spec.database.server applies only to tier shared; a dedicated tenant runs its own server")
        .field_path(".database.server"),
    validation = Rule::new("!has(oldSelf.database) || !has(oldSelf.database.version) || !has(self.database) || !has(self.database.version) || self.database.version == oldSelf.database.version")
        .message("spec.database.version cannot change once set: a PostgreSQL data directory only starts under the major version that initialised it, and Landlord does not upgrade in place (move the data with pg_dump and pg_restore to a new Tenant); removing the field keeps the version the server runs")
        .field_path(".database.version"),
    validation = Rule::new("!has(oldSelf.database) || !has(oldSelf.database.storage) || !has(self.database) || !has(self.database.storage) || !isQuantity(string(self.database.storage)) || !isQuantity(string(oldSelf.database.storage)) || quantity(string(self.database.storage)).compareTo(quantity(string(oldSelf.database.storage))) >= 0")
        .message("spec.database.storage cannot shrink: a PersistentVolumeClaim only grows (removing the field keeps the volume's size)")
        .field_path(".database.storage"),
    validation = Rule::new("!has(oldSelf.database) || !has(oldSelf.database.storageClassName) || (has(self.database) && has(self.database.storageClassName) && self.database.storageClassName == oldSelf.database.storageClassName)")
        .message("spec.database.storageClassName cannot change or be removed once set: the database volume stays in the StorageClass it was made in")
        .field_path(".database.storageClassName"),
    validation = Rule::new("!has(self.database) || !has(self.database.storageClassName) || self.tier == 'dedicated'")
        .message("spec.database.storageClassName applies only to tier dedicated; a shared tenant's database lives on a shared server")
        .field_path(".database.storageClassName"),
)]
pub struct TenantSpec {
    /// Isolation tier. `shared` (pool): served by the platform's shared service deployments,
    /// with a database on a shared PostgreSQL server. `dedicated` (silo): the tenant's own
    /// Deployments and its own PostgreSQL server in its namespace. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.tier is immutable: create a new Tenant to change tiers"))]
    pub tier: Tier,

    /// A free label for the commercial plan (free, pro, enterprise, ...), used by feature
    /// flag targeting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub plan: Option<String>,

    /// Human readable name of the customer, shown by portals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub display_name: Option<String>,

    /// Name of the tenant's namespace. Defaults to `tenant-<name>`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("!(self in ['default', 'kube-system', 'kube-public', 'kube-node-lease'])").message("spec.namespace must not be a system namespace"))]
    pub namespace: Option<String>,

    /// Users, groups or service accounts that get the tenant-admin role in the tenant's
    /// namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub admins: Vec<Subject>,

    /// Users, groups or service accounts that get the read-only tenant-viewer role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub viewers: Vec<Subject>,

    /// Resource limits of the tenant's namespace: a ResourceQuota and a LimitRange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,

    /// Network isolation of the tenant's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,

    /// The tenant's PostgreSQL database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,

    /// Topics on NATS JetStream, one stream each, under the subject prefix
    /// `tenant.<name>.<topic>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub topics: Vec<TopicSpec>,

    /// The catalog Services this tenant runs, with per-tenant overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub services: Vec<TenantService>,

    /// White-label configuration handed to the tenant's services (key → value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 128))]
    #[x_kube(validation = Rule::new("self.all(k, k.size() <= 253 && k.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$'))").message("spec.config keys must be alphanumeric with '-', '_' or '.' inside, at most 253 characters"))]
    #[x_kube(validation = Rule::new("self.all(k, self[k].size() <= 4096)").message("spec.config values must be at most 4096 characters"))]
    pub config: BTreeMap<String, String>,

    /// Where the pods Landlord runs in the tenant's namespace (its dedicated PostgreSQL
    /// server and service instances) are scheduled: a node pool of the tenant's own, say.
    /// Changing it moves them (the server's pod is recreated on its volume's node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,

    /// Suspends the tenant: dedicated workloads scale to zero, database login is disabled,
    /// topic access is revoked, and the phase becomes Suspended. Clearing it resumes.
    #[serde(default)]
    pub suspended: bool,

    /// While true, the Tenant cannot be deleted (enforced by a ValidatingAdmissionPolicy).
    #[serde(default)]
    pub deletion_protection: bool,
}

/// Scheduling constraints for the pods Landlord makes in a tenant's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Node labels the pods require (their `nodeSelector`), e.g.
    /// `{"pool.example.com/customer": "acme"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16, "additionalProperties" = {"type": "string", "maxLength": 63, "pattern": "^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"}))]
    #[x_kube(validation = Rule::new(LABEL_KEYS).message("spec.placement.nodeSelector keys must be label keys: an optional DNS subdomain prefix and '/', then a name of at most 63 alphanumerics, '-', '_' or '.'"))]
    pub node_selector: BTreeMap<String, String>,
    /// Node taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub tolerations: Vec<Toleration>,
}

/// A label key: `[prefix/]name` (Kubernetes' qualified name).
const LABEL_KEYS: &str = "self.all(k, k.size() <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$') && (k.indexOf('/') < 0 || k.indexOf('/') <= 253))";

/// A toleration of a node taint, as in a Pod's `spec.tolerations`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.operator != 'Exists' || !has(self.value) || self.value == ''").message("a toleration with operator Exists has no value"))]
#[x_kube(validation = Rule::new("has(self.key) || self.operator == 'Exists'").message("a toleration without a key must use operator Exists (it then tolerates every taint)"))]
#[x_kube(validation = Rule::new("!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')").message("tolerationSeconds applies only to effect NoExecute"))]
#[x_kube(validation = Rule::new("!has(self.key) || self.key.indexOf('/') <= 253").message("a toleration's key has a prefix of at most 253 characters before '/'"))]
pub struct Toleration {
    /// The taint's key; empty with operator `Exists` tolerates every taint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 317),
        regex(
            pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
        )
    )]
    pub key: Option<String>,
    /// `Equal` (default: the taint's value must be `value`) or `Exists` (any value).
    #[serde(default)]
    pub operator: TolerationOperator,
    /// The taint's value, with operator `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 63),
        regex(pattern = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
    )]
    pub value: Option<String>,
    /// The taint effect tolerated: `NoSchedule`, `PreferNoSchedule` or `NoExecute`; every
    /// effect when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
    /// With effect `NoExecute`: seconds the pod stays on a node after the taint appears
    /// (forever when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub toleration_seconds: Option<i64>,
}

/// How a toleration matches a taint's value.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum TolerationOperator {
    /// The taint's value equals the toleration's.
    #[default]
    Equal,
    /// Any value.
    Exists,
}

/// A taint's effect.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

/// The isolation tier of a tenant.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Tier {
    /// Pooled: shared service deployments and a database on a shared PostgreSQL server.
    Shared,
    /// Silo: the tenant's own workloads and its own PostgreSQL server.
    Dedicated,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Shared => "shared",
            Tier::Dedicated => "dedicated",
        }
    }
}

/// A user, group or service account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.kind == 'ServiceAccount' ? has(self.__namespace__) : !has(self.__namespace__)").message("namespace is required for kind ServiceAccount and not allowed for User or Group").field_path(".namespace"))]
pub struct Subject {
    /// Kind of subject: User, Group or ServiceAccount.
    pub kind: SubjectKind,
    /// Name of the user, group or service account.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the service account (ServiceAccount only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
}

/// Kind of an RBAC subject.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum SubjectKind {
    User,
    Group,
    ServiceAccount,
}

/// Resource limits of a tenant's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.requests) || !has(self.limits) || !has(self.requests.cpu) || !has(self.limits.cpu) || !isQuantity(string(self.limits.cpu)) || !isQuantity(string(self.requests.cpu)) || quantity(string(self.limits.cpu)).compareTo(quantity(string(self.requests.cpu))) >= 0")
        .message("spec.quota.limits.cpu must be at least spec.quota.requests.cpu").field_path(".limits.cpu"),
    validation = Rule::new("!has(self.requests) || !has(self.limits) || !has(self.requests.memory) || !has(self.limits.memory) || !isQuantity(string(self.limits.memory)) || !isQuantity(string(self.requests.memory)) || quantity(string(self.limits.memory)).compareTo(quantity(string(self.requests.memory))) >= 0")
        .message("spec.quota.limits.memory must be at least spec.quota.requests.memory").field_path(".limits.memory"),
    validation = Rule::new("!has(self.containerDefaults) || !has(self.containerDefaults.limit) || !has(self.limits) || !has(self.containerDefaults.limit.cpu) || !has(self.limits.cpu) || !isQuantity(string(self.limits.cpu)) || !isQuantity(string(self.containerDefaults.limit.cpu)) || quantity(string(self.limits.cpu)).compareTo(quantity(string(self.containerDefaults.limit.cpu))) >= 0")
        .message("spec.quota.containerDefaults.limit.cpu must not exceed spec.quota.limits.cpu").field_path(".containerDefaults.limit.cpu"),
    validation = Rule::new("!has(self.containerDefaults) || !has(self.containerDefaults.limit) || !has(self.limits) || !has(self.containerDefaults.limit.memory) || !has(self.limits.memory) || !isQuantity(string(self.limits.memory)) || !isQuantity(string(self.containerDefaults.limit.memory)) || quantity(string(self.limits.memory)).compareTo(quantity(string(self.containerDefaults.limit.memory))) >= 0")
        .message("spec.quota.containerDefaults.limit.memory must not exceed spec.quota.limits.memory").field_path(".containerDefaults.limit.memory"),
)]
pub struct Quota {
    /// Total requests of the namespace (ResourceQuota `requests.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<QuotaRequests>,
    /// Total limits of the namespace (ResourceQuota `limits.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ComputeResources>,
    /// Object counts of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<ObjectCounts>,
    /// Per-container defaults of the LimitRange, for containers that set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_defaults: Option<ContainerDefaults>,
    /// Maximum concurrent connections of the tenant's database role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub database_connections: Option<i32>,
    /// Limits of the tenant's NATS account (tenants with topics). Each unset field takes the
    /// operator's default (`--nats-default-*`): no tenant's account is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsQuota>,
}

/// Limits of a tenant's NATS account, enforced by the NATS server itself.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatsQuota {
    /// Maximum concurrent client connections of the account, all of the tenant's pods
    /// together. Landlord's own short connection that manages the streams counts too, so at
    /// least 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 100000))]
    pub connections: Option<i32>,
    /// Maximum subscriptions of one connection (NATS counts subscriptions per connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub subscriptions_per_connection: Option<i32>,
    /// Largest message a client of the account may publish, in bytes (1 KiB to 64 MiB; the
    /// server's own `max_payload` caps it too). A larger message closes the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 67108864))]
    pub max_payload_bytes: Option<i32>,
    /// Maximum consumers of one stream, durable and ephemeral (NATS counts consumers per
    /// stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub consumers_per_stream: Option<i32>,
}

/// Total resource requests of a namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaRequests {
    /// Total CPU requests, e.g. `4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_quantity")]
    pub cpu: Option<Quantity>,
    /// Total memory requests, e.g. `8Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_quantity")]
    pub memory: Option<Quantity>,
    /// Total storage requested by PersistentVolumeClaims, e.g. `100Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_quantity")]
    pub storage: Option<Quantity>,
}

/// CPU and memory.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputeResources {
    /// CPU, e.g. `500m` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_quantity")]
    pub cpu: Option<Quantity>,
    /// Memory, e.g. `512Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_quantity")]
    pub memory: Option<Quantity>,
}

/// Object counts of the tenant's own objects in its namespace. Landlord's own objects (its
/// credential Secrets, identity, config and flags ConfigMaps, a dedicated tenant's database
/// and runtime Services, ...) are added to these figures in the ResourceQuota, so they never
/// use up the tenant's share. Pods are counted as they are: Landlord's workload pods too.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectCounts {
    /// Maximum number of Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub pods: Option<i32>,
    /// Maximum number of Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub services: Option<i32>,
    /// Maximum number of ConfigMaps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub config_maps: Option<i32>,
    /// Maximum number of Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub secrets: Option<i32>,
    /// Maximum number of PersistentVolumeClaims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub persistent_volume_claims: Option<i32>,
    /// Maximum number of Domains in the tenant's namespace (`count/domains.landlord.dev`);
    /// 20 when unset. Every Domain is held in the operator's memory, so the count is always
    /// bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub domains: Option<i32>,
    /// Maximum number of FeatureFlagSets in the tenant's namespace
    /// (`count/featureflagsets.landlord.dev`); 20 when unset, for the same reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub feature_flag_sets: Option<i32>,
    /// Maximum number of WebhookEndpoints in the tenant's namespace
    /// (`count/webhookendpoints.landlord.dev`); 5 when unset: each receives every event of
    /// the tenant, delivered and retried by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub webhook_endpoints: Option<i32>,
}

/// Defaults the LimitRange gives containers that declare no resources.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDefaults {
    /// Default requests of a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<ComputeResources>,
    /// Default limits of a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<ComputeResources>,
}

/// Network isolation of a tenant's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// `Strict` (default): ingress and egress are denied except same-namespace traffic, the
    /// platform gateway, DNS, the tenant's database and NATS, and `allowedPeers`.
    /// `IngressOnly`: ingress is walled the same way, egress is open.
    #[serde(default)]
    pub isolation: Isolation,
    /// Further peers the tenant may reach or be reached from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub allowed_peers: Vec<NetworkPeer>,
}

/// Network isolation mode.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Isolation {
    #[default]
    Strict,
    IngressOnly,
}

/// A peer allowed through the tenant's network walls.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.cidr), has(self.namespaceSelector) || has(self.podSelector)].filter(x, x).size() == 1").message("an allowed peer sets either cidr or namespaceSelector/podSelector, not both and not neither"))]
pub struct NetworkPeer {
    /// Direction of the allowed traffic: Ingress (from the peer) or Egress (to the peer).
    pub direction: Direction,
    /// An IP block in CIDR notation, e.g. 10.0.0.0/8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 49))]
    #[x_kube(validation = Rule::new("isCIDR(self)").message("cidr must be a valid CIDR such as 10.0.0.0/8"))]
    pub cidr: Option<String>,
    /// Namespaces, by their labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<BTreeMap<String, String>>,
    /// Pods, by their labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<BTreeMap<String, String>>,
    /// TCP ports the rule allows; all ports when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub ports: Vec<PortNumber>,
}

/// A TCP port number.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct PortNumber(#[schemars(range(min = 1, max = 65535))] pub i32);

/// Direction of network traffic.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Direction {
    Ingress,
    Egress,
}

/// The tenant's PostgreSQL database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Whether the tenant gets a database at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// PostgreSQL extensions to create, from the operator's allowlist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "set"), inner(length(min = 1, max = 63), regex(pattern = r"^[a-z][a-z0-9_]*$")))]
    pub extensions: Vec<String>,
    /// Shared tier only: the name of the platform PostgreSQL server to place the database on.
    /// Defaults to the least-loaded server. Placement never moves once recorded in status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub server: Option<String>,
    /// Dedicated tier only: size of the database volume, e.g. `20Gi`; the operator's default
    /// when the server is first made. It may grow (the volume claim is expanded when its
    /// StorageClass allows it) but never shrink; removing it keeps the volume's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_quantity")]
    pub storage: Option<Quantity>,
    /// Dedicated tier only: the StorageClass of the database volume; the cluster's default
    /// when absent. Chosen when the server is first made: it cannot change or be removed
    /// once set (a volume stays in its class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub storage_class_name: Option<String>,
    /// Dedicated tier only: PostgreSQL major version, e.g. `16`; the operator's default when
    /// the server is first made. A server keeps the major version its data directory was
    /// initialised with: the field cannot change once set, and naming another version than
    /// the running one is reported as `DatabaseReady=False VersionChangeRefused`. Removing it
    /// (or the operator's default changing) keeps the running version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8), regex(pattern = r"^[0-9]{2}$"))]
    pub version: Option<String>,
    /// What happens to the data when the Tenant is deleted: `Retain` (default) keeps the
    /// database and disables the role's login, `Delete` drops both.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

impl Default for DatabaseSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            extensions: Vec::new(),
            server: None,
            storage: None,
            storage_class_name: None,
            version: None,
            deletion_policy: DeletionPolicy::Retain,
        }
    }
}

fn default_true() -> bool {
    true
}

/// What happens to external data when its owner is deleted.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum DeletionPolicy {
    #[default]
    Retain,
    Delete,
}

/// A topic on NATS JetStream.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.retention == oldSelf.retention || (self.retention != 'WorkQueue' && oldSelf.retention != 'WorkQueue')")
        .message("spec.topics[].retention cannot change to or from WorkQueue (NATS refuses it for an existing stream): remove the topic, then add it again with the new retention (its messages are lost)")
        .field_path(".retention"),
)]
pub struct TopicSpec {
    /// Name of the topic and of its stream, which captures the subjects
    /// `tenant.<tenant>.<name>` and `tenant.<tenant>.<name>.>`.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Retention policy of the stream: Limits (default), Interest or WorkQueue. Limits and
    /// Interest may be swapped later (NATS 2.10 or newer); a change to or from WorkQueue is
    /// refused.
    #[serde(default)]
    pub retention: Retention,
    /// Maximum age of a message, as a duration such as `24h` or `7d`. The stream's duplicate
    /// window (messages with a repeated `Nats-Msg-Id` are dropped) is 2 minutes, or maxAge
    /// when that is shorter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), regex(pattern = r"^[0-9]+(s|m|h|d)$"))]
    pub max_age: Option<String>,
    /// Maximum size of the stream in bytes; the platform's default when unset. The tenant's
    /// NATS account reserves the sum over its topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 1099511627776_i64))]
    pub max_bytes: Option<i64>,
    /// Maximum number of messages in the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000000000_i64))]
    pub max_messages: Option<i64>,
}

/// Retention policy of a JetStream stream.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Retention {
    #[default]
    Limits,
    Interest,
    WorkQueue,
}

/// A catalog Service that a tenant runs, with its overrides.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantService {
    /// Name of the catalog Service (in the platform namespace).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Replicas for this tenant (dedicated tier), overriding the Service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: Option<i32>,
    /// Extra environment variables for this tenant, applied on top of the Service's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<EnvVar>,
}

/// An environment variable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Name of the variable. Names starting with `LANDLORD_` are reserved.
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")
    )]
    #[x_kube(validation = Rule::new("!self.startsWith('LANDLORD_')").message("env names starting with LANDLORD_ are reserved for the tenant context"))]
    pub name: String,
    /// Value of the variable.
    #[serde(default)]
    #[schemars(length(max = 8192))]
    pub value: String,
}

/// Observed state of a Tenant.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// The .metadata.generation that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Lifecycle phase: Provisioning, Ready, Degraded, Suspended, Terminating or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The tenant's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Where the tenant's database lives and where its credentials are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseStatus>,
    /// The tenant's provisioned topics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub topics: Vec<TopicStatus>,
    /// URLs the tenant is served on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// Ready (the roll-up), NamespaceReady, DatabaseReady, TopicsReady, ServicesReady,
    /// DomainsReady and FlagsReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
}

/// Lifecycle phase of a Tenant.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Phase {
    Provisioning,
    Ready,
    Degraded,
    Suspended,
    Terminating,
    Failed,
}

/// Where a tenant's database lives.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    /// The platform server the database was placed on (shared tier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Host name of the database server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port of the database server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Name of the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Name of the Secret in the tenant namespace holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The value of the Tenant's `landlord.dev/rotate-database-password` annotation that
    /// the password in `secret` was made for, once the database server has that password
    /// (absent: the password was never rotated). A rotation asked by a new annotation value
    /// is done when this field shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_rotation: Option<String>,
}

/// A provisioned topic.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// Name of the topic.
    pub name: String,
    /// Name of the JetStream stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Subject the stream captures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl Tenant {
    /// The namespace the tenant's stack lives in.
    pub fn namespace_name(&self) -> String {
        match &self.spec.namespace {
            Some(ns) => ns.clone(),
            None => format!("tenant-{}", kube::ResourceExt::name_any(self)),
        }
    }
}

/// The longest Tenant name: it names the `tenant-<name>` namespace (63 characters at most).
pub const NAME_MAX_LENGTH: usize = 56;
/// The pattern of a Tenant name (a lowercase DNS label), as the CRD's CEL rule checks it.
pub const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Whether `name` is a valid Tenant name: the CRD's rule on `metadata.name`, for callers that
/// check before asking the API server (Landlord's API).
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    let end = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    !name.is_empty()
        && name.len() <= NAME_MAX_LENGTH
        && bytes.iter().all(inner)
        && end(bytes.first())
        && end(bytes.last())
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn names_follow_the_crds_rule() {
        let crd = crate::generate::crds_yaml().expect("the CRDs render");
        // The same limit and pattern as the CEL rule on metadata.name.
        assert!(crd.contains(&format!("self.metadata.name.size() <= {NAME_MAX_LENGTH}")));
        assert!(crd.contains(NAME_PATTERN));
        for good in ["a", "acme", "a-1", &"x".repeat(56)] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(57), "é"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}

//! The catalog Service: one service of the product, run for every tenant that selects it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::{
    schema,
    tenant::{ComputeResources, EnvVar, Tier},
};

/// One service of the product. Landlord runs it once as a shared pool Deployment in the
/// Service's namespace for all shared-tier tenants, and once per dedicated tenant inside that
/// tenant's namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landlord.dev",
    version = "v1alpha1",
    kind = "Service",
    plural = "services",
    shortname = "lsvc",
    category = "landlord",
    namespaced,
    status = "ServiceStatus",
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(name = "Pool-Ready", type_ = "string", json_path = ".status.pool.readyReplicas"),
    printcolumn(name = "Tenants", type_ = "integer", json_path = ".status.tenants"),
    printcolumn(name = "Tenants-Ready", type_ = "integer", json_path = ".status.tenantsReady"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 50 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a lowercase DNS-1035 label of at most 50 characters, starting with a letter (it names Deployments and Kubernetes Services)"),
    validation = Rule::new("self.metadata.name != 'landlord' && !self.metadata.name.startsWith('landlord-')")
        .message("metadata.name must not be landlord or start with landlord-: those names are reserved for Landlord's own objects in tenant namespaces (landlord-postgres, landlord-runtime, ...)"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.path) || (has(self.ports) && self.ports.size() > 0)").message("spec.ports must declare at least one port when spec.path routes traffic to the service").field_path(".ports"))]
pub struct ServiceSpec {
    /// Container image, e.g. `registry.example.com/shop/api:1.4.2`.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("!self.contains(' ')").message("spec.image must not contain spaces"))]
    pub image: String,
    /// Image pull policy: Always, IfNotPresent or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Entrypoint override.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 4096)))]
    pub command: Vec<String>,
    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 4096)))]
    pub args: Vec<String>,
    /// Ports the container listens on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub ports: Vec<ServicePort>,
    /// Replicas of each per-tenant Deployment (dedicated tier) and of the pool.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// Container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ContainerResources>,
    /// Environment variables of the container. The tenant context comes in `LANDLORD_*`
    /// variables, which are reserved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<EnvVar>,
    /// Readiness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    /// Liveness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    /// Rollout settings of the Deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Horizontal autoscaling of the Deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// Tiers the service runs for. Defaults to both.
    #[serde(default = "default_tiers")]
    #[schemars(length(min = 1, max = 2), extend("x-kubernetes-list-type" = "set"))]
    pub tiers: Vec<Tier>,
    /// Path prefix the service serves under a tenant's domain, e.g. `/api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^/[A-Za-z0-9/._~-]*$"))]
    #[x_kube(validation = Rule::new("!self.contains('//') && !self.contains('/./') && !self.contains('/../') && !self.endsWith('/.') && !self.endsWith('/..')").message("spec.path must not contain '//', '/./' or '/../' nor end with '/.' or '/..' (HTTPRoute and Ingress refuse such paths)"))]
    pub path: Option<String>,
    /// What the service uses from the tenant stack; only those credentials are handed to it.
    #[serde(default)]
    pub uses: Uses,
    /// Extra labels on the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub pod_labels: BTreeMap<String, String>,
}

fn default_replicas() -> i32 {
    1
}

fn default_tiers() -> Vec<Tier> {
    vec![Tier::Shared, Tier::Dedicated]
}

/// Image pull policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// A port of the service's container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Name of the port, e.g. `http`.
    #[schemars(
        length(min = 1, max = 15),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("self.matches('[a-z]') && !self.contains('--')").message("spec.ports[].name must be an IANA service name: at least one letter and no '--'"))]
    pub name: String,
    /// Port number.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Protocol: TCP (default) or UDP.
    #[serde(default)]
    pub protocol: Protocol,
}

/// Transport protocol.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Protocol {
    #[default]
    TCP,
    UDP,
}

/// Requests and limits of a container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.requests) || !has(self.limits) || !has(self.requests.cpu) || !has(self.limits.cpu) || !isQuantity(string(self.limits.cpu)) || !isQuantity(string(self.requests.cpu)) || quantity(string(self.limits.cpu)).compareTo(quantity(string(self.requests.cpu))) >= 0")
        .message("spec.resources.limits.cpu must be at least spec.resources.requests.cpu").field_path(".limits.cpu"),
    validation = Rule::new("!has(self.requests) || !has(self.limits) || !has(self.requests.memory) || !has(self.limits.memory) || !isQuantity(string(self.limits.memory)) || !isQuantity(string(self.requests.memory)) || quantity(string(self.limits.memory)).compareTo(quantity(string(self.requests.memory))) >= 0")
        .message("spec.resources.limits.memory must be at least spec.resources.requests.memory").field_path(".limits.memory"),
)]
pub struct ContainerResources {
    /// Resources the container requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ComputeResources>,
    /// Resources the container may use at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ComputeResources>,
}

/// An HTTP probe.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// HTTP path to GET.
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^/"))]
    pub path: String,
    /// Name of the port to probe (one of `spec.ports`).
    #[schemars(length(min = 1, max = 15))]
    pub port: String,
    /// Seconds before the first probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub initial_delay_seconds: Option<i32>,
    /// Seconds between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub period_seconds: Option<i32>,
    /// Consecutive failures before the probe fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_threshold: Option<i32>,
}

/// Rollout settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Pods above the desired count during a rollout, as a number or a percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8), regex(pattern = r"^[0-9]+%?$"))]
    pub max_surge: Option<String>,
    /// Pods that may be unavailable during a rollout, as a number or a percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8), regex(pattern = r"^[0-9]+%?$"))]
    pub max_unavailable: Option<String>,
    /// Seconds after which a rollout that makes no progress is reported as stuck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 86400))]
    pub progress_deadline_seconds: Option<i32>,
}

/// Horizontal autoscaling.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("spec.autoscaling.minReplicas must not exceed spec.autoscaling.maxReplicas").field_path(".minReplicas"))]
pub struct Autoscaling {
    /// Minimum replicas.
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Maximum replicas.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Target average CPU utilisation, in percent of requests.
    #[serde(default = "default_cpu_target")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

fn default_cpu_target() -> i32 {
    80
}

/// What a service uses from the tenant's stack.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Uses {
    /// Hand the service the tenant's database credentials.
    #[serde(default)]
    pub database: bool,
    /// Hand the service the tenant's NATS credentials and topic names.
    #[serde(default)]
    pub topics: bool,
    /// Hand the service the tenant's flags endpoint.
    #[serde(default = "default_true")]
    pub flags: bool,
}

impl Default for Uses {
    fn default() -> Self {
        Self {
            database: false,
            topics: false,
            flags: true,
        }
    }
}

fn default_true() -> bool {
    true
}

/// Observed state of a catalog Service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// The .metadata.generation that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Readiness of the shared pool Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolStatus>,
    /// Number of tenants that run this service.
    #[serde(default)]
    pub tenants: i32,
    /// Number of those tenants whose instance of the service is ready.
    #[serde(default)]
    pub tenants_ready: i32,
    /// Ready and other conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
}

/// Readiness of a pool Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// Desired replicas.
    #[serde(default)]
    pub replicas: i32,
    /// Ready replicas.
    #[serde(default)]
    pub ready_replicas: i32,
}

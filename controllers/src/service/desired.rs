//! The workload of a catalog Service: pure functions of the Service, whom it serves (the
//! shared pool or one dedicated tenant) and the operator's configuration, unit-tested on
//! fixtures.
//!
//! One builder serves both the pool and the per-tenant instances, so a change to the
//! catalog Service means the same change everywhere it runs.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment},
        autoscaling::v2::{
            CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
            MetricSpec, MetricTarget, ResourceMetricSource,
        },
        core::v1::{
            Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
            PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SecretKeySelector,
            Service as KubeService, ServicePort as KubeServicePort, ServiceSpec as KubeServiceSpec,
            Volume, VolumeMount,
        },
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use kube::ResourceExt;
use landlord_crds::{
    Service, Tenant,
    service::{ContainerResources, Probe as ProbeSpec, Protocol, PullPolicy, ServiceSpec},
    tenant::{ComputeResources, TenantService, Tier},
};

use crate::{config::Config, labels};

/// Names of the Secrets and services a workload's environment points at (the contract with
/// the database, topics and flags parts).
pub mod names {
    /// Database credentials in the tenant namespace: host, port, dbname, user, password, uri.
    pub const DATABASE_SECRET: &str = "landlord-database";
    /// NATS credentials in the tenant namespace: url, creds.
    pub const NATS_SECRET: &str = "landlord-nats";
    /// The tenant-runtime Service (OFREP flags) in the tenant or platform namespace.
    pub const RUNTIME: &str = "landlord-runtime";
    pub const RUNTIME_PORT: u16 = 8080;
}

/// The environment variables Landlord hands every container (documented in README.md).
pub mod env {
    pub const TENANT: &str = "LANDLORD_TENANT";
    pub const TENANT_TIER: &str = "LANDLORD_TENANT_TIER";
    pub const TENANT_PLAN: &str = "LANDLORD_TENANT_PLAN";
    /// (variable, key of the database Secret)
    pub const DATABASE: [(&str, &str); 6] = [
        ("LANDLORD_DATABASE_HOST", "host"),
        ("LANDLORD_DATABASE_PORT", "port"),
        ("LANDLORD_DATABASE_NAME", "dbname"),
        ("LANDLORD_DATABASE_USER", "user"),
        ("LANDLORD_DATABASE_PASSWORD", "password"),
        ("LANDLORD_DATABASE_URL", "uri"),
    ];
    /// (variable, key of the NATS Secret)
    pub const NATS: [(&str, &str); 2] = [
        ("LANDLORD_NATS_URL", "url"),
        ("LANDLORD_NATS_CREDS", "creds"),
    ];
    pub const TOPICS: &str = "LANDLORD_TOPICS";
    pub const FLAGS_URL: &str = "LANDLORD_FLAGS_URL";

    /// `LANDLORD_TOPIC_<NAME>_SUBJECT`: the topic's name upper-cased, `-` as `_`.
    pub fn topic_subject(topic: &str) -> String {
        format!(
            "LANDLORD_TOPIC_{}_SUBJECT",
            topic.to_uppercase().replace('-', "_")
        )
    }
}

/// Writable scratch space of a container whose root filesystem is read-only.
const TMP_VOLUME: &str = "tmp";

/// Whom a workload serves.
#[derive(Clone, Copy, Debug)]
pub enum Audience<'a> {
    /// The shared pool, in the catalog Service's namespace, for every shared-tier tenant.
    Pool,
    /// One dedicated tenant, in its namespace, with its selection's overrides.
    Tenant {
        tenant: &'a Tenant,
        selection: &'a TenantService,
    },
}

/// The objects one instance of a catalog Service consists of. `service` is absent when the
/// catalog Service declares no ports; `autoscaler` when autoscaling is off for this instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub deployment: Deployment,
    pub service: Option<KubeService>,
    pub disruption_budget: PodDisruptionBudget,
    pub autoscaler: Option<HorizontalPodAutoscaler>,
}

/// Checks what the schema cannot: rules across fields that the API server would otherwise
/// reject on the Deployment, or that would leave an autoscaler blind. The error names the
/// field.
pub fn validate(spec: &ServiceSpec) -> Result<(), String> {
    if let Some(rollout) = &spec.rollout {
        let zero =
            |v: &Option<String>| v.as_deref().is_some_and(|v| v.trim_end_matches('%') == "0");
        if zero(&rollout.max_surge) && zero(&rollout.max_unavailable) {
            return Err(
                "spec.rollout: maxSurge and maxUnavailable cannot both be 0 (the rollout could never start)"
                    .into(),
            );
        }
        if let Some(v) = &rollout.max_unavailable
            && let Some(percent) = v.strip_suffix('%')
            && percent.parse::<u32>().is_ok_and(|p| p > 100)
        {
            return Err("spec.rollout.maxUnavailable must not exceed 100%".into());
        }
    }
    for (field, probe) in [
        ("readinessProbe", &spec.readiness_probe),
        ("livenessProbe", &spec.liveness_probe),
    ] {
        if let Some(probe) = probe
            && !spec.ports.iter().any(|p| p.name == probe.port)
        {
            return Err(format!(
                "spec.{field}.port: {} is not one of spec.ports",
                probe.port
            ));
        }
    }
    if spec.autoscaling.is_some()
        && spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.cpu.as_ref())
            .is_none()
    {
        return Err(
            "spec.autoscaling needs spec.resources.requests.cpu (utilisation is measured against it)"
                .into(),
        );
    }
    Ok(())
}

/// Whether a catalog Service runs for a tier.
pub fn offers(service: &Service, tier: Tier) -> bool {
    service.spec.tiers.contains(&tier)
}

/// Whether the tenant has a database whose credentials a service can be handed.
pub fn has_database(tenant: &Tenant) -> bool {
    tenant.spec.database.as_ref().is_some_and(|d| d.enabled)
}

/// Labels that select a workload's pods (in one namespace, one instance per catalog Service).
pub fn selector(service: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::MANAGED_BY_KEY.to_string(),
            labels::MANAGED_BY.to_string(),
        ),
        (labels::SERVICE.to_string(), service.to_string()),
    ])
}

fn object_labels(service: &str, audience: &Audience) -> BTreeMap<String, String> {
    let mut labels = selector(service);
    labels.insert("app.kubernetes.io/name".into(), service.to_string());
    let tier = match audience {
        Audience::Pool => Tier::Shared,
        Audience::Tenant { tenant, .. } => {
            labels.insert(labels::TENANT.to_string(), tenant.name_any());
            tenant.spec.tier
        }
    };
    labels.insert("landlord.dev/tier".into(), tier.as_str().into());
    labels
}

/// The namespace an instance lives in.
pub fn namespace(service: &Service, audience: &Audience) -> String {
    match audience {
        Audience::Pool => service.namespace().unwrap_or_default(),
        Audience::Tenant { tenant, .. } => tenant.namespace_name(),
    }
}

/// Builds one instance of a catalog Service. `owner` is the controller reference of the
/// catalog Service (pool) or of the Tenant (dedicated), so the garbage collector removes the
/// instance with its owner.
pub fn workload(
    service: &Service,
    audience: &Audience,
    owner: &OwnerReference,
    config: &Config,
) -> Workload {
    let name = service.name_any();
    let spec = &service.spec;
    let labels = object_labels(&name, audience);
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(namespace(service, audience)),
        labels: Some(labels.clone()),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    };
    let match_labels = LabelSelector {
        match_labels: Some(selector(&name)),
        ..Default::default()
    };
    let (replicas, autoscaled) = replicas(spec, audience);

    let deployment = Deployment {
        metadata: meta.clone(),
        spec: Some(DeploymentSpec {
            replicas,
            selector: match_labels.clone(),
            progress_deadline_seconds: spec
                .rollout
                .as_ref()
                .and_then(|r| r.progress_deadline_seconds),
            strategy: spec.rollout.as_ref().map(|r| DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: r.max_surge.as_deref().map(int_or_percent),
                    max_unavailable: r.max_unavailable.as_deref().map(int_or_percent),
                }),
            }),
            template: pod_template(&name, spec, audience, labels, config),
            ..Default::default()
        }),
        ..Default::default()
    };
    let kube_service = (!spec.ports.is_empty()).then(|| KubeService {
        metadata: meta.clone(),
        spec: Some(KubeServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector(&name)),
            ports: Some(
                spec.ports
                    .iter()
                    .map(|p| KubeServicePort {
                        name: Some(p.name.clone()),
                        port: p.port,
                        target_port: Some(IntOrString::String(p.name.clone())),
                        protocol: Some(protocol(p.protocol).into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    });
    // One pod at a time may be evicted: with one replica a drain still makes progress.
    let disruption_budget = PodDisruptionBudget {
        metadata: meta.clone(),
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(match_labels),
            max_unavailable: Some(IntOrString::Int(1)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let autoscaler =
        spec.autoscaling
            .as_ref()
            .filter(|_| autoscaled)
            .map(|a| HorizontalPodAutoscaler {
                metadata: meta.clone(),
                spec: Some(HorizontalPodAutoscalerSpec {
                    scale_target_ref: CrossVersionObjectReference {
                        api_version: Some("apps/v1".into()),
                        kind: "Deployment".into(),
                        name: name.clone(),
                    },
                    min_replicas: Some(a.min_replicas),
                    max_replicas: a.max_replicas,
                    metrics: Some(vec![MetricSpec {
                        type_: "Resource".into(),
                        resource: Some(ResourceMetricSource {
                            name: "cpu".into(),
                            target: MetricTarget {
                                type_: "Utilization".into(),
                                average_utilization: Some(a.target_cpu_utilization_percentage),
                                ..Default::default()
                            },
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            });
    Workload {
        deployment,
        service: kube_service,
        disruption_budget,
        autoscaler,
    }
}

/// The Deployment's replica count, and whether an autoscaler owns it instead.
///
/// A suspended dedicated tenant runs nothing (and gets no autoscaler, which would scale it
/// back up); a tenant's explicit replica count pins it (no autoscaler for that tenant); else
/// an autoscaler, when the Service has one, owns the count and Landlord leaves the field to
/// it, so the two never fight.
fn replicas(spec: &ServiceSpec, audience: &Audience) -> (Option<i32>, bool) {
    let pinned = match audience {
        Audience::Pool => None,
        Audience::Tenant { tenant, .. } if tenant.spec.suspended => return (Some(0), false),
        Audience::Tenant { selection, .. } => selection.replicas,
    };
    match (pinned, &spec.autoscaling) {
        (Some(n), _) => (Some(n), false),
        (None, Some(_)) => (None, true),
        (None, None) => (Some(spec.replicas), false),
    }
}

fn pod_template(
    name: &str,
    spec: &ServiceSpec,
    audience: &Audience,
    object_labels: BTreeMap<String, String>,
    config: &Config,
) -> PodTemplateSpec {
    // The Service's pod labels first, so that Landlord's own labels always win.
    let mut pod_labels = spec.pod_labels.clone();
    pod_labels.extend(object_labels);
    let container = Container {
        name: name.to_string(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| {
            match p {
                PullPolicy::Always => "Always",
                PullPolicy::IfNotPresent => "IfNotPresent",
                PullPolicy::Never => "Never",
            }
            .to_string()
        }),
        command: (!spec.command.is_empty()).then(|| spec.command.clone()),
        args: (!spec.args.is_empty()).then(|| spec.args.clone()),
        ports: (!spec.ports.is_empty()).then(|| {
            spec.ports
                .iter()
                .map(|p| ContainerPort {
                    name: Some(p.name.clone()),
                    container_port: p.port,
                    protocol: Some(protocol(p.protocol).into()),
                    ..Default::default()
                })
                .collect()
        }),
        env: Some(environment(spec, audience, config)),
        resources: spec.resources.as_ref().map(resources),
        readiness_probe: spec.readiness_probe.as_ref().map(probe),
        liveness_probe: spec.liveness_probe.as_ref().map(probe),
        security_context: Some(crate::pod_security::container()),
        volume_mounts: Some(vec![VolumeMount {
            name: TMP_VOLUME.into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let mut pod = PodSpec {
        containers: vec![container],
        security_context: Some(crate::pod_security::pod_image_user()),
        // The services talk to their tenant's stack, not to the Kubernetes API, and get
        // their addresses from Landlord's variables rather than Docker-style links.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        volumes: Some(vec![Volume {
            name: TMP_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    // A dedicated instance runs in its tenant's namespace, where pods pull Always (the
    // operator's --image-pull-policy-always); the pool, in the platform namespace, keeps the
    // Service's spec.imagePullPolicy.
    if config.image_pull_policy_always && matches!(audience, Audience::Tenant { .. }) {
        crate::pod_security::pull_always(&mut pod);
    }
    // A dedicated instance runs where its tenant's placement says, the pool where the
    // platform's does.
    match audience {
        Audience::Tenant { tenant, .. } => crate::scheduling::place(&mut pod, tenant),
        Audience::Pool => crate::scheduling::place_at(&mut pod, &config.pool_placement),
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            ..Default::default()
        }),
        spec: Some(pod),
    }
}

/// The container's environment: Landlord's `LANDLORD_*` variables first (so the Service's
/// and the tenant's variables can refer to them as `$(LANDLORD_...)`), then the Service's
/// `env`, then the tenant's overrides on top (replacing a Service variable of the same name).
pub fn environment(spec: &ServiceSpec, audience: &Audience, config: &Config) -> Vec<EnvVar> {
    let mut vars = match audience {
        Audience::Pool => {
            // The pool serves every shared tenant; which one a request is for comes in the
            // X-Landlord-Tenant header, so there is no per-tenant context or credential here,
            // only the keys that check the route's assertion of that header.
            let mut vars = vec![value(env::TENANT_TIER, Tier::Shared.as_str())];
            vars.extend(crate::pool::key_env());
            if spec.uses.flags {
                vars.push(value(
                    env::FLAGS_URL,
                    &runtime_url(&config.platform_namespace),
                ));
            }
            vars
        }
        Audience::Tenant { tenant, .. } => tenant_context(spec, tenant),
    };
    let reserved = vars.len();
    let overrides = match audience {
        Audience::Pool => &[][..],
        Audience::Tenant { selection, .. } => &selection.env[..],
    };
    for var in spec.env.iter().chain(overrides) {
        // The schema refuses LANDLORD_ names; this keeps the reserved ones even if it did not.
        if var.name.starts_with("LANDLORD_") {
            continue;
        }
        match vars[reserved..].iter_mut().find(|v| v.name == var.name) {
            Some(existing) => *existing = value(&var.name, &var.value),
            None => vars.push(value(&var.name, &var.value)),
        }
    }
    vars
}

fn tenant_context(spec: &ServiceSpec, tenant: &Tenant) -> Vec<EnvVar> {
    let name = tenant.name_any();
    let mut vars = vec![
        value(env::TENANT, &name),
        value(env::TENANT_TIER, tenant.spec.tier.as_str()),
        value(env::TENANT_PLAN, tenant.spec.plan.as_deref().unwrap_or("")),
    ];
    // Credentials only for what the Service uses and the tenant has. They are required
    // references: a pod does not start without them rather than start half-configured.
    if spec.uses.database && has_database(tenant) {
        for (var, key) in env::DATABASE {
            vars.push(secret(var, names::DATABASE_SECRET, key));
        }
    }
    if spec.uses.topics && !tenant.spec.topics.is_empty() {
        for (var, key) in env::NATS {
            vars.push(secret(var, names::NATS_SECRET, key));
        }
        let topics: Vec<&str> = tenant.spec.topics.iter().map(|t| t.name.as_str()).collect();
        vars.push(value(env::TOPICS, &topics.join(",")));
        for topic in topics {
            let var = env::topic_subject(topic);
            // `a-b` and `a_b` map to the same variable; the first topic keeps it (a list
            // keyed by name cannot hold both).
            if !vars.iter().any(|v| v.name == var) {
                vars.push(value(&var, &format!("tenant.{name}.{topic}")));
            }
        }
    }
    if spec.uses.flags {
        vars.push(value(
            env::FLAGS_URL,
            &runtime_url(&tenant.namespace_name()),
        ));
    }
    vars
}

fn runtime_url(namespace: &str) -> String {
    format!(
        "http://{}.{namespace}.svc:{}",
        names::RUNTIME,
        names::RUNTIME_PORT
    )
}

fn value(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        // The API server drops an empty value; leaving it out keeps the live object equal to
        // the desired one (the variable is still defined, and empty).
        value: (!value.is_empty()).then(|| value.to_string()),
        ..Default::default()
    }
}

fn secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: key.to_string(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::TCP => "TCP",
        Protocol::UDP => "UDP",
    }
}

/// `25%` stays a percentage, `1` becomes a number (the schema allows only these forms).
fn int_or_percent(v: &str) -> IntOrString {
    match v.parse::<i32>() {
        Ok(n) => IntOrString::Int(n),
        Err(_) => IntOrString::String(v.to_string()),
    }
}

fn resources(r: &ContainerResources) -> ResourceRequirements {
    let map = |c: &Option<ComputeResources>| {
        c.as_ref().map(|c| {
            let mut m = BTreeMap::<String, Quantity>::new();
            if let Some(cpu) = &c.cpu {
                m.insert("cpu".into(), cpu.clone());
            }
            if let Some(memory) = &c.memory {
                m.insert("memory".into(), memory.clone());
            }
            m
        })
    };
    ResourceRequirements {
        requests: map(&r.requests),
        limits: map(&r.limits),
        ..Default::default()
    }
}

fn probe(p: &ProbeSpec) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(p.path.clone()),
            port: IntOrString::String(p.port.clone()),
            ..Default::default()
        }),
        initial_delay_seconds: p.initial_delay_seconds,
        period_seconds: p.period_seconds,
        failure_threshold: p.failure_threshold,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Service",
            "metadata": {"name": "api", "namespace": "landlord-platform", "uid": "svc-uid"},
            "spec": spec,
        }))
        .expect("catalog fixture")
    }

    fn tenant(spec: serde_json::Value) -> Tenant {
        serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "globex", "uid": "tenant-uid"},
            "spec": spec,
        }))
        .expect("tenant fixture")
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "landlord.dev/v1alpha1".into(),
            kind: "Tenant".into(),
            name: "globex".into(),
            uid: "tenant-uid".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn full_service() -> Service {
        catalog(json!({
            "image": "registry.example.com/shop/api:1.4.2",
            "ports": [{"name": "http", "port": 8080}],
            "replicas": 2,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "REGION", "value": "eu"}],
            "readinessProbe": {"path": "/ready", "port": "http"},
            "rollout": {"maxSurge": "25%", "maxUnavailable": "0", "progressDeadlineSeconds": 120},
            "uses": {"database": true, "topics": true, "flags": true},
            "podLabels": {"team": "shop", "landlord.dev/service": "spoofed"},
        }))
    }

    fn dedicated() -> Tenant {
        tenant(json!({
            "tier": "dedicated", "plan": "enterprise",
            "database": {"enabled": true},
            "topics": [{"name": "orders"}, {"name": "order-events"}],
            "services": [{"name": "api", "replicas": 3, "env": [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "EXTRA", "value": "1"}]}],
        }))
    }

    fn build(service: &Service, t: &Tenant) -> Workload {
        let selection = t.spec.services[0].clone();
        workload(
            service,
            &Audience::Tenant {
                tenant: t,
                selection: &selection,
            },
            &owner(),
            &Config::default(),
        )
    }

    fn env_map(w: &Workload) -> Vec<(String, String)> {
        container(w)
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                let shown = match (v.value, v.value_from) {
                    (Some(value), _) => value,
                    (None, Some(from)) => {
                        let s = from.secret_key_ref.expect("secret ref");
                        // Only the secondary tenant key (there during a rotation) is optional.
                        let optional = s.optional == Some(true);
                        assert_eq!(optional, v.name == "LANDLORD_TENANT_KEY_SECONDARY");
                        let mark = if optional { "?" } else { "" };
                        format!("secret{mark}:{}/{}", s.name, s.key)
                    }
                    (None, None) => String::new(),
                };
                (v.name, shown)
            })
            .collect()
    }

    fn container(w: &Workload) -> &Container {
        &w.deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod spec")
            .containers[0]
    }

    #[test]
    fn a_dedicated_instance_pulls_always_and_the_pool_keeps_the_services_policy() {
        let service = catalog(json!({"image": "shop/api:1", "imagePullPolicy": "IfNotPresent"}));
        let t = dedicated();
        let selection = t.spec.services[0].clone();
        let tenant = Audience::Tenant {
            tenant: &t,
            selection: &selection,
        };
        let policy = |audience: &Audience, always: bool| {
            let config = Config {
                image_pull_policy_always: always,
                ..Config::default()
            };
            container(&workload(&service, audience, &owner(), &config))
                .image_pull_policy
                .clone()
        };
        assert_eq!(policy(&tenant, true).as_deref(), Some("Always"));
        assert_eq!(
            policy(&Audience::Pool, true).as_deref(),
            Some("IfNotPresent")
        );
        assert_eq!(policy(&tenant, false).as_deref(), Some("IfNotPresent"));
    }

    #[test]
    fn a_dedicated_instance_gets_the_documented_environment_in_order() {
        let w = build(&full_service(), &dedicated());
        let env = env_map(&w);
        let expected: Vec<(&str, &str)> = vec![
            ("LANDLORD_TENANT", "globex"),
            ("LANDLORD_TENANT_TIER", "dedicated"),
            ("LANDLORD_TENANT_PLAN", "enterprise"),
            ("LANDLORD_DATABASE_HOST", "secret:landlord-database/host"),
            ("LANDLORD_DATABASE_PORT", "secret:landlord-database/port"),
            ("LANDLORD_DATABASE_NAME", "secret:landlord-database/dbname"),
            ("LANDLORD_DATABASE_USER", "secret:landlord-database/user"),
            (
                "LANDLORD_DATABASE_PASSWORD",
                "secret:landlord-database/password",
            ),
            ("LANDLORD_DATABASE_URL", "secret:landlord-database/uri"),
            ("LANDLORD_NATS_URL", "secret:landlord-nats/url"),
            ("LANDLORD_NATS_CREDS", "secret:landlord-nats/creds"),
            ("LANDLORD_TOPICS", "orders,order-events"),
            ("LANDLORD_TOPIC_ORDERS_SUBJECT", "tenant.globex.orders"),
            (
                "LANDLORD_TOPIC_ORDER_EVENTS_SUBJECT",
                "tenant.globex.order-events",
            ),
            (
                "LANDLORD_FLAGS_URL",
                "http://landlord-runtime.tenant-globex.svc:8080",
            ),
            // The Service's env, with the tenant's override of LOG_LEVEL in place.
            ("LOG_LEVEL", "debug"),
            ("REGION", "eu"),
            ("EXTRA", "1"),
        ];
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn only_what_the_service_uses_and_the_tenant_has_is_handed_over() {
        let service = catalog(
            json!({"image": "x", "uses": {"database": true, "topics": true, "flags": false}}),
        );
        let t = tenant(json!({"tier": "dedicated", "services": [{"name": "api"}]}));
        let names: Vec<String> = env_map(&build(&service, &t))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        // No database and no topics on the tenant, flags not used: only the tenant context.
        assert_eq!(
            names,
            [
                "LANDLORD_TENANT",
                "LANDLORD_TENANT_TIER",
                "LANDLORD_TENANT_PLAN"
            ]
        );
        let plan = env_map(&build(&service, &t));
        assert_eq!(plan[2].1, "", "no plan is an empty LANDLORD_TENANT_PLAN");

        let service = catalog(json!({"image": "x"}));
        let names: Vec<String> = env_map(&build(&service, &dedicated()))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert!(
            !names.iter().any(|n| n.starts_with("LANDLORD_DATABASE")
                || n.starts_with("LANDLORD_NATS")
                || n.starts_with("LANDLORD_TOPIC")),
            "{names:?}"
        );
        assert!(
            names.contains(&"LANDLORD_FLAGS_URL".to_string()),
            "flags are used by default"
        );
    }

    #[test]
    fn colliding_topic_variables_keep_the_first_topic() {
        let service = catalog(json!({"image": "x", "uses": {"topics": true}}));
        let t = tenant(
            json!({"tier": "dedicated", "topics": [{"name": "a-b"}, {"name": "a_b"}], "services": [{"name": "api"}]}),
        );
        let env = env_map(&build(&service, &t));
        let subjects: Vec<_> = env
            .iter()
            .filter(|(k, _)| k == "LANDLORD_TOPIC_A_B_SUBJECT")
            .collect();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].1, "tenant.globex.a-b");
    }

    #[test]
    fn the_pool_gets_the_shared_context_and_the_tenant_keys_and_no_tenant_credentials() {
        let service = full_service();
        let w = workload(&service, &Audience::Pool, &owner(), &Config::default());
        assert_eq!(
            w.deployment.metadata.namespace.as_deref(),
            Some("landlord-platform")
        );
        assert_eq!(
            env_map(&w)[..4],
            [
                ("LANDLORD_TENANT_TIER".to_string(), "shared".to_string()),
                (
                    "LANDLORD_TENANT_KEY".to_string(),
                    "secret:landlord-tenant-keys/primary".to_string()
                ),
                (
                    "LANDLORD_TENANT_KEY_SECONDARY".to_string(),
                    "secret?:landlord-tenant-keys/secondary".to_string()
                ),
                (
                    "LANDLORD_FLAGS_URL".to_string(),
                    "http://landlord-runtime.landlord-platform.svc:8080".to_string()
                ),
            ]
        );
        assert!(
            !env_map(&w)
                .iter()
                .any(|(k, _)| k == "LANDLORD_TENANT" || k.starts_with("LANDLORD_DATABASE"))
        );
        assert_eq!(w.deployment.spec.as_ref().and_then(|s| s.replicas), Some(2));
        let labels = w.deployment.labels();
        assert!(!labels.contains_key(labels::TENANT));
        assert_eq!(
            labels.get("landlord.dev/tier").map(String::as_str),
            Some("shared")
        );
    }

    #[test]
    fn a_dedicated_instance_is_named_labelled_and_restricted() {
        let w = build(&full_service(), &dedicated());
        let d = &w.deployment;
        assert_eq!(d.metadata.name.as_deref(), Some("api"));
        assert_eq!(d.metadata.namespace.as_deref(), Some("tenant-globex"));
        assert_eq!(d.metadata.owner_references, Some(vec![owner()]));
        let labels = d.labels();
        assert_eq!(
            labels.get(labels::TENANT).map(String::as_str),
            Some("globex")
        );
        assert_eq!(labels.get(labels::SERVICE).map(String::as_str), Some("api"));
        let spec = d.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(3), "the tenant's override");
        assert_eq!(spec.progress_deadline_seconds, Some(120));
        let rolling = spec
            .strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .expect("rolling update");
        assert_eq!(rolling.max_surge, Some(IntOrString::String("25%".into())));
        assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .expect("pod labels");
        assert_eq!(pod_labels.get("team").map(String::as_str), Some("shop"));
        assert_eq!(
            pod_labels.get(labels::SERVICE).map(String::as_str),
            Some("api"),
            "a pod label cannot override Landlord's"
        );
        for (k, v) in spec.selector.match_labels.as_ref().expect("selector") {
            assert_eq!(pod_labels.get(k), Some(v), "the selector selects the pods");
        }

        let pod = spec.template.spec.as_ref().expect("pod spec");
        let psc = pod.security_context.as_ref().expect("pod security context");
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault")
        );
        assert_eq!(pod.automount_service_account_token, Some(false));
        let c = container(&w);
        let sc = c
            .security_context
            .as_ref()
            .expect("container security context");
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_string()])
        );
        assert_eq!(
            c.image.as_deref(),
            Some("registry.example.com/shop/api:1.4.2")
        );
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .map(|h| h.port.clone()),
            Some(IntOrString::String("http".into()))
        );
        assert_eq!(
            c.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("cpu")),
            Some(&Quantity("100m".into()))
        );

        let svc = w.service.as_ref().expect("a Service for the ports");
        let port = &svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .expect("ports")[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
        assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
        assert_eq!(
            w.disruption_budget
                .spec
                .as_ref()
                .and_then(|s| s.max_unavailable.clone()),
            Some(IntOrString::Int(1))
        );
        assert!(w.autoscaler.is_none());
    }

    #[test]
    fn no_ports_means_no_kubernetes_service() {
        let w = build(&catalog(json!({"image": "worker:1"})), &dedicated());
        assert!(w.service.is_none());
        assert!(container(&w).ports.is_none());
    }

    #[test]
    fn suspension_scales_to_zero_and_drops_the_autoscaler() {
        let service = catalog(json!({
            "image": "x", "resources": {"requests": {"cpu": "100m"}},
            "autoscaling": {"minReplicas": 2, "maxReplicas": 5}
        }));
        let mut t = tenant(json!({"tier": "dedicated", "services": [{"name": "api"}]}));
        let w = build(&service, &t);
        assert_eq!(
            w.deployment.spec.as_ref().and_then(|s| s.replicas),
            None,
            "the autoscaler owns replicas"
        );
        let hpa = w.autoscaler.expect("autoscaler");
        let spec = hpa.spec.expect("hpa spec");
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 5));
        assert_eq!(spec.scale_target_ref.name, "api");

        t.spec.suspended = true;
        let w = build(&service, &t);
        assert_eq!(w.deployment.spec.as_ref().and_then(|s| s.replicas), Some(0));
        assert!(
            w.autoscaler.is_none(),
            "an autoscaler would scale a suspended tenant back up"
        );

        t.spec.suspended = false;
        t.spec.services[0].replicas = Some(4);
        let w = build(&service, &t);
        assert_eq!(w.deployment.spec.as_ref().and_then(|s| s.replicas), Some(4));
        assert!(
            w.autoscaler.is_none(),
            "an explicit tenant replica count pins the tenant"
        );
    }

    #[test]
    fn validation_names_the_field() {
        assert!(validate(&full_service().spec).is_ok());
        let both_zero =
            catalog(json!({"image": "x", "rollout": {"maxSurge": "0%", "maxUnavailable": "0"}}));
        assert!(
            validate(&both_zero.spec)
                .expect_err("both zero")
                .starts_with("spec.rollout")
        );
        let bad_probe = catalog(
            json!({"image": "x", "ports": [{"name": "http", "port": 80}], "livenessProbe": {"path": "/", "port": "admin"}}),
        );
        assert!(
            validate(&bad_probe.spec)
                .expect_err("probe")
                .starts_with("spec.livenessProbe.port")
        );
        let blind =
            catalog(json!({"image": "x", "autoscaling": {"minReplicas": 1, "maxReplicas": 2}}));
        assert!(
            validate(&blind.spec)
                .expect_err("hpa")
                .starts_with("spec.autoscaling")
        );
    }

    #[test]
    fn a_catalog_change_changes_every_instance_the_same_way() {
        let t = dedicated();
        let before = build(&full_service(), &t);
        let mut changed = full_service();
        changed.spec.image = "registry.example.com/shop/api:1.5.0".into();
        let after = build(&changed, &t);
        assert_eq!(
            container(&after).image.as_deref(),
            Some("registry.example.com/shop/api:1.5.0")
        );
        let pool = workload(&changed, &Audience::Pool, &owner(), &Config::default());
        assert_eq!(container(&pool).image, container(&after).image);
        assert_ne!(before.deployment, after.deployment);
        assert_eq!(before.service, after.service);
    }
}

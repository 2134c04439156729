//! `tenant-runtime` as data: the objects of one instance (ServiceAccount, a Role that reads
//! its namespace's ConfigMaps, Deployment, Service `landlord-runtime:8080`), dedicated (in a
//! tenant's namespace) or pooled (in the platform namespace, serving every shared tenant),
//! and the URL a tenant's services reach it at. Pure: the Tenant controller's runtime part
//! (`tenant::runtime`) and the pool loop apply them.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        core::v1::{
            Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
            PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Service, ServiceAccount,
            ServicePort, ServiceSpec,
        },
        rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use kube::ResourceExt;
use landlord_crds::{Tenant, tenant::Tier};

use crate::{config::Config, labels};

/// Name of every object of a runtime instance (Deployment, Service, ServiceAccount, Role).
pub const NAME: &str = "landlord-runtime";
/// Port of the OFREP API, `/v1/tenant`, the probes and `/metrics`.
pub const PORT: i32 = 8080;
/// `landlord.dev/component` of the runtime's objects.
pub const COMPONENT: &str = "runtime";

/// The base URL of the OFREP server a tenant's services use (`LANDLORD_FLAGS_URL`).
pub fn flags_url(tenant: &Tenant, config: &Config) -> String {
    let namespace = match tenant.spec.tier {
        Tier::Dedicated => tenant.namespace_name(),
        Tier::Shared => config.platform_namespace.clone(),
    };
    format!("http://{NAME}.{namespace}.svc:{PORT}")
}

/// The objects of one runtime instance.
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeStack {
    pub service_account: ServiceAccount,
    /// Reads the tenant namespace's ConfigMaps (dedicated only; the pool's rights are a
    /// ClusterRole in the chart).
    pub role: Option<Role>,
    pub role_binding: Option<RoleBinding>,
    pub deployment: Deployment,
    pub service: Service,
}

fn selector() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), NAME.to_string()),
        ("landlord.dev/component".to_string(), COMPONENT.to_string()),
    ])
}

/// The dedicated instance of a tenant, in its namespace.
pub fn dedicated(tenant: &Tenant, owner: &OwnerReference, config: &Config) -> RuntimeStack {
    let ns = tenant.namespace_name();
    let mut object_labels = labels::tenant_labels(&tenant.name_any());
    object_labels.extend(selector());
    let meta = ObjectMeta {
        name: Some(NAME.into()),
        namespace: Some(ns.clone()),
        labels: Some(object_labels.clone()),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    };
    let replicas = if tenant.spec.suspended { 0 } else { 1 };
    let args = vec![
        "--tenant".to_string(),
        tenant.name_any(),
        "--log-format=json".to_string(),
    ];
    let resources = resources("10m", "32Mi", "200m", "64Mi");
    let env = vec![pod_namespace()];
    RuntimeStack {
        service_account: service_account(meta.clone()),
        role: Some(Role {
            metadata: meta.clone(),
            // Watching needs list and watch on the collection; ConfigMaps cannot be narrowed
            // by label in RBAC, so the Role covers the namespace's ConfigMaps, read-only.
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["configmaps".into()]),
                verbs: vec!["get".into(), "list".into(), "watch".into()],
                ..Default::default()
            }]),
        }),
        role_binding: Some(RoleBinding {
            metadata: meta.clone(),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: NAME.into(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: NAME.into(),
                namespace: Some(ns),
                ..Default::default()
            }]),
        }),
        deployment: {
            let mut deployment = deployment(
                meta.clone(),
                object_labels,
                &config.runtime_image,
                args,
                env,
                replicas,
                resources,
            );
            // The dedicated instance runs in the tenant's namespace, where the tenant's
            // placement holds; the pooled one, in the platform's, keeps the kubelet's
            // default pull policy.
            if let Some(pod) = deployment
                .spec
                .as_mut()
                .and_then(|s| s.template.spec.as_mut())
            {
                if config.image_pull_policy_always {
                    crate::pod_security::pull_always(pod);
                }
                crate::scheduling::place(pod, tenant);
            }
            deployment
        },
        service: service(meta),
    }
}

/// The pooled instance for every shared-tier tenant, in the platform namespace.
pub fn pooled(config: &Config) -> RuntimeStack {
    let mut object_labels = BTreeMap::from([(
        labels::MANAGED_BY_KEY.to_string(),
        labels::MANAGED_BY.to_string(),
    )]);
    object_labels.extend(selector());
    let meta = ObjectMeta {
        name: Some(NAME.into()),
        namespace: Some(config.platform_namespace.clone()),
        labels: Some(object_labels.clone()),
        ..Default::default()
    };
    // Memory grows with the number of shared tenants (their ConfigMaps are cached).
    let resources = resources("50m", "64Mi", "1", "512Mi");
    // The keys it checks the routes' tenant assertions with (it refuses to start without).
    let mut env = vec![pod_namespace()];
    env.extend(crate::pool::key_env());
    let mut deployment = deployment(
        meta.clone(),
        object_labels,
        &config.runtime_image,
        vec!["--log-format=json".to_string()],
        env,
        2,
        resources,
    );
    if let Some(pod) = deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
    {
        crate::scheduling::place_at(pod, &config.pool_placement);
    }
    RuntimeStack {
        service_account: service_account(meta.clone()),
        role: None,
        role_binding: None,
        deployment,
        service: service(meta),
    }
}

fn service_account(metadata: ObjectMeta) -> ServiceAccount {
    ServiceAccount {
        metadata,
        ..Default::default()
    }
}

fn resources(cpu: &str, memory: &str, cpu_limit: &str, memory_limit: &str) -> ResourceRequirements {
    let pair = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])
    };
    ResourceRequirements {
        requests: Some(pair(cpu, memory)),
        limits: Some(pair(cpu_limit, memory_limit)),
        ..Default::default()
    }
}

fn pod_namespace() -> EnvVar {
    EnvVar {
        name: "POD_NAMESPACE".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.namespace".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn http_probe(path: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        ..Default::default()
    }
}

fn deployment(
    metadata: ObjectMeta,
    pod_labels: BTreeMap<String, String>,
    image: &str,
    args: Vec<String>,
    env: Vec<EnvVar>,
    replicas: i32,
    resources: ResourceRequirements,
) -> Deployment {
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector()),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                ..Default::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.into()),
                    // The restricted Pod Security Standard.
                    security_context: Some(crate::pod_security::pod(65532)),
                    containers: vec![Container {
                        name: "tenant-runtime".into(),
                        image: Some(image.into()),
                        args: Some(args),
                        env: Some(env),
                        ports: Some(vec![ContainerPort {
                            name: Some("http".into()),
                            container_port: PORT,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        }]),
                        readiness_probe: Some(http_probe("/readyz", 5)),
                        liveness_probe: Some(http_probe("/healthz", 10)),
                        resources: Some(resources),
                        security_context: Some(crate::pod_security::container()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service(metadata: ObjectMeta) -> Service {
    Service {
        metadata,
        spec: Some(ServiceSpec {
            selector: Some(selector()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: PORT,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether a Deployment has rolled out its current spec and is Available.
pub fn available(deployment: &Deployment) -> bool {
    let generation = deployment.metadata.generation;
    deployment.status.as_ref().is_some_and(|status| {
        status.observed_generation >= generation
            && status
                .conditions
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True")
    })
}

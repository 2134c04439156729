//! The in-cluster objects of a tenant's database: the credentials Secret of a shared-tier
//! tenant, and the whole server of a dedicated one. Pure.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::{StatefulSet, StatefulSetSpec},
        core::v1::{
            ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
            EnvVar, EnvVarSource, ExecAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
            PodSecurityContext, PodSpec, PodTemplateSpec, Probe, Secret, SecretKeySelector,
            Service, ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use kube::ResourceExt;
use landlord_crds::Tenant;

use super::{config::DatabaseConfig, identifier::Names};
use crate::labels::child_meta;

/// Names of the database objects in a tenant's namespace.
pub mod names {
    /// Credentials the tenant's services use (keys host, port, dbname, user, password, uri).
    pub const SECRET: &str = "landlord-database";
    /// Dedicated tier: the server's superuser and the verifier of the tenant role.
    pub const SERVER_SECRET: &str = "landlord-postgres-admin";
    /// Dedicated tier: the StatefulSet, its Service and its pods' label.
    pub const SERVER: &str = "landlord-postgres";
    /// Dedicated tier: the first-start script that creates the tenant's role and database.
    pub const INIT: &str = "landlord-postgres-init";
    /// Dedicated tier: the volume claim template (PVC `data-landlord-postgres-0`).
    pub const VOLUME: &str = "data";
}

/// Annotation on the credentials Secret: the value of the Tenant's rotation annotation its
/// password was made for.
pub const ROTATION: &str = "landlord.dev/rotation";
/// Annotation on a Tenant: change its value to rotate the database password.
pub const ROTATE_PASSWORD: &str = "landlord.dev/rotate-database-password";

/// Where and how a tenant's services connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub ssl_mode: String,
}

fn bytes(map: BTreeMap<&str, String>) -> BTreeMap<String, ByteString> {
    map.into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
        .collect()
}

/// The credentials Secret: host, port, dbname, user, password and a ready-made uri.
pub fn credentials(
    tenant: &Tenant,
    owner: &OwnerReference,
    names: &Names,
    endpoint: &Endpoint,
    password: &str,
    rotation: &str,
) -> Secret {
    let mut metadata = child_meta(tenant, owner, names::SECRET);
    metadata.annotations = Some(BTreeMap::from([(
        ROTATION.to_string(),
        rotation.to_string(),
    )]));
    let uri = format!(
        "postgresql://{}:{password}@{}:{}/{}?sslmode={}",
        names.role, endpoint.host, endpoint.port, names.database, endpoint.ssl_mode
    );
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(bytes(BTreeMap::from([
            ("host", endpoint.host.clone()),
            ("port", endpoint.port.to_string()),
            ("dbname", names.database.clone()),
            ("user", names.role.clone()),
            ("password", password.to_string()),
            ("uri", uri),
        ]))),
        ..Default::default()
    }
}

/// A key of a Secret as text.
pub fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
}

/// The objects of a dedicated tenant's own PostgreSQL server.
pub struct DedicatedServer {
    pub server_secret: Secret,
    pub init: ConfigMap,
    pub service: Service,
    pub stateful_set: StatefulSet,
}

/// Endpoint of a dedicated server, inside the cluster.
pub fn dedicated_endpoint(tenant: &Tenant) -> Endpoint {
    Endpoint {
        host: format!("{}.{}.svc", names::SERVER, tenant.namespace_name()),
        port: 5432,
        // In-namespace traffic to a server without certificates.
        ssl_mode: "disable".into(),
    }
}

/// The server's first-start script: creates the tenant role from its verifier (so the
/// password never reaches the server's log) and a database it owns, closed to PUBLIC.
const INIT_SCRIPT: &str = r#"#!/bin/sh
# Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v role="$LANDLORD_ROLE" -v verifier="$LANDLORD_ROLE_VERIFIER" <<'SQL'
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'verifier';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
for extension in $LANDLORD_EXTENSIONS; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$LANDLORD_ROLE" \
    -c "CREATE EXTENSION IF NOT EXISTS \"$extension\""
done
"#;

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// The labels of a tenant's dedicated server pods (its StatefulSet's and Service's
/// selector).
pub fn server_selector(tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "postgres".to_string()),
        (crate::labels::TENANT.to_string(), tenant.to_string()),
    ])
}

/// The `restricted` Pod Security Standard for the postgres image (uid 999 is its
/// `postgres` user; the data volume is made group-writable through fsGroup; the image's
/// entrypoint gives the data directory back its 0700 at every start, as upstream's does).
fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        fs_group: Some(999),
        // The volume's ownership is set once, not walked at every start (a large data
        // directory would delay each restart).
        fs_group_change_policy: Some("OnRootMismatch".into()),
        ..crate::pod_security::pod(999)
    }
}

/// What the caller of [`dedicated`] decides and keeps across reconciles.
pub struct ServerInputs<'a> {
    /// PostgreSQL major version, the image's tag (see `dedicated::version`).
    pub version: &'a str,
    /// The `postgres` superuser's password, generated once.
    pub superuser_password: &'a str,
    /// SCRAM verifier of the tenant role's password, generated once (and again when the
    /// password is rotated; the first-start script reads it only once).
    pub verifier: &'a str,
    /// Extensions the first-start script creates, space separated: `spec.database.extensions`
    /// for a new server, the live StatefulSet's for a running one (see
    /// `dedicated::first_start_extensions`), so that a change does not restart the server.
    pub first_start_extensions: &'a str,
}

/// The dedicated server. `pull_always` is the operator's `--image-pull-policy-always` (the
/// server runs in the tenant's namespace). The volume claim template asks for
/// `spec.database.storage` (or the operator's default); once the StatefulSet exists its
/// template is immutable and the claim itself is grown (see `dedicated::volume`).
pub fn dedicated(
    tenant: &Tenant,
    owner: &OwnerReference,
    names: &Names,
    config: &DatabaseConfig,
    inputs: &ServerInputs<'_>,
    pull_always: bool,
) -> DedicatedServer {
    let database = tenant.spec.database.clone().unwrap_or_default();
    let ServerInputs {
        version,
        superuser_password,
        verifier,
        first_start_extensions,
    } = *inputs;
    let storage = database
        .storage
        .clone()
        .unwrap_or_else(|| Quantity(config.default_storage.clone()));
    let selector = server_selector(&tenant.name_any());
    let mut pod_labels = crate::labels::tenant_labels(&tenant.name_any());
    pod_labels.extend(selector.clone());

    let server_secret = Secret {
        metadata: child_meta(tenant, owner, names::SERVER_SECRET),
        type_: Some("Opaque".into()),
        data: Some(bytes(BTreeMap::from([
            ("username", "postgres".to_string()),
            ("password", superuser_password.to_string()),
            ("role-verifier", verifier.to_string()),
        ]))),
        ..Default::default()
    };

    let init = ConfigMap {
        metadata: child_meta(tenant, owner, names::INIT),
        data: Some(BTreeMap::from([(
            "10-landlord-tenant.sh".to_string(),
            INIT_SCRIPT.to_string(),
        )])),
        ..Default::default()
    };

    let service = Service {
        metadata: child_meta(tenant, owner, names::SERVER),
        spec: Some(ServiceSpec {
            selector: Some(selector.clone()),
            ports: Some(vec![ServicePort {
                name: Some("postgres".into()),
                port: 5432,
                target_port: Some(IntOrString::String("postgres".into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };

    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    };
    let empty_dir = |name: &str| Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    };
    let container = Container {
        name: "postgres".into(),
        image: Some(format!("{}:{version}", config.postgres_image)),
        ports: Some(vec![ContainerPort {
            name: Some("postgres".into()),
            container_port: 5432,
            ..Default::default()
        }]),
        env: Some(vec![
            env("POSTGRES_USER", "postgres"),
            secret_env("POSTGRES_PASSWORD", names::SERVER_SECRET, "password"),
            env("POSTGRES_INITDB_ARGS", "--auth=scram-sha-256"),
            env("PGDATA", "/var/lib/postgresql/data/pgdata"),
            env("LANDLORD_ROLE", &names.role),
            // Checked against the allowlist before the server is built.
            env("LANDLORD_EXTENSIONS", first_start_extensions),
            secret_env(
                "LANDLORD_ROLE_VERIFIER",
                names::SERVER_SECRET,
                "role-verifier",
            ),
        ]),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec![
                    "pg_isready".into(),
                    "-h".into(),
                    "127.0.0.1".into(),
                    "-U".into(),
                    "postgres".into(),
                ]),
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        security_context: Some(crate::pod_security::container()),
        volume_mounts: Some(vec![
            mount(names::VOLUME, "/var/lib/postgresql/data"),
            mount("run", "/var/run/postgresql"),
            mount("tmp", "/tmp"),
            mount("init", "/docker-entrypoint-initdb.d"),
        ]),
        ..Default::default()
    };
    let mut stateful_set = StatefulSet {
        metadata: child_meta(tenant, owner, names::SERVER),
        spec: Some(StatefulSetSpec {
            // Suspension stops the server; the volume and its data stay.
            replicas: Some(if tenant.spec.suspended { 0 } else { 1 }),
            service_name: Some(names::SERVER.into()),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(pod_security()),
                    containers: vec![container],
                    volumes: Some(vec![
                        empty_dir("run"),
                        empty_dir("tmp"),
                        Volume {
                            name: "init".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: names::INIT.into(),
                                default_mode: Some(0o555),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(names::VOLUME.into()),
                    labels: Some(crate::labels::tenant_labels(&tenant.name_any())),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    storage_class_name: database.storage_class_name.clone(),
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([("storage".to_string(), storage)])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Some(pod) = stateful_set
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
    {
        if pull_always {
            crate::pod_security::pull_always(pod);
        }
        crate::scheduling::place(pod, tenant);
    }
    DedicatedServer {
        server_secret,
        init,
        service,
        stateful_set,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dedicated_server_pulls_always_only_when_the_operator_says_so() {
        let mut tenant: Tenant = serde_json::from_value(serde_json::json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme"},
            "spec": {"tier": "dedicated", "database": {"enabled": true}},
        }))
        .expect("tenant fixture");
        tenant.metadata.uid = Some("uid-1".into());
        let owner = crate::tenant::desired::owner_reference(&tenant).expect("uid");
        let names = Names::for_tenant("acme").expect("a valid name");
        let policy = |always: bool| {
            let server = dedicated(
                &tenant,
                &owner,
                &names,
                &DatabaseConfig::default(),
                &ServerInputs {
                    version: "16",
                    superuser_password: "secret",
                    verifier: "verifier",
                    first_start_extensions: "",
                },
                always,
            );
            let pod = server
                .stateful_set
                .spec
                .and_then(|s| s.template.spec)
                .expect("pod spec");
            pod.containers[0].image_pull_policy.clone()
        };
        assert_eq!(policy(true).as_deref(), Some("Always"));
        assert_eq!(policy(false), None);
    }
}

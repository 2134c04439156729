//! The operator's own access to Secrets: the RoleBinding it writes in each namespace where it
//! keeps Secrets (tenant namespaces and the platform namespace), and the wait until the API
//! server's authorizer honours it. Used by the Tenant controller's namespace part and by the
//! pool loop.

use k8s_openapi::{
    api::{
        core::v1::Secret,
        rbac::v1::{RoleBinding, RoleRef, Subject as RbacSubject},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::Api;
use tracing::warn;

use crate::{Context, config::Config};

/// Name of the binding in every namespace where the operator keeps Secrets.
pub const BINDING: &str = "landlord-operator";

/// The RoleBinding `landlord-operator` of a namespace where the operator keeps Secrets: the
/// Secrets ClusterRole (`Config::secrets_cluster_role`) for the operator's own
/// ServiceAccount. None when the operator runs as a user. `metadata` names the binding
/// [`BINDING`] in that namespace.
pub fn binding(metadata: ObjectMeta, config: &Config) -> Option<RoleBinding> {
    let account = config.service_account.as_ref()?;
    Some(RoleBinding {
        metadata,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: config.secrets_cluster_role.clone(),
        },
        subjects: Some(vec![RbacSubject {
            api_group: Some(String::new()),
            kind: "ServiceAccount".into(),
            name: account.name.clone(),
            namespace: Some(account.namespace.clone()),
        }]),
    })
}

/// Waits, up to 10 s, until the operator may read Secrets in `namespace` after it wrote the
/// RoleBinding that lets it: the API server's authorizer learns of a binding from its own
/// watch, a moment after the write. Without the wait the next Secret read could be refused
/// and reported as `Forbidden`, which is not retried until the slow resync.
pub async fn await_access(ctx: &Context, namespace: &str) {
    let api = Api::<Secret>::namespaced(ctx.client.clone(), namespace);
    for _ in 0..100 {
        match api.get_metadata_opt(BINDING).await {
            Err(kube::Error::Api(status)) if status.code == 403 => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            _ => return,
        }
    }
    warn!(
        namespace,
        "the operator's Secrets binding did not take effect within 10s"
    );
}

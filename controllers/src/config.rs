//! Operator configuration that the controllers read (the operator binary fills it from its
//! flags and environment).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::database::DatabaseConfig;

/// What the controllers need to know about the platform they run in.
#[derive(Clone, Debug)]
pub struct Config {
    /// Namespace of the catalog Services and platform FeatureFlagSets.
    pub platform_namespace: String,
    /// Namespace of the platform's ingress gateway; tenant namespaces admit ingress from it.
    pub gateway_namespace: String,
    /// Namespace of the cluster DNS (egress to it is allowed on port 53).
    pub dns_namespace: String,
    /// Container defaults of a tenant's LimitRange when its spec sets none.
    pub default_request_cpu: String,
    pub default_request_memory: String,
    pub default_limit_cpu: String,
    pub default_limit_memory: String,
    /// Reconciles run at once per controller.
    pub concurrency: u16,
    /// Shared PostgreSQL servers, the extension allowlist and dedicated-server defaults.
    pub database: DatabaseConfig,
    /// Image of tenant-runtime (the OFREP flag server) that Landlord deploys.
    pub runtime_image: String,
    /// The NATS server of the tenants' topics; None when the operator runs without one
    /// (tenants with topics then report `NatsNotConfigured`).
    pub nats: Option<crate::nats::NatsConfig>,
    /// Domain verification, routing and TLS.
    pub domains: crate::domain::config::DomainConfig,
    /// Every pod Landlord builds in a tenant namespace pulls its images with `Always`, so
    /// that the registry checks the pulling pod's credentials each time and no tenant runs a
    /// private image another tenant's pod left on the node (`--image-pull-policy-always`).
    pub image_pull_policy_always: bool,
    /// The ClusterRole (Secrets: get, list, watch, create, update, patch, delete) the operator
    /// binds to its own ServiceAccount in each namespace where it keeps Secrets: tenant
    /// namespaces and the platform namespace. The chart binds it in the operator's own
    /// namespace (database admin Secrets) and nowhere cluster-wide, so the operator reads no
    /// Secret outside those namespaces (`--secrets-cluster-role`).
    pub secrets_cluster_role: String,
    /// The ServiceAccount the operator runs as, asked of the API server at startup
    /// (SelfSubjectReview); None when it runs as a user (a developer's kubeconfig), which
    /// needs no bindings.
    pub service_account: Option<ServiceAccountName>,
    /// Webhook delivery; None when the operator has no outbox database (endpoints then
    /// report `WebhooksNotConfigured`).
    pub webhooks: Option<crate::webhooks::WebhookConfig>,
    /// Where the operator's connections to a dedicated tenant's PostgreSQL come from when it
    /// runs outside the cluster (CIDRs; `--operator-source-cidrs`). Inside, its own namespace
    /// ([`Config::service_account`]) is admitted instead.
    pub operator_source_cidrs: Vec<String>,
    /// Where the platform namespace's shared workloads run (the pool's service instances
    /// and the pooled tenant-runtime): the Tenant's `spec.placement` shape, chosen by the
    /// platform (`--pool-node-selector`, `--pool-tolerations`). Empty: anywhere.
    pub pool_placement: landlord_crds::tenant::Placement,
}

/// Where tenants' pods reach a platform service they use outside their own namespace (a
/// shared PostgreSQL server, the NATS server), for the egress NetworkPolicy of tenants with
/// `Strict` isolation: the namespace it runs in (narrowed to its pods by `pod_selector`),
/// and the CIDRs of its addresses (for a service outside the cluster). Both empty: such
/// tenants' pods cannot reach it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkLocation {
    /// Namespace the service's pods run in.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels of the service's pods in `namespace` (a `matchLabels` selector). Empty: every
    /// pod of the namespace.
    #[serde(default)]
    pub pod_selector: BTreeMap<String, String>,
    /// Addresses of the service, as CIDRs (`10.0.5.7/32`, `2001:db8::/64`).
    #[serde(default)]
    pub cidrs: Vec<String>,
}

impl NetworkLocation {
    /// What is wrong with it, as (field, why), if anything: a namespace that is not a DNS
    /// label, a pod selector without a namespace (it would select the tenant's own pods) or
    /// with a key or value that is not a label's, or an entry of `cidrs` that is not a CIDR
    /// (see [`is_cidr`]). Each would make every NetworkPolicy built from it invalid or wrong.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if let Some(namespace) = self.namespace.as_deref().filter(|n| !is_dns_label(n)) {
            return Some(("namespace", format!("{namespace:?} is not a DNS label")));
        }
        if !self.pod_selector.is_empty() && self.namespace.is_none() {
            return Some((
                "podSelector",
                "selects pods of a namespace: needs namespace".into(),
            ));
        }
        if let Some((key, value)) = self
            .pod_selector
            .iter()
            .find(|(key, value)| !is_label_key(key) || !is_label_value(value))
        {
            return Some((
                "podSelector",
                format!("{key:?}: {value:?} is not a label (key and value)"),
            ));
        }
        self.cidrs.iter().find(|cidr| !is_cidr(cidr)).map(|cidr| {
            (
                "cidrs",
                format!("{cidr:?} is not a CIDR such as 10.0.0.0/8"),
            )
        })
    }
}

/// A label name: at most 63 alphanumerics, '-', '_' or '.', beginning and ending with an
/// alphanumeric.
fn is_label_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `key` is a label key: an optional DNS subdomain prefix (at most 253 characters)
/// and '/', then a name (at most 63 alphanumerics, '-', '_' or '.', beginning and ending
/// with an alphanumeric).
pub fn is_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => {
            prefix.len() <= 253 && prefix.split('.').all(is_dns_label) && is_label_name(name)
        }
        None => is_label_name(key),
    }
}

/// Whether `value` is a label value: empty, or a name as in [`is_label_key`].
pub fn is_label_value(value: &str) -> bool {
    value.is_empty() || is_label_name(value)
}

/// Whether `name` is a DNS label (RFC 1123: at most 63 lowercase letters, digits and `-`,
/// neither first nor last), what namespace names are.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `cidr` is an address and a prefix length that fits it (`10.0.0.0/8`,
/// `2001:db8::/32`): what a NetworkPolicy's `ipBlock.cidr` takes.
pub fn is_cidr(cidr: &str) -> bool {
    cidr.split_once('/')
        .and_then(|(address, length)| {
            let address: std::net::IpAddr = address.parse().ok()?;
            // Digits only: `u8::from_str` takes a leading `+`, which the API server does not.
            if length.is_empty() || !length.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let length: u8 = length.parse().ok()?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            (length <= max).then_some(())
        })
        .is_some()
}

/// A ServiceAccount's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountName {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccountName {
    /// The account of a Kubernetes username, `system:serviceaccount:<namespace>:<name>`.
    pub fn from_username(username: &str) -> Option<Self> {
        let (namespace, name) = username
            .strip_prefix("system:serviceaccount:")?
            .split_once(':')?;
        (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then(|| Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            platform_namespace: "landlord-platform".into(),
            gateway_namespace: "landlord-gateway".into(),
            dns_namespace: "kube-system".into(),
            default_request_cpu: "100m".into(),
            default_request_memory: "128Mi".into(),
            default_limit_cpu: "1".into(),
            default_limit_memory: "512Mi".into(),
            concurrency: 16,
            database: DatabaseConfig::default(),
            runtime_image: "ghcr.io/landlord-dev/tenant-runtime:0.1.0".into(),
            nats: None,
            webhooks: None,
            domains: Default::default(),
            image_pull_policy_always: true,
            secrets_cluster_role: "landlord-secrets".into(),
            service_account: None,
            operator_source_cidrs: Vec::new(),
            pool_placement: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_account_is_read_from_its_username_and_a_user_is_not_one() {
        assert_eq!(
            ServiceAccountName::from_username("system:serviceaccount:landlord-system:landlord"),
            Some(ServiceAccountName {
                namespace: "landlord-system".into(),
                name: "landlord".into()
            })
        );
        for user in [
            "kubernetes-admin",
            "system:serviceaccount:landlord-system",
            "system:serviceaccount::landlord",
            "system:serviceaccount:a:b:c",
            "system:node:worker-1",
        ] {
            assert_eq!(ServiceAccountName::from_username(user), None, "{user}");
        }
    }
}

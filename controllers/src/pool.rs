//! The walls around the shared pool in the platform namespace: who may reach it, and how it
//! knows which tenant a request is for.
//!
//! - NetworkPolicies: the pool Services' pods (`landlord.dev/service`) and the pooled
//!   tenant-runtime accept ingress only from the gateway's namespace and from pool pods. A
//!   pod of a tenant whose egress is open (`IngressOnly`, broad `allowedPeers`, dedicated
//!   tenants) or of any other namespace cannot reach them, where the CNI enforces
//!   NetworkPolicy.
//! - The tenant key: Secret `landlord-tenant-keys` in the platform namespace, with a
//!   `primary` key that shared tenants' routes are signed with and an optional `secondary`
//!   one also accepted during a rotation. A shared tenant's HTTPRoute sends
//!   `X-Landlord-Tenant-Assertion: v1.<base64url HMAC-SHA256(key, "landlord-tenant-assertion/v1:" + tenant)>`
//!   beside `X-Landlord-Tenant`; the pooled runtime and pool services built on `TenantLayer`
//!   refuse a tenant without it, so a caller who reaches the pool anyway cannot name another
//!   tenant. The operator creates the Secret with a random primary key when it is missing and
//!   never changes it afterwards: rotating is the platform admin's edit (README, Security
//!   model). Tenants cannot read the platform namespace; a tenant can read its own HTTPRoute
//!   and so its own assertion, which only says what it already is.
//!
//! The builders are pure; [`ensure`] is the I/O, run with the pooled runtime's loop, whose
//! last outcome is kept in [`Health`]: a failure there (a quota in the platform namespace, a
//! refused object, missing rights) is what every shared tenant's `RuntimeReady` reports,
//! since the pool serves them all.

use landlord_crds::conditions::Reason;
use std::collections::BTreeMap;

use landlord_crds::conditions::Observation;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use k8s_openapi::{
    ByteString,
    api::{
        core::v1::{EnvVar, EnvVarSource, Secret, SecretKeySelector},
        networking::v1::{
            NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
        },
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta},
};
use kube::{Api, ResourceExt};
use sha2::Sha256;
use tracing::info;

use crate::{
    Context,
    apply::{self, EnsureError, Outcome},
    config::Config,
    labels,
    tenant::error::{Error, Result},
};

/// The Secret of the tenant keys, in the platform namespace.
pub const KEYS_SECRET: &str = "landlord-tenant-keys";
/// Key of the Secret that routes are signed with.
pub const PRIMARY: &str = "primary";
/// Key of the Secret that is also accepted (during a rotation).
pub const SECONDARY: &str = "secondary";
/// The header a shared tenant's route adds beside `X-Landlord-Tenant`.
pub const ASSERTION_HEADER: &str = "X-Landlord-Tenant-Assertion";
/// Environment variables of the keys in the pool's containers (read by
/// `tenant_runtime::TenantKeys::from_env`).
pub const KEY_ENV: &str = "LANDLORD_TENANT_KEY";
pub const SECONDARY_KEY_ENV: &str = "LANDLORD_TENANT_KEY_SECONDARY";
/// The shortest key that signs, in bytes (the pool refuses shorter ones too).
pub const MIN_KEY_BYTES: usize = 32;
/// NetworkPolicy of the pool Services' pods.
pub const POOL_POLICY: &str = "landlord-pool";
/// NetworkPolicy of the pooled tenant-runtime.
pub const RUNTIME_POLICY: &str = "landlord-runtime";
const MANAGER: &str = "landlord/pool-walls";
const ASSERTION_CONTEXT: &str = "landlord-tenant-assertion/v1:";
/// Bytes of randomness in a generated key (base64url: 43 characters).
const GENERATED_KEY_BYTES: usize = 32;

/// The assertion of `tenant` under `key`: `v1.<base64url HMAC-SHA256>`. The pool checks it
/// with its own implementation (`tenant_runtime::assertion`); both pin the same test vector.
pub fn assertion(key: &[u8], tenant: &str) -> String {
    // HMAC takes keys of any length; the error case cannot happen.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(ASSERTION_CONTEXT.as_bytes());
    mac.update(tenant.as_bytes());
    format!("v1.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Why routes cannot be signed: the message names the Secret and the key, never a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyProblem {
    /// The Secret does not exist (yet: the operator creates it).
    Missing { namespace: String },
    /// The Secret has no `primary` key, or one shorter than 32 bytes.
    Unusable { namespace: String },
}

impl KeyProblem {
    /// The CamelCase reason of the condition that reports it.
    pub fn reason(&self) -> Reason {
        match self {
            KeyProblem::Missing { .. } => Reason::TenantKeyMissing,
            KeyProblem::Unusable { .. } => Reason::TenantKeyInvalid,
        }
    }

    pub fn message(&self) -> String {
        match self {
            KeyProblem::Missing { namespace } => format!(
                "Secret {namespace}/{KEYS_SECRET}, whose key signs shared tenants' routes, does not exist (the operator creates it)"
            ),
            KeyProblem::Unusable { namespace } => format!(
                "Secret {namespace}/{KEYS_SECRET} needs a key {PRIMARY:?} of at least {MIN_KEY_BYTES} bytes to sign shared tenants' routes"
            ),
        }
    }
}

/// The key routes are signed with, from the live Secret.
pub fn signing_key(secret: Option<&Secret>, namespace: &str) -> Result<Vec<u8>, KeyProblem> {
    let secret = secret.ok_or_else(|| KeyProblem::Missing {
        namespace: namespace.into(),
    })?;
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(PRIMARY))
        .map(|key| key.0.clone())
        .filter(|key| key.len() >= MIN_KEY_BYTES)
        .ok_or_else(|| KeyProblem::Unusable {
            namespace: namespace.into(),
        })
}

/// A new Secret of tenant keys with `primary` as its primary key.
pub fn keys_secret(config: &Config, primary: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(KEYS_SECRET.into()),
            namespace: Some(config.platform_namespace.clone()),
            labels: Some(managed_labels()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            PRIMARY.to_string(),
            ByteString(primary.as_bytes().to_vec()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// A random key: 256 bits, base64url (usable as an environment variable's value).
pub fn generate_key() -> std::result::Result<String, getrandom::Error> {
    let mut bytes = [0u8; GENERATED_KEY_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The keys in a pool container's environment: Secret references, never values. The
/// secondary one is optional (present only during a rotation).
pub fn key_env() -> Vec<EnvVar> {
    let var = |name: &str, key: &str, optional: bool| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: KEYS_SECRET.into(),
                key: key.into(),
                optional: Some(optional),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    vec![
        var(KEY_ENV, PRIMARY, false),
        var(SECONDARY_KEY_ENV, SECONDARY, true),
    ]
}

fn managed_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(
        labels::MANAGED_BY_KEY.to_string(),
        labels::MANAGED_BY.to_string(),
    )])
}

/// Pods of the platform namespace that belong to a pool (any catalog Service's).
fn pool_pods() -> LabelSelector {
    LabelSelector {
        match_labels: Some(managed_labels()),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: labels::SERVICE.into(),
            operator: "Exists".into(),
            values: None,
        }]),
    }
}

/// The pooled tenant-runtime's pods.
fn runtime_pods() -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([
            (
                "app.kubernetes.io/name".to_string(),
                crate::runtime::NAME.to_string(),
            ),
            (
                labels::COMPONENT.to_string(),
                crate::runtime::COMPONENT.to_string(),
            ),
        ])),
        ..Default::default()
    }
}

/// The NetworkPolicies of the platform namespace: the pool's pods and the pooled runtime
/// accept ingress from the gateway's namespace and from pool pods, on any port (each catalog
/// Service declares its own), and from nothing else.
pub fn network_policies(config: &Config) -> Vec<NetworkPolicy> {
    let from = vec![NetworkPolicyIngressRule {
        from: Some(vec![
            NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        "kubernetes.io/metadata.name".to_string(),
                        config.gateway_namespace.clone(),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            },
            // A podSelector alone: pods of this (the platform) namespace only.
            NetworkPolicyPeer {
                pod_selector: Some(pool_pods()),
                ..Default::default()
            },
        ]),
        ports: None,
    }];
    let policy = |name: &str, pods: LabelSelector| NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(config.platform_namespace.clone()),
            labels: Some(managed_labels()),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(from.clone()),
            egress: None,
        }),
    };
    vec![
        policy(POOL_POLICY, pool_pods()),
        policy(RUNTIME_POLICY, runtime_pods()),
    ]
}

/// Keeps the platform namespace's walls in place: binds the operator's Secrets role there
/// (RoleBinding `landlord-operator`), creates the tenant keys' Secret when it is missing
/// (never rewrites it) and applies the NetworkPolicies on drift. Nothing is written at rest.
pub async fn ensure(ctx: &Context) -> Result<()> {
    let ns = &ctx.config.platform_namespace;
    ensure_operator_binding(ctx).await?;
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), ns);
    let existing = secrets
        .get_metadata_opt(KEYS_SECRET)
        .await
        .map_err(Error::kube(format!("reading Secret {ns}/{KEYS_SECRET}")))?;
    if existing.is_none() {
        let key = generate_key().map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
        // Another replica (or the admin) may have made it first: theirs stands.
        let created = crate::apply::create(
            &secrets,
            &keys_secret(&ctx.config, &key),
            MANAGER,
            &ctx.metrics,
        )
        .await
        .map_err(Error::kube(format!("creating Secret {ns}/{KEYS_SECRET}")))?;
        if created {
            info!(namespace = %ns, secret = KEYS_SECRET, "created the tenant key");
        }
    }
    for policy in network_policies(&ctx.config) {
        ensure_object(ctx, &policy).await?;
    }
    Ok(())
}

/// Binds the operator's Secrets role to its own ServiceAccount in the platform namespace
/// (RoleBinding `landlord-operator`) and waits until the binding takes effect. The operator
/// calls it once before its controllers start, so that their first reads of the tenant key
/// are not refused; [`ensure`] keeps it in place. Nothing to do when the operator runs as a
/// user.
pub async fn ensure_operator_binding(ctx: &Context) -> Result<()> {
    let ns = &ctx.config.platform_namespace;
    let binding = crate::secrets_access::binding(
        ObjectMeta {
            name: Some(crate::secrets_access::BINDING.into()),
            namespace: Some(ns.clone()),
            labels: Some(managed_labels()),
            ..Default::default()
        },
        &ctx.config,
    );
    if let Some(binding) = binding
        && ensure_object(ctx, &binding).await?
    {
        crate::secrets_access::await_access(ctx, ns).await;
    }
    Ok(())
}

/// Applies one object of the platform namespace on drift; whether it was written.
async fn ensure_object<K>(ctx: &Context, desired: &K) -> Result<bool>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let ns = &ctx.config.platform_namespace;
    let api = Api::<K>::namespaced(ctx.client.clone(), ns);
    let name = desired.name_any();
    let kind = K::kind(&());
    let live = api
        .get_opt(&name)
        .await
        .map_err(Error::kube(format!("reading {kind} {ns}/{name}")))?;
    match apply::ensure(&api, live.as_ref(), desired, MANAGER, &ctx.metrics).await {
        Ok(Outcome::Applied) => {
            info!(namespace = %ns, %kind, name = %name, "applied a wall of the platform namespace");
            Ok(true)
        }
        Ok(Outcome::Unchanged) => Ok(false),
        Err(EnsureError::Encode(source)) => Err(Error::Encode {
            what: "platform namespace object",
            source,
        }),
        Err(EnsureError::Kube(source)) => Err(Error::Kube {
            action: format!("applying {kind} {ns}/{name}"),
            source,
        }),
        Err(EnsureError::Foreign(why)) => Err(Error::Foreign(why)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_assertion_matches_the_pools_test_vector() {
        // tenant_runtime::assertion pins the same vector (and openssl agrees).
        assert_eq!(
            assertion(b"0123456789abcdef0123456789abcdef", "acme"),
            "v1.hdVHpqWdmk1CR3byWoG4uEcjAaVCmaSB5jXSjR3zZbI"
        );
        assert_ne!(
            assertion(b"0123456789abcdef0123456789abcdef", "globex"),
            assertion(b"0123456789abcdef0123456789abcdef", "acme")
        );
    }

    #[test]
    fn generated_keys_are_long_random_and_printable() {
        let (a, b) = (generate_key().unwrap(), generate_key().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.len() >= MIN_KEY_BYTES);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn only_a_primary_key_of_32_bytes_signs_and_problems_name_the_secret_not_the_key() {
        let config = Config::default();
        let key = "k".repeat(32);
        let secret = keys_secret(&config, &key);
        assert_eq!(
            secret.metadata.namespace.as_deref(),
            Some("landlord-platform")
        );
        assert_eq!(
            signing_key(Some(&secret), "landlord-platform").unwrap(),
            key.as_bytes()
        );
        let missing = signing_key(None, "landlord-platform").unwrap_err();
        assert_eq!(missing.reason(), "TenantKeyMissing");
        assert!(
            missing
                .message()
                .contains("landlord-platform/landlord-tenant-keys")
        );
        let short = keys_secret(&config, "short-key");
        let problem = signing_key(Some(&short), "landlord-platform").unwrap_err();
        assert_eq!(problem.reason(), "TenantKeyInvalid");
        assert!(problem.message().contains("\"primary\""));
        assert!(!problem.message().contains("short-key"));
        let mut only_secondary = secret.clone();
        only_secondary.data = Some(BTreeMap::from([(
            SECONDARY.to_string(),
            ByteString(key.into_bytes()),
        )]));
        assert!(signing_key(Some(&only_secondary), "landlord-platform").is_err());
    }

    #[test]
    fn pool_containers_get_the_keys_by_reference_the_secondary_optional() {
        let env = key_env();
        let refs: Vec<_> = env
            .iter()
            .map(|v| {
                assert!(v.value.is_none(), "never a value");
                let r = v
                    .value_from
                    .as_ref()
                    .unwrap()
                    .secret_key_ref
                    .as_ref()
                    .unwrap();
                (v.name.as_str(), r.name.as_str(), r.key.as_str(), r.optional)
            })
            .collect();
        assert_eq!(
            refs,
            [
                ("LANDLORD_TENANT_KEY", KEYS_SECRET, "primary", Some(false)),
                (
                    "LANDLORD_TENANT_KEY_SECONDARY",
                    KEYS_SECRET,
                    "secondary",
                    Some(true)
                ),
            ]
        );
    }

    #[test]
    fn the_pool_and_the_runtime_admit_only_the_gateway_namespace_and_pool_pods() {
        let config = Config {
            gateway_namespace: "edge".into(),
            ..Config::default()
        };
        let policies = network_policies(&config);
        let json = serde_json::to_value(&policies).unwrap();
        let peers = serde_json::json!([{"ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}},
            {"podSelector": {
                "matchLabels": {"app.kubernetes.io/managed-by": "landlord"},
                "matchExpressions": [{"key": "landlord.dev/service", "operator": "Exists"}]}}
        ]}]}]);
        for (policy, name, pods) in [
            (
                &json[0],
                "landlord-pool",
                serde_json::json!({
                    "matchLabels": {"app.kubernetes.io/managed-by": "landlord"},
                    "matchExpressions": [{"key": "landlord.dev/service", "operator": "Exists"}]}),
            ),
            (
                &json[1],
                "landlord-runtime",
                serde_json::json!({"matchLabels": {
                    "app.kubernetes.io/name": "landlord-runtime",
                    "landlord.dev/component": "runtime"}}),
            ),
        ] {
            assert_eq!(policy["metadata"]["name"], name);
            assert_eq!(policy["metadata"]["namespace"], "landlord-platform");
            assert_eq!(policy["spec"]["podSelector"], pods);
            assert_eq!(
                policy["spec"]["policyTypes"],
                serde_json::json!(["Ingress"])
            );
            assert_eq!(
                serde_json::json!([{"ingress": policy["spec"]["ingress"]}]),
                peers,
                "{name}"
            );
        }
        // The pooled runtime's pods are the ones the runtime policy selects.
        let runtime = crate::runtime::pooled(&config);
        let pod_labels = runtime
            .deployment
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .labels
            .unwrap();
        for (k, v) in runtime_pods().match_labels.unwrap() {
            assert_eq!(pod_labels.get(&k), Some(&v));
        }
    }
}

/// The last outcome of the pool loop (the platform namespace's walls, the tenant key and the
/// pooled tenant-runtime): `None` while everything is in place, else the failure as shared
/// tenants' `RuntimeReady` condition (reason, and a message naming the object and quoting the
/// API server). Subscribers are told of every change.
#[derive(Debug)]
pub struct Health(tokio::sync::watch::Sender<Option<Observation>>);

impl Default for Health {
    fn default() -> Self {
        Self(tokio::sync::watch::Sender::new(None))
    }
}

impl Health {
    /// Records the outcome of a pass; returns whether it changed in what shared tenants
    /// report (in place, or failing with another reason). A new message with the same reason
    /// (the quota's counts, say) is kept for the next look but reconciles nobody, so that
    /// an unchanged pool causes no status writes.
    pub fn set(&self, failure: Option<Observation>) -> bool {
        self.0.send_if_modified(|current| {
            let reason = |o: &Option<Observation>| o.as_ref().map(|o| o.reason);
            let changed = reason(current) != reason(&failure);
            *current = failure;
            changed
        })
    }

    /// The current failure, if any.
    pub fn failure(&self) -> Option<Observation> {
        self.0.borrow().clone()
    }

    /// A receiver that sees every change from now on.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<Observation>> {
        self.0.subscribe()
    }
}

//! The Domain: a custom hostname of a tenant, with its routes and TLS.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::schema;

/// The longest `spec.hostname`: the verification record `_landlord-challenge.<hostname>`
/// (20 more characters) must stay within DNS's 253.
pub const MAX_HOSTNAME_LENGTH: usize = 233;

/// A custom hostname for the tenant whose namespace holds it. Landlord verifies ownership
/// through a DNS TXT record, routes the paths to the tenant's services and provides TLS.
/// A hostname is held by one tenant only.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landlord.dev",
    version = "v1alpha1",
    kind = "Domain",
    plural = "domains",
    shortname = "dom",
    category = "landlord",
    namespaced,
    status = "DomainStatus",
    printcolumn(name = "Hostname", type_ = "string", json_path = ".spec.hostname"),
    printcolumn(name = "TLS", type_ = "string", json_path = ".spec.tls.mode"),
    printcolumn(
        name = "Verified",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Verified\")].status"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.tls) || self.tls.mode != 'Secret' || has(self.tls.secretName)").message("spec.tls.secretName is required when spec.tls.mode is Secret").field_path(".tls.secretName"))]
#[x_kube(validation = Rule::new("!has(self.tls) || self.tls.mode == 'Secret' || !has(self.tls.secretName)").message("spec.tls.secretName is only allowed when spec.tls.mode is Secret").field_path(".tls.secretName"))]
#[x_kube(validation = Rule::new("!has(self.tls) || self.tls.mode == 'Managed' || !has(self.tls.issuer)").message("spec.tls.issuer is only allowed when spec.tls.mode is Managed").field_path(".tls.issuer"))]
pub struct DomainSpec {
    /// The fully qualified hostname, lowercase, e.g. `shop.acme.com`. Wildcards are not
    /// allowed. Immutable. At most 233 characters, so that the verification record
    /// `_landlord-challenge.<hostname>` fits DNS's 253. In a zone the platform pre-verifies,
    /// a tenant may hold only `<tenant>.<zone>` and names below it; names the platform
    /// reserves are refused.
    #[schemars(length(min = 1, max = 233))]
    #[x_kube(
        validation = Rule::new("self.matches('^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\\\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$')")
            .message("spec.hostname must be a lowercase fully qualified DNS name such as shop.example.com (no uppercase, no wildcard, no trailing dot)"),
        validation = Rule::new("self == oldSelf").message("spec.hostname is immutable: create a new Domain instead"),
    )]
    pub hostname: String,
    /// Routes from a path prefix to one of the tenant's services. Defaults to each service's
    /// own `path`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["pathPrefix"]))]
    pub routes: Vec<Route>,
    /// TLS for the hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// A route from a path prefix to a service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Path prefix, e.g. `/` or `/api`.
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^/[A-Za-z0-9/._~-]*$"))]
    pub path_prefix: String,
    /// Name of the catalog Service that serves the prefix.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub service: String,
    /// Name of the service port; defaults to its first port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15))]
    pub port: Option<String>,
}

/// TLS settings of a domain.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    /// `Managed` (default): a cert-manager Certificate from the configured issuer.
    /// `Secret`: a certificate the user provides in `secretName`. `None`: plain HTTP.
    #[serde(default)]
    pub mode: TlsMode,
    /// Name of a `kubernetes.io/tls` Secret in the Domain's namespace (mode Secret only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub secret_name: Option<String>,
    /// cert-manager ClusterIssuer to use instead of the operator's default (mode Managed
    /// only). Only issuers the platform offers are accepted (the operator's
    /// `--cluster-issuer` and `--certificate-issuers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub issuer: Option<String>,
}

/// How a domain gets its certificate.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum TlsMode {
    #[default]
    Managed,
    Secret,
    None,
}

/// Observed state of a Domain.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainStatus {
    /// The .metadata.generation that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The tenant that holds the hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The DNS record to create to prove ownership of the hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// URL the domain serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Verified, CertificateReady, Routed, Conflict and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
}

/// A DNS record that proves ownership of a hostname.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Type of the record (TXT).
    pub record_type: String,
    /// Name of the record, e.g. `_landlord-challenge.shop.acme.com`.
    pub record_name: String,
    /// Value the record must hold.
    pub record_value: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn the_hostname_limit_leaves_room_for_the_verification_record() {
        let crd = serde_json::to_value(Domain::crd()).expect("CRD serializes");
        let hostname = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["hostname"];
        assert_eq!(hostname["maxLength"], MAX_HOSTNAME_LENGTH);
        assert_eq!("_landlord-challenge.".len() + MAX_HOSTNAME_LENGTH, 253);
    }
}

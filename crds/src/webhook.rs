//! The WebhookEndpoint: where Landlord POSTs tenant lifecycle events, signed per the
//! Standard Webhooks specification.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::{flags::TenantSelector, schema};

/// A receiver of Landlord's events. In the platform namespace it receives the events of the
/// tenants its `tenantSelector` picks (all when absent); in a tenant's namespace, that
/// tenant's events only. Each event is POSTed as JSON `{type, timestamp, data}` with the
/// headers `webhook-id` (stable per event: a redelivery carries the same id),
/// `webhook-timestamp` (Unix seconds of the attempt) and `webhook-signature`
/// (`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed with the Secret's
/// `whsec_` key). Delivery is at least once: retried with backoff over about three days
/// while the receiver answers anything but 2xx; `410 Gone` stops it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landlord.dev",
    version = "v1alpha1",
    kind = "WebhookEndpoint",
    plural = "webhookendpoints",
    shortname = "whe",
    category = "landlord",
    namespaced,
    status = "WebhookEndpointStatus",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpointSpec {
    /// Where events are POSTed: an `https://` URL, or `http://` to a private address
    /// (in-cluster receivers; only where the operator allows private addresses for this
    /// endpoint, see `--webhook-private-networks`). Redirects are not followed.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() in ['https', 'http'] && url(self).getHostname() != ''")
        .message("spec.url must be an absolute http:// or https:// URL with a host, such as https://hooks.example.com/landlord"))]
    pub url: String,
    /// The event types to send; empty or absent sends all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "set"))]
    pub event_types: Vec<EventType>,
    /// The Secret, in the endpoint's namespace, holding the signing secret: `whsec_` followed
    /// by the base64 of 24 to 64 random bytes (e.g. `echo whsec_$(openssl rand -base64 32)`).
    pub secret_ref: SigningSecretRef,
    /// Platform endpoints only: which tenants' events to send (absent: every tenant's).
    /// Ignored on an endpoint in a tenant's namespace, which receives that tenant's only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_selector: Option<TenantSelector>,
    /// Pause delivery. Events that happen while paused are not queued for this endpoint.
    #[serde(default)]
    pub disabled: bool,
}

/// A key of a Secret in the endpoint's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningSecretRef {
    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key in the Secret's data; default `secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: Option<String>,
}

impl SigningSecretRef {
    /// The key of the Secret's data that holds the signing secret.
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or("secret")
    }
}

macro_rules! event_types {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal, )*) => {
        /// The type of an event, dot-delimited as Standard Webhooks recommends.
        #[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, schemars::JsonSchema)]
        pub enum EventType {
            $( $(#[doc = $doc])* #[serde(rename = $name)] $variant, )*
        }

        impl EventType {
            /// Every event type, in the catalogue's order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The type as written in the payload's `type`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }
        }
    };
}

event_types! {
    /// A Tenant was created (seen for the first time).
    TenantCreated = "tenant.created",
    /// A Tenant became Ready for the first time.
    TenantProvisioned = "tenant.provisioned",
    /// A Tenant became Ready (the first time too, after `tenant.provisioned`).
    TenantReady = "tenant.ready",
    /// A Tenant went from Ready to Degraded; `data.reason` says why.
    TenantDegraded = "tenant.degraded",
    /// A Tenant's phase became Failed: a person must act; `data.reason` says why.
    TenantFailed = "tenant.failed",
    /// A Tenant was suspended.
    TenantSuspended = "tenant.suspended",
    /// A suspended Tenant was resumed.
    TenantResumed = "tenant.resumed",
    /// A Tenant is being deleted.
    TenantDeleting = "tenant.deleting",
    /// A Tenant is gone.
    TenantDeleted = "tenant.deleted",
    /// A Domain's hostname was verified.
    DomainVerified = "domain.verified",
    /// A Domain's hostname is held by another tenant.
    DomainConflict = "domain.conflict",
    /// A Domain is routed to the tenant's services.
    DomainRouted = "domain.routed",
    /// A Domain is gone.
    DomainDeleted = "domain.deleted",
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Observed state of a WebhookEndpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpointStatus {
    /// The .metadata.generation that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Since when deliveries to the endpoint fail (absent while they succeed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_time")]
    pub failing_since: Option<Time>,
    /// Ready: whether events reach the endpoint, and why not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
}

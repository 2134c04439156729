//! Condition reasons: every CamelCase reason Landlord writes into a condition, with how it is
//! handled ([`Severity`]), in one table.
//!
//! One enum serves the four kinds rather than one per kind: the reasons of an API refusal
//! (`QuotaExceeded`, `ObjectInvalid`, ...) and of an outage are the same whichever object's
//! condition carries them, and one table keeps one answer to "is this retried?". The table is
//! grouped by the kind that reports each reason.
//!
//! A severity says how the controllers handle the reason, not only who fixes it: a catalog
//! Service that a Tenant lists before it exists (`ServiceNotFound`) is a person's to create,
//! but it is `Transient` because the Tenant is reconciled again when it appears (its watch
//! sees it) and the phase stays Degraded rather than Failed meanwhile.

use std::fmt;

/// How a reason is handled once it reached status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The condition is True, or on its way to True with nothing wrong (progress).
    Fine,
    /// May clear on its own (the API server restarting, a conflict, an unreachable server):
    /// retried with jittered exponential backoff.
    Transient,
    /// Only a person's change of a watched object (the Tenant, a catalog Service, the
    /// operator's configuration) can clear it: the phase is Failed and nothing is retried
    /// until something changes.
    NeedsPerson,
    /// A person must act on an object no watch of Landlord's sees (a namespace Landlord does
    /// not own yet): the phase is Failed, and the object is looked at again periodically.
    NeedsPersonElsewhere,
    /// False without holding the object back: the stack runs, and the problem lies in objects
    /// someone else wrote (FeatureFlagSets whose flags conflict). Visible, Ready stays True.
    Warning,
}

macro_rules! reasons {
    ($( $(#[doc = $doc:literal])* $name:ident => $severity:ident, )*) => {
        /// A condition reason (see the module documentation). Written as its variant name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $( $(#[doc = $doc])* $name, )*
        }

        impl Reason {
            /// Every reason, in the table's order.
            pub const ALL: &'static [Reason] = &[$(Reason::$name,)*];

            /// The reason as written into a condition.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)*
                }
            }

            /// How the reason is handled.
            pub const fn severity(self) -> Severity {
                match self {
                    $(Reason::$name => Severity::$severity,)*
                }
            }

            /// The reason written as `reason`, if it is one of Landlord's.
            pub fn parse(reason: &str) -> Option<Reason> {
                match reason {
                    $(stringify!($name) => Some(Reason::$name),)*
                    _ => None,
                }
            }
        }
    };
}

reasons! {
    // Every kind: the True side and progress.
    /// The condition holds.
    Ready => Fine,
    /// Objects were applied and are as wanted.
    Applied => Fine,
    /// The part is not asked for (a Tenant without a database).
    Disabled => Fine,
    /// The object is being deleted.
    Terminating => Fine,
    /// The object is suspended (its workloads scaled to zero).
    Suspended => Fine,
    /// The Tenant's stack is provisioned.
    Provisioned => Fine,
    /// Served by the shared pool.
    Pooled => Fine,
    /// Flags resolved.
    Resolved => Fine,
    /// Workloads scaled to zero on purpose.
    ScaledToZero => Fine,
    /// A rollout is under way.
    RolloutInProgress => Fine,
    /// The tenant-runtime is rolling out.
    RuntimeProgressing => Fine,
    /// The workload is available.
    Available => Fine,
    /// Every Domain of the Tenant is Ready.
    DomainsReady => Fine,
    /// The quota controller has not counted the namespace yet.
    QuotaPending => Transient,

    // Every kind: what the API server answered.
    /// The namespace's ResourceQuota refused an object.
    QuotaExceeded => NeedsPerson,
    /// The API server refused an object as invalid (422/400).
    ObjectInvalid => NeedsPerson,
    /// An object is over the API server's size limit.
    ObjectTooLarge => NeedsPerson,
    /// The operator lacks a right (403).
    Forbidden => NeedsPerson,
    /// Another writer holds the object (its labels name another Landlord object).
    ObjectConflict => NeedsPerson,
    /// A write conflicted (409); retried.
    ApiConflict => Transient,
    /// An object was not found (404).
    NotFound => Transient,
    /// The API server throttled the request (429).
    ApiThrottled => Transient,
    /// The API server failed (5xx).
    ApiUnavailable => Transient,
    /// The API server answered with another error.
    ApiError => Transient,
    /// The API server could not be reached.
    ApiUnreachable => Transient,
    /// An object stored in the API server does not decode as this release's type.
    ObjectUndecodable => NeedsPerson,
    /// A bug: an object could not be encoded, or an invariant failed.
    InternalError => Transient,

    // Tenant.
    /// The spec is invalid in a way the CRD's schema cannot say.
    InvalidSpec => NeedsPerson,
    /// The namespace exists and belongs to something else.
    NamespaceConflict => NeedsPersonElsewhere,
    /// The namespace is being deleted.
    NamespaceTerminating => Transient,
    /// The Tenant is being deleted.
    TenantTerminating => Fine,
    /// Cleanup of the Tenant's external state is still under way.
    CleanupPending => Transient,
    /// Cleanup of the Tenant's database failed.
    DatabaseCleanupFailed => Transient,
    /// One or more parts failed (the roll-up's reason when several did).
    PartsFailed => Transient,
    /// The effective flags do not fit in one ConfigMap.
    FlagsTooLarge => NeedsPerson,
    /// Two FeatureFlagSets define one flag differently.
    FlagConflict => Warning,
    /// A tenant's FeatureFlagSet overrides a flag the platform locked.
    LockedFlagOverride => Warning,
    /// A flag is invalid and left out.
    InvalidFlag => Warning,
    /// A catalog Service the Tenant lists does not exist.
    ServiceNotFound => Transient,
    /// A catalog Service is not offered to the Tenant's tier.
    ServiceNotOffered => Transient,
    /// A catalog Service's spec is invalid.
    ServiceInvalid => Transient,
    /// A workload's replicas are not available.
    ReplicasUnavailable => Transient,
    /// A rollout exceeded its progress deadline.
    RolloutStuck => Transient,
    /// A Domain of the Tenant is not Ready.
    DomainNotReady => Transient,
    /// The pool's signing key Secret is missing.
    TenantKeyMissing => Transient,
    /// The pool's signing key Secret is invalid.
    TenantKeyInvalid => Transient,

    // Tenant: the database.
    /// No database server is configured for the tier.
    NoDatabaseServers => NeedsPerson,
    /// The database server named does not exist.
    ServerNotFound => NeedsPerson,
    /// Every server of the tier is full.
    CapacityFull => Transient,
    /// The server is not reachable.
    ServerUnreachable => Transient,
    /// The server is starting.
    ServerStarting => Transient,
    /// The dedicated server is not ready.
    ServerNotReady => Transient,
    /// The server refuses new connections (too many).
    ServerBusy => Transient,
    /// The server refused Landlord's credentials.
    AuthenticationFailed => Transient,
    /// Landlord's role lacks a privilege.
    PermissionDenied => Transient,
    /// The tenant's database is missing.
    DatabaseMissing => Transient,
    /// The server answered with another error.
    DatabaseError => Transient,
    /// The server's configuration is invalid.
    InvalidServerConfig => Transient,
    /// A database or role name is invalid.
    InvalidName => NeedsPerson,
    /// An extension is not on the server's allow-list.
    ExtensionNotAllowed => NeedsPerson,
    /// Creating an extension failed.
    ExtensionFailed => Transient,
    /// A database or role name is taken by something else.
    NameConflict => NeedsPerson,
    /// The database's placement cannot change.
    PlacementImmutable => NeedsPerson,
    /// The tenant's connection budget is over the server's.
    ConnectionBudgetExceeded => Transient,
    /// The database's admin Secret is missing.
    AdminSecretMissing => Transient,
    /// The spec names another PostgreSQL major version than the dedicated server's data
    /// directory was initialised with: it is not upgraded in place.
    VersionChangeRefused => NeedsPerson,
    /// The spec asks for less storage than the dedicated server's volume holds.
    StorageShrinkRefused => NeedsPerson,
    /// The spec names another StorageClass than the running dedicated server's volume is in:
    /// a volume does not move between classes.
    StorageClassChangeRefused => NeedsPerson,
    /// The dedicated server's volume claim is growing to the size the spec asks for.
    VolumeExpanding => Fine,
    /// The dedicated server's volume claim cannot grow: it is not bound, or its StorageClass
    /// does not allow volume expansion.
    VolumeExpansionUnsupported => NeedsPersonElsewhere,

    // Tenant: topics (NATS JetStream).
    /// No topic is requested.
    NoTopics => Fine,
    /// NATS is not configured for the operator.
    NatsNotConfigured => Transient,
    /// NATS is not reachable.
    NatsUnreachable => Transient,
    /// NATS refused the tenant's account.
    AccountRejected => Transient,
    /// NATS refused a stream.
    StreamRejected => Transient,
    /// NATS refused a stream's limits.
    StreamLimitRejected => Transient,
    /// A topic is invalid.
    InvalidTopic => Transient,

    // Tenant: services and domains.
    /// No catalog Service is requested.
    NoServices => Fine,
    /// No Domain belongs to the Tenant.
    NoDomains => Fine,

    // Domain.
    /// The Domain names no existing Tenant.
    NoTenant => Transient,
    /// The Domain's namespace is not a tenant namespace.
    NotATenantNamespace => Transient,
    /// The Domain's Tenant is not Ready.
    TenantNotReady => Transient,
    /// The TXT record is found.
    TxtRecordFound => Fine,
    /// The zone is verified in advance by the platform.
    PreVerifiedZone => Fine,
    /// The TXT record is not found (yet).
    RecordNotFound => Transient,
    /// Not verified yet.
    NotVerified => Transient,
    /// The DNS lookup failed.
    LookupFailed => Transient,
    /// The resolver is unavailable.
    ResolverUnavailable => Transient,
    /// The hostname is claimed by another Domain.
    HostnameClaimed => Transient,
    /// The hostname is reserved by the platform.
    HostnameReserved => Transient,
    /// No conflict.
    NoConflict => Fine,
    /// The Domain's hostname conflicts with another's (on `Routed`).
    Conflict => Transient,
    /// The hostname is not claimed.
    NotClaimed => Fine,
    /// TLS is off for the Domain.
    TlsDisabled => Fine,
    /// No issuer is configured.
    NoIssuer => Transient,
    /// The issuer is not offered.
    IssuerNotOffered => Transient,
    /// cert-manager is not installed.
    CertManagerNotInstalled => Transient,
    /// The certificate is being issued.
    CertificatePending => Transient,
    /// The certificate is issued.
    CertificateIssued => Fine,
    /// The issuer refused the certificate.
    CertificateRejected => Transient,
    /// The Secret named for TLS is found.
    SecretFound => Fine,
    /// The Secret named for TLS is missing.
    SecretNotFound => Transient,
    /// The Secret named for TLS is invalid.
    SecretInvalid => Transient,
    /// The HTTPRoute is applied; no Gateway API controller has reported on its current
    /// generation yet (none serves its Gateway's class, or it has not looked yet).
    HTTPRouteApplied => Fine,
    /// Every parent the HTTPRoute attaches to (the platform Gateway, the Domain's HTTPS
    /// listener) reported it `Accepted`, with its references resolved.
    HTTPRouteAccepted => Fine,
    /// A Gateway API controller reported the HTTPRoute not `Accepted`, or its references not
    /// resolved (`ResolvedRefs` False), for one of its parents.
    RouteNotAccepted => Transient,
    /// The Ingress is applied.
    IngressApplied => Fine,
    /// The Gateway API is required and not installed.
    GatewayApiRequired => Transient,
    /// The API server rejected a route object (HTTPRoute, Ingress, ReferenceGrant, the
    /// HTTPS ListenerSet or Gateway).
    RouteRejected => Transient,
    /// Waiting for the route to be accepted.
    WaitingForRoute => Transient,
    /// The hostname is not bound to the route.
    HostnameNotBound => Transient,
    /// The Domain has no route.
    NoRoutes => Transient,
    /// A route goes to a service the Tenant does not run.
    ServiceNotSelected => Transient,
    /// Too many routes.
    TooManyRoutes => Transient,
    /// The port is unknown.
    UnknownPort => Transient,
    /// Two objects of different kinds conflict.
    TypeConflict => Transient,

    // WebhookEndpoint (SecretNotFound and SecretInvalid above serve its signing secret too).
    /// Events reach the endpoint (or none has failed yet).
    Delivering => Fine,
    /// `spec.disabled`: no events are queued for the endpoint.
    Paused => Fine,
    /// The last attempt got no 2xx; retried on the schedule.
    DeliveryFailing => Transient,
    /// The endpoint answered 410 Gone: nothing more is sent until its spec changes.
    EndpointGone => NeedsPerson,
    /// The URL is one the endpoint may not reach (a private address, plain http).
    UrlNotAllowed => NeedsPerson,
    /// The operator runs without an outbox database: no events are sent.
    WebhooksNotConfigured => NeedsPerson,
    /// The outbox database does not answer; events wait in the operator until it does.
    OutboxUnavailable => Transient,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<Reason> for &str {
    fn eq(&self, other: &Reason) -> bool {
        *self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_camel_case_and_parses_back() {
        let mut seen = std::collections::BTreeSet::new();
        for reason in Reason::ALL {
            let text = reason.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && text.chars().all(|c| c.is_ascii_alphanumeric()),
                "{text} is not CamelCase"
            );
            assert_eq!(Reason::parse(text), Some(*reason));
        }
        assert_eq!(Reason::parse("Unknown"), None);
    }

    #[test]
    fn severities_are_where_the_table_puts_them() {
        assert_eq!(Reason::QuotaExceeded.severity(), Severity::NeedsPerson);
        assert_eq!(Reason::ApiUnavailable.severity(), Severity::Transient);
        assert_eq!(Reason::FlagConflict.severity(), Severity::Warning);
        assert_eq!(
            Reason::NamespaceConflict.severity(),
            Severity::NeedsPersonElsewhere
        );
        assert_eq!(Reason::Ready.to_string(), "Ready");
        assert!(Reason::Ready == "Ready");
    }
}

//! A part's failure as that part's condition: pure, so the mapping from errors to reasons is
//! unit-tested without a cluster.
//!
//! A part that fails (the API server refuses one of its objects, the tenant's quota is full,
//! an object is too large, NATS is unreachable, ...) does not abort the reconcile: its
//! condition turns False with a CamelCase reason, and a message that names the object and
//! quotes what the API server (or the external system) answered. The other parts still run.
//!
//! Each reason has a [`Severity`]: a transient failure is retried with backoff, a failure a
//! person must fix waits for a change (and the slow resync).

use landlord_crds::conditions::Reason;
use landlord_crds::conditions::{Observation, Status, tenant};

pub use crate::failure::{Severity, api_reason};

use super::{Part, error::Error};

/// The condition type a part reports.
pub fn condition_type(part: Part) -> &'static str {
    match part {
        Part::Namespace => tenant::NAMESPACE_READY,
        Part::Database => tenant::DATABASE_READY,
        Part::Topics => tenant::TOPICS_READY,
        Part::Flags => tenant::FLAGS_READY,
        Part::Runtime => tenant::RUNTIME_READY,
        Part::Services => tenant::SERVICES_READY,
        Part::Domains => tenant::DOMAINS_READY,
    }
}

/// The CamelCase reason of a failure.
pub fn reason(error: &Error) -> Reason {
    match error {
        Error::Kube {
            source: kube::Error::Api(status),
            ..
        } => api_reason(status),
        Error::Kube { .. } => Reason::ApiUnreachable,
        Error::InvalidSpec(_) => Reason::InvalidSpec,
        Error::Nats { source, .. } => source.reason(),
        Error::Encode { .. } | Error::MissingUid | Error::Internal(_) => Reason::InternalError,
        Error::DatabaseCleanup(_) => Reason::DatabaseCleanupFailed,
        Error::CleanupPending(_) => Reason::CleanupPending,
        Error::PartsFailed(_) => Reason::PartsFailed,
        Error::Foreign(_) => Reason::ObjectConflict,
    }
}

/// The message of a failure: what was being done (naming the object) and, quoted, what the
/// API server answered.
pub fn message(error: &Error) -> String {
    match error {
        Error::Kube {
            action,
            source: kube::Error::Api(status),
        } => format!(
            "{action}: the API server answered {} {}: \"{}\"",
            status.code, status.reason, status.message
        ),
        other => other.to_string(),
    }
}

/// The part's condition for a failure.
pub fn observation(part: Part, error: &Error) -> Observation {
    Observation::new(
        condition_type(part),
        Status::False,
        reason(error),
        message(error),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: u16, reason: &str, message: &str) -> Error {
        Error::Kube {
            action: "applying Secret tenant-acme/landlord-db".into(),
            source: kube::Error::Api(Box::new(kube::core::Status {
                code,
                reason: reason.into(),
                message: message.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn a_quota_refusal_is_quota_exceeded_naming_the_object_and_quoting_the_server() {
        let e = refused(
            403,
            "Forbidden",
            "secrets \"landlord-db\" is forbidden: exceeded quota: landlord, requested: count/secrets=1, used: count/secrets=1, limited: count/secrets=1",
        );
        let o = observation(Part::Database, &e);
        assert_eq!(o.type_, "DatabaseReady");
        assert_eq!(o.status, Status::False);
        assert_eq!(o.reason, "QuotaExceeded");
        assert!(
            o.message.contains("Secret tenant-acme/landlord-db"),
            "{}",
            o.message
        );
        assert!(o.message.contains("403 Forbidden"), "{}", o.message);
        assert!(
            o.message.contains("exceeded quota: landlord"),
            "{}",
            o.message
        );
        assert_eq!(o.reason.severity(), Severity::NeedsPerson);
    }

    #[test]
    fn an_oversized_object_is_too_large_and_needs_a_person() {
        let e = refused(
            422,
            "Invalid",
            "ConfigMap \"landlord-flags\" is invalid: []: Too long: must have at most 1048576 bytes",
        );
        assert_eq!(reason(&e), "ObjectTooLarge");
        assert_eq!(reason(&e).severity(), Severity::NeedsPerson);
        let e = refused(413, "RequestEntityTooLarge", "request is too large");
        assert_eq!(reason(&e), "ObjectTooLarge");
    }

    #[test]
    fn an_invalid_child_and_missing_rights_need_a_person() {
        let e = refused(
            422,
            "Invalid",
            "Service \"3d-render\" is invalid: metadata.name: Invalid value",
        );
        assert_eq!(reason(&e), "ObjectInvalid");
        assert_eq!(reason(&e).severity(), Severity::NeedsPerson);
        let e = refused(
            403,
            "Forbidden",
            "roles.rbac.authorization.k8s.io is forbidden",
        );
        assert_eq!(reason(&e), "Forbidden");
        assert_eq!(reason(&e).severity(), Severity::NeedsPerson);
    }

    #[test]
    fn outages_and_conflicts_are_transient() {
        for (code, expected) in [
            (500, "ApiUnavailable"),
            (503, "ApiUnavailable"),
            (409, "ApiConflict"),
            (429, "ApiThrottled"),
            (404, "NotFound"),
        ] {
            let e = refused(code, "x", "y");
            assert_eq!(reason(&e), expected);
            assert_eq!(reason(&e).severity(), Severity::Transient, "{code}");
        }
        let nats = Error::Nats {
            action: "pushing account".into(),
            source: crate::nats::NatsError::Protocol("timed out".into()),
        };
        assert_eq!(reason(&nats), "NatsUnreachable");
        assert_eq!(reason(&nats).severity(), Severity::Transient);
    }

    #[test]
    fn every_part_reports_its_own_condition() {
        let e = Error::Internal("no randomness".into());
        for (part, type_) in [
            (Part::Namespace, "NamespaceReady"),
            (Part::Database, "DatabaseReady"),
            (Part::Topics, "TopicsReady"),
            (Part::Flags, "FlagsReady"),
            (Part::Runtime, "RuntimeReady"),
            (Part::Services, "ServicesReady"),
            (Part::Domains, "DomainsReady"),
        ] {
            let o = observation(part, &e);
            assert_eq!(o.type_, type_);
            assert_eq!(o.reason, "InternalError");
            assert!(o.message.contains("no randomness"));
        }
    }
}

//! Condition vocabulary and the one way conditions are updated.
//!
//! Conditions follow KEP-1623. `lastTransitionTime` moves only when a condition's status
//! flips, so that a reconcile which observes the same world produces the same status and
//! the controller never writes (or wakes itself) for nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub use crate::reason::{Reason, Severity};

/// Condition types reported on a Tenant.
pub mod tenant {
    /// Roll-up of every other condition.
    pub const READY: &str = "Ready";
    pub const NAMESPACE_READY: &str = "NamespaceReady";
    pub const DATABASE_READY: &str = "DatabaseReady";
    pub const TOPICS_READY: &str = "TopicsReady";
    pub const SERVICES_READY: &str = "ServicesReady";
    pub const DOMAINS_READY: &str = "DomainsReady";
    pub const FLAGS_READY: &str = "FlagsReady";
    /// The tenant-runtime (OFREP flags, tenant context) that serves the tenant is in place.
    pub const RUNTIME_READY: &str = "RuntimeReady";
}

/// Condition types reported on a Domain.
pub mod domain {
    pub const VERIFIED: &str = "Verified";
    pub const CERTIFICATE_READY: &str = "CertificateReady";
    pub const ROUTED: &str = "Routed";
    pub const CONFLICT: &str = "Conflict";
    pub const READY: &str = "Ready";
}

/// Status of a condition, spelled as Kubernetes spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// What a pipeline step observed, before it is stamped with times and generations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub type_: String,
    pub status: Status,
    pub reason: Reason,
    pub message: String,
}

impl Observation {
    pub fn new(type_: &str, status: Status, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            type_: type_.to_string(),
            status,
            reason,
            message: message.into(),
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == Status::True
    }
}

/// Merges an observation into a condition list. The condition's `lastTransitionTime` is kept
/// unless its status changed; conditions of other types are left as they are.
pub fn set(
    conditions: &mut Vec<Condition>,
    observed: &Observation,
    generation: Option<i64>,
    now: &Time,
) {
    let status = observed.status.as_str();
    match conditions.iter_mut().find(|c| c.type_ == observed.type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = now.clone();
            }
            existing.status = status.to_string();
            existing.reason = observed.reason.as_str().to_string();
            existing.message = observed.message.clone();
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: observed.type_.clone(),
            status: status.to_string(),
            reason: observed.reason.as_str().to_string(),
            message: observed.message.clone(),
            observed_generation: generation,
            last_transition_time: now.clone(),
        }),
    }
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of that type is present and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    #[test]
    fn transition_time_kept_when_status_does_not_flip() {
        let mut list = Vec::new();
        set(
            &mut list,
            &Observation::new(
                "Ready",
                Status::False,
                Reason::RolloutInProgress,
                "namespace",
            ),
            Some(1),
            &at(10),
        );
        set(
            &mut list,
            &Observation::new("Ready", Status::False, Reason::ServerStarting, "db"),
            Some(2),
            &at(20),
        );
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].last_transition_time, at(10));
        assert_eq!(list[0].reason, "ServerStarting");
        assert_eq!(list[0].observed_generation, Some(2));
    }

    #[test]
    fn transition_time_moves_when_status_flips() {
        let mut list = Vec::new();
        set(
            &mut list,
            &Observation::new("Ready", Status::False, Reason::RolloutInProgress, ""),
            Some(1),
            &at(10),
        );
        set(
            &mut list,
            &Observation::new("Ready", Status::True, Reason::Ready, ""),
            Some(1),
            &at(30),
        );
        assert_eq!(list[0].last_transition_time, at(30));
        assert!(is_true(&list, "Ready"));
    }

    #[test]
    fn other_condition_types_are_untouched() {
        let mut list = Vec::new();
        set(
            &mut list,
            &Observation::new("NamespaceReady", Status::True, Reason::Applied, ""),
            None,
            &at(1),
        );
        set(
            &mut list,
            &Observation::new("Ready", Status::False, Reason::RolloutInProgress, ""),
            None,
            &at(2),
        );
        assert_eq!(list.len(), 2);
        assert_eq!(
            find(&list, "NamespaceReady").map(|c| c.status.as_str()),
            Some("True")
        );
    }
}

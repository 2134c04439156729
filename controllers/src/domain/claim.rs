//! Who holds a hostname when several Domains claim it.
//!
//! The decision must be the same whichever Domain is reconciled, and must not flip back and
//! forth: a verified claim ranks before an unverified one (so an unverifiable squatter
//! cannot block the real owner), then the current holder (so a newcomer never displaces a
//! Domain that already serves the hostname, even one created in the same second), then the
//! oldest claim (creationTimestamp), then namespace, name and uid as tie-breakers. Only the
//! holder routes; the others report `Conflict` and take over once the holder is deleted.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use landlord_crds::{
    Domain,
    conditions::{
        self,
        domain::{CONFLICT, VERIFIED},
    },
};

/// One Domain's claim on a hostname.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub created: Option<Timestamp>,
    pub verified: bool,
    /// Held the hostname when last reconciled (verified, and `Conflict` False).
    pub holding: bool,
}

impl Claim {
    /// The claim of a Domain, verified as its status says.
    pub fn of(domain: &Domain) -> Self {
        let verified = domain
            .status
            .as_ref()
            .is_some_and(|s| conditions::is_true(&s.conditions, VERIFIED));
        Self::with_verified(domain, verified)
    }

    /// The claim of a Domain whose verification was just observed.
    pub fn with_verified(domain: &Domain, verified: bool) -> Self {
        let holding = verified
            && domain
                .status
                .as_ref()
                .and_then(|s| conditions::find(&s.conditions, CONFLICT))
                .is_some_and(|c| c.status == "False");
        Self {
            namespace: domain.namespace().unwrap_or_default(),
            name: domain.name_any(),
            uid: domain.uid().unwrap_or_default(),
            created: domain.metadata.creation_timestamp.as_ref().map(|t| t.0),
            verified,
            holding,
        }
    }

    fn rank(&self) -> (bool, bool, bool, Option<Timestamp>, &str, &str, &str) {
        (
            !self.verified,
            !self.holding,
            self.created.is_none(),
            self.created,
            &self.namespace,
            &self.name,
            &self.uid,
        )
    }

    /// `namespace/name`, for messages.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The claim that holds the hostname.
pub fn holder(claims: &[Claim]) -> Option<&Claim> {
    claims.iter().min_by(|a, b| a.rank().cmp(&b.rank()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(ns: &str, created: i64, verified: bool) -> Claim {
        Claim {
            namespace: ns.into(),
            name: "shop".into(),
            uid: format!("uid-{ns}"),
            created: Some(Timestamp::from_second(created).expect("time")),
            verified,
            holding: false,
        }
    }

    #[test]
    fn the_oldest_verified_claim_holds() {
        let claims = [
            claim("b", 20, true),
            claim("a", 10, true),
            claim("c", 5, false),
        ];
        assert_eq!(holder(&claims).map(|c| c.namespace.as_str()), Some("a"));
    }

    #[test]
    fn the_decision_does_not_depend_on_order() {
        let mut claims = vec![
            claim("b", 10, true),
            claim("a", 10, true),
            claim("c", 10, true),
        ];
        let first = holder(&claims).cloned();
        claims.reverse();
        assert_eq!(holder(&claims).cloned(), first);
        assert_eq!(
            first.map(|c| c.namespace),
            Some("a".to_string()),
            "ties break on namespace"
        );
    }

    #[test]
    fn an_unverified_squatter_does_not_block_a_verified_owner() {
        let claims = [claim("squatter", 1, false), claim("owner", 50, true)];
        assert_eq!(holder(&claims).map(|c| c.namespace.as_str()), Some("owner"));
    }

    #[test]
    fn the_current_holder_keeps_the_hostname_against_an_older_or_tied_newcomer() {
        let mut holder = claim("z", 10, true);
        holder.holding = true;
        let claims = [claim("a", 10, true), holder.clone(), claim("b", 5, true)];
        assert_eq!(holder_of(&claims), Some("z"));
        // Holding does not beat verification.
        holder.verified = false;
        let claims = [claim("a", 10, true), holder];
        assert_eq!(holder_of(&claims), Some("a"));
    }

    fn holder_of(claims: &[Claim]) -> Option<&str> {
        holder(claims).map(|c| c.namespace.as_str())
    }

    #[test]
    fn a_claim_without_creation_time_ranks_last() {
        let mut undated = claim("a", 0, true);
        undated.created = None;
        let claims = [undated, claim("z", 99, true)];
        assert_eq!(holder(&claims).map(|c| c.namespace.as_str()), Some("z"));
        assert_eq!(holder(&[]), None);
    }
}

//! Ownership verification: the TXT record a Domain's owner publishes, and the zones the
//! platform owns (pre-verified by the operator's configuration).
//!
//! A pre-verified zone is the platform's: in it, a tenant holds only the names bound to it,
//! `<tenant>.<zone>` and the names below that. Any other name in the zone is refused, not
//! sent to TXT verification: nobody but the platform can publish records there, and the
//! platform hands names out by tenant name. Reserved names (`--reserved-hostnames`: bare
//! labels such as `login`, reserved directly under every pre-verified zone, or full
//! hostnames) and the names below them are refused wherever they are, even when a tenant is
//! named like the label.
//!
//! The record is `_landlord-challenge.<hostname>` TXT `landlord-domain-verification=<token>`,
//! where the token is the first 128 bits of SHA-256 over the Domain's uid (with a fixed
//! context string). The value is published in DNS, so it is not a secret; what matters is
//! that it is bound to this one Domain object: the uid is random, assigned by the API
//! server and never chosen by the user, so no other Domain (in another tenant's namespace,
//! or recreated later) can be verified by the record published for this one. It is
//! recomputed on every reconcile (nothing to store or lose).

use landlord_crds::conditions::Reason;
use landlord_crds::{
    conditions::{Observation, Status, domain::VERIFIED},
    domain::Verification,
};

/// Label prepended to the hostname to name the verification record.
pub const RECORD_LABEL: &str = "_landlord-challenge";
/// Prefix of the record's value.
pub const VALUE_PREFIX: &str = "landlord-domain-verification=";
const CONTEXT: &[u8] = b"landlord.dev/domain-verification\0";

/// The token of a Domain with this uid: 32 lowercase hex digits.
pub fn token(uid: &str) -> String {
    let mut input = CONTEXT.to_vec();
    input.extend_from_slice(uid.as_bytes());
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&input);
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The record the owner of `hostname` creates to verify the Domain with this uid.
pub fn record(hostname: &str, uid: &str) -> Verification {
    Verification {
        record_type: "TXT".into(),
        record_name: format!("{RECORD_LABEL}.{hostname}"),
        record_value: format!("{VALUE_PREFIX}{}", token(uid)),
    }
}

/// Whether one of the TXT strings found is the expected value (surrounding space ignored).
pub fn found(values: &[String], expected: &str) -> bool {
    values.iter().any(|v| v.trim() == expected)
}

/// Whether `hostname` is `name` or a name below it.
fn at_or_below(hostname: &str, name: &str) -> bool {
    !name.is_empty()
        && (hostname == name
            || hostname
                .strip_suffix(name)
                .is_some_and(|rest| rest.ends_with('.')))
}

/// A configured name as compared: no surrounding space, no trailing dot.
fn configured(name: &str) -> &str {
    name.trim().trim_end_matches('.')
}

/// The configured zones that cover `hostname` (the zone itself or a name below it).
fn zones_of<'a>(hostname: &'a str, zones: &'a [String]) -> impl Iterator<Item = &'a str> {
    zones
        .iter()
        .map(|z| configured(z))
        .filter(move |zone| at_or_below(hostname, zone))
}

/// The names `reserved` stands for: a bare label under every zone, a hostname as it is.
pub fn reserved_names(zones: &[String], reserved: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    for entry in reserved.iter().map(|r| configured(r)) {
        if entry.is_empty() {
            continue;
        }
        if entry.contains('.') {
            names.push(entry.to_string());
        } else {
            names.extend(
                zones
                    .iter()
                    .map(|z| configured(z))
                    .filter(|z| !z.is_empty())
                    .map(|zone| format!("{entry}.{zone}")),
            );
        }
    }
    names
}

/// Where a hostname stands under the platform's configuration, before any DNS lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// At or below `name`, which the platform reserves: no tenant may hold it.
    Reserved { name: String },
    /// `<tenant>.<zone>` or below it: the tenant's by the platform's configuration.
    Bound { zone: String },
    /// In the pre-verified `zone`, but not bound to the Domain's tenant: refused.
    NotBound { zone: String },
    /// Outside the pre-verified zones: the TXT record decides.
    External,
}

/// Where `hostname`, claimed from the namespace of `tenant` (None: no Tenant's namespace),
/// stands. Reservation wins over binding.
pub fn standing(
    hostname: &str,
    tenant: Option<&str>,
    zones: &[String],
    reserved: &[String],
) -> Standing {
    if let Some(name) = reserved_names(zones, reserved)
        .into_iter()
        .find(|name| at_or_below(hostname, name))
    {
        return Standing::Reserved { name };
    }
    let mut covering = zones_of(hostname, zones).peekable();
    let Some(first) = covering.peek().map(|z| z.to_string()) else {
        return Standing::External;
    };
    // Nested zones: bound under any one of them is enough.
    match tenant.and_then(|t| covering.find(|zone| at_or_below(hostname, &format!("{t}.{zone}")))) {
        Some(zone) => Standing::Bound {
            zone: zone.to_string(),
        },
        None => Standing::NotBound { zone: first },
    }
}

/// The Verified condition that the configuration alone decides: refused (reserved or not
/// bound), or verified (bound); None when the TXT record must decide.
pub fn by_configuration(
    hostname: &str,
    tenant: Option<&str>,
    namespace: &str,
    zones: &[String],
    reserved: &[String],
) -> Option<Observation> {
    match standing(hostname, tenant, zones, reserved) {
        Standing::External => None,
        Standing::Bound { zone } => Some(Observation::new(
            VERIFIED,
            Status::True,
            Reason::PreVerifiedZone,
            format!(
                "{hostname} is in the zone {zone}, which the platform owns, and bound to Tenant {}",
                tenant.unwrap_or_default()
            ),
        )),
        Standing::Reserved { name } => Some(Observation::new(
            VERIFIED,
            Status::False,
            REFUSED_RESERVED,
            format!(
                "spec.hostname {hostname} is reserved by the platform ({name} and the names below it); no tenant may hold it"
            ),
        )),
        Standing::NotBound { zone } => Some(Observation::new(
            VERIFIED,
            Status::False,
            REFUSED_NOT_BOUND,
            match tenant {
                Some(t) => format!(
                    "spec.hostname {hostname} is in the platform's zone {zone}, where Tenant {t} may hold only {t}.{zone} and the names below it"
                ),
                None => format!(
                    "spec.hostname {hostname} is in the platform's zone {zone}, and namespace {namespace} is not a Tenant's"
                ),
            },
        )),
    }
}

/// Reason of a Verified condition refusing a reserved hostname.
pub const REFUSED_RESERVED: Reason = Reason::HostnameReserved;
/// Reason of a Verified condition refusing a name in a pre-verified zone that is not bound to
/// the Domain's tenant.
pub const REFUSED_NOT_BOUND: Reason = Reason::HostnameNotBound;

/// Whether a Verified observation refuses the hostname for good (until the Domain or the
/// platform's configuration changes): nothing to look up again.
pub fn is_refusal(verified: &Observation) -> bool {
    !verified.is_true()
        && (verified.reason == REFUSED_RESERVED || verified.reason == REFUSED_NOT_BOUND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_stable_per_uid_and_differs_between_uids() {
        let a = token("0b6f6c9e-2f0e-4d1e-9a57-2c1b8f0e6d11");
        assert_eq!(a, token("0b6f6c9e-2f0e-4d1e-9a57-2c1b8f0e6d11"));
        assert_ne!(a, token("0b6f6c9e-2f0e-4d1e-9a57-2c1b8f0e6d12"));
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        // Not derivable from the hostname: two Domains for one hostname get two records.
        assert_ne!(
            record("shop.acme.com", "uid-1").record_value,
            record("shop.acme.com", "uid-2").record_value
        );
    }

    #[test]
    fn record_names_the_challenge_label_under_the_hostname() {
        let r = record("shop.acme.com", "uid-1");
        assert_eq!(r.record_type, "TXT");
        assert_eq!(r.record_name, "_landlord-challenge.shop.acme.com");
        assert!(r.record_value.starts_with("landlord-domain-verification="));
        assert!(found(
            &["x".into(), format!(" {} ", r.record_value)],
            &r.record_value
        ));
        assert!(!found(
            &["landlord-domain-verification=other".into()],
            &r.record_value
        ));
    }

    fn zones() -> Vec<String> {
        vec!["apps.example.com.".to_string(), " landlord.io ".to_string()]
    }

    fn reserved() -> Vec<String> {
        vec!["login".into(), " www ".into(), "status.example.com".into()]
    }

    #[test]
    fn a_tenant_holds_its_own_name_and_the_names_below_it_in_every_zone() {
        for (hostname, zone) in [
            ("acme.apps.example.com", "apps.example.com"),
            ("shop.acme.apps.example.com", "apps.example.com"),
            ("a.b.acme.landlord.io", "landlord.io"),
        ] {
            assert_eq!(
                standing(hostname, Some("acme"), &zones(), &reserved()),
                Standing::Bound { zone: zone.into() },
                "{hostname}"
            );
        }
    }

    #[test]
    fn other_names_in_a_zone_are_not_bound_to_the_tenant() {
        for hostname in [
            "apps.example.com",
            "other.apps.example.com",
            "shop.other.apps.example.com",
            "acme-shop.apps.example.com",
            "xacme.apps.example.com",
            "acme.landlord.io.apps.example.com",
        ] {
            assert_eq!(
                standing(hostname, Some("acme"), &zones(), &reserved()),
                Standing::NotBound {
                    zone: "apps.example.com".into()
                },
                "{hostname}"
            );
        }
        // Outside a Tenant's namespace nothing in a zone is bound.
        assert_eq!(
            standing("acme.landlord.io", None, &zones(), &reserved()),
            Standing::NotBound {
                zone: "landlord.io".into()
            }
        );
    }

    #[test]
    fn names_outside_the_zones_go_to_txt_verification() {
        for hostname in ["shop.acme.com", "evilapps.example.com", "example.com"] {
            assert_eq!(
                standing(hostname, Some("acme"), &zones(), &reserved()),
                Standing::External,
                "{hostname}"
            );
        }
        assert_eq!(
            standing("x.com", Some("x"), &[String::new()], &[]),
            Standing::External
        );
    }

    #[test]
    fn reserved_labels_cover_every_zone_and_win_over_a_tenant_of_that_name() {
        assert_eq!(
            reserved_names(&zones(), &reserved()),
            [
                "login.apps.example.com",
                "login.landlord.io",
                "www.apps.example.com",
                "www.landlord.io",
                "status.example.com"
            ]
        );
        for (hostname, name) in [
            ("login.apps.example.com", "login.apps.example.com"),
            ("sso.login.landlord.io", "login.landlord.io"),
            ("www.apps.example.com", "www.apps.example.com"),
            ("status.example.com", "status.example.com"),
            ("eu.status.example.com", "status.example.com"),
        ] {
            for tenant in [Some("acme"), Some("login"), Some("www"), None] {
                assert_eq!(
                    standing(hostname, tenant, &zones(), &reserved()),
                    Standing::Reserved { name: name.into() },
                    "{hostname} for {tenant:?}"
                );
            }
        }
        // A label is reserved directly under the zones, not inside a tenant's own names.
        assert_eq!(
            standing(
                "login.acme.apps.example.com",
                Some("acme"),
                &zones(),
                &reserved()
            ),
            Standing::Bound {
                zone: "apps.example.com".into()
            }
        );
        // Without zones, a bare label reserves nothing.
        assert!(reserved_names(&[], &["login".into()]).is_empty());
    }

    #[test]
    fn nested_zones_bind_under_either() {
        let zones = vec!["example.com".to_string(), "apps.example.com".to_string()];
        assert_eq!(
            standing("acme.apps.example.com", Some("acme"), &zones, &[]),
            Standing::Bound {
                zone: "apps.example.com".into()
            }
        );
        assert_eq!(
            standing("acme.example.com", Some("acme"), &zones, &[]),
            Standing::Bound {
                zone: "example.com".into()
            }
        );
    }

    #[test]
    fn the_configuration_verifies_bound_names_and_refuses_the_rest_naming_the_field() {
        let decide = |hostname: &str, tenant: Option<&str>| {
            by_configuration(hostname, tenant, "tenant-acme", &zones(), &reserved())
        };
        let bound = decide("acme.apps.example.com", Some("acme")).expect("decided");
        assert!(bound.is_true() && bound.reason == "PreVerifiedZone");
        assert!(!is_refusal(&bound));
        let reserved = decide("login.apps.example.com", Some("acme")).expect("decided");
        assert_eq!(
            (reserved.status, reserved.reason),
            (Status::False, REFUSED_RESERVED)
        );
        assert!(
            reserved
                .message
                .starts_with("spec.hostname login.apps.example.com")
        );
        assert!(is_refusal(&reserved));
        let foreign = decide("other.apps.example.com", Some("acme")).expect("decided");
        assert_eq!(foreign.reason, REFUSED_NOT_BOUND);
        assert!(
            foreign
                .message
                .starts_with("spec.hostname other.apps.example.com")
                && foreign.message.contains("acme.apps.example.com"),
            "{}",
            foreign.message
        );
        let homeless = decide("acme.apps.example.com", None).expect("decided");
        assert!(homeless.message.contains("namespace tenant-acme"));
        assert_eq!(decide("shop.acme.com", Some("acme")), None);
    }

    #[test]
    fn the_longest_hostname_still_has_a_valid_verification_record() {
        let max = landlord_crds::domain::MAX_HOSTNAME_LENGTH;
        assert_eq!(RECORD_LABEL.len() + 1 + max, 253);
        // 3 labels of 63 and one of 41: exactly the longest hostname the CRD admits.
        let hostname = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(41));
        assert_eq!(hostname.len(), max);
        let r = record(&hostname, "uid-1");
        assert!(super::super::dns::encode_query(1, &r.record_name).is_ok());
        let longer = format!("c.{hostname}");
        assert!(super::super::dns::encode_query(1, &record(&longer, "uid-1").record_name).is_err());
    }
}

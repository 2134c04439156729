//! Ownership verification: the TXT record a Domain's owner publishes, and the zones the
//! platform owns (pre-verified by the operator's configuration).
//!
//! The record is `_landlord-challenge.<hostname>` TXT `landlord-domain-verification=<token>`,
//! where the token is the first 128 bits of SHA-256 over the Domain's uid (with a fixed
//! context string). The value is published in DNS, so it is not a secret; what matters is
//! that it is bound to this one Domain object: the uid is random, assigned by the API
//! server and never chosen by the user, so no other Domain (in another tenant's namespace,
//! or recreated later) can be verified by the record published for this one. It is
//! recomputed on every reconcile (nothing to store or lose).

use landlord_crds::domain::Verification;

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

/// The configured zone that covers `hostname` (the zone itself or a name below it).
pub fn pre_verified_zone<'a>(hostname: &str, zones: &'a [String]) -> Option<&'a str> {
    zones
        .iter()
        .map(|z| z.trim().trim_end_matches('.'))
        .find(|zone| {
            !zone.is_empty()
                && (hostname == *zone
                    || hostname
                        .strip_suffix(zone)
                        .is_some_and(|rest| rest.ends_with('.')))
        })
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

    #[test]
    fn pre_verified_zones_cover_the_zone_and_names_below_it_only() {
        let zones = vec!["apps.example.com.".to_string(), " landlord.io ".to_string()];
        assert_eq!(
            pre_verified_zone("apps.example.com", &zones),
            Some("apps.example.com")
        );
        assert_eq!(
            pre_verified_zone("a.b.apps.example.com", &zones),
            Some("apps.example.com")
        );
        assert_eq!(
            pre_verified_zone("acme.landlord.io", &zones),
            Some("landlord.io")
        );
        assert_eq!(pre_verified_zone("evilapps.example.com", &zones), None);
        assert_eq!(pre_verified_zone("example.com", &zones), None);
        assert_eq!(pre_verified_zone("x.com", &[String::new()]), None);
    }
}

//! PostgreSQL names of a tenant's role and database, and SQL quoting.
//!
//! Tenant names are DNS labels (`[a-z0-9-]`, validated by the CRD), so mapping `-` to `_`
//! and prefixing `t_` is injective: no two tenants map to one identifier. The prefix also
//! keeps tenant roles apart from the server's own (`postgres`, `pg_*`) and from every
//! reserved word. Names are still checked here, because the identifiers reach SQL.

/// Longest identifier PostgreSQL keeps without truncating (NAMEDATALEN - 1).
const MAX_IDENTIFIER: usize = 63;
const PREFIX: &str = "t_";

/// The role and database of one tenant on a PostgreSQL server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// Login role, e.g. `t_acme_corp`.
    pub role: String,
    /// Database owned by the role; the same identifier as the role.
    pub database: String,
}

/// A tenant name that cannot be mapped to a PostgreSQL identifier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("metadata.name: {name:?} cannot name a PostgreSQL role: {why}")]
pub struct InvalidName {
    pub name: String,
    pub why: &'static str,
}

impl Names {
    /// The identifiers of the tenant called `tenant`.
    pub fn for_tenant(tenant: &str) -> Result<Self, InvalidName> {
        let invalid = |why| InvalidName {
            name: tenant.to_string(),
            why,
        };
        if tenant.is_empty() {
            return Err(invalid("it is empty"));
        }
        if !tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(
                "only lowercase letters, digits and '-' map to identifiers without collisions",
            ));
        }
        let identifier = format!("{PREFIX}{}", tenant.replace('-', "_"));
        if identifier.len() > MAX_IDENTIFIER {
            return Err(invalid(
                "it is longer than 61 characters, and PostgreSQL would truncate the identifier",
            ));
        }
        Ok(Self {
            role: identifier.clone(),
            database: identifier,
        })
    }
}

/// `name` as a quoted SQL identifier: `"name"`, with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as a standard-conforming SQL string literal: `'value'`, quotes doubled. Refuses
/// a NUL byte, which PostgreSQL cannot carry in a string.
pub fn quote_literal(value: &str) -> Option<String> {
    (!value.contains('\0')).then(|| format!("'{}'", value.replace('\'', "''")))
}

/// The comment Landlord puts on a tenant's role and database: it proves that Landlord made
/// them for this very Tenant (by uid), so a namesake never inherits another tenant's data.
pub fn ownership_marker(tenant: &str, uid: &str) -> String {
    format!("landlord.dev tenant={tenant} uid={uid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_map_to_prefixed_identifiers() {
        let names = Names::for_tenant("acme-corp").expect("valid");
        assert_eq!(names.role, "t_acme_corp");
        assert_eq!(names.database, "t_acme_corp");
    }

    #[test]
    fn distinct_dns_labels_never_share_an_identifier() {
        // `_` is not a DNS-label character, so `a-b` has no namesake.
        assert!(Names::for_tenant("a_b").is_err());
        assert_ne!(
            Names::for_tenant("a-b").expect("valid"),
            Names::for_tenant("ab").expect("valid")
        );
    }

    #[test]
    fn names_that_would_inject_or_truncate_are_refused_naming_the_field() {
        for bad in ["", "Acme", "x\"; DROP ROLE postgres; --", "a b", "ü"] {
            let err = Names::for_tenant(bad).expect_err(bad);
            assert!(err.to_string().starts_with("metadata.name"), "{err}");
        }
        assert!(Names::for_tenant(&"a".repeat(61)).is_ok());
        assert!(Names::for_tenant(&"a".repeat(62)).is_err());
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_ident("t_x"), "\"t_x\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's").as_deref(), Some("'it''s'"));
        assert_eq!(quote_literal("a\0b"), None);
    }
}

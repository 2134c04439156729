//! The tenant assertion: proof that the tenant of a request was named by a Landlord route,
//! not by whoever sent the request.
//!
//! A shared-tier tenant's route (the Gateway API HTTPRoute Landlord writes) sets two
//! headers on every request it sends to the pool: `X-Landlord-Tenant: <tenant>` and
//! `X-Landlord-Tenant-Assertion: v1.<mac>`, where `<mac>` is the unpadded base64url
//! HMAC-SHA256 of `landlord-tenant-assertion/v1:<tenant>` under the platform's tenant key.
//! The key lives in the Secret `landlord-tenant-keys` of the platform namespace (keys
//! `primary`, which routes are signed with, and `secondary`, also accepted during a
//! rotation); the pool's pods get it as `LANDLORD_TENANT_KEY` and
//! `LANDLORD_TENANT_KEY_SECONDARY`. Tenants cannot read the platform namespace, so a tenant
//! knows at most its own assertion (it may read its own HTTPRoute), which only says what it
//! already is.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::tenant::Tenant;

/// The header that carries the assertion.
pub const HEADER: &str = "X-Landlord-Tenant-Assertion";
/// Environment variable of the key that routes are signed with.
pub const KEY_ENV: &str = "LANDLORD_TENANT_KEY";
/// Environment variable of a second accepted key (during a rotation); may be empty.
pub const SECONDARY_KEY_ENV: &str = "LANDLORD_TENANT_KEY_SECONDARY";
/// The shortest key accepted, in bytes (Landlord generates 43 base64url characters: 256 bits).
pub const MIN_KEY_BYTES: usize = 32;
const VERSION: &str = "v1.";
const CONTEXT: &str = "landlord-tenant-assertion/v1:";

/// A key too short to be one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a tenant key has at least {MIN_KEY_BYTES} bytes")]
pub struct ShortKey;

/// What [`TenantKeys::from_env`] could not use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{KEY_ENV} is not set: the pool's tenant key (Secret landlord-tenant-keys) is needed")]
    Missing,
    #[error("{0}: {ShortKey}")]
    Short(&'static str),
}

/// The keys an assertion is checked against: the primary one and, during a rotation, a
/// secondary one. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantKeys {
    primary: Vec<u8>,
    secondary: Option<Vec<u8>>,
}

impl fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantKeys")
            .field("primary", &"<redacted>")
            .field("secondary", &self.secondary.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl TenantKeys {
    /// One key.
    pub fn new(primary: impl Into<Vec<u8>>) -> Result<Self, ShortKey> {
        let primary = primary.into();
        if primary.len() < MIN_KEY_BYTES {
            return Err(ShortKey);
        }
        Ok(Self {
            primary,
            secondary: None,
        })
    }

    /// Also accepts assertions made with `secondary`.
    pub fn secondary(mut self, secondary: impl Into<Vec<u8>>) -> Result<Self, ShortKey> {
        let secondary = secondary.into();
        if secondary.len() < MIN_KEY_BYTES {
            return Err(ShortKey);
        }
        self.secondary = Some(secondary);
        Ok(self)
    }

    /// The keys from `LANDLORD_TENANT_KEY` and (when set and not empty)
    /// `LANDLORD_TENANT_KEY_SECONDARY`, as the pool's Deployments hand them over.
    pub fn from_env() -> Result<Self, KeyError> {
        let primary = std::env::var_os(KEY_ENV)
            .filter(|v| !v.is_empty())
            .ok_or(KeyError::Missing)?;
        let keys = Self::new(primary.into_encoded_bytes()).map_err(|_| KeyError::Short(KEY_ENV))?;
        match std::env::var_os(SECONDARY_KEY_ENV).filter(|v| !v.is_empty()) {
            Some(secondary) => keys
                .secondary(secondary.into_encoded_bytes())
                .map_err(|_| KeyError::Short(SECONDARY_KEY_ENV)),
            None => Ok(keys),
        }
    }

    /// The assertion of `tenant` under the primary key (what a route sends).
    pub fn assert(&self, tenant: &Tenant) -> String {
        assertion(&self.primary, tenant.as_str())
    }

    /// Whether `assertion` names `tenant` under one of the keys. Constant-time in the MAC.
    pub fn verify(&self, tenant: &Tenant, assertion: &str) -> bool {
        let Some(mac) = assertion
            .strip_prefix(VERSION)
            .and_then(|mac| URL_SAFE_NO_PAD.decode(mac).ok())
        else {
            return false;
        };
        std::iter::once(&self.primary)
            .chain(self.secondary.as_ref())
            .any(|key| hmac(key, tenant.as_str()).verify_slice(&mac).is_ok())
    }
}

fn hmac(key: &[u8], tenant: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length; the error case cannot happen.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(CONTEXT.as_bytes());
    mac.update(tenant.as_bytes());
    mac
}

/// The assertion of `tenant` under `key`: `v1.<base64url HMAC-SHA256>`.
pub fn assertion(key: &[u8], tenant: &str) -> String {
    format!(
        "{VERSION}{}",
        URL_SAFE_NO_PAD.encode(hmac(key, tenant).finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OTHER_KEY: &[u8] = b"fedcba9876543210fedcba9876543210";

    fn acme() -> Tenant {
        Tenant::parse("acme").unwrap()
    }

    #[test]
    fn the_assertion_format_is_stable() {
        // The operator signs routes with its own implementation; both check this vector (also
        // what `openssl dgst -sha256 -hmac` gives).
        assert_eq!(
            assertion(KEY, "acme"),
            "v1.hdVHpqWdmk1CR3byWoG4uEcjAaVCmaSB5jXSjR3zZbI"
        );
    }

    #[test]
    fn the_right_assertion_verifies_and_forgeries_do_not() {
        let keys = TenantKeys::new(KEY).unwrap();
        let globex = Tenant::parse("globex").unwrap();
        let token = keys.assert(&acme());
        assert!(keys.verify(&acme(), &token));
        // Another tenant's assertion does not name this tenant.
        assert!(!keys.verify(&globex, &token));
        assert!(!keys.verify(&acme(), &keys.assert(&globex)));
        // The same tenant under a key the pool does not hold.
        assert!(!keys.verify(&acme(), &assertion(OTHER_KEY, "acme")));
        // Garbage, a bare name, a truncated or unversioned MAC.
        for forged in [
            "",
            "acme",
            "v1.",
            "v1.acme",
            &token[3..],
            &token[..token.len() - 2],
            "v2.x",
        ] {
            assert!(!keys.verify(&acme(), forged), "{forged:?}");
        }
    }

    #[test]
    fn during_a_rotation_both_keys_verify_and_the_primary_signs() {
        let keys = TenantKeys::new(OTHER_KEY).unwrap().secondary(KEY).unwrap();
        assert!(keys.verify(&acme(), &assertion(KEY, "acme")));
        assert!(keys.verify(&acme(), &assertion(OTHER_KEY, "acme")));
        assert_eq!(keys.assert(&acme()), assertion(OTHER_KEY, "acme"));
    }

    #[test]
    fn short_keys_are_refused_and_keys_are_never_printed() {
        assert_eq!(TenantKeys::new(&b"short"[..]), Err(ShortKey));
        assert!(
            TenantKeys::new(KEY)
                .unwrap()
                .secondary(&b"short"[..])
                .is_err()
        );
        let keys = TenantKeys::new(KEY).unwrap().secondary(OTHER_KEY).unwrap();
        let printed = format!("{keys:?}");
        assert!(
            !printed.contains("0123") && !printed.contains("fedc"),
            "{printed}"
        );
    }
}

//! Standard Webhooks signatures (symmetric, `v1`): HMAC-SHA256 over `<id>.<timestamp>.<body>`
//! keyed with the endpoint's `whsec_` secret.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a signing secret's text.
pub const PREFIX: &str = "whsec_";

/// A signing secret's key bytes. Its `Debug` prints no key material.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({} bytes)", self.0.len())
    }
}

/// Why a Secret's value is not a signing secret (the message names no key material).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the signing secret must start with whsec_")]
    Prefix,
    #[error("the signing secret after whsec_ is not base64")]
    Base64,
    #[error("the signing secret holds {0} bytes; it needs 24 to 64")]
    Length(usize),
}

impl SigningKey {
    /// Parses `whsec_<base64 of 24 to 64 bytes>` (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let encoded = text.trim().strip_prefix(PREFIX).ok_or(KeyError::Prefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| KeyError::Base64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(KeyError::Length(key.len()));
        }
        Ok(Self(key))
    }

    /// The `webhook-signature` header value: `v1,<base64 HMAC-SHA256>` of
    /// `<id>.<timestamp>.<body>`, `timestamp` in Unix seconds.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_specifications_test_vector() {
        // The example of the Standard Webhooks specification (spec/standard-webhooks.md).
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        let signature = key.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn refuses_what_is_not_a_signing_secret_without_echoing_it() {
        assert_eq!(
            SigningKey::parse("MfKQ9r8GKYqr").expect_err("refused"),
            KeyError::Prefix
        );
        assert_eq!(
            SigningKey::parse("whsec_!!!").expect_err("refused"),
            KeyError::Base64
        );
        assert_eq!(
            SigningKey::parse("whsec_c2hvcnQ=").expect_err("refused"),
            KeyError::Length(5)
        );
        let key = SigningKey::parse(" whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").expect("trimmed");
        assert!(!format!("{key:?}").contains("MfKQ"));
    }
}

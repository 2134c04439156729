//! Passwords for tenant roles, and the SCRAM-SHA-256 verifiers that PostgreSQL stores.
//!
//! Landlord sends PostgreSQL only the verifier (RFC 5802 / RFC 7677, in PostgreSQL's
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` form), never the password:
//! with `log_statement = all` the server logs the statement, and a verifier in a log does
//! not let anyone log in.

use base64::{Engine, engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// PostgreSQL's default iteration count (`scram_iterations`).
pub const ITERATIONS: u32 = 4096;
const SALT_LEN: usize = 16;
/// 32 random bytes: 256 bits of entropy, 43 URL-safe characters.
const PASSWORD_BYTES: usize = 32;

/// The operating system's random generator failed (no entropy source).
#[derive(Debug, thiserror::Error)]
#[error("no randomness available: {0}")]
pub struct NoRandomness(String);

fn random<const N: usize>() -> Result<[u8; N], NoRandomness> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| NoRandomness(e.to_string()))?;
    Ok(bytes)
}

/// A new password: URL-safe, so it can sit in a connection URI without escaping.
pub fn generate_password() -> Result<String, NoRandomness> {
    Ok(URL_SAFE_NO_PAD.encode(random::<PASSWORD_BYTES>()?))
}

/// The verifier of `password` with a fresh random salt.
pub fn verifier(password: &str) -> Result<String, NoRandomness> {
    Ok(verifier_with(password, &random::<SALT_LEN>()?, ITERATIONS))
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 with one output block: SCRAM's `Hi()`.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut block = Vec::with_capacity(salt.len() + 4);
    block.extend_from_slice(salt);
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &block);
    let mut result = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (r, x) in result.iter_mut().zip(u.iter()) {
            *r ^= x;
        }
    }
    result
}

/// The verifier of `password` for a given salt and iteration count.
///
/// PostgreSQL normalises passwords with SASLprep; generated passwords are ASCII, for which
/// SASLprep is the identity, so none is applied here.
pub fn verifier_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let salted = salted_password(password.as_bytes(), salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's test vector: user "user", password "pencil", salt
    /// "W22ZaJ0SNY7soEsUEjb6gQ==", 4096 iterations. The RFC gives the server's final
    /// signature; StoredKey and ServerKey below are derived from the same inputs and
    /// cross-checked by that signature in `rfc7677_server_signature`.
    fn rfc_salt() -> Vec<u8> {
        STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .expect("rfc salt")
    }

    #[test]
    fn rfc7677_server_signature() {
        let salted = salted_password(b"pencil", &rfc_salt(), 4096);
        let server_key = hmac(&salted, b"Server Key");
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature = hmac(&server_key, auth_message.as_bytes());
        assert_eq!(
            STANDARD.encode(signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(client_key);
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_signature.iter())
            .map(|(k, s)| k ^ s)
            .collect();
        assert_eq!(
            STANDARD.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
    }

    #[test]
    fn verifier_has_postgres_format() {
        let v = verifier_with("pencil", &rfc_salt(), 4096);
        let parts: Vec<&str> = v.split('$').collect();
        assert_eq!(parts.len(), 3, "{v}");
        assert_eq!(parts[0], "SCRAM-SHA-256");
        assert_eq!(parts[1], "4096:W22ZaJ0SNY7soEsUEjb6gQ==");
        let keys: Vec<&str> = parts[2].split(':').collect();
        assert_eq!(keys.len(), 2);
        assert!(
            keys.iter()
                .all(|k| STANDARD.decode(k).map(|b| b.len()) == Ok(32))
        );
    }

    #[test]
    fn passwords_are_long_random_and_url_safe() {
        let a = generate_password().expect("random");
        let b = generate_password().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        let v1 = verifier(&a).expect("random");
        let v2 = verifier(&a).expect("random");
        assert_ne!(v1, v2, "fresh salt each time");
        assert!(!v1.contains(&a));
    }
}

//! NATS JWTs (the decentralised auth of a NATS server in operator mode), pure: the claims of
//! accounts and users, their encoding and signing with nkeys, `.creds` files, and the keys
//! Landlord derives for each tenant.
//!
//! The format is that of `github.com/nats-io/jwt/v2`: a JWT with header
//! `{"typ":"JWT","alg":"ed25519-nkey"}`, signed with the issuer's ed25519 nkey, whose `jti`
//! is the base32 SHA-512/256 of the standard claims.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use nkeys::{KeyPair, KeyPairType};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256, Sha512_256};

/// `-1` in a NATS limit means "no limit"; `0` means none allowed.
pub const NO_LIMIT: i64 = -1;

/// The key of an account's `revocations` that applies to every user: user JWTs issued at or
/// before its time are refused, whoever they are for.
pub const ALL_USERS: &str = "*";

/// Why a JWT could not be made or read. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("signing: {0}")]
    Sign(String),
    #[error("malformed JWT: {0}")]
    Malformed(&'static str),
    #[error("the JWT's signature does not verify against its issuer")]
    BadSignature,
    #[error("deriving a key: {0}")]
    Key(String),
}

/// The standard part of a NATS JWT around its `nats` payload.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Claims<T> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default)]
    pub jti: String,
    #[serde(default)]
    pub iat: i64,
    #[serde(default)]
    pub iss: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub sub: String,
    pub nats: T,
}

/// The fields the `jti` hashes, in the order Go's encoder writes them.
#[derive(Serialize)]
struct Standard<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    iat: i64,
    iss: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    sub: &'a str,
}

impl<T: Serialize + DeserializeOwned + PartialEq> Claims<T> {
    pub fn new(subject: impl Into<String>, name: impl Into<String>, nats: T) -> Self {
        Self {
            exp: None,
            jti: String::new(),
            iat: 0,
            iss: String::new(),
            name: name.into(),
            sub: subject.into(),
            nats,
        }
    }

    /// Whether two claims say the same thing, whenever and under whichever id they were issued.
    pub fn same_as(&self, other: &Self) -> bool {
        self.iss == other.iss
            && self.sub == other.sub
            && self.name == other.name
            && self.exp == other.exp
            && self.nats == other.nats
    }

    /// Signs the claims as `signer`, issued at `issued_at` (unix seconds).
    pub fn encode(mut self, signer: &KeyPair, issued_at: i64) -> Result<String, JwtError> {
        self.iss = signer.public_key();
        self.iat = issued_at;
        let standard = Standard {
            exp: self.exp,
            iat: self.iat,
            iss: &self.iss,
            name: &self.name,
            sub: &self.sub,
        };
        let standard = serde_json::to_vec(&standard).map_err(|e| JwtError::Sign(e.to_string()))?;
        self.jti = data_encoding::BASE32_NOPAD.encode(&Sha512_256::digest(&standard));
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
        let payload = serde_json::to_vec(&self).map_err(|e| JwtError::Sign(e.to_string()))?;
        let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
        let signature = signer
            .sign(signed.as_bytes())
            .map_err(|e| JwtError::Sign(e.to_string()))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// Reads a JWT and checks that its issuer signed it.
    pub fn decode(token: &str) -> Result<Self, JwtError> {
        let mut parts = token.trim().split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("expected three parts"));
        };
        let payload_bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| JwtError::Malformed("payload is not base64url"))?;
        let claims: Self = serde_json::from_slice(&payload_bytes)
            .map_err(|_| JwtError::Malformed("payload does not hold the expected claims"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwtError::Malformed("signature is not base64url"))?;
        let issuer = KeyPair::from_public_key(&claims.iss)
            .map_err(|_| JwtError::Malformed("issuer is not a public nkey"))?;
        issuer
            .verify(format!("{header}.{payload}").as_bytes(), &signature)
            .map_err(|_| JwtError::BadSignature)?;
        Ok(claims)
    }
}

/// Publish or subscribe permissions of a user.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Permission {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// Default permissions of an account's users.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Permissions {
    #[serde(rename = "pub")]
    pub publish: Permission,
    #[serde(rename = "sub")]
    pub subscribe: Permission,
}

/// An account's limits (NATS, account and JetStream limits in one object, as in Go's
/// `OperatorLimits`). Missing fields read as 0, as Go's `omitempty` writes them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct AccountLimits {
    pub subs: i64,
    pub data: i64,
    pub payload: i64,
    pub imports: i64,
    pub exports: i64,
    pub wildcards: bool,
    pub conn: i64,
    pub leaf: i64,
    pub mem_storage: i64,
    pub disk_storage: i64,
    pub streams: i64,
    pub consumer: i64,
    pub max_bytes_required: bool,
}

/// The `nats` payload of an account JWT.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Account {
    pub limits: AccountLimits,
    /// User public key → unix time: user JWTs issued at or before that time are refused.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    pub default_permissions: Permissions,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
}

/// The `nats` payload of a user JWT.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct User {
    #[serde(rename = "pub")]
    pub publish: Permission,
    #[serde(rename = "sub")]
    pub subscribe: Permission,
    pub subs: i64,
    pub data: i64,
    pub payload: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
}

impl User {
    pub fn new(publish: Permission, subscribe: Permission) -> Self {
        Self {
            publish,
            subscribe,
            subs: NO_LIMIT,
            data: NO_LIMIT,
            payload: NO_LIMIT,
            kind: "user".into(),
            version: 2,
        }
    }
}

/// The `nats` payload of the operator-signed request that deletes accounts from a full
/// resolver (`$SYS.REQ.CLAIMS.DELETE`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteAccounts {
    pub accounts: Vec<String>,
}

/// A `.creds` file: a user's JWT and the seed that proves it is the user's.
pub fn format_creds(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}

/// The JWT and the seed of a `.creds` file.
pub fn parse_creds(creds: &str) -> Option<(String, String)> {
    let block = |begin: &str| {
        let mut lines = creds.lines().map(str::trim);
        lines.find(|l| l.starts_with("-----BEGIN") && l.contains(begin))?;
        lines
            .find(|l| !l.is_empty())
            .filter(|l| !l.starts_with("--"))
            .map(str::to_string)
    };
    Some((block("JWT")?, block("SEED")?))
}

/// A key derived from `root` for one purpose: the same root and purpose always give the
/// same key, so Landlord stores no per-tenant account key (it follows from the operator
/// signing key and the Tenant's uid).
pub fn derive_key(root: &KeyPair, kind: KeyPairType, purpose: &str) -> Result<KeyPair, JwtError> {
    let seed = root.seed().map_err(|e| JwtError::Key(e.to_string()))?;
    let (_, raw) = nkeys::decode_seed(&seed).map_err(|e| JwtError::Key(e.to_string()))?;
    let mut hasher = Sha256::new();
    hasher.update(b"landlord.dev/nats-key\0");
    hasher.update(raw);
    hasher.update(b"\0");
    hasher.update(purpose.as_bytes());
    let derived: [u8; 32] = hasher.finalize().into();
    KeyPair::new_from_raw(kind, derived).map_err(|e| JwtError::Key(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operator() -> KeyPair {
        KeyPair::new_from_raw(KeyPairType::Operator, [7; 32]).expect("key")
    }

    #[test]
    fn encoded_claims_decode_and_verify() {
        let account = KeyPair::new_from_raw(KeyPairType::Account, [1; 32]).expect("key");
        let mut nats = Account {
            kind: "account".into(),
            version: 2,
            ..Default::default()
        };
        nats.limits.disk_storage = 1024;
        let claims = Claims::new(account.public_key(), "tenant-acme", nats);
        let jwt = claims
            .clone()
            .encode(&operator(), 1_700_000_000)
            .expect("encode");
        let decoded = Claims::<Account>::decode(&jwt).expect("decode");
        assert_eq!(decoded.iss, operator().public_key());
        assert_eq!(decoded.iat, 1_700_000_000);
        assert_eq!(decoded.jti.len(), 52, "base32 of 32 bytes, unpadded");
        assert!(decoded.nats == claims.nats && decoded.sub == claims.sub);
        let header = jwt.split('.').next().expect("header");
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header).expect("b64"),
            br#"{"typ":"JWT","alg":"ed25519-nkey"}"#
        );
    }

    #[test]
    fn same_claims_issued_twice_are_the_same() {
        let nats = User::new(Permission::default(), Permission::default());
        let a = Claims::new("U", "u", nats.clone())
            .encode(&operator(), 1)
            .expect("encode");
        let b = Claims::new("U", "u", nats)
            .encode(&operator(), 2)
            .expect("encode");
        assert_ne!(a, b);
        let (a, b) = (
            Claims::<User>::decode(&a).expect("a"),
            Claims::<User>::decode(&b).expect("b"),
        );
        assert!(a.same_as(&b));
        let mut c = b.clone();
        c.nats.publish.allow.push("x".into());
        assert!(!a.same_as(&c));
    }

    #[test]
    fn a_tampered_jwt_is_refused() {
        let jwt = Claims::new("U", "u", User::default())
            .encode(&operator(), 1)
            .expect("encode");
        let mut parts: Vec<String> = jwt.split('.').map(str::to_string).collect();
        let forged = Claims::new(
            "U",
            "u",
            User::new(
                Permission {
                    allow: vec![">".into()],
                    deny: vec![],
                },
                Permission::default(),
            ),
        );
        let mut forged = serde_json::to_value(forged).expect("json");
        forged["iss"] = operator().public_key().into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        assert!(matches!(
            Claims::<User>::decode(&parts.join(".")),
            Err(JwtError::BadSignature)
        ));
        assert!(Claims::<User>::decode("not-a-jwt").is_err());
    }

    #[test]
    fn creds_round_trip() {
        let user = KeyPair::new_from_raw(KeyPairType::User, [3; 32]).expect("key");
        let seed = user.seed().expect("seed");
        let creds = format_creds("header.payload.sig", &seed);
        assert_eq!(
            parse_creds(&creds),
            Some(("header.payload.sig".to_string(), seed))
        );
        assert_eq!(parse_creds("nothing here"), None);
    }

    #[test]
    fn derived_keys_are_stable_per_purpose_and_typed() {
        let a = derive_key(&operator(), KeyPairType::Account, "tenant/uid-1").expect("a");
        let again = derive_key(&operator(), KeyPairType::Account, "tenant/uid-1").expect("a");
        let other = derive_key(&operator(), KeyPairType::Account, "tenant/uid-2").expect("b");
        assert_eq!(a.public_key(), again.public_key());
        assert_ne!(a.public_key(), other.public_key());
        assert!(a.public_key().starts_with('A'));
        let user = derive_key(&operator(), KeyPairType::User, "tenant/uid-1").expect("u");
        assert!(user.public_key().starts_with('U'));
    }
}

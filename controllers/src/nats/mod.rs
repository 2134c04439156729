//! Landlord's NATS provisioner: talks to a NATS server in operator (decentralised JWT) mode.
//!
//! Accounts are JWTs signed with the operator's signing key and pushed to the server's full
//! resolver through the system account (`$SYS.REQ.CLAIMS.UPDATE`, `$SYS.REQ.CLAIMS.DELETE`).
//! Streams are managed inside an account through a short-lived user that Landlord signs
//! with the account's key. Nothing here logs or returns key material.

pub mod desired;
pub mod jwt;

use landlord_crds::conditions::Reason;
use std::{fmt, sync::Arc, time::Duration};

use async_nats::{Client, ConnectErrorKind, ConnectOptions, RequestErrorKind};
use nkeys::{KeyPair, KeyPairType};
use serde::Deserialize;
use tokio::sync::Mutex;

use jwt::{Claims, DeleteAccounts, JwtError};

/// How long a request to the server (a claim update, a JetStream API call) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the NATS server is and the key material Landlord uses with it.
#[derive(Clone)]
pub struct NatsConfig {
    /// URL of the server, e.g. `nats://nats.nats.svc:4222`; also handed to the tenants.
    pub url: String,
    /// The operator signing key: signs the tenants' accounts.
    pub signing_key: Arc<KeyPair>,
    /// `.creds` of a user of the system account: pushes and deletes accounts.
    pub system_creds: Arc<str>,
    /// Where tenants' pods reach the server (its namespace in the cluster, or its addresses
    /// outside): tenants with topics and `Strict` isolation may send to it.
    pub network: crate::config::NetworkLocation,
    /// Size of a topic's stream when its spec sets no `maxBytes`.
    pub default_topic_bytes: i64,
    /// Limits of a tenant's account where its `spec.quota.nats` sets none.
    pub limits: TenantLimits,
}

/// The limits of a tenant's NATS account. All finite: a tenant that could open unlimited
/// connections, subscriptions or consumers could exhaust the server every tenant shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantLimits {
    /// Concurrent connections of the account.
    pub connections: i64,
    /// Subscriptions of one connection (NATS counts them per connection).
    pub subscriptions_per_connection: i64,
    /// Largest message a client may publish, in bytes.
    pub max_payload_bytes: i64,
    /// Consumers of one stream (NATS counts them per stream).
    pub consumers_per_stream: i64,
}

impl TenantLimits {
    /// The operator's defaults when no flag overrides them (`--nats-default-*`).
    pub const DEFAULT: Self = Self {
        connections: 100,
        subscriptions_per_connection: 1000,
        // The NATS server's own default max_payload.
        max_payload_bytes: 1 << 20,
        consumers_per_stream: 100,
    };
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl NatsConfig {
    /// Reads the signing key's seed (an operator nkey seed, `SO...`); the error never
    /// repeats the input.
    pub fn signing_key_from_seed(seed: &str) -> Result<KeyPair, String> {
        let key = KeyPair::from_seed(seed.trim())
            .map_err(|_| "not an nkey seed (expected an operator seed, SO...)".to_string())?;
        if key.key_pair_type() != KeyPairType::Operator {
            return Err("not an operator seed (expected SO...)".into());
        }
        Ok(key)
    }

    /// The URL handed to tenants and shown in messages: without any `user:password@`, which
    /// is the operator's and no tenant's business.
    pub fn tenant_url(&self) -> String {
        without_userinfo(&self.url)
    }

    /// The servers' URLs the URL lists (separated by commas, as NATS clients take a
    /// cluster's servers), trimmed, empty entries left out: what the operator connects to.
    pub fn servers(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|server| !server.is_empty())
            .collect()
    }

    /// The ports of the servers the URL lists (comma-separated, as NATS clients take them;
    /// 4222 for one that names none), sorted and each once, for the tenants' egress policy.
    pub fn ports(&self) -> Vec<i32> {
        let mut ports: Vec<i32> = self
            .servers()
            .into_iter()
            .map(|rest| {
                let rest = rest.split_once("://").map_or(rest, |(_, rest)| rest);
                let host_port = rest.split('/').next().unwrap_or(rest);
                let host_port = host_port.rsplit('@').next().unwrap_or(host_port);
                host_port
                    .rsplit_once(':')
                    // `[::1]` is a host without a port, not port `1]`.
                    .filter(|(_, port)| !port.ends_with(']'))
                    .and_then(|(_, port)| port.parse().ok())
                    .unwrap_or(4222)
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &self.tenant_url())
            .field("signing_key", &self.signing_key.public_key())
            .field("system_creds", &"<redacted>")
            .field("network", &self.network)
            .field("default_topic_bytes", &self.default_topic_bytes)
            .field("limits", &self.limits)
            .finish()
    }
}

/// `url` (one server, or several comma-separated) without the `user:password@` of any.
pub fn without_userinfo(url: &str) -> String {
    url.split(',')
        .map(|server| {
            let (scheme, rest) = match server.split_once("://") {
                Some((scheme, rest)) => (Some(scheme), rest),
                None => (None, server),
            };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            let host = authority.rsplit('@').next().unwrap_or(authority);
            match scheme {
                Some(scheme) => format!("{scheme}://{host}{path}"),
                None => format!("{host}{path}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What went wrong talking to NATS. Messages name what failed, never credentials.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("NATS server {url} is unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("NATS refused the credentials of {who}: {detail}")]
    Authentication { who: String, detail: String },
    #[error("NATS refused the account: {0}")]
    AccountRejected(String),
    #[error("JetStream refused {what}: {description}")]
    JetStream {
        what: String,
        code: u64,
        description: String,
    },
    #[error(
        "NATS has no JetStream for the tenant's account: the server could not reserve {bytes} bytes of storage for streams {streams}"
    )]
    Storage { bytes: i64, streams: String },
    #[error("unexpected answer from NATS: {0}")]
    Protocol(String),
    #[error(transparent)]
    Jwt(#[from] JwtError),
}

impl NatsError {
    /// The CamelCase reason a condition reports for this error.
    pub fn reason(&self) -> Reason {
        match self {
            NatsError::Unreachable { .. } | NatsError::Protocol(_) => Reason::NatsUnreachable,
            NatsError::Authentication { .. } => Reason::AuthenticationFailed,
            NatsError::AccountRejected(_) | NatsError::Jwt(_) => Reason::AccountRejected,
            NatsError::JetStream { code, .. } if is_limit(*code) => Reason::StreamLimitRejected,
            NatsError::Storage { .. } => Reason::StreamLimitRejected,
            NatsError::JetStream { .. } => Reason::StreamRejected,
        }
    }

    pub fn unreachable(url: &str, detail: impl fmt::Display) -> Self {
        NatsError::Unreachable {
            url: without_userinfo(url),
            detail: detail.to_string(),
        }
    }

    fn connect(url: &str, who: &str, error: async_nats::ConnectError) -> Self {
        match error.kind() {
            ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
                NatsError::Authentication {
                    who: who.to_string(),
                    detail: error.to_string(),
                }
            }
            _ => NatsError::unreachable(url, error),
        }
    }

    fn request(url: &str, what: &str, error: async_nats::RequestError) -> Self {
        match error.kind() {
            RequestErrorKind::TimedOut | RequestErrorKind::NoResponders => {
                NatsError::unreachable(url, format!("{what}: {error}"))
            }
            _ => NatsError::Protocol(format!("{what}: {error}")),
        }
    }
}

/// JetStream error codes that mean a limit (the account's, the server's) was hit.
fn is_limit(code: u64) -> bool {
    matches!(
        code,
        10002 // account resources exceeded
            | 10023 // insufficient resources
            | 10027 // maximum number of streams reached
            | 10028 // memory resources exceeded
            | 10047 // storage resources exceeded
            | 10053 // stream limits
            | 10113 // max bytes required
    )
}

/// The operator's connection to NATS, opened on first use (a tenant without topics never
/// needs it) and kept: async-nats reconnects by itself.
pub struct Nats {
    config: NatsConfig,
    system: Mutex<Option<Client>>,
}

/// `{"data": ..., "error": {"description": ...}}`, the envelope of `$SYS` answers.
#[derive(Deserialize)]
struct SysResponse<T> {
    data: Option<T>,
    error: Option<SysError>,
}

#[derive(Deserialize)]
struct SysError {
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
struct AccountInfo {
    #[serde(default)]
    jwt: String,
}

impl Nats {
    pub fn new(config: NatsConfig) -> Self {
        Self {
            config,
            system: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &NatsConfig {
        &self.config
    }

    async fn system(&self) -> Result<Client, NatsError> {
        let mut system = self.system.lock().await;
        if let Some(client) = system.as_ref() {
            return Ok(client.clone());
        }
        let url = &self.config.url;
        let client = ConnectOptions::with_credentials(&self.config.system_creds)
            .map_err(|_| NatsError::Authentication {
                who: "the system account".into(),
                detail: "the system account's creds cannot be read".into(),
            })?
            .name("landlord")
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .connect(self.config.servers())
            .await
            .map_err(|e| NatsError::connect(url, "the system account", e))?;
        *system = Some(client.clone());
        Ok(client)
    }

    /// The account's claims as the server currently applies them, or None when the server
    /// has not loaded the account (never pushed, deleted, or not used since a restart).
    pub async fn live_account(
        &self,
        account: &str,
    ) -> Result<Option<Claims<jwt::Account>>, NatsError> {
        let client = self.system().await?;
        let subject = format!("$SYS.REQ.ACCOUNT.{account}.INFO");
        let reply = client
            .request(subject, "".into())
            .await
            .map_err(|e| NatsError::request(&self.config.url, "reading an account", e))?;
        let response: SysResponse<AccountInfo> = serde_json::from_slice(&reply.payload)
            .map_err(|e| NatsError::Protocol(format!("account info: {e}")))?;
        match response.data {
            Some(info) if !info.jwt.is_empty() => Ok(Claims::decode(&info.jwt).ok()),
            _ => Ok(None),
        }
    }

    /// Pushes an account JWT to the resolver.
    pub async fn push_account(&self, account_jwt: String) -> Result<(), NatsError> {
        let client = self.system().await?;
        let reply = client
            .request("$SYS.REQ.CLAIMS.UPDATE", account_jwt.into())
            .await
            .map_err(|e| NatsError::request(&self.config.url, "pushing an account", e))?;
        check_sys_reply(&reply.payload)
    }

    /// Deletes accounts from the resolver (the server disconnects their clients).
    pub async fn delete_accounts(&self, accounts: Vec<String>) -> Result<(), NatsError> {
        let signer = &self.config.signing_key;
        // The request must be self-signed by a trusted operator key.
        let request = Claims::new(signer.public_key(), "", DeleteAccounts { accounts })
            .encode(signer, now())?;
        let client = self.system().await?;
        let reply = client
            .request("$SYS.REQ.CLAIMS.DELETE", request.into())
            .await
            .map_err(|e| NatsError::request(&self.config.url, "deleting an account", e))?;
        check_sys_reply(&reply.payload)
    }

    /// Connects as a user of an account, with that user's `.creds`; for short work (no
    /// reconnects).
    pub async fn connect_as(&self, creds: &str, who: &str) -> Result<Client, NatsError> {
        let url = &self.config.url;
        ConnectOptions::with_credentials(creds)
            .map_err(|_| NatsError::Protocol("malformed creds".into()))?
            .name("landlord")
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .max_reconnects(1)
            .connect(self.config.servers())
            .await
            .map_err(|e| NatsError::connect(url, who, e))
    }
}

fn check_sys_reply(payload: &[u8]) -> Result<(), NatsError> {
    let response: SysResponse<serde_json::Value> = serde_json::from_slice(payload)
        .map_err(|e| NatsError::Protocol(format!("resolver answer: {e}")))?;
    match response.error {
        Some(error) => Err(NatsError::AccountRejected(error.description)),
        None => Ok(()),
    }
}

/// Now, in unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> NatsConfig {
        NatsConfig {
            url: url.into(),
            signing_key: Arc::new(KeyPair::new(KeyPairType::Operator)),
            system_creds: "".into(),
            network: Default::default(),
            default_topic_bytes: 1 << 30,
            limits: TenantLimits::DEFAULT,
        }
    }

    #[test]
    fn the_url_tenants_see_has_no_userinfo() {
        let c = config("tls://landlord:s3cret@nats-a:4222,nats://u:p@nats-b:4222/x");
        assert_eq!(c.tenant_url(), "tls://nats-a:4222,nats://nats-b:4222/x");
        assert_eq!(c.ports(), [4222]);
        assert!(!format!("{c:?}").contains("s3cret"));
        let message = NatsError::unreachable(&c.url, "refused").to_string();
        assert!(!message.contains("s3cret"), "{message}");
        assert_eq!(without_userinfo("nats://n:4222"), "nats://n:4222");
        assert_eq!(without_userinfo("u:p@n:4222"), "n:4222");
    }

    #[test]
    fn ports_come_from_every_server_of_the_url() {
        assert_eq!(config("nats://127.0.0.1:4333").ports(), [4333]);
        assert_eq!(config("nats://nats.nats.svc").ports(), [4222]);
        assert_eq!(config("tls://user:pw@nats:7422").ports(), [7422]);
        assert_eq!(config("nats://[::1]").ports(), [4222]);
        assert_eq!(config("nats://[fd00::1]:4333").ports(), [4333]);
        let cluster = config("nats://a:4223, nats://b:4222,c,,nats://u:p@d:4223/");
        assert_eq!(cluster.ports(), [4222, 4223]);
        assert_eq!(
            cluster.servers(),
            ["nats://a:4223", "nats://b:4222", "c", "nats://u:p@d:4223/"]
        );
    }

    #[test]
    fn debug_never_shows_the_keys() {
        let c = config("nats://x");
        let seed = c.signing_key.seed().expect("seed");
        let shown = format!("{c:?}");
        assert!(!shown.contains(&seed));
        assert!(shown.contains(&c.signing_key.public_key()));
    }

    #[test]
    fn signing_key_must_be_an_operator_seed() {
        let operator = KeyPair::new(KeyPairType::Operator).seed().expect("seed");
        let account = KeyPair::new(KeyPairType::Account).seed().expect("seed");
        assert!(NatsConfig::signing_key_from_seed(&format!("{operator}\n")).is_ok());
        let err = NatsConfig::signing_key_from_seed(&account).expect_err("account seed");
        assert!(!err.contains(&account));
        assert!(NatsConfig::signing_key_from_seed("garbage").is_err());
    }

    #[test]
    fn limit_errors_have_their_own_reason() {
        let limit = NatsError::JetStream {
            what: "x".into(),
            code: 10047,
            description: "insufficient storage".into(),
        };
        assert_eq!(limit.reason(), "StreamLimitRejected");
        let other = NatsError::JetStream {
            what: "x".into(),
            code: 10052,
            description: "bad".into(),
        };
        assert_eq!(other.reason(), "StreamRejected");
        assert_eq!(
            NatsError::unreachable("nats://x", "refused").reason(),
            "NatsUnreachable"
        );
    }
}

//! The topics part of a tenant: a NATS account of its own (so that NATS itself keeps tenants
//! apart), one JetStream stream per topic under `tenant.<name>.<topic>`, and a user whose
//! `.creds` land in Secret `landlord-nats` in the tenant namespace.
//!
//! desired (pure, in [`crate::nats::desired`]: account and user claims, stream configs) → apply (account JWT
//! pushed only when the server's differs, streams created/updated/deleted only on drift, the
//! Secret applied only on drift) → `TopicsReady`. A tenant without topics never touches NATS.
//!
//! Keys: the account's key is derived from the operator signing key and the Tenant's uid, so
//! a recreated Tenant (new uid) starts from a clean account. The tenant's user has a random
//! key whose seed lives only in the Secret: the creds in the Secret are the only ones that
//! work. The account revokes every user JWT issued before them (`revocations["*"]`), so
//! creds that were rotated away (annotation [`ROTATE_CREDENTIALS`]) or replaced for any other
//! reason stop working, and the server drops their connections. A random key rather than
//! one derived from a rotation counter: nothing to count, no key ever comes back, and a lost
//! Secret simply means new creds. The user JWT has no `exp`: services get the creds as
//! environment variables, which a running pod never re-reads, so an expiry would cut
//! long-running services off; rotation is the way to end creds.
//!
//! Suspension revokes the tenant's user in the account JWT (the server drops its
//! connections); resuming lifts the revocation, and the same creds work again. Landlord
//! manages streams as a short-lived user it signs with the account's key.
//!
//! Limits: the account's connections, subscriptions per connection, payload size and
//! consumers per stream come from `spec.quota.nats`, else the operator's defaults; all finite.

use landlord_crds::conditions::Reason;
use std::collections::{BTreeMap, BTreeSet};

use async_nats::{
    RequestErrorKind,
    jetstream::{self, stream::Config as StreamConfig},
};
use futures::TryStreamExt;
use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{Api, ResourceExt, api::DeleteParams};
use landlord_crds::{
    Tenant,
    conditions::{Observation, Status, tenant::TOPICS_READY},
    tenant::TopicStatus,
};
use nkeys::{KeyPair, KeyPairType};
use tracing::{info, warn};

use super::{
    State, desired,
    error::{Error, Result},
};
use crate::{
    Context,
    apply::{self, EnsureError, Outcome},
    database::desired::ROTATION,
    labels,
    nats::{
        Nats, NatsConfig, NatsError, TenantLimits,
        desired::*,
        jwt::{self, ALL_USERS, Claims, JwtError, Permission},
        now,
    },
};

const MANAGER: &str = "landlord/tenant-topics";
/// Secret in the tenant namespace with the tenant's NATS URL and `.creds`.
pub const SECRET: &str = "landlord-nats";
/// Annotation on a Tenant: change its value to issue new NATS creds and revoke the old.
pub const ROTATE_CREDENTIALS: &str = "landlord.dev/rotate-nats-credentials";
/// How long the user Landlord manages streams with stays valid.
const ADMIN_LIFETIME_SECONDS: i64 = 300;

/// The key of a tenant's account.
fn account_key(tenant: &Tenant, config: &NatsConfig) -> Result<KeyPair, JwtError> {
    let uid = tenant.uid().unwrap_or_default();
    jwt::derive_key(
        &config.signing_key,
        KeyPairType::Account,
        &format!("tenant/{uid}/account"),
    )
}

/// `.creds` of a fresh user with every right in the account, valid for a few minutes.
fn admin_creds(account: &KeyPair) -> Result<String, JwtError> {
    let admin = KeyPair::new(KeyPairType::User);
    let mut claims = Claims::new(
        admin.public_key(),
        "landlord",
        jwt::User::new(Permission::default(), Permission::default()),
    );
    let issued = now();
    claims.exp = Some(issued + ADMIN_LIFETIME_SECONDS);
    let token = claims.encode(account, issued)?;
    let seed = admin.seed().map_err(|e| JwtError::Key(e.to_string()))?;
    Ok(jwt::format_creds(&token, &seed))
}

/// The tenant's `.creds` and the user they are for.
struct Creds {
    user: TenantUser,
    text: String,
}

/// The value of the Tenant's rotation annotation (empty when unset).
fn rotation(tenant: &Tenant) -> String {
    tenant
        .annotations()
        .get(ROTATE_CREDENTIALS)
        .cloned()
        .unwrap_or_default()
}

/// The creds in a live Secret, if they are still the tenant's current ones: made for the
/// Tenant's current rotation, a user of its account with the permissions Landlord grants,
/// whose seed matches its JWT, issued after the account's last revocation of all users.
fn kept_creds(
    tenant: &Tenant,
    account: &KeyPair,
    revoked_before: i64,
    live: Option<&Secret>,
) -> Option<Creds> {
    let live = live?;
    let made_for = live.annotations().get(ROTATION).map_or("", String::as_str);
    if made_for != rotation(tenant) {
        return None;
    }
    let text = std::str::from_utf8(&live.data.as_ref()?.get("creds")?.0).ok()?;
    let (token, seed) = jwt::parse_creds(text)?;
    let user = KeyPair::from_seed(&seed)
        .ok()
        .filter(|k| k.key_pair_type() == KeyPairType::User)?;
    let claims = Claims::<jwt::User>::decode(&token).ok()?;
    let wanted = user_claims(&tenant.name_any(), &user.public_key());
    let current = claims.iss == account.public_key()
        && claims.iat > revoked_before
        && claims.same_as(&Claims {
            iss: claims.iss.clone(),
            ..wanted
        });
    current.then(|| Creds {
        user: TenantUser {
            key: user.public_key(),
            issued_at: claims.iat,
        },
        text: text.to_string(),
    })
}

/// When new creds are issued (unix seconds): now, but always after the creds they replace
/// and after the account's last revocation of all users. The account revokes every user JWT
/// issued up to a second before the current one; JWT times are whole seconds, so creds
/// rotated within the second they were issued would otherwise share that second with the
/// creds they replace, and the old ones would stay valid.
fn issue_time(now: i64, revoked_before: i64, replaced: Option<&Secret>) -> i64 {
    let previous = replaced
        .and_then(|s| s.data.as_ref()?.get("creds"))
        .and_then(|c| std::str::from_utf8(&c.0).ok())
        .and_then(jwt::parse_creds)
        .and_then(|(token, _)| Claims::<jwt::User>::decode(&token).ok())
        .map_or(i64::MIN, |claims| claims.iat);
    now.max(previous.saturating_add(1))
        .max(revoked_before.saturating_add(1))
}

/// New creds for the tenant: `user` (a fresh random key), signed by its account.
fn issue_creds(
    tenant: &Tenant,
    account: &KeyPair,
    user: &KeyPair,
    issued_at: i64,
) -> Result<Creds, JwtError> {
    let token = user_claims(&tenant.name_any(), &user.public_key()).encode(account, issued_at)?;
    let seed = user.seed().map_err(|e| JwtError::Key(e.to_string()))?;
    Ok(Creds {
        user: TenantUser {
            key: user.public_key(),
            issued_at,
        },
        text: jwt::format_creds(&token, &seed),
    })
}

/// Everything the topics part wants, built from the spec.
struct Plan {
    streams: Vec<StreamConfig>,
    statuses: Vec<TopicStatus>,
}

fn plan(tenant: &Tenant, config: &NatsConfig) -> Result<Plan, String> {
    let name = tenant.name_any();
    let mut streams = Vec::with_capacity(tenant.spec.topics.len());
    let mut statuses = Vec::with_capacity(tenant.spec.topics.len());
    for topic in &tenant.spec.topics {
        let stream = stream_config(&name, topic, config.default_topic_bytes)?;
        statuses.push(TopicStatus {
            name: topic.name.clone(),
            stream: Some(stream.name.clone()),
            subject: Some(subject(&name, &topic.name)),
        });
        streams.push(stream);
    }
    Ok(Plan { streams, statuses })
}

fn observation(status: Status, reason: Reason, message: impl Into<String>) -> Observation {
    Observation::new(TOPICS_READY, status, reason, message)
}

/// Provisions the tenant's topics and reports `TopicsReady`. `topics` is the part's own
/// status field, `status.topics` (as currently stored), replaced by what NATS now holds.
pub async fn provision(
    tenant: &Tenant,
    state: &State,
    topics: &mut Vec<TopicStatus>,
) -> Result<Observation> {
    let ctx = &state.ctx;
    let had_topics = !topics.is_empty();
    if tenant.spec.topics.is_empty() && !had_topics {
        return Ok(observation(
            Status::True,
            Reason::NoTopics,
            "the tenant has no topics",
        ));
    }
    let Some(nats) = ctx.nats.as_ref() else {
        if tenant.spec.topics.is_empty() {
            topics.clear();
            return Ok(observation(
                Status::True,
                Reason::NoTopics,
                "the tenant has no topics",
            ));
        }
        return Ok(observation(
            Status::False,
            Reason::NatsNotConfigured,
            "spec.topics is set but the operator has no NATS server configured (--nats-url)",
        ));
    };
    let plan = match plan(tenant, nats.config()) {
        Ok(plan) => plan,
        Err(message) => return Ok(observation(Status::False, Reason::InvalidTopic, message)),
    };
    let account = account_key(tenant, nats.config()).map_err(|e| Error::Nats {
        action: "deriving the tenant's NATS account key".into(),
        source: e.into(),
    })?;

    if tenant.spec.topics.is_empty() {
        // The last topic went: remove streams, account and creds.
        if let Err(e) = teardown(tenant, nats, &account).await {
            return Ok(failed(&e));
        }
        delete_secret(tenant, ctx).await?;
        topics.clear();
        return Ok(observation(
            Status::True,
            Reason::NoTopics,
            "the tenant has no topics",
        ));
    }

    let live = match nats.live_account(&account.public_key()).await {
        Ok(live) => live,
        Err(e) => return Ok(failed(&e)),
    };
    // The creds first, the account after: new creds work as soon as they are in the Secret,
    // and the account push that revokes the old ones follows (a failed write leaves the old
    // ones working).
    let creds = ensure_secret(tenant, ctx, &account, live.as_ref()).await?;
    let limits = tenant_limits(
        tenant.spec.quota.as_ref().and_then(|q| q.nats.as_ref()),
        &nats.config().limits,
    );
    if let Err(e) = sync(tenant, nats, &account, &creds.user, &limits, &plan, live).await {
        return Ok(failed(&e));
    }
    *topics = plan.statuses;
    let names: Vec<&str> = tenant.spec.topics.iter().map(|t| t.name.as_str()).collect();
    Ok(if tenant.spec.suspended {
        observation(
            Status::True,
            Reason::Suspended,
            format!(
                "access to topics {} is revoked while the tenant is suspended",
                names.join(", ")
            ),
        )
    } else {
        observation(
            Status::True,
            Reason::Provisioned,
            format!("topics {} are provisioned on NATS", names.join(", ")),
        )
    })
}

fn failed(error: &NatsError) -> Observation {
    warn!(reason = %error.reason(), error = %error, "topics not provisioned");
    observation(Status::False, error.reason(), error.to_string())
}

/// Brings the account (`live` as the server holds it) and the streams to the plan.
async fn sync(
    tenant: &Tenant,
    nats: &Nats,
    account_key: &KeyPair,
    user: &TenantUser,
    limits: &TenantLimits,
    plan: &Plan,
    mut live: Option<Claims<jwt::Account>>,
) -> Result<(), NatsError> {
    let name = tenant.name_any();
    let account = account_key.public_key();
    let suspended = tenant.spec.suspended;
    let claims = |bytes: &[i64]| account_claims(&name, &account, user, limits, bytes, suspended);
    let desired_bytes: Vec<i64> = plan.streams.iter().map(|s| s.max_bytes).collect();
    let desired = claims(&desired_bytes);
    let signer = &nats.config().signing_key;

    let mut pushed = false;
    match &live {
        // New (or not loaded since the server started): its streams are not yet there, so
        // the final claims are also the ones to create the streams under.
        None => {
            push(nats, &desired, signer).await?;
            live = Some(desired.clone());
            pushed = true;
        }
        // Limits and revocations at once, before any stream work: they need none, and a
        // tenant holding all its connections would otherwise keep Landlord's own connection,
        // and so a raised limit or a rotation, out.
        Some(current) => {
            let early = with_storage_of(&desired, current);
            if !same_account(current, &early, signer) {
                push(nats, &early, signer).await?;
                live = Some(early);
                pushed = true;
            }
        }
    }
    let admin = admin_creds(account_key)?;
    let who = "Landlord's user of the tenant's account";
    let client = match nats.connect_as(&admin, who).await {
        Ok(client) => client,
        // The server holds the account in memory but no longer in its resolver (deleted
        // when the tenant's last topic went): push it again, once.
        Err(_) if !pushed => {
            push(nats, &desired, signer).await?;
            live = Some(desired.clone());
            nats.connect_as(&admin, who).await?
        }
        Err(e) => return Err(e),
    };
    // An account whose storage the server cannot reserve gets no JetStream at all; the
    // claims of the current spec are pushed (the spec may just have asked for less).
    if !jetstream_enabled(nats, &client).await? {
        if !live
            .as_ref()
            .is_some_and(|l| same_account(l, &desired, signer))
        {
            push(nats, &desired, signer).await?;
        }
        return Err(NatsError::Storage {
            bytes: desired.nats.limits.disk_storage,
            streams: plan
                .streams
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let js = jetstream::new(client);
    let live_streams = list_streams(&js).await?;

    // While streams grow, shrink, come and go, the account must have room for the larger
    // of the old and the new: that first, then the streams, then exactly the plan.
    let mut interim_bytes: BTreeMap<&str, i64> = live_streams
        .iter()
        .map(|s| (s.name.as_str(), s.max_bytes))
        .collect();
    for stream in &plan.streams {
        let bytes = interim_bytes.entry(stream.name.as_str()).or_default();
        *bytes = (*bytes).max(stream.max_bytes);
    }
    let interim_bytes: Vec<i64> = interim_bytes.into_values().collect();
    let interim = claims(&interim_bytes);
    let mut applied = live;
    if !applied
        .as_ref()
        .is_some_and(|l| same_account(l, &interim, signer))
    {
        push(nats, &interim, signer).await?;
        applied = Some(interim);
    }

    let wanted: BTreeSet<&str> = plan.streams.iter().map(|s| s.name.as_str()).collect();
    for stream in live_streams
        .iter()
        .filter(|s| !wanted.contains(s.name.as_str()))
    {
        js.delete_stream(&stream.name)
            .await
            .map_err(|e| jetstream_error(nats, &format!("deleting stream {}", stream.name), e))?;
        info!(stream = %stream.name, "deleted stream of a removed topic");
    }
    for stream in &plan.streams {
        match live_streams.iter().find(|s| s.name == stream.name) {
            None => {
                js.create_stream(stream.clone()).await.map_err(|e| {
                    jetstream_error(nats, &format!("creating stream {}", stream.name), e)
                })?;
                info!(stream = %stream.name, "created stream");
            }
            Some(live) if stream_drifted(live, stream) => {
                let what = if live.retention == stream.retention {
                    format!("updating stream {}", stream.name)
                } else {
                    // NATS 2.9 refuses any retention change, later versions all but those to
                    // or from WorkQueue (which the CRD refuses): say which field asked for it.
                    format!(
                        "updating stream {} (spec.topics[{}].retention from {:?} to {:?})",
                        stream.name, stream.name, live.retention, stream.retention
                    )
                };
                js.update_stream(updated(live, stream))
                    .await
                    .map_err(|e| jetstream_error(nats, &what, e))?;
                info!(stream = %stream.name, "updated stream");
            }
            Some(_) => {}
        }
    }
    if !applied.is_some_and(|l| same_account(&l, &desired, signer)) {
        push(nats, &desired, signer).await?;
    }
    Ok(())
}

/// `claims` with the JetStream storage and stream count of `current`.
fn with_storage_of(
    claims: &Claims<jwt::Account>,
    current: &Claims<jwt::Account>,
) -> Claims<jwt::Account> {
    let mut claims = claims.clone();
    claims.nats.limits.disk_storage = current.nats.limits.disk_storage;
    claims.nats.limits.streams = current.nats.limits.streams;
    claims
}

/// Same claims, and issued by the signing key Landlord uses now.
fn same_account(
    live: &Claims<jwt::Account>,
    desired: &Claims<jwt::Account>,
    signer: &KeyPair,
) -> bool {
    let mut desired = desired.clone();
    desired.iss = signer.public_key();
    live.same_as(&desired)
}

async fn push(
    nats: &Nats,
    claims: &Claims<jwt::Account>,
    signer: &KeyPair,
) -> Result<(), NatsError> {
    let token = claims.clone().encode(signer, now())?;
    nats.push_account(token).await?;
    info!(account = %claims.sub, "pushed account to the NATS resolver");
    Ok(())
}

/// Whether the account connected as has JetStream. (Asked with a raw request: async-nats'
/// typed account info expects fields NATS 2.9 does not send.)
async fn jetstream_enabled(nats: &Nats, client: &async_nats::Client) -> Result<bool, NatsError> {
    let reply = match client.request("$JS.API.INFO", "".into()).await {
        Ok(reply) => reply,
        Err(e) if e.kind() == RequestErrorKind::NoResponders => return Ok(false),
        Err(e) => {
            return Err(NatsError::unreachable(
                &nats.config().url,
                format!("JetStream account info: {e}"),
            ));
        }
    };
    let info: serde_json::Value = serde_json::from_slice(&reply.payload)
        .map_err(|e| NatsError::Protocol(format!("JetStream account info: {e}")))?;
    match info.get("error") {
        None => Ok(true),
        // 10039: JetStream not enabled for the account.
        Some(error) if error["err_code"] == 10039 => Ok(false),
        Some(error) => Err(NatsError::Protocol(format!(
            "JetStream account info: {}",
            error["description"].as_str().unwrap_or("error")
        ))),
    }
}

async fn list_streams(js: &jetstream::Context) -> Result<Vec<StreamConfig>, NatsError> {
    let names: Vec<String> = js
        .stream_names()
        .try_collect()
        .await
        .map_err(|e| NatsError::Protocol(format!("listing streams: {e}")))?;
    let mut streams = Vec::with_capacity(names.len());
    for name in names {
        let stream = js
            .get_stream(&name)
            .await
            .map_err(|e| NatsError::Protocol(format!("reading stream {name}: {e}")))?;
        streams.push(stream.cached_info().config.clone());
    }
    Ok(streams)
}

/// A JetStream API failure: the server's own error code decides the reason.
fn jetstream_error<K>(nats: &Nats, what: &str, error: async_nats::error::Error<K>) -> NatsError
where
    K: Clone + std::fmt::Debug + std::fmt::Display + PartialEq + JetStreamKind,
{
    match error.kind().jetstream() {
        Some(e) => NatsError::JetStream {
            what: what.to_string(),
            code: e.error_code().0,
            description: e.to_string(),
        },
        None => NatsError::unreachable(&nats.config().url, format!("{what}: {error}")),
    }
}

/// The server's error inside an async-nats error kind, if the server answered with one.
trait JetStreamKind {
    fn jetstream(self) -> Option<jetstream::Error>;
}

impl JetStreamKind for jetstream::context::CreateStreamErrorKind {
    fn jetstream(self) -> Option<jetstream::Error> {
        match self {
            Self::JetStream(e) => Some(e),
            _ => None,
        }
    }
}

impl JetStreamKind for jetstream::context::GetStreamErrorKind {
    fn jetstream(self) -> Option<jetstream::Error> {
        match self {
            Self::JetStream(e) => Some(e),
            _ => None,
        }
    }
}

/// Removes the tenant's streams and its account. Idempotent: an account the server does not
/// know has no streams left.
async fn teardown(tenant: &Tenant, nats: &Nats, account_key: &KeyPair) -> Result<(), NatsError> {
    let account = account_key.public_key();
    // Cut the tenant's users first: the server drops their connections, so a tenant holding
    // all the account's connections cannot keep Landlord's own out (and stall deletion).
    if let Some(mut live) = nats.live_account(&account).await? {
        let cut = now() - 1;
        if live.nats.revocations.get(ALL_USERS) < Some(&cut) {
            live.nats.revocations.insert(ALL_USERS.to_string(), cut);
            push(nats, &live, &nats.config().signing_key).await?;
        }
    }
    let admin = admin_creds(account_key)?;
    match nats
        .connect_as(&admin, "Landlord's user of the tenant's account")
        .await
    {
        // Without JetStream (never enabled: the server could not reserve its storage) the
        // account has no streams.
        Ok(client) if !jetstream_enabled(nats, &client).await? => {}
        Ok(client) => {
            let js = jetstream::new(client);
            for stream in list_streams(&js).await? {
                js.delete_stream(&stream.name).await.map_err(|e| {
                    jetstream_error(nats, &format!("deleting stream {}", stream.name), e)
                })?;
                info!(stream = %stream.name, "deleted stream");
            }
        }
        // The server does not know the account: nothing of it is left but (maybe) its JWT.
        Err(NatsError::Authentication { .. }) => {}
        Err(e) => return Err(e),
    }
    nats.delete_accounts(vec![account.clone()]).await?;
    info!(account = %account, name = %tenant.name_any(), "deleted the tenant's NATS account");
    Ok(())
}

/// The Secret with the tenant's URL and `.creds`, marked with the rotation they were made for.
fn desired_secret(tenant: &Tenant, owner: OwnerReference, url: &str, creds: &Creds) -> Secret {
    let mut labels = labels::tenant_labels(&tenant.name_any());
    labels.insert("landlord.dev/component".into(), "nats".into());
    Secret {
        metadata: ObjectMeta {
            name: Some(SECRET.into()),
            namespace: Some(tenant.namespace_name()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(ROTATION.to_string(), rotation(tenant))])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            ("url".to_string(), ByteString(url.as_bytes().to_vec())),
            (
                "creds".to_string(),
                ByteString(creds.text.clone().into_bytes()),
            ),
        ])),
        ..Default::default()
    }
}

/// The time of the account's revocation of all users, as the server holds it.
fn revoked_before(live: Option<&Claims<jwt::Account>>) -> i64 {
    live.and_then(|l| l.nats.revocations.get(ALL_USERS).copied())
        .unwrap_or(i64::MIN)
}

/// Writes the tenant's creds to its Secret when they change, and returns them: the creds
/// already there while they are current (so an unchanged tenant causes no write), else new
/// ones.
async fn ensure_secret(
    tenant: &Tenant,
    ctx: &Context,
    account: &KeyPair,
    live_account: Option<&Claims<jwt::Account>>,
) -> Result<Creds> {
    let namespace = tenant.namespace_name();
    let api = Api::<Secret>::namespaced(ctx.client.clone(), &namespace);
    let revoked = revoked_before(live_account);
    // Read, not cached (the operator may not watch Secrets cluster-wide): always the creds
    // written last, so new ones are issued only when those are not current.
    let live = super::get_secret(ctx, &namespace, SECRET).await?;
    let creds = kept_creds(tenant, account, revoked, live.as_ref());
    let creds = match creds {
        Some(creds) => creds,
        None => {
            let issued_at = issue_time(now(), revoked, live.as_ref());
            issue_creds(tenant, account, &KeyPair::new(KeyPairType::User), issued_at).map_err(
                |e| Error::Nats {
                    action: "issuing the tenant's NATS user".into(),
                    source: e.into(),
                },
            )?
        }
    };
    let owner = desired::owner_reference(tenant).ok_or(Error::MissingUid)?;
    let url = ctx
        .nats
        .as_ref()
        .map(|n| n.config().tenant_url())
        .unwrap_or_default();
    let secret = desired_secret(tenant, owner, &url, &creds);
    match apply::ensure(&api, live.as_ref(), &secret, MANAGER, &ctx.metrics).await {
        Ok(Outcome::Applied) => {
            info!(namespace = %namespace, secret = SECRET, "applied the tenant's NATS creds");
            Ok(creds)
        }
        Ok(Outcome::Unchanged) => Ok(creds),
        Err(EnsureError::Encode(source)) => Err(Error::Encode {
            what: "Secret",
            source,
        }),
        Err(EnsureError::Foreign(message)) => Err(Error::Foreign(message)),
        Err(EnsureError::Kube(source)) => Err(Error::Kube {
            action: format!("applying Secret {SECRET}"),
            source,
        }),
    }
}

async fn delete_secret(tenant: &Tenant, ctx: &Context) -> Result<()> {
    let namespace = tenant.namespace_name();
    if super::get_secret(ctx, &namespace, SECRET).await?.is_none() {
        return Ok(());
    }
    let api = Api::<Secret>::namespaced(ctx.client.clone(), &namespace);
    match crate::apply::delete_named(
        &api,
        SECRET,
        &DeleteParams::default(),
        MANAGER,
        &ctx.metrics,
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(source) => Err(Error::Kube {
            action: format!("deleting Secret {SECRET}"),
            source,
        }),
    }
}

/// Removes the tenant's streams and account when the Tenant is deleted. A tenant that never
/// had topics needs no NATS.
pub async fn cleanup(tenant: &Tenant, state: &State) -> Result<()> {
    let had_topics = !tenant.spec.topics.is_empty()
        || tenant.status.as_ref().is_some_and(|s| !s.topics.is_empty());
    if !had_topics {
        return Ok(());
    }
    let Some(nats) = state.ctx.nats.as_ref() else {
        warn!("the tenant has topics but no NATS server is configured: nothing to remove");
        return Ok(());
    };
    let account = account_key(tenant, nats.config()).map_err(|e| Error::Nats {
        action: "deriving the tenant's NATS account key".into(),
        source: e.into(),
    })?;
    teardown(tenant, nats, &account)
        .await
        .map_err(|source| Error::Nats {
            action: "removing the tenant's streams and NATS account".into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_with(tenant: &Tenant, creds: &Creds) -> Secret {
        let owner = desired::owner_reference(tenant).expect("owner");
        desired_secret(tenant, owner, "nats://n:4222", creds)
    }

    #[test]
    fn creds_rotated_within_their_second_are_issued_after_the_ones_they_replace() {
        let tenant: Tenant = serde_yaml::from_str(
            "{apiVersion: landlord.dev/v1alpha1, kind: Tenant, metadata: {name: acme, uid: u1}, spec: {tier: shared}}",
        )
        .expect("fixture");
        let account = KeyPair::new(KeyPairType::Account);
        let old =
            issue_creds(&tenant, &account, &KeyPair::new(KeyPairType::User), 1_000).expect("creds");
        let secret = secret_with(&tenant, &old);
        // Rotated in the same second: one second later, so that the account's revocation
        // (one second before the new creds) covers the old ones.
        let at = issue_time(1_000, i64::MIN, Some(&secret));
        assert_eq!(at, 1_001);
        let user = TenantUser {
            key: "U".into(),
            issued_at: at,
        };
        let claims = account_claims("acme", "A", &user, &TenantLimits::DEFAULT, &[1], false);
        let revoked = claims.nats.revocations[ALL_USERS];
        assert!(old.user.issued_at <= revoked && revoked < at);
        // Later: now. After a revocation of all users: after it.
        assert_eq!(issue_time(2_000, i64::MIN, Some(&secret)), 2_000);
        assert_eq!(issue_time(1_000, 1_500, None), 1_501);
        assert_eq!(issue_time(1_000, i64::MIN, None), 1_000);
    }

    #[test]
    fn kept_creds_are_only_the_tenants_current_ones() {
        let signing = KeyPair::new_from_raw(KeyPairType::Operator, [9; 32]).expect("key");
        let config = NatsConfig {
            url: "nats://n:4222".into(),
            signing_key: signing.into(),
            system_creds: "".into(),
            network: Default::default(),
            default_topic_bytes: 1,
            limits: TenantLimits::DEFAULT,
        };
        let mut tenant: Tenant = serde_yaml::from_str(
            "{apiVersion: landlord.dev/v1alpha1, kind: Tenant, metadata: {name: acme, uid: u1}, spec: {tier: shared}}",
        )
        .expect("fixture");
        let account = account_key(&tenant, &config).expect("key");
        let user = KeyPair::new(KeyPairType::User);
        let issued = issue_creds(&tenant, &account, &user, 1_000).expect("creds");
        assert_eq!(issued.user.key, user.public_key());
        let secret = secret_with(&tenant, &issued);
        let (token, seed) = jwt::parse_creds(&issued.text).expect("creds");
        assert_eq!(seed, user.seed().expect("seed"));
        let claims = Claims::<jwt::User>::decode(&token).expect("jwt");
        assert_eq!((claims.iss, claims.iat), (account.public_key(), 1_000));

        // Unchanged: the live creds are kept, byte for byte.
        let kept = kept_creds(&tenant, &account, i64::MIN, Some(&secret)).expect("kept");
        assert_eq!(
            (kept.text, kept.user),
            (issued.text.clone(), issued.user.clone())
        );
        assert_eq!(
            secret_with(&tenant, &issued),
            secret,
            "same Secret, no write"
        );
        // Revoked by the account (e.g. a restored old Secret): not kept.
        assert!(kept_creds(&tenant, &account, 1_000, Some(&secret)).is_none());
        // Another account's creds are replaced.
        tenant.metadata.uid = Some("u2".into());
        let other = account_key(&tenant, &config).expect("key");
        assert!(kept_creds(&tenant, &other, i64::MIN, Some(&secret)).is_none());
        tenant.metadata.uid = Some("u1".into());
        // A new value of the rotation annotation: new creds, marked with it.
        tenant
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(ROTATE_CREDENTIALS.into(), "2024-06".into());
        assert!(kept_creds(&tenant, &account, i64::MIN, Some(&secret)).is_none());
        let rotated =
            issue_creds(&tenant, &account, &KeyPair::new(KeyPairType::User), 2_000).expect("creds");
        let rotated_secret = secret_with(&tenant, &rotated);
        assert_eq!(
            rotated_secret
                .annotations()
                .get(ROTATION)
                .map(String::as_str),
            Some("2024-06")
        );
        assert!(kept_creds(&tenant, &account, 1_999, Some(&rotated_secret)).is_some());
        assert_ne!(
            rotated.user.key, issued.user.key,
            "a rotated user has a new key"
        );
        // A seed that is not the JWT's user is not kept.
        let mut forged = rotated_secret.clone();
        let (token, _) = jwt::parse_creds(&rotated.text).expect("creds");
        let stranger = KeyPair::new(KeyPairType::User).seed().expect("seed");
        forged.data.get_or_insert_default().insert(
            "creds".into(),
            ByteString(jwt::format_creds(&token, &stranger).into_bytes()),
        );
        assert!(kept_creds(&tenant, &account, i64::MIN, Some(&forged)).is_none());
    }
}

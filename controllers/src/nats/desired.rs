//! The NATS side of a tenant, as data: the subjects and JetStream streams of its topics, its
//! account's limits, and the claims of its account and user. Pure: the topics part of the
//! Tenant controller (`tenant::topics`) applies them.

use std::{collections::BTreeMap, time::Duration};

use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, RetentionPolicy, StorageType,
};
use landlord_crds::tenant::{NatsQuota, Retention, TopicSpec};

use super::{
    TenantLimits,
    jwt::{self, ALL_USERS, Claims, NO_LIMIT, Permission, Permissions},
};

/// NATS' default duplicate window (messages with a `Nats-Msg-Id` seen within it are
/// dropped). Set explicitly: left to the server, an existing stream's window is sent back on
/// every update and refused once `maxAge` shrinks below it.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Revocation time of a suspended tenant's user: every JWT of that user, past and future, is
/// refused until the revocation is lifted. 9999-12-31T23:59:59Z, the last instant the
/// server's monitoring can still print.
pub const REVOKED_UNTIL_RESUMED: i64 = 253_402_300_799;

/// The subject a topic's messages are published on (`LANDLORD_TOPIC_<NAME>_SUBJECT`).
pub fn subject(tenant: &str, topic: &str) -> String {
    format!("tenant.{tenant}.{topic}")
}

/// Every subject a tenant may use.
pub fn tenant_subjects(tenant: &str) -> String {
    format!("tenant.{tenant}.>")
}

/// A topic's stream name: the topic's name, which the schema restricts to `[a-z0-9_-]`.
/// Streams live in the tenant's own account, so names never clash between tenants.
pub fn stream_name(topic: &str) -> Option<String> {
    let valid = !topic.is_empty()
        && topic.len() <= 64
        && topic
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    valid.then(|| topic.to_string())
}

/// `24h`, `7d`, `30m`, `90s` as a duration; None when malformed or too long for NATS
/// (nanoseconds in an i64).
pub fn parse_max_age(text: &str) -> Option<Duration> {
    let split = text.len().checked_sub(1)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    let seconds = number.checked_mul(unit)?;
    (seconds <= i64::MAX as u64 / 1_000_000_000).then(|| Duration::from_secs(seconds))
}

/// The stream of one topic, from its spec.
pub fn stream_config(
    tenant: &str,
    topic: &TopicSpec,
    default_bytes: i64,
) -> Result<StreamConfig, String> {
    let name = stream_name(&topic.name).ok_or_else(|| {
        format!(
            "spec.topics[{}].name is not a valid stream name",
            topic.name
        )
    })?;
    let max_age = match &topic.max_age {
        Some(text) => parse_max_age(text).ok_or_else(|| {
            format!(
                "spec.topics[{}].maxAge: {text} is not a duration NATS can hold",
                topic.name
            )
        })?,
        None => Duration::ZERO,
    };
    let subject = subject(tenant, &topic.name);
    Ok(StreamConfig {
        name,
        subjects: vec![subject.clone(), format!("{subject}.>")],
        retention: match topic.retention {
            Retention::Limits => RetentionPolicy::Limits,
            Retention::Interest => RetentionPolicy::Interest,
            Retention::WorkQueue => RetentionPolicy::WorkQueue,
        },
        max_age,
        duplicate_window: if max_age.is_zero() {
            DUPLICATE_WINDOW
        } else {
            max_age.min(DUPLICATE_WINDOW)
        },
        max_bytes: topic.max_bytes.unwrap_or(default_bytes),
        max_messages: topic.max_messages.unwrap_or(NO_LIMIT),
        max_messages_per_subject: NO_LIMIT,
        max_consumers: -1,
        discard: DiscardPolicy::Old,
        storage: StorageType::File,
        num_replicas: 1,
        ..Default::default()
    })
}

/// Whether a live stream differs from the desired one in a field Landlord sets.
pub fn stream_drifted(live: &StreamConfig, desired: &StreamConfig) -> bool {
    let mut live_subjects = live.subjects.clone();
    let mut desired_subjects = desired.subjects.clone();
    live_subjects.sort();
    desired_subjects.sort();
    live_subjects != desired_subjects
        || live.retention != desired.retention
        || live.max_age != desired.max_age
        || live.duplicate_window != desired.duplicate_window
        || live.max_bytes != desired.max_bytes
        || live.max_messages != desired.max_messages
        || live.discard != desired.discard
        || live.storage != desired.storage
}

/// The live config with Landlord's fields set as desired (fields the server filled in are
/// kept).
pub fn updated(live: &StreamConfig, desired: &StreamConfig) -> StreamConfig {
    StreamConfig {
        subjects: desired.subjects.clone(),
        retention: desired.retention,
        max_age: desired.max_age,
        duplicate_window: desired.duplicate_window,
        max_bytes: desired.max_bytes,
        max_messages: desired.max_messages,
        discard: desired.discard,
        storage: desired.storage,
        ..live.clone()
    }
}

/// The limits of a tenant's account: its `spec.quota.nats`, else the operator's defaults.
pub fn tenant_limits(quota: Option<&NatsQuota>, defaults: &TenantLimits) -> TenantLimits {
    let pick = |set: Option<i32>, default: i64| set.map_or(default, i64::from);
    TenantLimits {
        connections: pick(quota.and_then(|q| q.connections), defaults.connections),
        subscriptions_per_connection: pick(
            quota.and_then(|q| q.subscriptions_per_connection),
            defaults.subscriptions_per_connection,
        ),
        max_payload_bytes: pick(
            quota.and_then(|q| q.max_payload_bytes),
            defaults.max_payload_bytes,
        ),
        consumers_per_stream: pick(
            quota.and_then(|q| q.consumers_per_stream),
            defaults.consumers_per_stream,
        ),
    }
}

/// The tenant's current user: the one whose creds are in the Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantUser {
    /// Public key of the user.
    pub key: String,
    /// When its JWT was issued (unix seconds): every user JWT issued earlier is revoked.
    pub issued_at: i64,
}

/// The tenant's account: JetStream with room for exactly its streams (their sizes summed,
/// one stream per topic, every stream must set a size), no memory storage, no imports,
/// exports or leaf nodes, the tenant's limits; every user JWT older than the tenant's current
/// creds revoked, and when suspended the current user too.
pub fn account_claims(
    tenant: &str,
    account: &str,
    user: &TenantUser,
    limits: &TenantLimits,
    stream_bytes: &[i64],
    suspended: bool,
) -> Claims<jwt::Account> {
    let disk: i64 = stream_bytes
        .iter()
        .map(|b| (*b).max(0))
        .fold(0i64, i64::saturating_add);
    let nats = jwt::Account {
        limits: jwt::AccountLimits {
            subs: limits.subscriptions_per_connection,
            // NATS does not enforce a data limit (bytes per second are not metered).
            data: NO_LIMIT,
            payload: limits.max_payload_bytes,
            imports: 0,
            exports: 0,
            wildcards: false,
            conn: limits.connections,
            leaf: 0,
            mem_storage: 0,
            // An account with no storage at all would have JetStream off; keep it on while
            // its last streams are removed.
            disk_storage: disk.max(1),
            streams: stream_bytes.len() as i64,
            consumer: limits.consumers_per_stream,
            max_bytes_required: true,
        },
        revocations: {
            // One second before: a JWT issued at the revocation time is revoked too.
            let mut revoked = BTreeMap::from([(ALL_USERS.to_string(), user.issued_at - 1)]);
            if suspended {
                revoked.insert(user.key.clone(), REVOKED_UNTIL_RESUMED);
            }
            revoked
        },
        default_permissions: Permissions::default(),
        kind: "account".into(),
        version: 2,
    };
    Claims::new(account, format!("tenant-{tenant}"), nats)
}

/// The tenant's user: its own subjects, and the JetStream API to read streams and run
/// consumers — not to create, change, purge or delete streams, which Landlord owns.
pub fn user_claims(tenant: &str, user: &str) -> Claims<jwt::User> {
    let publish = Permission {
        allow: [
            tenant_subjects(tenant).as_str(),
            "_INBOX.>",
            "$JS.API.INFO",
            "$JS.API.STREAM.NAMES",
            "$JS.API.STREAM.LIST",
            "$JS.API.STREAM.INFO.*",
            "$JS.API.STREAM.MSG.GET.*",
            "$JS.API.CONSUMER.>",
            "$JS.ACK.>",
            "$JS.FC.>",
        ]
        .map(String::from)
        .to_vec(),
        deny: vec![],
    };
    let subscribe = Permission {
        allow: vec![tenant_subjects(tenant), "_INBOX.>".into()],
        deny: vec![],
    };
    Claims::new(user, tenant, jwt::User::new(publish, subscribe))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn topic(yaml: &str) -> TopicSpec {
        serde_yaml::from_str(yaml).expect("fixture")
    }

    #[test]
    fn a_topic_becomes_a_stream_with_the_spec_limits() {
        let t = topic(
            "{name: orders, retention: WorkQueue, maxAge: 7d, maxBytes: 2048, maxMessages: 10}",
        );
        let s = stream_config("acme", &t, 1 << 30).expect("valid");
        assert_eq!(s.name, "orders");
        assert_eq!(s.subjects, ["tenant.acme.orders", "tenant.acme.orders.>"]);
        assert_eq!(s.retention, RetentionPolicy::WorkQueue);
        assert_eq!(s.max_age, Duration::from_secs(7 * 86_400));
        assert_eq!(s.max_bytes, 2048);
        assert_eq!(s.max_messages, 10);
        assert_eq!(s.storage, StorageType::File);
        assert_eq!(s.num_replicas, 1);
    }

    #[test]
    fn unset_limits_take_the_platform_default_size_and_no_other_limit() {
        let s = stream_config("acme", &topic("{name: events}"), 4096).expect("valid");
        assert_eq!(s.retention, RetentionPolicy::Limits);
        assert_eq!(s.max_age, Duration::ZERO);
        assert_eq!(s.max_bytes, 4096);
        assert_eq!(s.max_messages, -1);
    }

    #[test]
    fn max_age_parses_units_and_refuses_what_nats_cannot_hold() {
        assert_eq!(parse_max_age("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_max_age("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_max_age("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_max_age("1w"), None);
        assert_eq!(parse_max_age("h"), None);
        assert_eq!(parse_max_age(""), None);
        assert_eq!(parse_max_age("99999999999999d"), None);
        let err = stream_config("acme", &topic("{name: x, maxAge: 99999999999999d}"), 1)
            .expect_err("too long");
        assert!(err.starts_with("spec.topics[x].maxAge"), "{err}");
    }

    #[test]
    fn stream_names_are_only_safe_topic_names() {
        assert_eq!(
            stream_name("order_events-2").as_deref(),
            Some("order_events-2")
        );
        for bad in ["", "a.b", "a*", ">", "a b", "A", "a/b"] {
            assert_eq!(stream_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn drift_is_only_in_fields_landlord_sets() {
        let desired =
            stream_config("acme", &topic("{name: orders, maxBytes: 2048}"), 1).expect("valid");
        let mut live = desired.clone();
        live.max_message_size = -1;
        live.subjects.reverse();
        assert!(!stream_drifted(&live, &desired));
        live.max_bytes = 4096;
        assert!(stream_drifted(&live, &desired));
        let fixed = updated(&live, &desired);
        assert!(!stream_drifted(&fixed, &desired));
        assert_eq!(fixed.max_message_size, -1);
    }

    #[test]
    fn the_duplicate_window_never_exceeds_the_max_age() {
        let window = |yaml: &str| {
            stream_config("acme", &topic(yaml), 1)
                .expect("valid")
                .duplicate_window
        };
        assert_eq!(window("{name: a}"), Duration::from_secs(120));
        assert_eq!(window("{name: a, maxAge: 24h}"), Duration::from_secs(120));
        assert_eq!(window("{name: a, maxAge: 1m}"), Duration::from_secs(60));
        // A stream created with 24h and the server's 2-minute window, then shrunk to 1m:
        // the update sends a window the server accepts.
        let mut live = stream_config("acme", &topic("{name: a, maxAge: 24h}"), 1).expect("valid");
        live.duplicate_window = Duration::from_secs(120);
        let shrunk = stream_config("acme", &topic("{name: a, maxAge: 1m}"), 1).expect("valid");
        assert!(stream_drifted(&live, &shrunk));
        let sent = updated(&live, &shrunk);
        assert_eq!(sent.max_age, Duration::from_secs(60));
        assert!(sent.duplicate_window <= sent.max_age);
    }

    fn user(issued_at: i64) -> TenantUser {
        TenantUser {
            key: "UUSR".into(),
            issued_at,
        }
    }

    #[test]
    fn the_account_has_room_for_exactly_its_streams() {
        let limits = TenantLimits::DEFAULT;
        let claims = account_claims("acme", "AACC", &user(100), &limits, &[2048, 4096], false);
        assert_eq!(claims.sub, "AACC");
        assert_eq!(claims.name, "tenant-acme");
        let limits = &claims.nats.limits;
        assert_eq!(limits.disk_storage, 6144);
        assert_eq!(limits.streams, 2);
        assert_eq!(limits.mem_storage, 0);
        assert!(limits.max_bytes_required);
        assert_eq!((limits.imports, limits.exports, limits.leaf), (0, 0, 0));
        assert_eq!(claims.nats.kind, "account");
    }

    #[test]
    fn no_account_is_unlimited_and_the_spec_overrides_the_defaults() {
        let defaults = TenantLimits::DEFAULT;
        let claims = account_claims("acme", "AACC", &user(100), &defaults, &[2048], false);
        let l = &claims.nats.limits;
        for (name, value) in [
            ("conn", l.conn),
            ("subs", l.subs),
            ("payload", l.payload),
            ("consumer", l.consumer),
        ] {
            assert!(value > 0, "{name} is {value}: unlimited or none");
        }
        assert_eq!(
            (l.conn, l.subs, l.payload, l.consumer),
            (100, 1000, 1 << 20, 100)
        );

        let quota: NatsQuota =
            serde_yaml::from_str("{connections: 3, maxPayloadBytes: 1024}").expect("fixture");
        let limits = tenant_limits(Some(&quota), &defaults);
        assert_eq!(limits.connections, 3);
        assert_eq!(limits.max_payload_bytes, 1024);
        assert_eq!(
            limits.subscriptions_per_connection,
            defaults.subscriptions_per_connection
        );
        assert_eq!(limits.consumers_per_stream, defaults.consumers_per_stream);
        assert_eq!(tenant_limits(None, &defaults), defaults);
        let changed = account_claims("acme", "AACC", &user(100), &limits, &[2048], false);
        assert!(!changed.same_as(&claims), "a changed limit is pushed");
    }

    #[test]
    fn every_user_older_than_the_current_creds_is_revoked() {
        let limits = TenantLimits::DEFAULT;
        let claims = account_claims("acme", "AACC", &user(1_700_000_000), &limits, &[1], false);
        assert_eq!(
            claims.nats.revocations,
            BTreeMap::from([(ALL_USERS.to_string(), 1_699_999_999)])
        );
        let rotated = account_claims("acme", "AACC", &user(1_700_000_500), &limits, &[1], false);
        assert!(!rotated.same_as(&claims), "rotation pushes the account");
    }

    #[test]
    fn suspension_revokes_the_tenant_user_for_good_and_resuming_lifts_it() {
        let limits = TenantLimits::DEFAULT;
        let suspended = account_claims("acme", "AACC", &user(100), &limits, &[2048], true);
        assert_eq!(
            suspended.nats.revocations.get("UUSR"),
            Some(&REVOKED_UNTIL_RESUMED)
        );
        let resumed = account_claims("acme", "AACC", &user(100), &limits, &[2048], false);
        assert_eq!(resumed.nats.revocations.get("UUSR"), None);
        assert!(!suspended.same_as(&resumed));
    }

    #[test]
    fn the_user_reaches_only_its_subjects_and_cannot_manage_streams() {
        let claims = user_claims("acme", "UUSR");
        let publish = &claims.nats.publish.allow;
        assert!(publish.contains(&"tenant.acme.>".to_string()));
        assert!(
            publish
                .iter()
                .all(|s| !s.starts_with("tenant.") || s == "tenant.acme.>")
        );
        assert!(
            publish.iter().all(|s| !s.contains("STREAM.CREATE")
                && !s.contains("STREAM.DELETE")
                && s != "$JS.API.>"
                && s != ">"),
            "{publish:?}"
        );
        assert_eq!(claims.nats.subscribe.allow, ["tenant.acme.>", "_INBOX.>"]);
    }
}

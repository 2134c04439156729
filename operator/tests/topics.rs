//! Topics on NATS JetStream end to end: the real operator binary against the local control
//! plane and the local NATS server in operator (JWT) mode. The tenants' own credentials, read
//! from their `landlord-nats` Secrets, are used the way a tenant's service would use them, so
//! what is allowed and refused is decided by the real server.
//!
//! Tests in this file share the cluster-wide Tenant watch, so they run one at a time.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use async_nats::{
    Client, ConnectOptions,
    jetstream::{self, consumer::pull, stream::RetentionPolicy},
};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use landlord_controllers::nats::jwt::{self, Claims};
use landlord_crds::{Tenant, conditions, tenant::Phase};
use landlord_e2e::{
    Cluster, cluster,
    operator::{self, Operator},
    tenants::Harness,
    wait,
};
use tokio::sync::mpsc;

const LANDLORD: &str = env!("CARGO_BIN_EXE_landlord");
const TIMEOUT: Duration = Duration::from_secs(60);

/// An operator of its own, with `args` (the local stack's NATS unless they name another).
async fn harness_with(args: Vec<String>) -> anyhow::Result<Harness> {
    Harness::setup(LANDLORD).await?.args(args).start().await
}

async fn harness() -> anyhow::Result<Harness> {
    Harness::start(LANDLORD).await
}

/// The steps of this file on a tenant's NATS account.
trait TenantTopics {
    /// A Tenant created with `spec` and Ready, and its creds.
    async fn ready(
        &self,
        prefix: &str,
        spec: serde_json::Value,
    ) -> anyhow::Result<(String, TenantCreds)>;

    /// The URL and `.creds` a tenant's services get, from Secret `landlord-nats`.
    async fn tenant_creds(&self, name: &str) -> anyhow::Result<TenantCreds>;
}

impl TenantTopics for Harness {
    async fn ready(
        &self,
        prefix: &str,
        spec: serde_json::Value,
    ) -> anyhow::Result<(String, TenantCreds)> {
        let name = self.ready_tenant(prefix, spec).await?;
        let creds = self.tenant_creds(&name).await?;
        Ok((name, creds))
    }

    async fn tenant_creds(&self, name: &str) -> anyhow::Result<TenantCreds> {
        let secrets = Api::<Secret>::namespaced(self.client.clone(), &format!("tenant-{name}"));
        let secret = wait::until(
            &format!("Secret landlord-nats of {name}"),
            TIMEOUT,
            || async { Ok(secrets.get_opt("landlord-nats").await?) },
        )
        .await?;
        let data = secret.data.context("Secret without data")?;
        let text = |key: &str| -> anyhow::Result<String> {
            Ok(String::from_utf8(
                data.get(key)
                    .with_context(|| format!("Secret without {key}"))?
                    .0
                    .clone(),
            )?)
        };
        let creds = text("creds")?;
        let (token, _) = jwt::parse_creds(&creds).context("creds file without JWT")?;
        let account = Claims::<jwt::User>::decode(&token)?.iss;
        Ok(TenantCreds {
            url: text("url")?,
            creds,
            account,
        })
    }
}

struct TenantCreds {
    url: String,
    creds: String,
    /// Public key of the tenant's NATS account (the issuer of its user JWT).
    account: String,
}

/// A NATS connection as a tenant, with the server's error messages to this client.
struct Connection {
    client: Client,
    errors: mpsc::UnboundedReceiver<String>,
}

async fn connect(creds: &TenantCreds) -> Result<Connection, async_nats::ConnectError> {
    let (tx, errors) = mpsc::unbounded_channel();
    let client = ConnectOptions::with_credentials(&creds.creds)
        .expect("creds parse")
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event.to_string());
            }
        })
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(3)))
        .max_reconnects(1)
        .connect(creds.url.as_str())
        .await?;
    Ok(Connection { client, errors })
}

impl Connection {
    /// Waits for the server to report an error containing `needle` to this client.
    async fn server_error(&mut self, needle: &str) -> anyhow::Result<String> {
        let needle = needle.to_lowercase();
        // As long as any other wait here: the revocation is pushed in the reconcile after the
        // one that wrote the new creds, which a loaded machine may take a while to reach.
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.errors.recv())
                .await
                .with_context(|| format!("no server error containing {needle:?}"))?
                .context("event channel closed")?;
            if event.to_lowercase().contains(&needle) {
                return Ok(event);
            }
        }
    }
}

/// Publishes through JetStream and returns the stream that stored the message.
async fn publish(js: &jetstream::Context, subject: &str, body: &str) -> anyhow::Result<String> {
    let ack = js
        .publish(subject.to_string(), body.to_string().into())
        .await?
        .await?;
    Ok(ack.stream)
}

/// Reads the next message of a stream through a durable pull consumer.
async fn consume_one(js: &jetstream::Context, stream: &str) -> anyhow::Result<String> {
    let stream = js.get_stream(stream).await?;
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("e2e-reader".into()),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(3))
        .messages()
        .await?;
    let message = messages
        .next()
        .await
        .context("no message in the stream")?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    message.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(String::from_utf8(message.payload.to_vec())?)
}

async fn stream_names(js: &jetstream::Context) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = js.stream_names().try_collect().await?;
    names.sort();
    Ok(names)
}

/// The accounts the server's resolver holds, asked as the system account.
async fn resolver_accounts(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    let creds = std::fs::read_to_string(cluster.var("LANDLORD_NATS_SYSTEM_CREDS_FILE"))?;
    let system = ConnectOptions::with_credentials(&creds)?
        .connect(cluster.var("LANDLORD_NATS_URL"))
        .await?;
    let reply = system.request("$SYS.REQ.CLAIMS.LIST", "".into()).await?;
    let response: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    Ok(serde_json::from_value(response["data"].clone())?)
}

/// The directory where the server keeps an account's JetStream data, if any.
fn jetstream_dir(cluster: &Cluster, account: &str) -> Option<PathBuf> {
    fn find(dir: &Path, name: &str, depth: usize) -> Option<PathBuf> {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if entry.file_name() == name {
                    return Some(path);
                }
                if depth > 0
                    && let Some(found) = find(&path, name, depth - 1)
                {
                    return Some(found);
                }
            }
        }
        None
    }
    let root = Path::new(cluster.var("LANDLORD_DEV_DIR")).join("nats/jetstream");
    find(&root, account, 2)
}

fn topics_condition(t: &Tenant) -> Option<(String, String, String)> {
    let c = conditions::find(&t.status.as_ref()?.conditions, "TopicsReady")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn tenants_reach_only_their_own_subjects_and_streams() -> anyhow::Result<()> {
    let h = harness().await?;
    let a = h
        .new_tenant(
            "topics-a",
            serde_json::json!({"tier": "shared", "topics": [{"name": "orders"}, {"name": "events"}]}),
        )
        .await?;
    let b = h
        .new_tenant(
            "topics-b",
            serde_json::json!({"tier": "shared", "topics": [{"name": "orders"}, {"name": "invoices"}]}),
        )
        .await?;
    let ready_a = h.wait_phase(&a, Phase::Ready).await?;
    h.wait_phase(&b, Phase::Ready).await?;

    let status = ready_a.status.context("status")?;
    let topics: Vec<_> = status
        .topics
        .iter()
        .map(|t| (t.name.as_str(), t.stream.as_deref(), t.subject.clone()))
        .collect();
    assert_eq!(
        topics,
        [
            ("orders", Some("orders"), Some(format!("tenant.{a}.orders"))),
            ("events", Some("events"), Some(format!("tenant.{a}.events"))),
        ]
    );
    assert_eq!(
        topics_condition(&h.tenants().get(&a).await?).map(|c| (c.0, c.1)),
        Some(("True".into(), "Provisioned".into()))
    );

    let creds_a = h.tenant_creds(&a).await?;
    let creds_b = h.tenant_creds(&b).await?;
    assert_eq!(creds_a.url, h.cluster.var("LANDLORD_NATS_URL"));
    assert_ne!(
        creds_a.account, creds_b.account,
        "each tenant has its own account"
    );
    let mut conn_a = connect(&creds_a).await?;
    let conn_b = connect(&creds_b).await?;
    let js_a = jetstream::new(conn_a.client.clone());
    let js_b = jetstream::new(conn_b.client.clone());

    // A publishes and consumes on its own subjects.
    assert_eq!(
        publish(&js_a, &format!("tenant.{a}.orders"), "a-1").await?,
        "orders"
    );
    assert_eq!(
        publish(&js_a, &format!("tenant.{a}.orders.eu"), "a-2").await?,
        "orders"
    );
    assert_eq!(consume_one(&js_a, "orders").await?, "a-1");
    let mut core = conn_a
        .client
        .subscribe(format!("tenant.{a}.events.live"))
        .await?;
    conn_a
        .client
        .publish(format!("tenant.{a}.events.live"), "hello".into())
        .await?;
    let got = tokio::time::timeout(Duration::from_secs(5), core.next())
        .await?
        .context("no core message")?;
    assert_eq!(&got.payload[..], b"hello");

    // Each tenant sees only its own streams, even where the topic names are the same.
    assert_eq!(stream_names(&js_a).await?, ["events", "orders"]);
    assert_eq!(stream_names(&js_b).await?, ["invoices", "orders"]);
    assert_eq!(
        publish(&js_b, &format!("tenant.{b}.orders"), "b-1").await?,
        "orders"
    );
    let orders_a = js_a
        .get_stream("orders")
        .await?
        .cached_info()
        .state
        .messages;
    let orders_b = js_b
        .get_stream("orders")
        .await?
        .cached_info()
        .state
        .messages;
    assert_eq!(
        (orders_a, orders_b),
        (2, 1),
        "messages never cross accounts"
    );

    // The server refuses A on B's subjects ...
    conn_a
        .client
        .publish(format!("tenant.{b}.orders"), "intruder".into())
        .await?;
    conn_a.client.flush().await?;
    conn_a
        .server_error(&format!(
            "Permissions Violation for Publish to \"tenant.{b}.orders\""
        ))
        .await?;
    let _sub = conn_a.client.subscribe(format!("tenant.{b}.>")).await?;
    conn_a.client.flush().await?;
    conn_a
        .server_error(&format!(
            "Permissions Violation for Subscription to \"tenant.{b}.>\""
        ))
        .await?;
    assert_eq!(
        js_b.get_stream("orders")
            .await?
            .cached_info()
            .state
            .messages,
        1,
        "the refused publish never reached B"
    );
    // ... and on B's streams: invisible from A's account, and A cannot make streams at all.
    let missing = js_a.get_stream("invoices").await;
    assert!(
        missing
            .as_ref()
            .is_err_and(|e| e.to_string().contains("stream not found")),
        "A reached B's stream: {:?}",
        missing.map(|s| s.cached_info().config.name.clone())
    );
    let created = js_a
        .create_stream(jetstream::stream::Config {
            name: "invoices".into(),
            subjects: vec![format!("tenant.{b}.invoices")],
            ..Default::default()
        })
        .await;
    assert!(created.is_err(), "A created a stream");
    conn_a
        .server_error("Permissions Violation for Publish to \"$JS.API.STREAM.CREATE.invoices\"")
        .await?;
    // B's own creds keep working.
    assert_eq!(consume_one(&js_b, "orders").await?, "b-1");

    h.delete_tenant(&a).await?;
    h.delete_tenant(&b).await?;
    Ok(())
}

#[tokio::test]
async fn streams_follow_the_spec_and_go_with_the_tenant() -> anyhow::Result<()> {
    let h = harness().await?;
    let name = h
        .new_tenant(
            "topics-spec",
            serde_json::json!({"tier": "shared", "topics": [
                {"name": "orders", "retention": "Interest", "maxAge": "1h", "maxBytes": 65536, "maxMessages": 100}
            ]}),
        )
        .await?;
    h.wait_phase(&name, Phase::Ready).await?;
    let creds = h.tenant_creds(&name).await?;
    let conn = connect(&creds).await?;
    let js = jetstream::new(conn.client.clone());
    let config = js.get_stream("orders").await?.cached_info().config.clone();
    assert_eq!(config.retention, RetentionPolicy::Interest);
    assert_eq!(config.max_age, Duration::from_secs(3600));
    assert_eq!(config.max_bytes, 65536);
    assert_eq!(config.max_messages, 100);
    let mut subjects = config.subjects.clone();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            format!("tenant.{name}.orders"),
            format!("tenant.{name}.orders.>")
        ]
    );

    // A changed limit is applied to the stream; a new topic gets a stream; a removed topic's
    // stream goes.
    h.patch_spec(
        &name,
        serde_json::json!({"topics": [
            {"name": "orders", "retention": "Interest", "maxAge": "2h", "maxBytes": 131072, "maxMessages": 100},
            {"name": "audit", "maxBytes": 4096}
        ]}),
    )
    .await?;
    wait::until("orders grown and audit created", TIMEOUT, || async {
        let orders = js.get_stream("orders").await?.cached_info().config.clone();
        let audit = js.get_stream("audit").await;
        Ok((orders.max_bytes == 131072
            && orders.max_age == Duration::from_secs(7200)
            && audit.is_ok_and(|s| s.cached_info().config.max_bytes == 4096))
        .then_some(()))
    })
    .await?;
    h.patch_spec(
        &name,
        serde_json::json!({"topics": [
            {"name": "orders", "retention": "Interest", "maxAge": "2h", "maxBytes": 131072, "maxMessages": 100}
        ]}),
    )
    .await?;
    wait::until("audit removed", TIMEOUT, || async {
        let names = stream_names(&js).await?;
        let t = h.tenants().get(&name).await?;
        let status_topics: Vec<String> = t
            .status
            .map(|s| s.topics.into_iter().map(|t| t.name).collect())
            .unwrap_or_default();
        Ok((names == ["orders"] && status_topics == ["orders"]).then_some(()))
    })
    .await?;

    // Deleting the Tenant removes its streams (their data on disk) and its account.
    let data = jetstream_dir(h.cluster, &creds.account)
        .context("the account's JetStream data is on disk")?;
    assert!(data.join("streams/orders").exists(), "{}", data.display());
    assert!(resolver_accounts(h.cluster).await?.contains(&creds.account));
    drop(js);
    drop(conn);
    h.delete_tenant(&name).await?;
    assert!(
        !data.join("streams/orders").exists(),
        "the stream's data outlived the Tenant"
    );
    assert!(
        !resolver_accounts(h.cluster).await?.contains(&creds.account),
        "the account outlived the Tenant"
    );
    let refused = connect(&creds).await;
    assert!(refused.is_err(), "the deleted tenant's creds still connect");
    Ok(())
}

#[tokio::test]
async fn suspend_cuts_access_and_resume_restores_it() -> anyhow::Result<()> {
    let h = harness().await?;
    let (name, creds) = h
        .ready(
            "topics-suspend",
            serde_json::json!({"tier": "shared", "topics": [{"name": "orders"}]}),
        )
        .await?;
    let mut live = connect(&creds).await?;
    let js = jetstream::new(live.client.clone());
    publish(&js, &format!("tenant.{name}.orders"), "before").await?;

    h.patch_spec(&name, serde_json::json!({"suspended": true}))
        .await?;
    let suspended = h.wait_phase(&name, Phase::Suspended).await?;
    assert_eq!(
        topics_condition(&suspended).map(|c| c.1),
        Some("Suspended".to_string())
    );
    // The server drops the connected client and refuses new connections with the same creds.
    live.server_error("revoked").await?;
    wait::until("the suspended tenant's creds refused", TIMEOUT, || async {
        Ok(connect(&creds).await.is_err().then_some(()))
    })
    .await?;

    h.patch_spec(&name, serde_json::json!({"suspended": false}))
        .await?;
    h.wait_phase(&name, Phase::Ready).await?;
    let after = h.tenant_creds(&name).await?;
    assert_eq!(after.creds, creds.creds, "resuming needs no new creds");
    let conn = wait::until("the resumed tenant connects", TIMEOUT, || async {
        Ok(connect(&creds).await.ok())
    })
    .await?;
    let js = jetstream::new(conn.client.clone());
    publish(&js, &format!("tenant.{name}.orders"), "after").await?;
    assert_eq!(
        js.get_stream("orders").await?.cached_info().state.messages,
        2,
        "the stream kept its messages through the suspension"
    );
    h.delete_tenant(&name).await?;
    Ok(())
}

/// Connects as the tenant, retrying while Landlord's own short connection to the account may
/// hold one of its slots.
async fn connect_within_limit(creds: &TenantCreds) -> anyhow::Result<Connection> {
    wait::until(
        "a connection within the account's limit",
        TIMEOUT,
        || async { Ok(connect(creds).await.ok()) },
    )
    .await
}

#[tokio::test]
async fn the_account_limits_hold_against_the_tenants_own_creds() -> anyhow::Result<()> {
    let h = harness().await?;
    let (name, creds) = h
        .ready(
            "topics-limits",
            serde_json::json!({"tier": "shared", "topics": [{"name": "orders"}],
                "quota": {"nats": {"connections": 3, "maxPayloadBytes": 1024}}}),
        )
        .await?;
    let subject = format!("tenant.{name}.orders");

    // Messages within the payload limit go through; a larger one is refused (by the client,
    // which learnt the limit from the server, or by the server, which closes the connection).
    let small = connect_within_limit(&creds).await?;
    let js = jetstream::new(small.client.clone());
    publish(&js, &subject, &"x".repeat(512)).await?;
    let mut large = connect_within_limit(&creds).await?;
    let refused = large
        .client
        .publish(subject.clone(), vec![b'x'; 2048].into())
        .await;
    match refused {
        Err(e) => assert!(e.to_string().to_lowercase().contains("payload"), "{e}"),
        Ok(()) => {
            let _ = large.client.flush().await;
            large.server_error("maximum payload").await?;
        }
    }
    assert_eq!(
        js.get_stream("orders").await?.cached_info().state.messages,
        1,
        "the large message was not stored"
    );
    drop(large);

    // Three connections at most: the fourth is refused by the server.
    let mut held = vec![small.client.clone()];
    while held.len() < 3 {
        held.push(connect_within_limit(&creds).await?.client);
    }
    let fourth = connect(&creds).await;
    let error = fourth.err().context("a fourth connection was accepted")?;
    assert!(
        error
            .to_string()
            .contains("maximum account active connections exceeded"),
        "{error}"
    );

    // A raised limit reaches the account at once, even while the tenant holds all it had.
    h.patch_spec(
        &name,
        serde_json::json!({"quota": {"nats": {"connections": 4, "maxPayloadBytes": 1024}}}),
    )
    .await?;
    held.push(connect_within_limit(&creds).await?.client);
    assert_eq!(held.len(), 4);
    drop(held);
    drop(js);
    drop(small);
    h.delete_tenant(&name).await?;
    Ok(())
}

#[tokio::test]
async fn rotation_revokes_the_old_creds_and_the_new_ones_work() -> anyhow::Result<()> {
    let h = harness().await?;
    let (name, old) = h
        .ready(
            "topics-rotate",
            serde_json::json!({"tier": "shared", "topics": [{"name": "orders"}]}),
        )
        .await?;
    let mut live = connect(&old).await?;
    let js = jetstream::new(live.client.clone());
    publish(&js, &format!("tenant.{name}.orders"), "before").await?;

    h.tenants()
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                "landlord.dev/rotate-nats-credentials": "1"
            }}})),
        )
        .await?;
    let new = wait::until("new creds in landlord-nats", TIMEOUT, || async {
        let creds = h.tenant_creds(&name).await?;
        Ok((creds.creds != old.creds).then_some(creds))
    })
    .await?;
    assert_eq!(
        new.account, old.account,
        "the same account, with its streams"
    );
    let (_, old_seed) = jwt::parse_creds(&old.creds).context("old creds")?;
    assert!(
        !new.creds.contains(&old_seed),
        "the rotated user has a new key"
    );

    // The server drops the connection made with the old creds and refuses them from now on.
    live.server_error("revoked").await?;
    wait::until("the old creds refused", TIMEOUT, || async {
        Ok(connect(&old).await.is_err().then_some(()))
    })
    .await?;
    let conn = connect_within_limit(&new).await?;
    let js = jetstream::new(conn.client.clone());
    publish(&js, &format!("tenant.{name}.orders"), "after").await?;
    assert_eq!(
        js.get_stream("orders").await?.cached_info().state.messages,
        2,
        "the stream kept its messages through the rotation"
    );
    assert!(connect(&old).await.is_err(), "the old creds came back");
    h.delete_tenant(&name).await?;
    Ok(())
}

#[tokio::test]
async fn max_age_can_shrink_below_the_duplicate_window() -> anyhow::Result<()> {
    let h = harness().await?;
    let (name, creds) = h
        .ready(
            "topics-age",
            serde_json::json!({"tier": "shared", "topics": [{"name": "events", "maxAge": "24h"}]}),
        )
        .await?;
    let conn = connect_within_limit(&creds).await?;
    let js = jetstream::new(conn.client.clone());
    let before = js.get_stream("events").await?.cached_info().config.clone();
    assert_eq!(before.duplicate_window, Duration::from_secs(120));

    h.patch_spec(
        &name,
        serde_json::json!({"topics": [{"name": "events", "maxAge": "1m"}]}),
    )
    .await?;
    let condition = wait::until("TopicsReady of the new maxAge", TIMEOUT, || async {
        let t = h.tenants().get(&name).await?;
        let observed = t.status.as_ref().and_then(|s| s.observed_generation);
        if observed != t.metadata.generation {
            return Ok(None);
        }
        Ok(topics_condition(&t))
    })
    .await?;
    assert_eq!(
        (condition.0.as_str(), condition.1.as_str()),
        ("True", "Provisioned"),
        "{condition:?}"
    );
    let after = js.get_stream("events").await?.cached_info().config.clone();
    assert_eq!(after.max_age, Duration::from_secs(60));
    assert!(after.duplicate_window <= after.max_age, "{after:?}");
    h.delete_tenant(&name).await?;
    Ok(())
}

#[tokio::test]
async fn a_retention_change_to_or_from_work_queue_is_refused_at_apply() -> anyhow::Result<()> {
    let h = harness().await?;
    let (name, creds) = h
        .ready(
            "topics-retention",
            serde_json::json!({"tier": "shared", "topics": [
                {"name": "jobs", "retention": "WorkQueue"}, {"name": "events"}
            ]}),
        )
        .await?;
    for (topics, field) in [
        (
            serde_json::json!([{"name": "jobs", "retention": "Limits"}, {"name": "events"}]),
            "from WorkQueue",
        ),
        (
            serde_json::json!([{"name": "jobs", "retention": "WorkQueue"}, {"name": "events", "retention": "WorkQueue"}]),
            "to WorkQueue",
        ),
    ] {
        let refused = h
            .patch_spec(&name, serde_json::json!({ "topics": topics }))
            .await
            .err()
            .with_context(|| format!("a retention change {field} was accepted"))?;
        let message = refused.to_string();
        assert!(
            message.contains("spec.topics[].retention cannot change to or from WorkQueue"),
            "{message}"
        );
    }

    // Limits to Interest is accepted: NATS 2.10 and later apply it, 2.9 refuses it and the
    // condition says which field asked.
    h.patch_spec(
        &name,
        serde_json::json!({"topics": [{"name": "jobs", "retention": "WorkQueue"}, {"name": "events", "retention": "Interest"}]}),
    )
    .await?;
    let conn = connect_within_limit(&creds).await?;
    let version = conn.client.server_info().version;
    let condition = wait::until("TopicsReady of the new retention", TIMEOUT, || async {
        let t = h.tenants().get(&name).await?;
        let observed = t.status.as_ref().and_then(|s| s.observed_generation);
        Ok(topics_condition(&t).filter(|_| observed == t.metadata.generation))
    })
    .await?;
    if version.starts_with("2.9.") {
        assert_eq!(
            (condition.0.as_str(), condition.1.as_str()),
            ("False", "StreamRejected"),
            "{condition:?}"
        );
        assert!(
            condition.2.contains("spec.topics[events].retention"),
            "{condition:?}"
        );
    } else {
        assert_eq!(condition.0, "True", "{condition:?}");
        let js = jetstream::new(conn.client.clone());
        let events = js.get_stream("events").await?.cached_info().config.clone();
        assert_eq!(events.retention, RetentionPolicy::Interest);
    }
    h.delete_tenant(&name).await?;
    Ok(())
}

/// Lines of `/metrics` for writes by the topics part.
async fn topic_writes(operator: &Operator) -> anyhow::Result<f64> {
    let text = operator.get("/metrics").await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("landlord_api_writes_total") && l.contains("tenant-topics"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

#[tokio::test]
async fn an_unchanged_tenant_with_topics_causes_no_writes() -> anyhow::Result<()> {
    let h = harness().await?;
    let name = h
        .new_tenant(
            "topics-quiet",
            serde_json::json!({"tier": "shared", "topics": [{"name": "orders", "maxBytes": 8192}]}),
        )
        .await?;
    h.wait_phase(&name, Phase::Ready).await?;
    h.tenant_creds(&name).await?;
    let writes = topic_writes(&h.operator).await?;
    let pushes = h.operator.log_text().matches("pushed account").count();
    let reconciles = h.operator.metric("landlord_reconciles_total").await?;
    // Wake the reconcile without changing the spec, three times over.
    for i in 0..3 {
        h.tenants()
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(
                    serde_json::json!({"metadata": {"annotations": {"e2e/poke": i.to_string()}}}),
                ),
            )
            .await?;
        let seen = reconciles + f64::from(i) + 1.0;
        wait::until("a reconcile of the poked tenant", TIMEOUT, || async {
            Ok((h.operator.metric("landlord_reconciles_total").await? >= seen).then_some(()))
        })
        .await?;
    }
    assert_eq!(topic_writes(&h.operator).await?, writes, "Secret rewritten");
    assert_eq!(
        h.operator.log_text().matches("pushed account").count(),
        pushes,
        "account JWT pushed again"
    );
    assert_eq!(
        h.operator.log_text().matches("created stream").count(),
        1,
        "stream created again"
    );
    h.delete_tenant(&name).await?;
    Ok(())
}

#[tokio::test]
async fn a_topic_larger_than_the_server_allows_is_reported() -> anyhow::Result<()> {
    let h = harness().await?;
    // The local server keeps at most 4 GB of streams.
    let name = h
        .new_tenant(
            "topics-huge",
            serde_json::json!({"tier": "shared", "topics": [{"name": "firehose", "maxBytes": 1099511627776_i64}]}),
        )
        .await?;
    let condition = wait::until("TopicsReady False", TIMEOUT, || async {
        let t = h.tenants().get(&name).await?;
        Ok(topics_condition(&t).filter(|c| c.0 == "False"))
    })
    .await?;
    assert_eq!(condition.1, "StreamLimitRejected", "{condition:?}");
    assert!(condition.2.contains("firehose"), "{condition:?}");
    h.delete_tenant(&name).await?;
    Ok(())
}

#[tokio::test]
async fn tenants_without_topics_do_not_need_nats() -> anyhow::Result<()> {
    // Nothing listens on port 1: NATS is unreachable for this operator.
    let cluster = cluster();
    let mut extra = operator::nats_args(cluster);
    let url = extra
        .iter()
        .position(|a| a == "--nats-url")
        .context("NATS flags")?;
    extra[url + 1] = "nats://127.0.0.1:1".into();
    let h = harness_with(extra).await?;
    let plain = h
        .new_tenant("topics-none", serde_json::json!({"tier": "shared"}))
        .await?;
    let ready = h.wait_phase(&plain, Phase::Ready).await?;
    assert_eq!(
        topics_condition(&ready).map(|c| (c.0, c.1)),
        Some(("True".into(), "NoTopics".into()))
    );
    let with = h
        .new_tenant(
            "topics-unreachable",
            serde_json::json!({"tier": "shared", "topics": [{"name": "orders"}]}),
        )
        .await?;
    let condition = wait::until("TopicsReady False", TIMEOUT, || async {
        let t = h.tenants().get(&with).await?;
        Ok(topics_condition(&t).filter(|c| c.0 == "False"))
    })
    .await?;
    assert_eq!(condition.1, "NatsUnreachable", "{condition:?}");
    h.delete_tenant(&plain).await?;
    // Its cleanup cannot reach NATS either: release it.
    h.tenants()
        .patch(
            &with,
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"metadata": {"annotations": {"landlord.dev/release": "true"}}}),
            ),
        )
        .await?;
    h.delete_tenant(&with).await?;
    Ok(())
}

//! Webhooks: tenant lifecycle and domain events, POSTed to `WebhookEndpoint`s and signed per
//! the Standard Webhooks specification, delivered at least once with stable event ids.
//!
//! Delivery runs in the operator's leader, beside the controllers, for three reasons: the
//! operator already reads Secrets exactly where endpoints keep their signing secrets (tenant
//! namespaces and the platform namespace), so no other component needs that right; it writes
//! the endpoints' status, where a failing endpoint is reported; and events then flow for
//! Tenants created with `kubectl` or GitOps as much as through the API.
//!
//! Three loops:
//! - **produce**: Tenant and Domain watch events (the shared reflectors) mark objects dirty;
//!   each dirty object's state is compared with the state last recorded in the outbox, and
//!   the new state, its events ([`events`]) and one delivery per receiving endpoint are
//!   written in one transaction ([`outbox`]). Objects created before the outbox existed are
//!   recorded without events.
//! - **deliver**: due deliveries are leased (`FOR UPDATE SKIP LOCKED`), signed and POSTed
//!   ([`delivery`]); the outcome settles them: delivered, retried on the Standard Webhooks
//!   schedule, or given up (schedule spent, `410 Gone`, endpoint deleted).
//! - **report**: every endpoint's status ([`endpoint::status`]) is written when it differs,
//!   so an unchanged world writes nothing.
//!
//! At least once: a transition is in the outbox before anything is sent, and a delivery is
//! settled only after its answer; a process killed mid-delivery leaves a lease that expires
//! after twice the attempt timeout, and the next leader sends the event again with the same
//! `webhook-id`.

pub mod delivery;
pub mod endpoint;
pub mod events;
pub mod outbox;
pub mod signature;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{StreamExt, future};
use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::Time};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{reflector::Store, watcher},
};
use landlord_crds::{Domain, Tenant, WebhookEndpoint, conditions::Reason};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::{Context, apply, database::failure::Failure, reflectors::Reflectors};
use delivery::{Outcome, PrivateNetworks, Sender};
use endpoint::Health;
use events::{DomainState, Subject, TenantState};
use outbox::{Claimed, Outbox, Settled};
use signature::SigningKey;

/// Webhook settings of the operator.
#[derive(Clone)]
pub struct WebhookConfig {
    /// `postgres://` URL of the outbox database (holds a password: never logged).
    pub database_url: String,
    /// Which endpoints may reach private addresses.
    pub private_networks: PrivateNetworks,
    /// Bound of one attempt (connect, send, answer).
    pub timeout: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("private_networks", &self.private_networks)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The field manager of endpoint status writes.
const MANAGER: &str = "landlord/webhooks";
/// Deliveries sent at once.
const BATCH: i64 = 16;

/// What the loops share.
#[derive(Default)]
struct Shared {
    health: Mutex<HashMap<String, Health>>,
    outbox_error: Mutex<Option<String>>,
    /// Wakes delivery (new deliveries) and reporting (new health).
    queued: Notify,
    changed: Notify,
    /// True once the outbox's tables exist.
    migrated: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    fn outbox_result<T>(&self, result: Result<T, sqlx::Error>) -> Option<T> {
        let mut error = self.outbox_error.lock().unwrap_or_else(|p| p.into_inner());
        let before = error.clone();
        let value = match result {
            Ok(value) => {
                *error = None;
                Some(value)
            }
            Err(e) => {
                *error = Some(Failure::from_sqlx("outbox", "webhooks", &e).message);
                None
            }
        };
        if *error != before {
            if let Some(e) = &*error {
                warn!(error = %e, "the webhook outbox database failed");
            }
            self.changed.notify_one();
        }
        value
    }

    fn set_health(&self, uid: &str, health: Health) {
        let mut map = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(uid) != Some(&health) {
            map.insert(uid.to_string(), health);
            self.changed.notify_one();
        }
    }
}

/// Runs webhook production, delivery and endpoint status until `stop` resolves. Without an
/// outbox database only the status runs, telling each endpoint that nothing is sent.
pub fn run<S: Future<Output = ()>>(
    ctx: Arc<Context>,
    reflectors: &Reflectors,
    stop: S,
) -> impl Future<Output = ()> + use<S> {
    let shared = Arc::new(Shared::default());
    let endpoints = reflectors.webhook_endpoints.store();
    let report = report(ctx.clone(), shared.clone(), reflectors);
    let config = ctx.config.webhooks.clone();
    let parts = config.map(|config| {
        let outbox = Outbox::connect(&config.database_url);
        let sender = Sender::new(config.timeout);
        let produce = outbox
            .as_ref()
            .ok()
            .map(|outbox| produce(ctx.clone(), outbox.clone(), shared.clone(), reflectors));
        (config, outbox, sender, produce)
    });
    async move {
        let work = async {
            let Some((config, outbox, sender, produce)) = parts else {
                return report.await;
            };
            let (outbox, produce) = match (outbox, produce) {
                (Ok(outbox), Some(produce)) => (outbox, produce),
                (Err(e), _) => {
                    shared.outbox_result::<()>(Err(e));
                    return report.await;
                }
                (Ok(_), None) => return report.await,
            };
            let sender = match sender {
                Ok(sender) => sender,
                Err(e) => {
                    warn!(error = %e, "webhooks: no trusted roots; nothing is sent");
                    return report.await;
                }
            };
            let deliver = deliver(ctx, outbox, sender, config, shared.clone(), endpoints);
            future::join3(produce, deliver, report).await;
        };
        tokio::select! {
            _ = work => {}
            _ = stop => {}
        }
    }
}

/// The produce loop: a collector takes watch events as they come (the shared reflectors
/// wait for their slowest reader, so it never waits on the database), and a flusher records
/// what it collected every 250 ms.
fn produce(
    ctx: Arc<Context>,
    outbox: Outbox,
    shared: Arc<Shared>,
    reflectors: &Reflectors,
) -> impl Future<Output = ()> + use<> {
    let collected = Arc::new(Mutex::new(Collected::default()));
    let tenants = reflectors.tenants.events().for_each({
        let collected = collected.clone();
        move |event| {
            lock(&collected).see(Kind::Tenant, &event, |t: &Tenant| {
                Some(Subject::Tenant(TenantState::of(t)))
            });
            future::ready(())
        }
    });
    let domains = reflectors.domains.events().for_each({
        let collected = collected.clone();
        move |event| {
            lock(&collected).see(Kind::Domain, &event, |d: &Domain| {
                DomainState::of(d).map(Subject::Domain)
            });
            future::ready(())
        }
    });
    let endpoints = reflectors.webhook_endpoints.store();
    let flusher = async move {
        let since = loop {
            if let Some(since) = shared.outbox_result(outbox.migrate().await) {
                shared.migrated.send_replace(true);
                break since;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        };
        let mut known: HashMap<String, Subject> = loop {
            if let Some(subjects) = shared.outbox_result(outbox.subjects().await) {
                break subjects.into_iter().collect();
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        };
        info!(subjects = known.len(), "webhook outbox ready");
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (mut dirty, relisted) = {
                let mut collected = lock(&collected);
                (
                    std::mem::take(&mut collected.dirty),
                    std::mem::take(&mut collected.relisted),
                )
            };
            // What was recorded and is not listed any more went while no one watched.
            for (kind, listed) in relisted {
                for (uid, subject) in &known {
                    if Kind::of(subject) == kind && !listed.contains(uid) {
                        dirty.entry(uid.clone()).or_insert((None, None));
                    }
                }
            }
            if dirty.is_empty() {
                continue;
            }
            let failed = flush(&ctx, &outbox, &shared, &endpoints, since, dirty, &mut known).await;
            let mut collected = lock(&collected);
            for (uid, entry) in failed {
                // A newer sight, collected meanwhile, wins.
                collected.dirty.entry(uid).or_insert(entry);
            }
        }
    };
    async move {
        tokio::join!(tenants, domains, flusher);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The kinds events are produced for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Tenant,
    Domain,
}

impl Kind {
    fn of(subject: &Subject) -> Self {
        match subject {
            Subject::Tenant(_) => Kind::Tenant,
            Subject::Domain(_) => Kind::Domain,
        }
    }
}

/// An object as seen now (None: gone) and when it was created.
type Sight = (Option<Subject>, Option<k8s_openapi::jiff::Timestamp>);

/// What the collector gathered since the last flush.
#[derive(Default)]
struct Collected {
    /// uid → the latest sight.
    dirty: HashMap<String, Sight>,
    /// Re-lists under way, by kind.
    listing: HashMap<&'static str, HashSet<String>>,
    /// Finished re-lists: every uid of the kind that exists.
    relisted: Vec<(Kind, HashSet<String>)>,
}

impl Collected {
    fn see<K: Resource>(
        &mut self,
        kind: Kind,
        event: &watcher::Event<K>,
        state: impl Fn(&K) -> Option<Subject>,
    ) {
        let key = match kind {
            Kind::Tenant => "tenant",
            Kind::Domain => "domain",
        };
        let created = |o: &K| o.meta().creation_timestamp.as_ref().map(|t| t.0);
        match event {
            watcher::Event::Init => {
                self.listing.insert(key, HashSet::new());
            }
            watcher::Event::InitApply(o) | watcher::Event::Apply(o) => {
                let Some(uid) = o.meta().uid.clone() else {
                    return;
                };
                if matches!(event, watcher::Event::InitApply(_))
                    && let Some(listed) = self.listing.get_mut(key)
                {
                    listed.insert(uid.clone());
                }
                self.dirty.insert(uid, (state(o), created(o)));
            }
            watcher::Event::Delete(o) => {
                if let Some(uid) = o.meta().uid.clone() {
                    self.dirty.insert(uid, (None, created(o)));
                }
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.listing.remove(key) {
                    self.relisted.push((kind, listed));
                }
            }
        }
    }
}

/// Records every object of `dirty` whose state moved, with its events, in the outbox;
/// returns those the outbox did not take (to try again).
async fn flush(
    ctx: &Context,
    outbox: &Outbox,
    shared: &Shared,
    endpoints: &Store<WebhookEndpoint>,
    since: k8s_openapi::jiff::Timestamp,
    dirty: HashMap<String, Sight>,
    known: &mut HashMap<String, Subject>,
) -> Vec<(String, Sight)> {
    // Whole seconds, like the conditions' times that stamp most events.
    let now =
        k8s_openapi::jiff::Timestamp::from_second(k8s_openapi::jiff::Timestamp::now().as_second())
            .unwrap_or_default()
            .to_string();
    let platform = &ctx.config.platform_namespace;
    let endpoints = endpoints.state();
    let mut queued = false;
    let mut failed = Vec::new();
    for (uid, (current, created)) in dirty {
        if !failed.is_empty() {
            failed.push((uid, (current, created)));
            continue;
        }
        let old = known.get(&uid);
        let (state, mut events) = events::transition(&uid, old, current.clone(), &now);
        // An object older than the outbox is recorded as it is, without events. Creation
        // times have whole seconds: one of the outbox's own second counts as newer.
        if old.is_none() && created.is_some_and(|c| c.as_second() < since.as_second()) {
            events.clear();
        }
        if state.as_ref() == old && events.is_empty() {
            continue;
        }
        let addressed: Vec<_> = events
            .into_iter()
            .map(|event| {
                let about = state.as_ref().or(old);
                let receivers = receivers(&endpoints, &event, about, known, platform);
                (event, receivers)
            })
            .collect();
        match shared.outbox_result(outbox.record(&uid, state.as_ref(), &addressed).await) {
            Some(()) => {
                for (event, receivers) in &addressed {
                    info!(
                        event = %event.id,
                        r#type = %event.type_,
                        tenant = %event.tenant,
                        endpoints = receivers.len(),
                        "webhook event recorded"
                    );
                }
                queued |= addressed.iter().any(|(_, r)| !r.is_empty());
                match state {
                    Some(state) => known.insert(uid, state),
                    None => known.remove(&uid),
                };
            }
            None => failed.push((uid, (current, created))),
        }
    }
    if queued {
        shared.queued.notify_one();
    }
    failed
}

/// `(uid, namespace/name)` of every endpoint that receives `event`.
fn receivers(
    endpoints: &[Arc<WebhookEndpoint>],
    event: &events::Event,
    about: Option<&Subject>,
    known: &HashMap<String, Subject>,
    platform: &str,
) -> Vec<(String, String)> {
    let tenant = match about {
        Some(Subject::Tenant(t)) => Some(t),
        _ => known.values().find_map(|s| match s {
            Subject::Tenant(t) if t.name == event.tenant => Some(t),
            _ => None,
        }),
    };
    let namespace = match about {
        Some(Subject::Domain(d)) => d.namespace.clone(),
        _ => tenant.map(|t| t.namespace.clone()).unwrap_or_default(),
    };
    let facts = tenant.map(endpoint::facts);
    endpoints
        .iter()
        .filter(|e| endpoint::receives(e, event.type_, &namespace, facts.as_ref(), platform))
        .filter_map(|e| {
            Some((
                e.uid()?,
                format!("{}/{}", e.namespace().unwrap_or_default(), e.name_any()),
            ))
        })
        .collect()
}

/// The deliver loop.
async fn deliver(
    ctx: Arc<Context>,
    outbox: Outbox,
    sender: Sender,
    config: WebhookConfig,
    shared: Arc<Shared>,
    endpoints: Store<WebhookEndpoint>,
) {
    // A lease outlives an attempt; a killed sender's deliveries are sent again after it.
    let lease = config.timeout * 2 + Duration::from_secs(1);
    let _ = shared.migrated.subscribe().wait_for(|done| *done).await;
    let mut prune = tokio::time::interval(Duration::from_secs(3600));
    loop {
        let claimed = match shared.outbox_result(outbox.claim(BATCH, lease).await) {
            Some(claimed) => claimed,
            None => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                _ = shared.queued.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = prune.tick() => {
                    let day = Duration::from_secs(86400);
                    if let Some(pruned) = shared.outbox_result(outbox.prune(7 * day, 30 * day).await)
                        && pruned > 0
                    {
                        info!(events = pruned, "pruned delivered webhook events");
                    }
                }
            }
            continue;
        }
        let attempts = claimed
            .iter()
            .map(|c| attempt(&ctx, &sender, &config, &shared, &endpoints, c));
        let settled = future::join_all(attempts).await;
        for (claimed, settled) in claimed.iter().zip(settled) {
            shared.outbox_result(outbox.settle(claimed, &settled).await);
        }
    }
}

/// One attempt of one delivery, and how it settles.
async fn attempt(
    ctx: &Context,
    sender: &Sender,
    config: &WebhookConfig,
    shared: &Shared,
    endpoints: &Store<WebhookEndpoint>,
    claimed: &Claimed,
) -> Settled {
    let given_up = |error: &str| Settled::GivenUp {
        status: None,
        error: error.to_string(),
    };
    let Some(endpoint) = endpoints
        .state()
        .into_iter()
        .find(|e| e.uid().as_deref() == Some(claimed.endpoint_uid.as_str()))
    else {
        return given_up("the endpoint was deleted");
    };
    if endpoint.spec.disabled {
        return given_up("the endpoint is paused (spec.disabled)");
    }
    if endpoint::is_gone(&endpoint) {
        return given_up("the endpoint answered 410 Gone");
    }
    let uid = claimed.endpoint_uid.as_str();
    let platform = &ctx.config.platform_namespace;
    let private_ok = endpoint::private_ok(&endpoint, config.private_networks, platform);
    let url = &endpoint.spec.url;
    let fail = |reason: Reason, message: String, status: Option<u16>, retry_after| {
        shared.set_health(
            uid,
            Health::Failing {
                reason,
                message: message.clone(),
            },
        );
        match delivery::next_attempt(claimed.attempt, retry_after, fastrand::f64()) {
            Some(wait) => Settled::Retry {
                wait,
                status,
                error: message,
            },
            None => Settled::GivenUp {
                status,
                error: message,
            },
        }
    };
    let uri = match delivery::check_url(url, private_ok) {
        Ok(uri) => uri,
        Err(refusal) => {
            return fail(
                Reason::UrlNotAllowed,
                format!("spec.url {url}: {refusal}"),
                None,
                None,
            );
        }
    };
    let key = match signing_key(ctx, &endpoint).await {
        Ok(key) => key,
        Err((reason, message)) => return fail(reason, message, None, None),
    };
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let body: Arc<str> = claimed.body.as_str().into();
    match sender
        .send(uri, private_ok, &key, &claimed.event_id, now, body)
        .await
    {
        Outcome::Delivered { status } => {
            shared.set_health(uid, Health::Delivering);
            Settled::Delivered { status }
        }
        Outcome::Answered { status: 410, .. } => {
            let message = format!(
                "POST {url} answered 410 Gone: nothing more is sent to this endpoint until its spec changes"
            );
            shared.set_health(
                uid,
                Health::Gone {
                    message: message.clone(),
                },
            );
            Settled::GivenUp {
                status: Some(410),
                error: message,
            }
        }
        Outcome::Answered {
            status,
            retry_after,
        } => fail(
            Reason::DeliveryFailing,
            format!(
                "POST {url} answered {status} (attempt {} of event {})",
                claimed.attempt, claimed.event_id
            ),
            Some(status),
            retry_after,
        ),
        Outcome::NoAnswer(error) => fail(
            Reason::DeliveryFailing,
            format!(
                "POST {url}: {error} (attempt {} of event {})",
                claimed.attempt, claimed.event_id
            ),
            None,
            None,
        ),
    }
}

/// The endpoint's signing key, read from its Secret (as the operator, which holds Secrets in
/// tenant namespaces and the platform namespace only).
async fn signing_key(
    ctx: &Context,
    endpoint: &WebhookEndpoint,
) -> Result<SigningKey, (Reason, String)> {
    let namespace = endpoint.namespace().unwrap_or_default();
    let reference = &endpoint.spec.secret_ref;
    let name = format!("Secret {namespace}/{}", reference.name);
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&reference.name)
        .await
        .map_err(|e| (Reason::DeliveryFailing, format!("reading {name}: {e}")))?
        .ok_or_else(|| {
            (
                Reason::SecretNotFound,
                format!("{name} (spec.secretRef) is not found"),
            )
        })?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(reference.key()))
        .ok_or_else(|| {
            (
                Reason::SecretInvalid,
                format!("{name} has no key {} (spec.secretRef.key)", reference.key()),
            )
        })?;
    let text = std::str::from_utf8(&value.0).map_err(|_| {
        (
            Reason::SecretInvalid,
            format!("{name} key {} is not text", reference.key()),
        )
    })?;
    SigningKey::parse(text).map_err(|e| {
        (
            Reason::SecretInvalid,
            format!("{name} key {}: {e}", reference.key()),
        )
    })
}

/// The report loop: writes each endpoint's status when it differs from what is stored.
fn report(
    ctx: Arc<Context>,
    shared: Arc<Shared>,
    reflectors: &Reflectors,
) -> impl Future<Output = ()> + use<> {
    let endpoints = reflectors.webhook_endpoints.store();
    let mut touched = reflectors.webhook_endpoints.events();
    let synced = reflectors.webhook_endpoints.synced();
    async move {
        synced.wait().await;
        loop {
            let now = Time(k8s_openapi::jiff::Timestamp::now());
            let configured = ctx.config.webhooks.is_some();
            let policy = ctx
                .config
                .webhooks
                .as_ref()
                .map(|w| w.private_networks)
                .unwrap_or_default();
            let outbox_error = shared
                .outbox_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let health = shared
                .health
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for endpoint in endpoints.state() {
                let facts = endpoint::Facts {
                    configured,
                    outbox_error: outbox_error.as_deref(),
                    private_ok: endpoint::private_ok(
                        &endpoint,
                        policy,
                        &ctx.config.platform_namespace,
                    ),
                    now: &now,
                };
                let uid = endpoint.uid().unwrap_or_default();
                let desired = endpoint::status(&endpoint, health.get(&uid), &facts);
                let api = Api::<WebhookEndpoint>::namespaced(
                    ctx.client.clone(),
                    &endpoint.namespace().unwrap_or_default(),
                );
                if let Err(e) = apply::status(
                    &api,
                    &endpoint,
                    endpoint.status.as_ref(),
                    &desired,
                    MANAGER,
                    &ctx.metrics,
                )
                .await
                {
                    warn!(endpoint = %endpoint.name_any(), error = %e, "writing a WebhookEndpoint's status failed");
                }
            }
            tokio::select! {
                _ = shared.changed.notified() => {}
                _ = touched.next() => {}
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
    }
}

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

/// What the loops share.
#[derive(Default)]
struct Shared {
    /// Per endpoint uid: the generation an attempt was made for, and what it learnt.
    health: Mutex<HashMap<String, (Option<i64>, Health)>>,
    /// The outbox's last error, per loop (produce, deliver): one loop's success does not
    /// hide the other's failure.
    outbox_errors: Mutex<HashMap<&'static str, String>>,
    /// Why nothing can be sent at all (no trusted roots), if so.
    unsendable: Mutex<Option<String>>,
    /// Wakes delivery (new deliveries) and reporting (new health).
    queued: Notify,
    changed: Notify,
    /// True once the outbox's tables exist.
    migrated: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    /// Passes a result of loop `part` through, recording whether the outbox failed.
    fn outbox_result<T>(&self, part: &'static str, result: Result<T, sqlx::Error>) -> Option<T> {
        let mut errors = lock(&self.outbox_errors);
        let before = errors.get(part).cloned();
        let value = match result {
            Ok(value) => {
                errors.remove(part);
                Some(value)
            }
            Err(e) => {
                errors.insert(part, Failure::from_sqlx("outbox", part, &e).message);
                None
            }
        };
        let after = errors.get(part).cloned();
        if after != before {
            if let Some(e) = &after {
                warn!(error = %e, "the webhook outbox database failed");
            }
            self.changed.notify_one();
        }
        value
    }

    /// The first outbox error of any loop.
    fn outbox_error(&self) -> Option<String> {
        let errors = lock(&self.outbox_errors);
        let mut all: Vec<_> = errors.iter().collect();
        all.sort();
        all.first().map(|(_, e)| (*e).clone())
    }

    fn set_health(&self, endpoint: &WebhookEndpoint, health: Health) {
        let uid = endpoint.uid().unwrap_or_default();
        let entry = (endpoint.metadata.generation, health);
        let mut map = lock(&self.health);
        if map.get(&uid) != Some(&entry) {
            map.insert(uid, entry);
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
    let synced = reflectors.webhook_endpoints.synced();
    async move {
        let work = async {
            let Some((config, outbox, sender, produce)) = parts else {
                return report.await;
            };
            let (outbox, produce) = match (outbox, produce) {
                (Ok(outbox), Some(produce)) => (outbox, produce),
                (Err(e), _) => {
                    shared.outbox_result::<()>("connect", Err(e));
                    return report.await;
                }
                (Ok(_), None) => return report.await,
            };
            let sender = match sender {
                Ok(sender) => sender,
                Err(e) => {
                    warn!(error = %e, "webhooks: no trusted TLS roots; nothing is sent");
                    *lock(&shared.unsendable) = Some(format!(
                        "the operator has no trusted TLS roots ({e}): no events are sent"
                    ));
                    return report.await;
                }
            };
            let deliver = deliver(
                ctx,
                outbox,
                sender,
                config,
                shared.clone(),
                endpoints,
                synced,
            );
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
    let endpoints_listed = reflectors.webhook_endpoints.synced();
    let flusher = async move {
        // Events recorded before the endpoints are known would have no receivers.
        endpoints_listed.wait().await;
        let since = loop {
            if let Some(since) = shared.outbox_result("produce", outbox.migrate().await) {
                shared.migrated.send_replace(true);
                break since;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        };
        let mut known: HashMap<String, Subject> = loop {
            if let Some(subjects) = shared.outbox_result("produce", outbox.subjects().await) {
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
                // An object events do not describe yet (a Domain without its tenant) is
                // left as last recorded: only a deletion ends a subject.
                if let Some(subject) = state(o) {
                    self.dirty.insert(uid, (Some(subject), created(o)));
                }
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
        let recorded = outbox.record(&uid, state.as_ref(), &addressed).await;
        if let Err(sqlx::Error::Database(refused)) = &recorded {
            // The server refused this one record (not an outage): retrying it would only
            // hold back the others, so it is dropped, loudly.
            warn!(uid = %uid, error = %refused.message(), "the outbox refused a webhook subject's record; its events are dropped");
            continue;
        }
        match shared.outbox_result("produce", recorded) {
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

/// Deliveries in flight at once.
const IN_FLIGHT: usize = 32;

/// The deliver loop: keeps up to [`IN_FLIGHT`] deliveries in flight, at most one per
/// endpoint (so that a slow or dead receiver holds one slot, not the others'), claiming more
/// as slots free up.
async fn deliver(
    ctx: Arc<Context>,
    outbox: Outbox,
    sender: Sender,
    config: WebhookConfig,
    shared: Arc<Shared>,
    endpoints: Store<WebhookEndpoint>,
    endpoints_listed: crate::reflectors::Synced,
) {
    // A lease outlives an attempt (which is bounded below); a killed sender's deliveries
    // are sent again after it.
    let bound = config.timeout + Duration::from_secs(5);
    let lease = bound * 2;
    let _ = shared.migrated.subscribe().wait_for(|done| *done).await;
    // A delivery to an endpoint not listed yet would be given up as deleted.
    endpoints_listed.wait().await;
    let mut prune = tokio::time::interval(Duration::from_secs(3600));
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut busy: HashSet<String> = HashSet::new();
    loop {
        let free = IN_FLIGHT.saturating_sub(in_flight.len());
        if free > 0 {
            let exclude: Vec<String> = busy.iter().cloned().collect();
            let claimed =
                shared.outbox_result("deliver", outbox.claim(free as i64, lease, &exclude).await);
            // One delivery per endpoint at a time: the claim may hold several.
            let mut by_endpoint: HashMap<String, Vec<Claimed>> = HashMap::new();
            for claimed in claimed.unwrap_or_default() {
                by_endpoint
                    .entry(claimed.endpoint_uid.clone())
                    .or_default()
                    .push(claimed);
            }
            for (uid, claimed) in by_endpoint {
                busy.insert(uid.clone());
                let (ctx, sender, config, shared, endpoints, outbox) =
                    (&ctx, &sender, &config, &shared, &endpoints, &outbox);
                in_flight.push(async move {
                    for claimed in &claimed {
                        let settled = match tokio::time::timeout(
                            bound,
                            attempt(ctx, sender, config, shared, endpoints, claimed),
                        )
                        .await
                        {
                            Ok(settled) => settled,
                            Err(_) => Settled::Retry {
                                wait: delivery::SCHEDULE[0],
                                status: None,
                                error: format!("the attempt took over {} s", bound.as_secs()),
                            },
                        };
                        shared.outbox_result("deliver", outbox.settle(claimed, &settled).await);
                    }
                    uid
                });
            }
        }
        tokio::select! {
            Some(uid) = in_flight.next(), if !in_flight.is_empty() => {
                busy.remove(&uid);
            }
            _ = shared.queued.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = prune.tick() => {
                let day = Duration::from_secs(86400);
                if let Some(pruned) =
                    shared.outbox_result("deliver", outbox.prune(7 * day, 30 * day).await)
                    && pruned > 0
                {
                    info!(events = pruned, "pruned delivered webhook events");
                }
            }
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
    let platform = &ctx.config.platform_namespace;
    let private_ok = endpoint::private_ok(&endpoint, config.private_networks, platform);
    let url = &endpoint.spec.url;
    let fail = |reason: Reason, message: String, status: Option<u16>, retry_after| {
        shared.set_health(
            &endpoint,
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
            shared.set_health(&endpoint, Health::Delivering);
            Settled::Delivered { status }
        }
        Outcome::Answered { status: 410, .. } => {
            let message = format!(
                "POST {url} answered 410 Gone: nothing more is sent to this endpoint until its spec changes"
            );
            shared.set_health(
                &endpoint,
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
            format!("POST {url} answered {status}"),
            Some(status),
            retry_after,
        ),
        Outcome::NoAnswer(error) => fail(
            Reason::DeliveryFailing,
            format!("POST {url}: {error}"),
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
        // Drain the endpoints' events while they are listed: the shared watch waits for
        // every reader, and would stall on a full channel before the list completes.
        {
            let listed = synced.wait();
            tokio::pin!(listed);
            loop {
                tokio::select! {
                    _ = &mut listed => break,
                    _ = touched.next() => {}
                }
            }
        }
        loop {
            let now = Time(k8s_openapi::jiff::Timestamp::now());
            let policy = ctx
                .config
                .webhooks
                .as_ref()
                .map(|w| w.private_networks)
                .unwrap_or_default();
            let unavailable = match (&ctx.config.webhooks, lock(&shared.unsendable).clone()) {
                (None, _) => Some((
                    Reason::WebhooksNotConfigured,
                    "the operator runs without an outbox database (--webhook-database-url): no events are sent".to_string(),
                )),
                (Some(_), Some(why)) => Some((Reason::WebhooksNotConfigured, why)),
                (Some(_), None) => shared.outbox_error().map(|error| {
                    (
                        Reason::OutboxUnavailable,
                        format!("the outbox database does not answer ({error}); events wait until it does"),
                    )
                }),
            };
            let health = lock(&shared.health).clone();
            for endpoint in endpoints.state() {
                let facts = endpoint::Facts {
                    unavailable: unavailable.clone(),
                    private_ok: endpoint::private_ok(
                        &endpoint,
                        policy,
                        &ctx.config.platform_namespace,
                    ),
                    now: &now,
                };
                let uid = endpoint.uid().unwrap_or_default();
                // What an attempt learnt of an earlier spec says nothing of this one.
                let learnt = health
                    .get(&uid)
                    .filter(|(generation, _)| *generation == endpoint.metadata.generation)
                    .map(|(_, health)| health);
                let desired = endpoint::status(&endpoint, learnt, &facts);
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

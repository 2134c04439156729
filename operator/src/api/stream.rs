//! `GET /v1/tenants/{name}/events`: a Tenant's status as it changes, as server-sent events.
//!
//! The stream is a Kubernetes watch of that one Tenant (`fieldSelector metadata.name=<name>`)
//! made as the caller, so RBAC decides it like `kubectl get tenant <name> --watch` (a tenant
//! admin's `landlord:tenant:<name>` ClusterRole allows it). Events:
//!
//! - `status`: `{generation, observedGeneration, phase, conditions}` ([`StatusEvent`]), sent
//!   first with the Tenant as it is, then whenever one of them changes (not for every write
//!   to the object); its `id` is the Tenant's `resourceVersion`.
//! - `deleted`: the Tenant is gone (or was replaced by another of the same name); the stream
//!   ends.
//! - `error`: the watch failed (the caller lost access, the API server went away): a problem
//!   (RFC 9457) as data; the stream ends, and an `EventSource` reconnects by itself.
//!
//! A stream ends after [`MAX_STREAM`] (the client reconnects and is sent the current status
//! first), a caller holds at most `--streams-per-caller` streams per replica and the replica
//! `--streams-per-replica` (more are refused with 429), so callers cannot hold the API
//! server's watches without bound; when the API stops, every stream ends at once.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{ResourceExt, runtime::watcher};
use landlord_crds::{Tenant, tenant::Phase};
use serde::Serialize;

use super::{ApiState, auth, problem::Problem, tenants};

/// How long one stream lasts at most; the client reconnects.
pub const MAX_STREAM: Duration = Duration::from_secs(300);
/// How often a comment keeps an idle stream open through proxies.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The data of a `status` event: what an operation or a console follows.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEvent {
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    pub phase: Option<Phase>,
    pub conditions: Vec<Condition>,
}

impl StatusEvent {
    pub fn of(tenant: &Tenant) -> Self {
        let status = tenant.status.as_ref();
        StatusEvent {
            generation: tenant.metadata.generation,
            observed_generation: status.and_then(|s| s.observed_generation),
            phase: status.and_then(|s| s.phase),
            conditions: status.map(|s| s.conditions.clone()).unwrap_or_default(),
        }
    }
}

/// The open streams of this replica, by caller; closed all at once when the API stops.
pub struct Streams {
    per_caller: usize,
    total: usize,
    open: Mutex<Open>,
    closing: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct Open {
    by_caller: HashMap<String, usize>,
    all: usize,
}

/// One open stream of a caller: counted until dropped (when the client goes away or the
/// stream ends).
pub struct Held {
    streams: Arc<Streams>,
    caller: String,
}

/// Why a stream was not opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The caller holds `per_caller` streams already.
    Caller(usize),
    /// The replica holds `total` streams already.
    Replica(usize),
}

impl Streams {
    /// At most `per_caller` streams for one caller and `total` in all.
    pub fn new(per_caller: usize, total: usize) -> Arc<Self> {
        Arc::new(Streams {
            per_caller,
            total,
            open: Mutex::new(Open::default()),
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    /// A stream for `caller`, unless it or the replica holds the most it may.
    pub fn hold(self: &Arc<Self>, caller: &str) -> Result<Held, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let held = open.by_caller.get(caller).copied().unwrap_or_default();
        if held >= self.per_caller {
            return Err(Refused::Caller(held));
        }
        if open.all >= self.total {
            return Err(Refused::Replica(open.all));
        }
        *open.by_caller.entry(caller.to_string()).or_default() += 1;
        open.all += 1;
        Ok(Held {
            streams: self.clone(),
            caller: caller.to_string(),
        })
    }

    /// Ends every stream (the API is stopping: its graceful shutdown waits for them).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves when [`Streams::close`] is called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closing = self.closing.subscribe();
        async move {
            // An error means the sender is gone: nothing can close the stream any more.
            if closing.wait_for(|closing| *closing).await.is_err() {
                futures::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap_or_else(|e| e.into_inner());
        open.all = open.all.saturating_sub(1);
        if let Some(count) = open.by_caller.get_mut(&self.caller) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.by_caller.remove(&self.caller);
            }
        }
    }
}

/// What the watch of one Tenant turns into, in order.
#[derive(Debug, PartialEq)]
pub enum Change {
    Status {
        resource_version: String,
        status: StatusEvent,
    },
    Deleted,
    Failed(String),
}

/// Folds watch events into the changes worth sending: a `status` only when it differs from
/// the last one sent; `Deleted` when the Tenant `uid` goes (or another uid takes its name).
pub fn changes(
    uid: String,
    events: impl Stream<Item = Result<watcher::Event<Tenant>, watcher::Error>>,
) -> impl Stream<Item = Change> {
    let mut last: Option<StatusEvent> = None;
    let mut seen = false;
    let folded = events.filter_map(move |event| {
        let change = match event {
            Ok(watcher::Event::Apply(tenant) | watcher::Event::InitApply(tenant)) => {
                seen = true;
                if tenant.uid().as_deref() != Some(uid.as_str()) {
                    Some(Change::Deleted)
                } else {
                    let status = StatusEvent::of(&tenant);
                    (last.as_ref() != Some(&status)).then(|| {
                        last = Some(status.clone());
                        Change::Status {
                            resource_version: tenant.resource_version().unwrap_or_default(),
                            status,
                        }
                    })
                }
            }
            Ok(watcher::Event::Delete(_)) => Some(Change::Deleted),
            Ok(watcher::Event::Init) => {
                seen = false;
                None
            }
            // A (re)list that no longer holds the Tenant: it went while unwatched.
            Ok(watcher::Event::InitDone) => (!seen).then_some(Change::Deleted),
            Err(error) => Some(Change::Failed(error.to_string())),
        };
        futures::future::ready(change)
    });
    // Nothing follows the end of the Tenant or of the watch, and the stream ends right
    // there: the watch is not waited on for another event (there may never be one).
    stream::unfold(
        (Box::pin(folded), false),
        |(mut folded, ended)| async move {
            if ended {
                return None;
            }
            let change = folded.next().await?;
            let ended = !matches!(change, Change::Status { .. });
            Some((change, (folded, ended)))
        },
    )
}

fn event(change: Change, name: &str) -> Event {
    match change {
        Change::Status {
            resource_version,
            status,
        } => Event::default()
            .event("status")
            .id(resource_version)
            .json_data(status)
            .unwrap_or_else(|_| Event::default().event("status")),
        Change::Deleted => Event::default()
            .event("deleted")
            .data(format!("Tenant {name} is gone")),
        Change::Failed(detail) => {
            let problem = Problem::unavailable(format!("watching Tenant {name}: {detail}"));
            Event::default()
                .event("error")
                .json_data(problem.body())
                .unwrap_or_else(|_| Event::default().event("error"))
        }
    }
}

/// `GET /v1/tenants/{name}/events`.
pub async fn tenant_events(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let tenant = tenants::visible(&state, &name).await?;
    let caller = auth::caller().ok_or_else(|| Problem::unauthenticated("no caller"))?;
    let held = state.streams.hold(&caller.username).map_err(|refused| {
        let detail = match refused {
            Refused::Caller(held) => format!(
                "{} holds {held} event streams on this replica already; close one first",
                caller.username
            ),
            Refused::Replica(held) => {
                format!("this replica holds {held} event streams, the most it serves")
            }
        };
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-streams",
            "Too many open streams",
            detail,
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("15"))
    })?;
    let request_id = auth::request_id();
    // Made here, in the request's task: the client carries the caller's identity.
    let api = tenants::tenants(&state);
    let uid = tenant.uid().unwrap_or_default();
    let watch = watcher(
        api,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    );
    let events = changes(uid, watch.boxed())
        .map(move |change| {
            // The stream holds its place until it is dropped.
            let _held = &held;
            Ok::<_, Infallible>(auth::in_request(request_id.clone(), || {
                event(change, &name)
            }))
        })
        .take_until(tokio::time::sleep(MAX_STREAM))
        .take_until(state.streams.closed());
    let first = stream::iter([Ok(Event::default()
        .retry(Duration::from_secs(2))
        .comment("status of one Tenant"))]);
    Ok(Sse::new(first.chain(events))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant(uid: &str, rv: &str, phase: Option<&str>) -> Tenant {
        serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme", "uid": uid, "resourceVersion": rv, "generation": 1},
            "spec": {"tier": "shared"},
            "status": phase.map(|p| json!({"phase": p, "observedGeneration": 1})),
        }))
        .unwrap()
    }

    async fn fold(events: Vec<Result<watcher::Event<Tenant>, watcher::Error>>) -> Vec<String> {
        changes("u1".into(), stream::iter(events))
            .map(|c| match c {
                Change::Status {
                    resource_version,
                    status,
                } => format!("{resource_version}:{:?}", status.phase),
                Change::Deleted => "deleted".into(),
                Change::Failed(_) => "failed".into(),
            })
            .collect()
            .await
    }

    #[tokio::test]
    async fn only_changes_of_the_status_are_sent_and_nothing_after_the_end() {
        use watcher::Event as E;
        let got = fold(vec![
            Ok(E::Init),
            Ok(E::InitApply(tenant("u1", "1", None))),
            Ok(E::InitDone),
            // A write that leaves the status alone (labels, say): nothing to send.
            Ok(E::Apply(tenant("u1", "2", None))),
            Ok(E::Apply(tenant("u1", "3", Some("Provisioning")))),
            Ok(E::Apply(tenant("u1", "4", Some("Ready")))),
            Ok(E::Delete(tenant("u1", "5", Some("Ready")))),
            Ok(E::Apply(tenant("u1", "6", Some("Ready")))),
        ])
        .await;
        assert_eq!(
            got,
            ["1:None", "3:Some(Provisioning)", "4:Some(Ready)", "deleted"]
        );
    }

    #[tokio::test]
    async fn the_stream_ends_at_the_deletion_without_waiting_for_the_watch() {
        use watcher::Event as E;
        // A watch that stays open after the Tenant's deletion, as a real one does.
        let events = stream::iter(vec![
            Ok(E::InitApply(tenant("u1", "1", Some("Ready")))),
            Ok(E::InitDone),
            Ok(E::Delete(tenant("u1", "2", Some("Ready")))),
        ])
        .chain(stream::pending());
        let all: Vec<Change> = tokio::time::timeout(
            Duration::from_secs(5),
            changes("u1".into(), events).collect(),
        )
        .await
        .expect("the stream ended");
        assert_eq!(all.last(), Some(&Change::Deleted));
    }

    #[tokio::test]
    async fn a_tenant_gone_while_unwatched_or_replaced_is_deleted() {
        use watcher::Event as E;
        let gone = fold(vec![Ok(E::Init), Ok(E::InitDone)]).await;
        assert_eq!(gone, ["deleted"]);
        let replaced = fold(vec![
            Ok(E::Init),
            Ok(E::InitApply(tenant("u2", "9", Some("Ready")))),
            Ok(E::InitDone),
        ])
        .await;
        assert_eq!(replaced, ["deleted"]);
    }

    #[test]
    fn a_caller_and_the_replica_hold_a_bounded_number_of_streams() {
        let streams = Streams::new(2, 3);
        let a = streams.hold("alice").unwrap();
        let _b = streams.hold("alice").unwrap();
        assert_eq!(streams.hold("alice").err(), Some(Refused::Caller(2)));
        let _c = streams.hold("bob").unwrap();
        assert_eq!(streams.hold("carol").err(), Some(Refused::Replica(3)));
        drop(a);
        let _d = streams.hold("alice").unwrap();
        // No stream at all for anyone.
        let none = Streams::new(0, 10);
        assert_eq!(none.hold("alice").err(), Some(Refused::Caller(0)));
        assert!(none.open.lock().unwrap().by_caller.is_empty());
    }

    #[tokio::test]
    async fn closing_ends_every_stream() {
        let streams = Streams::new(1, 1);
        let closed = streams.closed();
        streams.close();
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .expect("closed");
    }
}

//! A Tenant's API history: every write made through this API to a Tenant (or to an object
//! in its namespace), with who made it, what it asked and how it was answered, read back
//! with `GET /v1/tenants/{name}/history`.
//!
//! Sources of truth: the API server's audit log records every write the API makes, as the
//! caller (impersonated) and under the request's id (`Audit-ID`); this history is the
//! tenant-readable copy of the API's side of it, kept in PostgreSQL (`--database-url`)
//! because etcd is no log store and the audit log is the cluster operator's, not the
//! tenant's. One row per write request that reached a Tenant: the request is attributed to
//! the Tenant its handler read or created ([`touch`]), never to a name the caller merely
//! sent, so a caller who may not see a Tenant writes nothing to its history. Refusals made
//! before the Tenant was read (a malformed body, a missing precondition) and by the rate
//! limit have no row. A row is written after the answer is known and before it is sent (or,
//! when the client left while its handler ran, with status 499 from a task of its own);
//! recording waits at most 2 s, and if PostgreSQL does not take the row the answer still
//! goes out (the write it describes already happened), the failure is logged and counted
//! (`landlord_api_history_failures_total`), and the audit log still has the write.
//!
//! Rows belong to a Tenant's uid: a Tenant made again under the same name starts an empty
//! history. Rows older than `--history-retention-days` are deleted. Reading one asks the API
//! server whether the caller may `get` the virtual subresource `tenants/history` of that
//! Tenant (a SelfSubjectAccessReview made as the caller), which the operator grants to the
//! Tenant's admins and viewers.

use std::{
    str::FromStr,
    sync::{Arc, Mutex},
};

use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
};
use kube::ResourceExt;
use landlord_crds::Tenant;
use serde::{Deserialize, Serialize};
use sqlx::{
    Executor, PgPool, Row,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::{ApiState, auth, problem::Problem, tenants};

/// Statements that create the schema; each is idempotent, and they run under an advisory
/// lock so that two replicas starting together do not race. Run only when [`SCHEMA_MADE`]
/// says something is missing: PostgreSQL checks the right to create before it checks
/// existence, so a role that may only use the table (INSERT, SELECT, DELETE, the sequence)
/// works once its owner made it.
const SCHEMA: &[&str] = &[
    "create table if not exists api_history (id bigserial primary key, at timestamptz not null default now(), tenant text not null, tenant_uid text not null, request_id text not null, caller text not null, action text not null, method text not null, path text not null, status integer not null, operation text)",
    "create index if not exists api_history_by_tenant on api_history (tenant_uid, id desc)",
    "create index if not exists api_history_by_time on api_history (at)",
];
/// Whether the table and both indexes exist.
const SCHEMA_MADE: &str = "select to_regclass('api_history') is not null and to_regclass('api_history_by_tenant') is not null and to_regclass('api_history_by_time') is not null";
/// Rows the retention deletes per statement (each one short, whatever the backlog).
const RETENTION_BATCH: i64 = 5000;
/// The advisory lock key the schema is made under (`landlord-api-history`, as a number).
const SCHEMA_LOCK: i64 = 0x6c6c_6170_6968_6973;

/// One write made through the API.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// When the answer was made (RFC 3339, UTC).
    pub time: String,
    /// The request's id: the `X-Request-Id` answered, and the `auditID` of the API
    /// server's audit events for the writes it made.
    pub request_id: String,
    /// The caller's username, as the API server authenticated it.
    pub caller: String,
    /// The API operation (`operationId` in the OpenAPI document), e.g. `suspendTenant`.
    pub action: String,
    pub method: String,
    /// The request's path, e.g. `/v1/tenants/acme/suspend`.
    pub path: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The operation the answer named (its `Location`), when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

/// A page of a Tenant's history, newest first.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    pub items: Vec<Entry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The query of `GET /v1/tenants/{name}/history`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Page size, 1 to 200 (default 50).
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// What is known of a write request before its answer: all of its row but the Tenant it
/// reaches and the answer.
#[derive(Clone, Debug)]
pub struct Request {
    pub request_id: String,
    pub caller: String,
    /// The route's operationId.
    pub action: String,
    pub method: String,
    /// The request's path; see [`recorded_path`].
    pub path: String,
}

/// The Tenant a request reached: its name and uid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub name: String,
    pub uid: String,
}

/// The status recorded for a request whose answer was never made: the client went away
/// (or the server stopped) while its handler ran, after the Tenant was reached. nginx's
/// "client closed request".
pub const CLOSED: u16 = 499;

tokio::task_local! {
    static SUBJECT: Arc<Mutex<Option<Subject>>>;
}

/// Records one write request: made before the handler runs ([`Recorder::scope`]), it records
/// the answer ([`Recorder::finish`]), or, if dropped before (the request's future was
/// dropped: the client disconnected during `Prefer: wait`, after the write was made), a row
/// with status [`CLOSED`] from a task of its own. Nothing is recorded for a request that
/// reached no Tenant, or was refused by the rate limit (429: unbounded refusals would
/// otherwise fill the history).
pub struct Recorder {
    store: History,
    request: Request,
    subject: Arc<Mutex<Option<Subject>>>,
    failures: prometheus::IntCounter,
    finished: bool,
}

impl Recorder {
    pub fn new(store: History, request: Request, failures: prometheus::IntCounter) -> Self {
        Recorder {
            store,
            request,
            subject: Arc::default(),
            failures,
            finished: false,
        }
    }

    /// Runs the handler's `future`, noting the Tenant it reaches ([`touch`]).
    pub async fn scope<F: std::future::Future>(&self, future: F) -> F::Output {
        SUBJECT.scope(self.subject.clone(), future).await
    }

    /// Records the answer (its status, and the operation its `Location` names), before it
    /// is sent. The row is written by a task of its own, which the request's future being
    /// dropped (the client left) does not cancel.
    pub async fn finish(mut self, status: u16, location: Option<&str>) {
        self.finished = true;
        let operation = location
            .and_then(|l| l.strip_prefix("/v1/operations/"))
            .map(str::to_string);
        if let Some(write) = self.write(status, operation) {
            let (store, failures) = (self.store.clone(), self.failures.clone());
            let _ = tokio::spawn(async move { record(&store, &write, &failures).await }).await;
        }
    }

    fn write(&self, status: u16, operation: Option<String>) -> Option<Write> {
        let tenant = self.subject.lock().ok()?.clone()?;
        Some(Write {
            tenant,
            request: self.request.clone(),
            status,
            operation,
        })
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Some(write) = self.write(CLOSED, None) else {
            return;
        };
        let (store, failures) = (self.store.clone(), self.failures.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { record(&store, &write, &failures).await });
        }
    }
}

/// Records `write`, waiting at most [`RECORD_TIMEOUT`]; a failure is logged and counted,
/// never the caller's answer.
async fn record(store: &History, write: &Write, failures: &prometheus::IntCounter) {
    let outcome = tokio::time::timeout(RECORD_TIMEOUT, store.record(write)).await;
    let error = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", RECORD_TIMEOUT.as_secs()),
    };
    failures.inc();
    tracing::warn!(
        request_id = %write.request.request_id,
        tenant = %write.tenant.name,
        %error,
        "the API history did not record a write"
    );
}

/// `future` (a call of the history's database), failed with a timeout after
/// [`CALL_TIMEOUT`]: a server that stopped answering (a partition, a frozen process) holds
/// no caller or pool connection longer, whatever the server-side timeouts.
async fn bounded<T>(
    future: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    tokio::time::timeout(CALL_TIMEOUT, future)
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

/// How long one call of the history's database may take.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long recording a write may hold its answer back.
const RECORD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// One row.
#[derive(Clone, Debug)]
struct Write {
    tenant: Subject,
    request: Request,
    status: u16,
    operation: Option<String>,
}

/// The path recorded for a request to `path`, matched to `route`: the path itself when it
/// is made of the characters names and routes have (and not too long); else the route
/// (`/v1/tenants/{name}/flagsets/{flagset}`), so that a caller cannot write text of its own
/// into a history others read.
pub fn recorded_path(path: &str, route: &str) -> String {
    let plain = path.len() <= 512
        && path
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-./".contains(&b));
    if plain {
        path.to_string()
    } else {
        route.to_string()
    }
}

/// Forgets the Tenant the current request reached: for a request refused before it could
/// write (the API's own rate limit), which would otherwise let a caller fill a history.
pub fn untouch() {
    let _ = SUBJECT.try_with(|cell| {
        if let Ok(mut subject) = cell.lock() {
            *subject = None;
        }
    });
}

/// Notes that the current request reached `tenant` (read it as the caller, or created it);
/// outside [`Recorder::scope`], nothing.
pub fn touch(tenant: &Tenant) {
    let (Some(name), Some(uid)) = (tenant.metadata.name.clone(), tenant.uid()) else {
        return;
    };
    let _ = SUBJECT.try_with(|cell| {
        if let Ok(mut subject) = cell.lock() {
            *subject = Some(Subject { name, uid });
        }
    });
}

/// The history store.
#[derive(Clone)]
pub struct History {
    pool: PgPool,
    /// Set once the schema is made (on first use, so the API starts while PostgreSQL is
    /// down).
    schema: Arc<tokio::sync::OnceCell<()>>,
}

impl History {
    /// A store at `url`, a `postgres://` URL; nothing is connected until first use.
    /// Errors: the URL is malformed.
    pub fn connect(url: &str) -> Result<Self, sqlx::Error> {
        // A locked table or a slow server fails a statement instead of holding answers (set
        // per session rather than as a startup parameter, which poolers such as PgBouncer
        // refuse); the callers bound each call on their side too.
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(RECORD_TIMEOUT)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("set statement_timeout = 2000; set lock_timeout = 2000")
                        .await
                        .map(|_| ())
                })
            })
            .connect_lazy_with(options);
        Ok(History {
            pool,
            schema: Arc::default(),
        })
    }

    /// Makes the schema, once per process.
    async fn ready(&self) -> Result<(), sqlx::Error> {
        self.schema
            .get_or_try_init(|| async {
                let made: bool = sqlx::query_scalar(SCHEMA_MADE)
                    .fetch_one(&self.pool)
                    .await?;
                if made {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                sqlx::query("select pg_advisory_xact_lock($1)")
                    .bind(SCHEMA_LOCK)
                    .execute(&mut *tx)
                    .await?;
                for statement in SCHEMA {
                    sqlx::query(statement).execute(&mut *tx).await?;
                }
                tx.commit().await
            })
            .await
            .map(|_| ())
    }

    /// Records one write.
    async fn record(&self, write: &Write) -> Result<(), sqlx::Error> {
        self.ready().await?;
        sqlx::query(
            "insert into api_history (tenant, tenant_uid, request_id, caller, action, method, path, status, operation) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&write.tenant.name)
        .bind(&write.tenant.uid)
        .bind(&write.request.request_id)
        .bind(&write.request.caller)
        .bind(&write.request.action)
        .bind(&write.request.method)
        .bind(&write.request.path)
        .bind(i32::from(write.status))
        .bind(&write.operation)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Deletes the rows older than `days` days (of Tenants deleted since, too); answers how
    /// many.
    /// In batches of [`RETENTION_BATCH`] rows, each bounded in time.
    pub async fn forget_older_than(&self, days: u32) -> Result<u64, sqlx::Error> {
        bounded(self.ready()).await?;
        let mut deleted = 0;
        loop {
            let batch = bounded(
                sqlx::query(
                    "delete from api_history where id in (select id from api_history where at < now() - make_interval(days => $1) order by at limit $2)",
                )
                .bind(i32::try_from(days).unwrap_or(i32::MAX))
                .bind(RETENTION_BATCH)
                .execute(&self.pool),
            )
            .await?
            .rows_affected();
            deleted += batch;
            if batch == 0 {
                return Ok(deleted);
            }
        }
    }

    /// Up to `limit` writes to the Tenant of `uid` older than row `before`, newest first,
    /// with the id of the last one.
    async fn page(
        &self,
        uid: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(i64, Entry)>, sqlx::Error> {
        bounded(self.ready()).await?;
        let rows = bounded(sqlx::query(
            "select id, to_char(at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') as time, request_id, caller, action, method, path, status, operation from api_history where tenant_uid = $1 and ($2::bigint is null or id < $2) order by id desc limit $3",
        )
        .bind(uid)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool))
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("id")?,
                    Entry {
                        time: row.try_get("time")?,
                        request_id: row.try_get("request_id")?,
                        caller: row.try_get("caller")?,
                        action: row.try_get("action")?,
                        method: row.try_get("method")?,
                        path: row.try_get("path")?,
                        status: u16::try_from(row.try_get::<i32, _>("status")?).unwrap_or(0),
                        operation: row.try_get("operation")?,
                    },
                ))
            })
            .collect()
    }
}

/// `GET /v1/tenants/{name}/history`: the Tenant's API history, newest first, a page at a
/// time. Errors: 404 (no such Tenant visible), 403 (the caller may not `get
/// tenants/history`), 400 (a bad cursor), 501 (this API keeps no history: no
/// `--database-url`), 503 (PostgreSQL unreachable).
pub async fn history(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<HistoryPage>, Problem> {
    let Query(query) = query.map_err(|e| Problem::bad_request("bad-request", e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::invalid_field(
            "limit",
            "FieldValueInvalid",
            format!("must be 1 to 200, not {limit}"),
        ));
    }
    let before = match query.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| {
            Problem::bad_request("invalid-cursor", "cursor: not a cursor this API made")
        })?),
    };
    let tenant = tenants::visible(&state, &name).await?;
    if !auth::may(&state.kube, "get", Some("history"), &name).await? {
        return Err(auth::forbidden(&format!(
            "get tenants/history of Tenant {name}"
        )));
    }
    let store = state.history.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_IMPLEMENTED,
            "history-not-configured",
            "This API keeps no history",
            "the API runs without --database-url, so it records no writes",
        )
    })?;
    let uid = tenant.uid().unwrap_or_default();
    let mut rows = store
        .page(&uid, before, limit as i64 + 1)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, tenant = %name, "reading the API history failed");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "history-unavailable",
                "The history database did not answer",
                format!("reading the history of Tenant {name}: the database did not answer"),
            )
            .with_header(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            )
        })?;
    let next_cursor = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        rows.last().map(|(id, _)| id.to_string())
    });
    Ok(Json(HistoryPage {
        items: rows.into_iter().map(|(_, entry)| entry).collect(),
        next_cursor: next_cursor.flatten(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_are_recorded_as_sent() {
        let route = "/v1/tenants/{name}/flagsets/{flagset}";
        assert_eq!(
            recorded_path("/v1/tenants/acme/flagsets/overrides", route),
            "/v1/tenants/acme/flagsets/overrides"
        );
        // Text a caller chose (percent-encoded, upper case, too long) stays out.
        for sent in [
            "/v1/tenants/acme/flagsets/Call%20me%20at%20555",
            "/v1/tenants/acme/flagsets/ABC",
            &format!("/v1/tenants/acme/flagsets/{}", "a".repeat(600)),
        ] {
            assert_eq!(recorded_path(sent, route), route, "{sent}");
        }
    }
}

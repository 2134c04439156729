//! The outbox: webhook delivery state in PostgreSQL.
//!
//! Kubernetes keeps the configuration (WebhookEndpoints, their Secrets); PostgreSQL keeps
//! what changes with every attempt. etcd is no queue: no `SKIP LOCKED`, every attempt would
//! be a write that every watcher of the object sees, and the audit log would fill with queue
//! noise. Tables:
//!
//! - `webhook_subjects`: the last recorded state of each Tenant and Domain (by uid), which
//!   events are derived against ([`super::events`]).
//! - `webhook_events`: each event once, by its stable id, with the exact body sent.
//! - `webhook_deliveries`: one row per (event, endpoint): pending with its next attempt
//!   time and lease, or delivered, or given up.
//!
//! A subject's new state, its events and their deliveries are written in one transaction,
//! so an observed transition is either fully queued or not at all (and then seen again).
//! A delivery is leased before it is sent; a process that dies mid-delivery leaves the
//! lease to expire, and whoever claims it next sends it again with the same id.

use std::time::Duration;

use sqlx::{PgPool, Row, postgres::PgPoolOptions};

use super::events::{Event, Subject};

/// Statements that create the schema; each is idempotent.
const SCHEMA: &[&str] = &[
    "create table if not exists webhook_outbox (singleton boolean primary key default true check (singleton), created_at timestamptz not null default now())",
    "insert into webhook_outbox default values on conflict do nothing",
    "create table if not exists webhook_subjects (uid text primary key, state jsonb not null, updated_at timestamptz not null default now())",
    "create table if not exists webhook_events (id text primary key, type text not null, tenant text not null, body text not null, created_at timestamptz not null default now())",
    "create table if not exists webhook_deliveries (event_id text not null references webhook_events (id) on delete cascade, endpoint_uid text not null, endpoint text not null, state text not null default 'pending', attempts integer not null default 0, next_attempt_at timestamptz not null default now(), lease_until timestamptz, last_status integer, last_error text, delivered_at timestamptz, primary key (event_id, endpoint_uid))",
    "create index if not exists webhook_deliveries_due on webhook_deliveries (next_attempt_at) where state = 'pending'",
];

/// A connection pool to the outbox database.
#[derive(Clone)]
pub struct Outbox {
    pool: PgPool,
}

/// Attempts of one delivery at most: the first and one per step of the retry schedule.
pub const MAX_ATTEMPTS: i32 = super::delivery::SCHEDULE.len() as i32 + 1;

/// A delivery claimed for sending.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub event_id: String,
    pub endpoint_uid: String,
    /// `<namespace>/<name>` of the endpoint when the event was queued.
    pub endpoint: String,
    /// This attempt's number, from 1.
    pub attempt: i32,
    pub body: String,
}

/// Where a delivery stands after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    Delivered {
        status: u16,
    },
    /// Try again after `wait`.
    Retry {
        wait: Duration,
        status: Option<u16>,
        error: String,
    },
    /// Never again: the schedule is spent, the endpoint answered 410 or is gone.
    GivenUp {
        status: Option<u16>,
        error: String,
    },
}

impl Outbox {
    /// Connects (lazily: the first query connects) to `url`, a `postgres://` URL.
    pub fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(url)?;
        Ok(Self { pool })
    }

    /// Creates the tables if missing (under an advisory lock, so that two operators starting
    /// at once do not race) and returns when the outbox was created: objects created before
    /// then existed before webhooks did, and their first sight is no `created` event.
    pub async fn migrate(&self) -> Result<k8s_openapi::jiff::Timestamp, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select pg_advisory_xact_lock(hashtext('landlord.webhook_outbox'))")
            .execute(&mut *tx)
            .await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        let epoch: f64 =
            sqlx::query_scalar("select extract(epoch from created_at)::float8 from webhook_outbox")
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(
            k8s_openapi::jiff::Timestamp::from_millisecond((epoch * 1000.0) as i64)
                .unwrap_or_default(),
        )
    }

    /// Every recorded subject, by uid.
    pub async fn subjects(&self) -> Result<Vec<(String, Subject)>, sqlx::Error> {
        let rows = sqlx::query("select uid, state::text from webhook_subjects")
            .fetch_all(&self.pool)
            .await?;
        let mut subjects = Vec::with_capacity(rows.len());
        for row in rows {
            let uid: String = row.try_get(0)?;
            let state: String = row.try_get(1)?;
            // A state this version cannot read is dropped: the object is seen anew.
            if let Ok(subject) = serde_json::from_str(&state) {
                subjects.push((uid, subject));
            }
        }
        Ok(subjects)
    }

    /// Records a subject's new state (None: forget it), its events (each once) and one
    /// delivery per receiving endpoint of each event newly stored, in one transaction.
    pub async fn record(
        &self,
        uid: &str,
        state: Option<&Subject>,
        events: &[(Event, Vec<(String, String)>)],
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        match state {
            Some(state) => {
                sqlx::query(
                    "insert into webhook_subjects (uid, state) values ($1, $2::jsonb) \
                     on conflict (uid) do update set state = excluded.state, updated_at = now()",
                )
                .bind(uid)
                .bind(serde_json::to_string(state).unwrap_or_default())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("delete from webhook_subjects where uid = $1")
                    .bind(uid)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for (event, endpoints) in events {
            let inserted = sqlx::query(
                "insert into webhook_events (id, type, tenant, body) values ($1, $2, $3, $4) \
                 on conflict (id) do nothing",
            )
            .bind(&event.id)
            .bind(event.type_.as_str())
            .bind(&event.tenant)
            .bind(&event.body)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                continue;
            }
            for (endpoint_uid, endpoint) in endpoints {
                sqlx::query(
                    "insert into webhook_deliveries (event_id, endpoint_uid, endpoint) \
                     values ($1, $2, $3) on conflict do nothing",
                )
                .bind(&event.id)
                .bind(endpoint_uid)
                .bind(endpoint)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await
    }

    /// Leases up to `limit` due deliveries for `lease` (each attempt counted now), oldest
    /// first, except those to the endpoints `busy` (uids); deliveries leased by another
    /// process are skipped, not waited for. A delivery claimed [`MAX_ATTEMPTS`] times is not
    /// claimed again (its sender died each time: see [`Outbox::prune`]).
    pub async fn claim(
        &self,
        limit: i64,
        lease: Duration,
        busy: &[String],
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        let rows = sqlx::query(
            "with due as ( \
               select event_id, endpoint_uid from webhook_deliveries \
               where state = 'pending' and next_attempt_at <= now() \
                 and (lease_until is null or lease_until < now()) \
                 and attempts < $3 and not (endpoint_uid = any($4)) \
               order by next_attempt_at limit $1 for update skip locked) \
             update webhook_deliveries d \
               set lease_until = now() + make_interval(secs => $2), attempts = d.attempts + 1 \
             from due, webhook_events e \
             where d.event_id = due.event_id and d.endpoint_uid = due.endpoint_uid \
               and e.id = d.event_id \
             returning d.event_id, d.endpoint_uid, d.endpoint, d.attempts, e.body",
        )
        .bind(limit)
        .bind(lease.as_secs_f64())
        .bind(MAX_ATTEMPTS)
        .bind(busy)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(Claimed {
                    event_id: row.try_get(0)?,
                    endpoint_uid: row.try_get(1)?,
                    endpoint: row.try_get(2)?,
                    attempt: row.try_get(3)?,
                    body: row.try_get(4)?,
                })
            })
            .collect()
    }

    /// Records an attempt's outcome and releases the lease.
    pub async fn settle(&self, claimed: &Claimed, settled: &Settled) -> Result<(), sqlx::Error> {
        let (state, wait, status, error) = match settled {
            Settled::Delivered { status } => ("delivered", None, Some(*status), None),
            Settled::Retry {
                wait,
                status,
                error,
            } => ("pending", Some(*wait), *status, Some(error.as_str())),
            Settled::GivenUp { status, error } => ("given_up", None, *status, Some(error.as_str())),
        };
        sqlx::query(
            "update webhook_deliveries set state = $3, lease_until = null, \
               next_attempt_at = now() + make_interval(secs => coalesce($4, 0)), \
               last_status = $5, last_error = $6, \
               delivered_at = case when $3 = 'delivered' then now() end \
             where event_id = $1 and endpoint_uid = $2 and attempts = $7 and state = 'pending'",
        )
        .bind(&claimed.event_id)
        .bind(&claimed.endpoint_uid)
        .bind(state)
        .bind(wait.map(|w| w.as_secs_f64()))
        .bind(status.map(i32::from))
        .bind(error)
        // Fenced: an attempt that outlived its lease does not settle a later claim's.
        .bind(claimed.attempt)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up deliveries whose every attempt died with its sender (claimed
    /// [`MAX_ATTEMPTS`] times, the last lease expired); deletes delivered events older than
    /// `keep` and given-up ones older than `keep_failed`.
    pub async fn prune(&self, keep: Duration, keep_failed: Duration) -> Result<u64, sqlx::Error> {
        sqlx::query(
            "update webhook_deliveries set state = 'given_up', lease_until = null, \
               last_error = 'every attempt ended without an answer being recorded' \
             where state = 'pending' and attempts >= $1 and lease_until < now()",
        )
        .bind(MAX_ATTEMPTS)
        .execute(&self.pool)
        .await?;
        let done = sqlx::query(
            "delete from webhook_events e where e.created_at < now() - make_interval(secs => $1) \
             and not exists (select 1 from webhook_deliveries d where d.event_id = e.id \
               and (d.state = 'pending' or (d.state = 'given_up' \
                 and e.created_at >= now() - make_interval(secs => $2))))",
        )
        .bind(keep.as_secs_f64())
        .bind(keep_failed.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

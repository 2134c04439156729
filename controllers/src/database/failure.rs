//! What went wrong talking to a PostgreSQL server, as a condition reason. Messages come from
//! the server or the driver and never contain a password: Landlord sends none.

use landlord_crds::conditions::Reason;
use sqlx::error::{DatabaseError, ErrorKind};

/// A failed step, ready to become a `DatabaseReady` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    /// Classifies a driver error of a step (`doing`, e.g. "creating role t_acme") on `server`.
    pub fn from_sqlx(server: &str, doing: &str, error: &sqlx::Error) -> Self {
        let (reason, detail) = match error {
            sqlx::Error::Database(db) => (classify(db.as_ref()), db.message().to_string()),
            sqlx::Error::Io(e) => (Reason::ServerUnreachable, e.to_string()),
            sqlx::Error::Tls(e) => (Reason::ServerUnreachable, format!("TLS: {e}")),
            sqlx::Error::PoolTimedOut => (
                Reason::ServerUnreachable,
                "no connection within the timeout".to_string(),
            ),
            sqlx::Error::Protocol(e) => (Reason::ServerUnreachable, format!("protocol: {e}")),
            sqlx::Error::Configuration(e) => (Reason::InvalidServerConfig, e.to_string()),
            other => (Reason::DatabaseError, other.to_string()),
        };
        Self::new(reason, format!("server {server}: {doing}: {detail}"))
    }

    /// Whether only a person can fix it (the reconcile then waits for a change instead of
    /// retrying every few seconds).
    pub fn needs_action(&self) -> bool {
        self.reason.severity() == landlord_crds::conditions::Severity::NeedsPerson
    }
}

fn classify(db: &dyn DatabaseError) -> Reason {
    match db.code().as_deref() {
        Some("28P01") | Some("28000") => Reason::AuthenticationFailed,
        Some("42501") => Reason::PermissionDenied,
        Some("53300") => Reason::ServerBusy,
        Some("57P03") => Reason::ServerUnreachable,
        Some("3D000") => Reason::DatabaseMissing,
        Some(code) if code.starts_with("08") => Reason::ServerUnreachable,
        _ => match db.kind() {
            ErrorKind::UniqueViolation => Reason::NameConflict,
            _ => Reason::DatabaseError,
        },
    }
}

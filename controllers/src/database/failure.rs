//! What went wrong talking to a PostgreSQL server, as a condition reason. Messages come from
//! the server or the driver and never contain a password: Landlord sends none.

use sqlx::error::{DatabaseError, ErrorKind};

/// A failed step, ready to become a `DatabaseReady` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    /// Classifies a driver error of a step (`doing`, e.g. "creating role t_acme") on `server`.
    pub fn from_sqlx(server: &str, doing: &str, error: &sqlx::Error) -> Self {
        let (reason, detail) = match error {
            sqlx::Error::Database(db) => (classify(db.as_ref()), db.message().to_string()),
            sqlx::Error::Io(e) => ("ServerUnreachable", e.to_string()),
            sqlx::Error::Tls(e) => ("ServerUnreachable", format!("TLS: {e}")),
            sqlx::Error::PoolTimedOut => (
                "ServerUnreachable",
                "no connection within the timeout".to_string(),
            ),
            sqlx::Error::Protocol(e) => ("ServerUnreachable", format!("protocol: {e}")),
            sqlx::Error::Configuration(e) => ("InvalidServerConfig", e.to_string()),
            other => ("DatabaseError", other.to_string()),
        };
        Self::new(reason, format!("server {server}: {doing}: {detail}"))
    }

    /// Whether only a person can fix it (the reconcile then waits for a change instead of
    /// retrying every few seconds).
    pub fn needs_action(&self) -> bool {
        NEEDS_ACTION.contains(&self.reason)
    }
}

/// Reasons that no retry can clear.
pub const NEEDS_ACTION: &[&str] = &[
    "InvalidName",
    "ExtensionNotAllowed",
    "NameConflict",
    "ServerNotFound",
    "PlacementImmutable",
    "NoDatabaseServers",
];

fn classify(db: &dyn DatabaseError) -> &'static str {
    match db.code().as_deref() {
        Some("28P01") | Some("28000") => "AuthenticationFailed",
        Some("42501") => "PermissionDenied",
        Some("53300") => "ServerBusy",
        Some("57P03") => "ServerUnreachable",
        Some("3D000") => "DatabaseMissing",
        Some(code) if code.starts_with("08") => "ServerUnreachable",
        _ => match db.kind() {
            ErrorKind::UniqueViolation => "NameConflict",
            _ => "DatabaseError",
        },
    }
}

//! Errors of the Tenant controller, each with a bounded category for metrics and events.

/// Why a Tenant reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec cannot be provisioned as written; waits for the next change.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The API server refused or failed a request.
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// An object could not be encoded (a bug, not a user error).
    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The Tenant has no uid yet, so children cannot reference it.
    #[error("the Tenant has no uid")]
    MissingUid,
    /// A cleanup step is still running (a namespace terminating, ...); checked again shortly.
    #[error("cleanup waits for {0}")]
    CleanupPending(String),
    /// A database cleanup step failed (server unreachable, refused, not configured).
    #[error("database cleanup: {0}")]
    DatabaseCleanup(String),
    /// Something that should not happen (no randomness from the operating system).
    #[error("internal: {0}")]
    Internal(String),
    /// NATS refused or failed a request (topics cleanup, key derivation).
    #[error("{action}: {source}")]
    Nats {
        action: String,
        #[source]
        source: crate::nats::NatsError,
    },
    /// The object belongs to another part of Landlord (two writers never share one object).
    #[error("{0}")]
    Foreign(String),
    /// Parts failed transiently; their conditions say which and why (status is written).
    /// The reconcile is retried with backoff.
    #[error("parts failed: {0}")]
    PartsFailed(String),
}

impl Error {
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }

    /// A small fixed set of categories: metric labels and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Kube { source, .. } => crate::failure::api_category(source),
            Error::Encode { .. } | Error::MissingUid | Error::Internal(_) => "Internal",
            Error::DatabaseCleanup(_) => "DatabaseCleanup",
            Error::CleanupPending(_) => "CleanupPending",
            Error::PartsFailed(_) => "PartsFailed",
            Error::Foreign(_) => "ObjectConflict",
            Error::Nats { source, .. } => source.reason().as_str(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Errors of the catalog Service controller, each with a bounded category for metrics.

use crate::apply::EnsureError;
use landlord_crds::conditions::Reason;

use super::workload::Failure;

/// Why a catalog Service reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// An object could not be encoded (a bug, not a user error).
    #[error("{action}: encoding: {source}")]
    Encode {
        action: String,
        #[source]
        source: serde_json::Error,
    },
    /// The object belongs to another part of Landlord.
    #[error("{0}")]
    Foreign(String),
    /// The Service has no uid yet, so its pool cannot reference it.
    #[error("the Service has no uid")]
    MissingUid,
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        let Failure { action, source } = failure;
        match source {
            EnsureError::Kube(source) => Error::Kube { action, source },
            EnsureError::Encode(source) => Error::Encode { action, source },
            EnsureError::Foreign(message) => Error::Foreign(message),
        }
    }
}

impl Error {
    /// The CamelCase reason the Service's `Ready` condition gives for this failure.
    pub fn reason(&self) -> Reason {
        match self {
            Error::Kube {
                source: kube::Error::Api(status),
                ..
            } => crate::failure::api_reason(status),
            Error::Kube { .. } => Reason::ApiUnreachable,
            Error::Encode { .. } | Error::MissingUid => Reason::InternalError,
            Error::Foreign(_) => Reason::ObjectConflict,
        }
    }

    /// A small fixed set of categories: metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { source, .. } => crate::failure::api_category(source),
            Error::Encode { .. } | Error::MissingUid => "Internal",
            Error::Foreign(_) => "ObjectConflict",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Errors of the Domain controller, each with a bounded category for metrics.

/// Why a Domain reconcile did not finish. (What the user must fix is a condition, not an
/// error: an error means "try again".)
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
    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The Domain has no uid or namespace yet.
    #[error("the Domain has no {0}")]
    Incomplete(&'static str),
}

impl Error {
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }

    /// A small fixed set of categories: metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { source, .. } => crate::failure::api_category(source),
            Error::Encode { .. } | Error::Incomplete(_) => "Internal",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

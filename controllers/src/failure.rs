//! What a failed request means for status, shared by the controllers: the CamelCase reason of
//! an API refusal, and how each reason is handled (its [`Severity`]). Pure, unit-tested in
//! `tenant::failure`.

/// How a failure is handled after it reached status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// May clear on its own (the API server restarting, a conflict, an unreachable server):
    /// retried with jittered exponential backoff.
    Transient,
    /// Only a person can clear it (a quota too small, an object refused as invalid or too
    /// large, missing rights): not retried until something changes.
    NeedsPerson,
}

/// Reasons a person must act on, among them those [`api_reason`] gives for API refusals.
pub const NEEDS_PERSON: &[&str] = &[
    "QuotaExceeded",
    "ObjectInvalid",
    "ObjectTooLarge",
    "Forbidden",
    "FlagsTooLarge",
    "NameReserved",
    "ObjectConflict",
];

/// The reason of a failed API request, by what the API server answered.
pub fn api_reason(status: &kube::core::Status) -> &'static str {
    let message = status.message.to_ascii_lowercase();
    match status.code {
        403 if message.contains("exceeded quota") => "QuotaExceeded",
        403 => "Forbidden",
        413 => "ObjectTooLarge",
        422 | 400 if message.contains("too long") || message.contains("too large") => {
            "ObjectTooLarge"
        }
        422 | 400 => "ObjectInvalid",
        409 => "ApiConflict",
        404 => "NotFound",
        429 => "ApiThrottled",
        code if code >= 500 => "ApiUnavailable",
        _ => "ApiError",
    }
}

/// The category of a failed request to the API server, by its status code: a small fixed
/// set of CamelCase values, the `category` label of `landlord_reconcile_failures_total` in
/// every controller.
pub fn api_category(error: &kube::Error) -> &'static str {
    match error {
        kube::Error::Api(status) if status.code == 403 => "ApiForbidden",
        kube::Error::Api(status) if status.code == 409 => "ApiConflict",
        kube::Error::Api(status) if status.code == 422 || status.code == 400 => "ApiInvalid",
        kube::Error::Api(status) if status.code >= 500 => "ApiUnavailable",
        kube::Error::Api(_) => "ApiError",
        _ => "ApiUnreachable",
    }
}

/// How a reason is handled.
pub fn severity(reason: &str) -> Severity {
    if NEEDS_PERSON.contains(&reason) || reason == "InvalidSpec" {
        Severity::NeedsPerson
    } else {
        Severity::Transient
    }
}

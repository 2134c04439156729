//! What a failed request means for status, shared by the controllers: the CamelCase reason of
//! an API refusal. How each reason is handled (its [`Severity`]) is in the one table of
//! reasons, `landlord_crds::reason`. Pure, unit-tested in `tenant::failure`.

pub use landlord_crds::conditions::{Reason, Severity};

/// The reason of a failed API request, by what the API server answered.
pub fn api_reason(status: &kube::core::Status) -> Reason {
    let message = status.message.to_ascii_lowercase();
    match status.code {
        403 if message.contains("exceeded quota") => Reason::QuotaExceeded,
        403 => Reason::Forbidden,
        413 => Reason::ObjectTooLarge,
        422 | 400 if message.contains("too long") || message.contains("too large") => {
            Reason::ObjectTooLarge
        }
        422 | 400 => Reason::ObjectInvalid,
        409 => Reason::ApiConflict,
        404 => Reason::NotFound,
        429 => Reason::ApiThrottled,
        code if code >= 500 => Reason::ApiUnavailable,
        _ => Reason::ApiError,
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

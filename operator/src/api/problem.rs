//! Errors as `application/problem+json` (RFC 9457): every non-2xx answer of the API.
//!
//! `type` is `https://landlord.dev/problems/<kind>`; `detail` says what went wrong and, when
//! the API server refused, quotes it; `errors[]` names each field (`spec.tier`) with the API
//! server's reason; `requestId` is the id the API server's audit log carries as `auditID`.

use axum::{
    http::{HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// The media type of every error body.
pub const MEDIA_TYPE: &str = "application/problem+json";

/// One field the problem is about.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldError {
    /// The field's path, e.g. `spec.tier`.
    pub field: String,
    /// A CamelCase reason (the API server's cause type, e.g. `FieldValueNotSupported`).
    pub reason: String,
    pub message: String,
}

/// A problem: the status, a stable kind (the last segment of `type`) and what happened.
#[derive(Clone, Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Extension members (`conflicts`, `currentEtag`, ...).
    pub extensions: serde_json::Map<String, serde_json::Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            kind,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            extensions: Default::default(),
            headers: Vec::new(),
        }
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "The request has no valid bearer token",
            detail,
        )
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "No such object, or not visible to the caller",
            detail,
        )
    }

    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            kind,
            "The request is malformed",
            detail,
        )
    }

    /// A field of the request is invalid (422), named.
    pub fn invalid_field(field: &str, reason: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "The request is invalid",
            format!("{field}: {message}"),
        );
        problem.errors.push(FieldError {
            field: field.into(),
            reason: reason.into(),
            message,
        });
        problem
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "kubernetes-unavailable",
            "The Kubernetes API server could not be reached",
            detail,
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Landlord's API failed",
            detail,
        )
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn with(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(key.into(), value);
        self
    }

    /// The API server's refusal of `what` (e.g. `Tenant acme`) as a problem: its status code
    /// kept, its message quoted, its causes as field errors. A 403 or 404 on a read is the
    /// caller's business ([`Problem::not_found`] is chosen by the handler where hiding
    /// matters).
    pub fn from_kube(error: kube::Error, what: &str) -> Self {
        let status = match error {
            kube::Error::Api(status) => status,
            other => return Problem::unavailable(format!("{what}: {other}")),
        };
        let detail = format!(
            "{what}: the Kubernetes API server answered {} {}: \"{}\"",
            status.code, status.reason, status.message
        );
        let mut problem = match (status.code, status.reason.as_str()) {
            (403, _) => Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "The caller may not do this",
                detail,
            ),
            (404, _) => Problem::not_found(detail),
            (409, "AlreadyExists") => Problem::new(
                StatusCode::CONFLICT,
                "already-exists",
                "The object already exists",
                detail,
            ),
            (409, _) => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "The object changed since it was read",
                detail,
            ),
            (422, _) | (400, "BadRequest") => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "The request is invalid",
                detail,
            ),
            (429, _) => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                detail,
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            (code, _) if code >= 500 => Problem::unavailable(detail),
            _ => Problem::new(
                StatusCode::BAD_GATEWAY,
                "kubernetes-refused",
                "The Kubernetes API server refused the request",
                detail,
            ),
        };
        if let Some(details) = &status.details {
            problem.errors = details
                .causes
                .iter()
                .map(|cause| FieldError {
                    field: cause.field.clone(),
                    reason: cause.reason.clone(),
                    message: cause.message.clone(),
                })
                .collect();
        }
        problem
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(flatten)]
    extensions: &'a serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// The problem as JSON: the body of its response (and the data of a stream's `error`
    /// event).
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(Body {
            type_: format!("https://landlord.dev/problems/{}", self.kind),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            request_id: super::auth::request_id(),
            errors: &self.errors,
            extensions: &self.extensions,
        })
        .unwrap_or_default()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let bytes = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_cel_refusal_names_its_fields() {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": 422, "reason": "Invalid",
            "message": "Tenant.landlord.dev \"acme\" is invalid: spec.tier: Unsupported value: \"gold\"",
            "details": {"name": "acme", "kind": "Tenant", "causes": [
                {"reason": "FieldValueNotSupported", "message": "Unsupported value: \"gold\"", "field": "spec.tier"}
            ]}
        }))
        .unwrap();
        let problem =
            Problem::from_kube(kube::Error::Api(Box::new(status)), "creating Tenant acme");
        assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem.kind, "validation");
        assert_eq!(problem.errors[0].field, "spec.tier");
        assert!(
            problem.detail.contains("creating Tenant acme"),
            "{}",
            problem.detail
        );
    }

    #[test]
    fn the_body_is_problem_json() {
        let response = Problem::not_found("Tenant x").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], MEDIA_TYPE);
    }
}

//! The OpenFeature Remote Evaluation Protocol (OFREP) over a tenant's flags document: pure
//! functions from a request body to the status, headers and body the spec defines
//! (`open-feature/protocol`, `service/openapi.yaml`).
//!
//! The operator has already evaluated every flag for the tenant (tier, plan and labels are
//! its targeting inputs), so the evaluation context of a request selects nothing; it is
//! still checked, as the spec requires a `context` object.
//!
//! Reasons follow the spec's enum (`STATIC`, `TARGETING_MATCH`, `SPLIT`, `DISABLED`,
//! `UNKNOWN`): Landlord's `DEFAULT` (no targeting rule matched the tenant, the flag's default
//! variant applies) is served as `STATIC`, since nothing in the request changes it.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::flags::{Flag, FlagsDocument};

/// What a tenant's flags are at the moment of a request.
#[derive(Clone, Copy, Debug)]
pub enum Flags<'a> {
    /// No flags document exists (yet): the tenant has no flags.
    None,
    Document(&'a FlagsDocument),
    /// The document exists but cannot be read; the text says why.
    Unreadable(&'a str),
}

/// An OFREP response: status, optional ETag and optional JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub body: Option<Value>,
    /// A bounded label of what happened, for metrics.
    pub outcome: Outcome,
}

/// What an evaluation request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    NotModified,
    FlagNotFound,
    InvalidContext,
    ParseError,
    Unavailable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::NotModified => "not_modified",
            Outcome::FlagNotFound => "flag_not_found",
            Outcome::InvalidContext => "invalid_context",
            Outcome::ParseError => "parse_error",
            Outcome::Unavailable => "unavailable",
        }
    }
}

impl Reply {
    fn json(status: StatusCode, outcome: Outcome, body: Value) -> Self {
        Self {
            status,
            etag: None,
            body: Some(body),
            outcome,
        }
    }
}

/// `POST /ofrep/v1/evaluate/flags/{key}`.
pub fn evaluate(flags: Flags<'_>, key: &str, body: &[u8]) -> Reply {
    if let Err(details) = check_request(body) {
        return Reply::json(
            StatusCode::BAD_REQUEST,
            Outcome::InvalidContext,
            json!({"key": key, "errorCode": "INVALID_CONTEXT", "errorDetails": details}),
        );
    }
    let document = match flags {
        Flags::Unreadable(why) => return unavailable(why),
        Flags::None => None,
        Flags::Document(document) => Some(document),
    };
    match document.and_then(|d| d.flags.get(key).map(|flag| (d, flag))) {
        None => Reply::json(
            StatusCode::NOT_FOUND,
            Outcome::FlagNotFound,
            json!({"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": format!("flag {key} was not found")}),
        ),
        Some((document, flag)) => match resolve(key, flag, &document.revision) {
            Ok(success) => Reply::json(StatusCode::OK, Outcome::Success, success),
            Err(failure) => Reply::json(StatusCode::BAD_REQUEST, Outcome::ParseError, failure),
        },
    }
}

/// `POST /ofrep/v1/evaluate/flags`, with the request's `If-None-Match` header.
pub fn evaluate_bulk(
    flags: Flags<'_>,
    tenant: &str,
    body: &[u8],
    if_none_match: Option<&str>,
) -> Reply {
    if let Err(details) = check_request(body) {
        return Reply::json(
            StatusCode::BAD_REQUEST,
            Outcome::InvalidContext,
            json!({"errorCode": "INVALID_CONTEXT", "errorDetails": details}),
        );
    }
    let (evaluations, revision) = match flags {
        Flags::Unreadable(why) => return unavailable(why),
        Flags::None => (Vec::new(), String::new()),
        Flags::Document(document) => (
            document
                .flags
                .iter()
                .map(|(key, flag)| {
                    resolve(key, flag, &document.revision).unwrap_or_else(|failure| failure)
                })
                .collect(),
            document.revision.clone(),
        ),
    };
    let body = json!({
        "flags": evaluations,
        "metadata": {"tenant": tenant, "revision": revision},
    });
    let etag = etag_of(&body);
    if if_none_match.is_some_and(|header| matches(header, &etag)) {
        return Reply {
            status: StatusCode::NOT_MODIFIED,
            etag: Some(etag),
            body: None,
            outcome: Outcome::NotModified,
        };
    }
    Reply {
        status: StatusCode::OK,
        etag: Some(etag),
        body: Some(body),
        outcome: Outcome::Success,
    }
}

/// The request must be a JSON object with a `context` object; a `targetingKey`, when given,
/// must be a string.
fn check_request(body: &[u8]) -> Result<(), String> {
    let request: Value =
        serde_json::from_slice(body).map_err(|e| format!("the request body is not JSON: {e}"))?;
    let context = request.get("context").ok_or("the request has no context")?;
    let context = context.as_object().ok_or("context must be an object")?;
    match context.get("targetingKey") {
        None | Some(Value::String(_)) => Ok(()),
        Some(_) => Err("context.targetingKey must be a string".into()),
    }
}

/// A flag's evaluation success, or its evaluation failure when the operator wrote a value
/// that does not match the flag's declared type.
fn resolve(key: &str, flag: &Flag, revision: &str) -> Result<Value, Value> {
    let mut metadata = Map::new();
    if let Some(source) = &flag.source {
        metadata.insert("source".into(), source.clone().into());
    }
    if !revision.is_empty() {
        metadata.insert("revision".into(), revision.into());
    }
    if !flag.well_typed() {
        return Err(json!({
            "key": key,
            "errorCode": "PARSE_ERROR",
            "errorDetails": format!("flag {key} is declared {:?} but its value is not", flag.kind),
            "metadata": metadata,
        }));
    }
    let mut success = json!({
        "key": key,
        "value": flag.value,
        "reason": reason(flag.reason.as_deref()),
        "metadata": metadata,
    });
    if let Some(variant) = &flag.variant {
        success["variant"] = variant.clone().into();
    }
    Ok(success)
}

fn reason(landlord: Option<&str>) -> &'static str {
    match landlord {
        None | Some("STATIC") | Some("DEFAULT") => "STATIC",
        Some("TARGETING_MATCH") => "TARGETING_MATCH",
        Some("SPLIT") => "SPLIT",
        Some("DISABLED") => "DISABLED",
        Some(_) => "UNKNOWN",
    }
}

fn unavailable(why: &str) -> Reply {
    Reply::json(
        StatusCode::INTERNAL_SERVER_ERROR,
        Outcome::Unavailable,
        json!({"errorDetails": format!("the tenant's flags cannot be read: {why}")}),
    )
}

/// A strong ETag of the bulk response: the SHA-256 of its body, so equal responses have
/// equal tags in every replica and any change to a flag changes the tag.
fn etag_of(body: &Value) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(body.to_string().as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// `If-None-Match`: a list of tags (weak or strong, compared weakly as RFC 9110 says for
/// this header) or `*`.
fn matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::flags::KEY;

    fn document(flags: Value) -> FlagsDocument {
        let text = json!({"tenant": "acme", "revision": "r1", "flags": flags}).to_string();
        FlagsDocument::from_data("acme", Some(&BTreeMap::from([(KEY.to_string(), text)]))).unwrap()
    }

    fn sample() -> FlagsDocument {
        document(json!({
            "dark-mode": {"type": "boolean", "value": true, "variant": "on", "reason": "TARGETING_MATCH", "source": "p/ui"},
            "banner": {"type": "string", "value": "spring", "variant": "spring", "reason": "DEFAULT", "source": "p/ui"},
            "seats": {"type": "integer", "value": 25, "variant": "pro", "reason": "STATIC", "source": "p/limits"},
            "ratio": {"type": "float", "value": 0.5, "variant": "half", "reason": "STATIC", "source": "p/limits"},
            "theme": {"type": "object", "value": {"color": "teal"}, "variant": "brand", "reason": "STATIC", "source": "acme/ui"},
            "broken": {"type": "integer", "value": "three", "variant": "x", "reason": "STATIC", "source": "p/x"},
        }))
    }

    const CONTEXT: &[u8] = br#"{"context":{"targetingKey":"user-1","plan":"pro"}}"#;

    #[test]
    fn a_flag_evaluates_to_its_value_variant_reason_and_metadata() {
        let doc = sample();
        let reply = evaluate(Flags::Document(&doc), "dark-mode", CONTEXT);
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.body.unwrap(),
            json!({"key": "dark-mode", "value": true, "variant": "on", "reason": "TARGETING_MATCH",
                   "metadata": {"source": "p/ui", "revision": "r1"}})
        );
        for (key, value) in [
            ("banner", json!("spring")),
            ("seats", json!(25)),
            ("ratio", json!(0.5)),
            ("theme", json!({"color": "teal"})),
        ] {
            let reply = evaluate(Flags::Document(&doc), key, CONTEXT);
            assert_eq!(reply.status, StatusCode::OK, "{key}");
            assert_eq!(reply.body.unwrap()["value"], value, "{key}");
        }
    }

    #[test]
    fn landlord_default_is_served_as_the_specs_static() {
        let doc = sample();
        let body = evaluate(Flags::Document(&doc), "banner", CONTEXT)
            .body
            .unwrap();
        assert_eq!(body["reason"], "STATIC");
        assert_eq!(reason(Some("SOMETHING_NEW")), "UNKNOWN");
    }

    #[test]
    fn an_unknown_flag_is_flag_not_found() {
        let doc = sample();
        for flags in [Flags::Document(&doc), Flags::None] {
            let reply = evaluate(flags, "nope", CONTEXT);
            assert_eq!(reply.status, StatusCode::NOT_FOUND);
            let body = reply.body.unwrap();
            assert_eq!(body["key"], "nope");
            assert_eq!(body["errorCode"], "FLAG_NOT_FOUND");
        }
    }

    #[test]
    fn a_bad_context_is_invalid_context() {
        let doc = sample();
        for body in [
            &b"not json"[..],
            br#"{"ctx":{}}"#,
            br#"{"context":[1]}"#,
            br#"{"context":{"targetingKey":7}}"#,
        ] {
            let reply = evaluate(Flags::Document(&doc), "dark-mode", body);
            assert_eq!(reply.status, StatusCode::BAD_REQUEST);
            assert_eq!(reply.body.as_ref().unwrap()["errorCode"], "INVALID_CONTEXT");
            assert_eq!(reply.body.unwrap()["key"], "dark-mode");
            let bulk = evaluate_bulk(Flags::Document(&doc), "acme", body, None);
            assert_eq!(bulk.status, StatusCode::BAD_REQUEST);
            assert_eq!(bulk.body.unwrap()["errorCode"], "INVALID_CONTEXT");
        }
        // An empty context is a context.
        let reply = evaluate(Flags::Document(&doc), "dark-mode", br#"{"context":{}}"#);
        assert_eq!(reply.status, StatusCode::OK);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_a_parse_error_not_a_wrong_answer() {
        let doc = sample();
        let reply = evaluate(Flags::Document(&doc), "broken", CONTEXT);
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.body.unwrap()["errorCode"], "PARSE_ERROR");
    }

    #[test]
    fn bulk_lists_every_flag_with_an_etag_and_honours_if_none_match() {
        let doc = sample();
        let reply = evaluate_bulk(Flags::Document(&doc), "acme", CONTEXT, None);
        assert_eq!(reply.status, StatusCode::OK);
        let body = reply.body.unwrap();
        let flags = body["flags"].as_array().unwrap();
        assert_eq!(flags.len(), 6);
        let broken = flags.iter().find(|f| f["key"] == "broken").unwrap();
        assert_eq!(broken["errorCode"], "PARSE_ERROR");
        let theme = flags.iter().find(|f| f["key"] == "theme").unwrap();
        assert_eq!(theme["value"], json!({"color": "teal"}));
        assert_eq!(
            body["metadata"],
            json!({"tenant": "acme", "revision": "r1"})
        );

        let etag = reply.etag.unwrap();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34);
        for header in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"x\", {etag}"),
            "*".into(),
        ] {
            let again = evaluate_bulk(Flags::Document(&doc), "acme", CONTEXT, Some(&header));
            assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{header}");
            assert_eq!(again.body, None);
            assert_eq!(again.etag.as_deref(), Some(etag.as_str()));
        }
        let stale = evaluate_bulk(Flags::Document(&doc), "acme", CONTEXT, Some("\"other\""));
        assert_eq!(stale.status, StatusCode::OK);
    }

    #[test]
    fn the_etag_changes_with_any_flag() {
        let before = sample();
        let mut after = sample();
        after.flags.get_mut("seats").unwrap().value = json!(26);
        let tag = |doc: &FlagsDocument| {
            evaluate_bulk(Flags::Document(doc), "acme", CONTEXT, None)
                .etag
                .unwrap()
        };
        assert_eq!(tag(&before), tag(&sample()));
        assert_ne!(tag(&before), tag(&after));
    }

    #[test]
    fn no_document_is_an_empty_set_and_an_unreadable_one_a_server_error() {
        let reply = evaluate_bulk(Flags::None, "acme", CONTEXT, None);
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body.unwrap()["flags"], json!([]));
        let reply = evaluate_bulk(Flags::Unreadable("bad JSON"), "acme", CONTEXT, None);
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            reply.body.unwrap()["errorDetails"]
                .as_str()
                .unwrap()
                .contains("bad JSON")
        );
        let reply = evaluate(Flags::Unreadable("bad JSON"), "x", CONTEXT);
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}

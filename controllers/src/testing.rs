//! The fast test tier: a scripted API server, for tests of orchestration (which requests a
//! reconcile makes, in which order, and what a refusal becomes in status) that run in
//! milliseconds. It answers like the API server for what Landlord sends (server-side applies
//! echo the object, reads of absent objects are 404, access reviews are allowed) unless a
//! [`Rule`] of the test answers first. It stands in for nothing the end-to-end tests check:
//! they run against the real control plane.

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use http::{Request, Response};

use serde_json::{Value, json};

/// One request as the scripted server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The URL path, e.g. `/apis/networking.k8s.io/v1/namespaces/tenant-a/networkpolicies/x`.
    pub path: String,
    /// The decoded JSON body (`Null` when there is none).
    pub body: Value,
}

impl Recorded {
    /// The resource (plural) the path names, e.g. `networkpolicies`, and whether it names the
    /// status subresource.
    pub fn resource(&self) -> (&str, bool) {
        let segments: Vec<&str> = self.path.split('/').filter(|s| !s.is_empty()).collect();
        let status = segments.last() == Some(&"status");
        let segments = if status {
            &segments[..segments.len() - 1]
        } else {
            &segments[..]
        };
        // .../<resource>/<name> or .../<resource>
        let known = |s: &&str| s.ends_with('s') || s.ends_with("ies");
        let resource = match segments {
            [.., resource, _name] if known(resource) && *resource != "namespaces" => resource,
            [.., resource, name] if *resource == "namespaces" && !known(name) => resource,
            [.., resource] => resource,
            [] => "",
        };
        (resource, status)
    }
}

/// A test's answer to a request, or `None` to leave it to the default answers.
pub type Rule = Box<dyn Fn(&Recorded) -> Option<(u16, Value)> + Send + Sync>;

/// What the scripted server was asked, in order.
pub type Log = Arc<Mutex<Vec<Recorded>>>;

/// A client of a scripted API server that answers with `rules` first, then the defaults.
pub fn client(rules: Vec<Rule>) -> (kube::Client, Log) {
    let log: Log = Arc::default();
    let rules = Arc::new(rules);
    let seen = log.clone();
    let service = tower::service_fn(move |request: Request<kube::client::Body>| {
        let rules = rules.clone();
        let seen = seen.clone();
        async move {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let recorded = Recorded {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (code, answer) = rules
                .iter()
                .find_map(|rule| rule(&recorded))
                .unwrap_or_else(|| default_answer(&recorded));
            seen.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(recorded);
            let body = serde_json::to_vec(&answer).unwrap_or_default();
            let mut response = Response::new(kube::client::Body::from(body));
            *response.status_mut() =
                http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok::<_, Infallible>(response)
        }
    });
    (kube::Client::new(service, "default"), log)
}

/// A `Status` answer: the API server's refusal with `code`, `reason` and `message`.
pub fn refusal(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn default_answer(request: &Recorded) -> (u16, Value) {
    let (resource, _) = request.resource();
    match request.method.as_str() {
        // Server-side apply (and merge patches): the object as sent, stored.
        "PATCH" | "PUT" => {
            let mut object = request.body.clone();
            if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.insert("resourceVersion".into(), json!("1"));
                metadata.insert("uid".into(), json!("uid-1"));
            }
            (200, object)
        }
        "POST" if resource.starts_with("self") || resource.ends_with("accessreviews") => {
            let mut review = request.body.clone();
            review["status"] = json!({"allowed": true,
                "userInfo": {"username": "system:serviceaccount:landlord-system:landlord"}});
            (201, review)
        }
        "POST" => (201, request.body.clone()),
        "DELETE" => (
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
        ),
        _ => refusal(404, "NotFound", &format!("{} not found", request.path)),
    }
}

/// Whether `request` is a write (apply, create, delete) of `resource`.
pub fn writes(request: &Recorded, resource: &str) -> bool {
    request.method != "GET" && request.resource().0 == resource
}

//! Who is calling, and acting as them.
//!
//! A caller presents `Authorization: Bearer <token>`: a ServiceAccount token minted for the
//! API's audience (`kubectl create token <sa> --audience landlord-api`) or any token the
//! cluster's authenticators accept for it (OIDC issuers configured in the API server). The API
//! asks the API server who it is (TokenReview, with the audience) and then makes every
//! Kubernetes read and write **as the caller**, with `Impersonate-User`, `Impersonate-Uid`
//! and `Impersonate-Group` headers: RBAC, the CRDs' CEL rules, the admission policies and
//! the audit log treat a call through the API exactly like the same call from `kubectl`.
//! There is no user or permission store of Landlord's own.
//!
//! Each request runs in a [`Scope`] (a task-local): [`caller_client`] reads the caller and
//! the request id from it. A client made outside any scope impersonates [`NO_CALLER`], a
//! user no RBAC rule names, so a mistake fails closed instead of acting with the API's own
//! rights. Every request also carries the request id as
//! `Audit-ID`, which the API server records as the audit event's `auditID`.
//!
//! Not impersonated: the token's `extra` attributes (impersonating them needs a grant per
//! key; RBAC does not read them).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::http::{self, HeaderName, HeaderValue};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::{Api, Client, api::PostParams};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::problem::Problem;

/// The user a request outside any [`Scope`] impersonates: no RBAC rule names it.
pub const NO_CALLER: &str = "landlord-api:no-caller";
/// How long a positive TokenReview answer is reused.
const ACCEPTED_FOR: Duration = Duration::from_secs(60);
/// How long a refused token is refused without asking again.
const REFUSED_FOR: Duration = Duration::from_secs(5);
/// Cached answers kept at most (the cache is emptied when full).
const CACHE_CAPACITY: usize = 10_000;

/// The authenticated caller, as the API server's TokenReview described it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Caller {
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    pub groups: Vec<String>,
}

/// What a request runs with: its caller and its id.
#[derive(Clone, Debug)]
pub struct Scope {
    pub caller: Arc<Caller>,
    pub request_id: String,
}

tokio::task_local! {
    static SCOPE: Scope;
    static REQUEST_ID: String;
}

/// Runs `future` as `scope`: the impersonating client acts as its caller.
pub async fn as_caller<F: std::future::Future>(scope: Scope, future: F) -> F::Output {
    let id = scope.request_id.clone();
    REQUEST_ID.scope(id, SCOPE.scope(scope, future)).await
}

/// Runs `future` with a request id but no caller (unauthenticated requests).
pub async fn with_request_id<F: std::future::Future>(id: String, future: F) -> F::Output {
    REQUEST_ID.scope(id, future).await
}

/// Runs `f` with `id` as the request id: for work done for a request outside its task (the
/// events of a stream, sent after the handler returned).
pub fn in_request<T>(id: Option<String>, f: impl FnOnce() -> T) -> T {
    match id {
        Some(id) => REQUEST_ID.sync_scope(id, f),
        None => f(),
    }
}

/// The current request's id, when there is one.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The current request's caller.
pub fn caller() -> Option<Arc<Caller>> {
    SCOPE.try_with(|s| s.caller.clone()).ok()
}

/// Whether the current caller may `verb` the Tenant `name`'s `subresource` (group
/// `landlord.dev`), asked of the API server as the caller (a SelfSubjectAccessReview, which
/// every authenticated user may make): for what the API offers with no Kubernetes request
/// behind it. Errors: the API server could not be asked.
pub async fn may(
    base: &Client,
    verb: &str,
    subresource: Option<&str>,
    name: &str,
) -> Result<bool, Problem> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some("landlord.dev".into()),
                resource: Some("tenants".into()),
                subresource: subresource.map(str::to_string),
                verb: Some(verb.into()),
                name: Some(name.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let what = match subresource {
        Some(sub) => format!("{verb} tenants/{sub} {name}"),
        None => format!("{verb} tenants {name}"),
    };
    Api::<SelfSubjectAccessReview>::all(caller_client(base))
        .create(&PostParams::default(), &review)
        .await
        .map(|answer| answer.status.is_some_and(|s| s.allowed))
        .map_err(|e| Problem::from_kube(e, &format!("asking whether the caller may {what}")))
}

/// The problem of a caller refused `what` (e.g. `get tenants/history of Tenant acme`).
pub fn forbidden(what: &str) -> Problem {
    Problem::new(
        http::StatusCode::FORBIDDEN,
        "forbidden",
        "The caller may not do this",
        format!("the caller may not {what}"),
    )
}

/// A new request id: 16 random bytes, hex.
pub fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness the id is still unique enough per process for correlation.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = nanos.to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A client that acts as the current [`Scope`]'s caller (see the module docs), over `base`
/// (the API's own client: its connections, TLS and credentials).
///
/// Made per request, in the request's task: kube's client hands requests to a worker task
/// (a buffer), where the request's scope is not visible, so the headers are fixed here.
pub fn caller_client(base: &Client) -> Client {
    let scope = SCOPE.try_with(Clone::clone).ok();
    let headers = impersonation(scope.as_ref());
    let base = base.clone();
    let service = tower::service_fn(move |mut request: http::Request<kube::client::Body>| {
        let base = base.clone();
        for (name, value) in &headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        async move { base.send(request).await }
    });
    Client::new(service, "default")
}

/// The headers of a request made as `scope`'s caller: `Impersonate-User`, `-Uid`, one
/// `Impersonate-Group` per group and `Audit-ID`. Without a scope (or with a caller whose
/// names are not valid header values) they impersonate [`NO_CALLER`].
pub fn impersonation(scope: Option<&Scope>) -> Vec<(HeaderName, HeaderValue)> {
    let valid = |s: &str| HeaderValue::from_str(s).ok();
    let identity = scope.and_then(|scope| {
        let mut headers = vec![(IMPERSONATE_USER, valid(&scope.caller.username)?)];
        if let Some(uid) = &scope.caller.uid {
            headers.push((IMPERSONATE_UID, valid(uid)?));
        }
        for group in &scope.caller.groups {
            headers.push((IMPERSONATE_GROUP, valid(group)?));
        }
        Some(headers)
    });
    let mut headers: Vec<(HeaderName, HeaderValue)> = identity
        .unwrap_or_else(|| vec![(IMPERSONATE_USER, HeaderValue::from_static(NO_CALLER))])
        .into_iter()
        .map(|(name, value)| (HeaderName::from_static(name), value))
        .collect();
    if let Some(id) = scope.and_then(|s| valid(&s.request_id)) {
        headers.push((HeaderName::from_static("audit-id"), id));
    }
    headers
}

const IMPERSONATE_USER: &str = "impersonate-user";
const IMPERSONATE_UID: &str = "impersonate-uid";
const IMPERSONATE_GROUP: &str = "impersonate-group";

/// A TokenReview's answer, when it was given: the caller, or `None` when refused.
type Answer = (Instant, Option<Caller>);

/// Checks bearer tokens with the API server's TokenReview, for one audience.
pub struct Authenticator {
    client: Client,
    audience: String,
    cache: Mutex<HashMap<[u8; 32], Answer>>,
}

impl Authenticator {
    /// `client` acts as the API's own ServiceAccount (it needs `create tokenreviews`).
    pub fn new(client: Client, audience: String) -> Self {
        Authenticator {
            client,
            audience,
            cache: Mutex::default(),
        }
    }

    /// The caller of an `Authorization` header's bearer token.
    ///
    /// Errors: [`Problem::unauthenticated`] (no header, not a bearer token, a token the API
    /// server does not accept for the audience); [`Problem::unavailable`] when the API server
    /// cannot be asked.
    pub async fn authenticate(&self, header: Option<&HeaderValue>) -> Result<Caller, Problem> {
        let token = bearer(header)?;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(answer) = self.cached(&key) {
            return answer.ok_or_else(refused).and_then(served);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..Default::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Problem::unavailable(format!("reviewing the bearer token: {e}")))?;
        let status = answer.status.unwrap_or_default();
        let caller = match (status.authenticated, status.user) {
            (Some(true), Some(user)) => user.username.map(|username| Caller {
                username,
                uid: user.uid.filter(|u| !u.is_empty()),
                groups: user.groups.unwrap_or_default(),
            }),
            _ => None,
        };
        self.remember(key, caller.clone());
        caller.ok_or_else(refused).and_then(served)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Option<Caller>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (at, answer) = cache.get(key)?;
        let ttl = if answer.is_some() {
            ACCEPTED_FOR
        } else {
            REFUSED_FOR
        };
        (at.elapsed() < ttl).then(|| answer.clone())
    }

    fn remember(&self, key: [u8; 32], answer: Option<Caller>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), answer));
    }
}

/// The group whose members bypass RBAC: never impersonated.
pub const SUPERUSERS: &str = "system:masters";

/// Callers in [`SUPERUSERS`] are refused: impersonating them would hand the API's callers
/// the cluster's superuser rights whatever RBAC says.
fn served(caller: Caller) -> Result<Caller, Problem> {
    if caller.groups.iter().any(|g| g == SUPERUSERS) {
        return Err(Problem::new(
            http::StatusCode::FORBIDDEN,
            "forbidden",
            "The caller may not do this",
            format!(
                "{}: members of {SUPERUSERS} are not served by the API (it does not impersonate the cluster's superuser group); use a ServiceAccount bound to the rights it needs",
                caller.username
            ),
        ));
    }
    Ok(caller)
}

fn refused() -> Problem {
    Problem::unauthenticated(
        "the bearer token was not accepted for this API's audience (mint one with `kubectl create token <service-account> --audience landlord-api`)",
    )
}

/// The token of a `Bearer` authorization header.
fn bearer(header: Option<&HeaderValue>) -> Result<&str, Problem> {
    let value = header
        .ok_or_else(|| Problem::unauthenticated("the Authorization header is missing"))?
        .to_str()
        .map_err(|_| Problem::unauthenticated("the Authorization header is not text"))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        Problem::unauthenticated("the Authorization header is not `Bearer <token>`")
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Problem::unauthenticated(
            "the Authorization header is not `Bearer <token>`",
        ));
    }
    Ok(token.trim())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_bearer_tokens_are_read() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(bearer(Some(&h("Bearer abc"))).unwrap(), "abc");
        assert_eq!(bearer(Some(&h("bearer  abc "))).unwrap(), "abc");
        for bad in ["Basic abc", "Bearer", "Bearer   ", "abc"] {
            let problem = bearer(Some(&h(bad))).unwrap_err();
            assert_eq!(problem.status, http::StatusCode::UNAUTHORIZED, "{bad}");
        }
        assert!(bearer(None).is_err());
    }

    fn header<'a>(headers: &'a [(HeaderName, HeaderValue)], name: &str) -> Vec<&'a str> {
        headers
            .iter()
            .filter(|(n, _)| n.as_str() == name)
            .filter_map(|(_, v)| v.to_str().ok())
            .collect()
    }

    #[test]
    fn requests_outside_a_scope_impersonate_nobody_with_rights() {
        let headers = impersonation(None);
        assert_eq!(header(&headers, "impersonate-user"), [NO_CALLER]);
        assert!(header(&headers, "impersonate-group").is_empty());
    }

    #[test]
    fn requests_in_a_scope_carry_the_caller_and_the_request_id() {
        let scope = Scope {
            caller: Arc::new(Caller {
                username: "system:serviceaccount:portal:admin".into(),
                uid: Some("u-1".into()),
                groups: vec![
                    "system:serviceaccounts".into(),
                    "system:authenticated".into(),
                ],
            }),
            request_id: "r-1".into(),
        };
        let headers = impersonation(Some(&scope));
        assert_eq!(
            header(&headers, "impersonate-user"),
            ["system:serviceaccount:portal:admin"]
        );
        assert_eq!(header(&headers, "impersonate-uid"), ["u-1"]);
        assert_eq!(header(&headers, "impersonate-group").len(), 2);
        assert_eq!(header(&headers, "audit-id"), ["r-1"]);
        // A name that is no header value impersonates nobody rather than someone else.
        let mut odd = (*scope.caller).clone();
        odd.username = "bad\nname".into();
        let scope = Scope {
            caller: Arc::new(odd),
            request_id: "r-2".into(),
        };
        assert_eq!(
            header(&impersonation(Some(&scope)), "impersonate-user"),
            [NO_CALLER]
        );
    }
}

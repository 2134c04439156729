//! The `/v1/tenants` resources and `/v1/operations`: Kubernetes objects on the wire, every
//! read and write made as the caller (see `auth`).
//!
//! - A Tenant on the wire is the Kubernetes object without `managedFields`.
//! - Creates need an `Idempotency-Key`. The key and a SHA-256 of the request body are kept
//!   as annotations on the Tenant made (`landlord.dev/idempotency-key`,
//!   `landlord.dev/request-sha256`), so a retry finds them there: the same key and body
//!   replay the first answer without a write, the same key with another body is refused
//!   (422), a Tenant made otherwise is a conflict (409). Kubernetes' name uniqueness makes
//!   this atomic; no key store.
//! - Changes of the spec need `If-Match: "g<generation>"` (the ETag of `.../spec`): a stale
//!   one is refused (412), a missing one too (428). The patch is sent with the
//!   `resourceVersion` read, so a change in between is also a 412.
//! - A patch touching a field a GitOps tool owns is refused (409) naming the field and the
//!   manager (see `gitops`).
//! - Writes answer `202 Accepted` with an operation (`Location: /v1/operations/<id>`);
//!   `Prefer: wait=N` (at most 60 s) waits for it to finish and answers `200` when it did.

use std::time::Duration;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions},
};
use landlord_controllers::database::desired::ROTATE_PASSWORD;
use landlord_crds::{
    Tenant, TenantSpec,
    tenant::{Phase, Tier},
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    ApiState,
    auth::{self, Caller},
    gitops, history, limits,
    operation::{self, Id, Kind, Operation},
    problem::Problem,
};

/// The field manager of the API's writes.
pub const MANAGER: &str = "landlord-api";
/// Annotation: the `Idempotency-Key` a Tenant was created with.
pub const IDEMPOTENCY_KEY: &str = "landlord.dev/idempotency-key";
/// Annotation: SHA-256 (hex) of the create request's body.
pub const REQUEST_HASH: &str = "landlord.dev/request-sha256";
/// The longest `Prefer: wait` honoured, in seconds.
pub const MAX_WAIT: u64 = 60;
/// Largest page of a list.
pub const MAX_LIMIT: usize = 200;

/// Tenants, as the current request's caller.
pub(super) fn tenants(state: &ApiState) -> Api<Tenant> {
    Api::all(auth::caller_client(&state.kube))
}

/// `GET /v1/me`: the caller as the API server authenticated it.
pub async fn me() -> Result<Json<Caller>, Problem> {
    auth::caller()
        .map(|c| Json((*c).clone()))
        .ok_or_else(|| Problem::unauthenticated("no caller"))
}

/// The query of `GET /v1/tenants` (its OpenAPI parameters are this type's schema).
#[derive(Deserialize, Debug, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1 to 200 (default 50).
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Only Tenants in this phase.
    pub phase: Option<Phase>,
    /// Only Tenants of this tier.
    pub tier: Option<Tier>,
}

/// `GET /v1/tenants`: the Tenants the caller may list, by name, a page at a time.
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(query) = query.map_err(|e| Problem::bad_request("bad-request", e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Problem::invalid_field(
            "limit",
            "FieldValueInvalid",
            format!("must be 1 to {MAX_LIMIT}, not {limit}"),
        ));
    }
    let after = query
        .cursor
        .as_deref()
        .map(|c| {
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    Problem::bad_request("invalid-cursor", "cursor: not a cursor this API made")
                })
        })
        .transpose()?;
    let keep = |t: &Tenant| {
        query
            .phase
            .is_none_or(|p| t.status.as_ref().and_then(|s| s.phase) == Some(p))
            && query.tier.is_none_or(|tier| t.spec.tier == tier)
            && after.as_deref().is_none_or(|a| t.name_any().as_str() > a)
    };
    let mut items: Vec<Tenant> = match tenants(&state).list(&ListParams::default()).await {
        Ok(list) => list.items.into_iter().filter(|t| keep(t)).collect(),
        // RBAC cannot let a tenant's admins list the cluster-scoped Tenants: they read only
        // their own, by name.
        Err(kube::Error::Api(status)) if status.code == 403 => {
            match own_tenants(&state, &keep, limit + 1).await? {
                Some(own) => own,
                None => {
                    return Err(Problem::from_kube(
                        kube::Error::Api(status),
                        "listing Tenants",
                    ));
                }
            }
        }
        Err(e) => return Err(Problem::from_kube(e, "listing Tenants")),
    };
    items.sort_by_key(|t| t.name_any());
    let more = items.len() > limit;
    items.truncate(limit);
    let next = more
        .then(|| items.last().map(|t| URL_SAFE_NO_PAD.encode(t.name_any())))
        .flatten();
    Ok(Json(json!({
        "items": items.iter().map(wire).collect::<Vec<_>>(),
        "nextCursor": next,
    })))
}

/// The first `want` Tenants (by name, of those `keep` keeps) that name the caller in
/// `spec.admins` or `spec.viewers` and that the caller may read, for a caller RBAC does not
/// let list every Tenant; `None` when no Tenant names it. Membership comes from the API's
/// own cache of the Tenants ([`ApiState::tenant_index`], the one thing the API reads as
/// itself); each Tenant shown is read as the caller (a `get`, which the operator's
/// `landlord:tenant:<name>` ClusterRole allows), so only a page's worth of reads is made.
async fn own_tenants(
    state: &ApiState,
    keep: &(dyn Fn(&Tenant) -> bool + Sync),
    want: usize,
) -> Result<Option<Vec<Tenant>>, Problem> {
    let Some(caller) = auth::caller() else {
        return Ok(None);
    };
    let index = &state.tenant_index;
    if tokio::time::timeout(INDEX_WAIT, index.wait_until_ready())
        .await
        .map_or(true, |ready| ready.is_err())
    {
        return Err(Problem::unavailable(
            "the Tenants that name the caller cannot be found yet (the API's cache of Tenants has not listed)",
        ));
    }
    let mut candidates: Vec<_> = index
        .state()
        .into_iter()
        .filter(|t| names_caller(t, &caller))
        .collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    candidates.retain(|t| keep(t));
    candidates.sort_by_key(|t| t.name_any());
    let mut own = Vec::new();
    for candidate in candidates {
        if own.len() >= want {
            break;
        }
        match tenants(state).get_opt(&candidate.name_any()).await {
            Ok(Some(tenant)) if keep(&tenant) => own.push(tenant),
            // Changed, gone meanwhile, or not the caller's to read after all.
            Ok(_) => {}
            Err(kube::Error::Api(status)) if matches!(status.code, 403 | 404) => {}
            Err(e) => return Err(Problem::from_kube(e, "reading Tenants")),
        }
    }
    Ok(Some(own))
}

/// How long a list waits for the API's cache of Tenants to have listed (after a start).
const INDEX_WAIT: Duration = Duration::from_secs(10);

/// Whether `tenant` lists `caller` among its admins or viewers (by user name, a group, or
/// as the ServiceAccount `system:serviceaccount:<namespace>:<name>`).
pub fn names_caller(tenant: &Tenant, caller: &Caller) -> bool {
    use landlord_crds::tenant::SubjectKind;
    tenant
        .spec
        .admins
        .iter()
        .chain(&tenant.spec.viewers)
        .any(|subject| match subject.kind {
            SubjectKind::User => subject.name == caller.username,
            SubjectKind::Group => caller.groups.contains(&subject.name),
            SubjectKind::ServiceAccount => subject.namespace.as_deref().is_some_and(|ns| {
                caller.username == format!("system:serviceaccount:{ns}:{}", subject.name)
            }),
        })
}

/// A Tenant as the API answers it: the object without `managedFields`.
pub fn wire<K: serde::Serialize>(object: &K) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    value
}

/// Checks a create's body: a JSON object of `apiVersion`, `kind`, `metadata` (of the keys
/// `metadata_keys`) and `spec`, with a non-empty `metadata.name`; returns the metadata and
/// the name. Errors name the field.
pub(super) fn create_body<'a>(
    body: &'a Value,
    kind: &str,
    metadata_keys: &[&str],
) -> Result<(&'a serde_json::Map<String, Value>, &'a str), Problem> {
    let object = body.as_object().ok_or_else(|| {
        Problem::invalid_field("(body)", "FieldValueInvalid", "must be a JSON object")
    })?;
    if let Some(key) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "spec"))
    {
        return Err(Problem::invalid_field(
            key,
            "FieldValueNotSupported",
            "not accepted on create (allowed: apiVersion, kind, metadata, spec)",
        ));
    }
    for (field, wanted) in [("apiVersion", "landlord.dev/v1alpha1"), ("kind", kind)] {
        if let Some(given) = object.get(field).filter(|given| *given != wanted) {
            return Err(Problem::invalid_field(
                field,
                "FieldValueNotSupported",
                format!("must be {wanted:?} here (or left out), not {given}"),
            ));
        }
    }
    let meta = match body.get("metadata") {
        Some(Value::Object(meta)) => meta,
        Some(_) => {
            return Err(Problem::invalid_field(
                "metadata",
                "FieldValueInvalid",
                "must be an object",
            ));
        }
        None => {
            return Err(Problem::invalid_field(
                "metadata.name",
                "FieldValueRequired",
                format!("a {kind} needs a name"),
            ));
        }
    };
    if let Some(key) = meta.keys().find(|k| !metadata_keys.contains(&k.as_str())) {
        return Err(Problem::invalid_field(
            &format!("metadata.{key}"),
            "FieldValueNotSupported",
            format!(
                "not accepted on create (allowed: {})",
                metadata_keys.join(", ")
            ),
        ));
    }
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            Problem::invalid_field(
                "metadata.name",
                "FieldValueRequired",
                format!("a {kind} needs a name"),
            )
        })?;
    Ok((meta, name))
}

/// The Tenant `name` as the caller sees it; a Tenant the caller may not read is not found
/// (no enumeration of other tenants).
pub(super) async fn visible(state: &ApiState, name: &str) -> Result<Tenant, Problem> {
    if !landlord_crds::tenant::is_valid_name(name) {
        // No Tenant can have this name.
        return Err(Problem::not_found(format!("Tenant {name:?}")));
    }
    match tenants(state).get_opt(name).await {
        Ok(Some(tenant)) => {
            history::touch(&tenant);
            Ok(tenant)
        }
        Ok(None) => Err(Problem::not_found(format!("Tenant {name}"))),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            Err(Problem::not_found(format!("Tenant {name}")))
        }
        Err(e) => Err(Problem::from_kube(e, &format!("reading Tenant {name}"))),
    }
}

/// `GET /v1/tenants/{name}`, with `ETag` (the resourceVersion) and `If-None-Match`.
pub async fn get(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let tenant = visible(&state, &name).await?;
    let etag = format!("\"{}\"", tenant.resource_version().unwrap_or_default());
    Ok(with_etag(&headers, etag, wire(&tenant)))
}

/// `GET /v1/tenants/{name}/spec`: the desired state, with `ETag: "g<generation>"`, the
/// precondition of changes.
pub async fn get_spec(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let tenant = visible(&state, &name).await?;
    let body = serde_json::to_value(&tenant.spec).unwrap_or(Value::Null);
    Ok(with_etag(&headers, spec_etag(&tenant), body))
}

fn spec_etag(tenant: &Tenant) -> String {
    format!("\"g{}\"", tenant.metadata.generation.unwrap_or(0))
}

fn with_etag(headers: &HeaderMap, etag: String, body: Value) -> Response {
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Json(body).into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `GET /v1/tenants/{name}/status`: phase, conditions and what the tenant is served on.
pub async fn get_status(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let tenant = visible(&state, &name).await?;
    Ok(Json(
        serde_json::to_value(tenant.status.unwrap_or_default()).unwrap_or(Value::Null),
    ))
}

/// The body of `POST /v1/tenants`: a Tenant's name, labels, annotations and spec.
fn new_tenant(body: &Value) -> Result<Tenant, Problem> {
    let (meta, name) = create_body(body, "Tenant", &["name", "labels", "annotations"])?;
    let spec: TenantSpec = spec_of(body.get("spec").unwrap_or(&Value::Null), "Tenant")?;
    let mut tenant = Tenant::new(name, spec);
    let map = |field: &str| -> Result<Option<std::collections::BTreeMap<String, String>>, Problem> {
        meta.get(field)
            .map(|v| {
                serde_json::from_value(v.clone()).map_err(|e| {
                    Problem::invalid_field(
                        &format!("metadata.{field}"),
                        "FieldValueInvalid",
                        e.to_string(),
                    )
                })
            })
            .transpose()
    };
    tenant.metadata.labels = map("labels")?;
    tenant.metadata.annotations = map("annotations")?;
    Ok(tenant)
}

/// A spec checked against its type (`kind`'s): the error names the field.
pub(super) fn spec_of<T: serde::de::DeserializeOwned>(
    value: &Value,
    kind: &str,
) -> Result<T, Problem> {
    if value.is_null() {
        return Err(Problem::invalid_field(
            "spec",
            "FieldValueRequired",
            format!("a {kind} needs a spec"),
        ));
    }
    serde_path_to_error::deserialize::<_, T>(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "spec".to_string()
        } else {
            format!("spec.{path}")
        };
        Problem::invalid_field(&field, "FieldValueInvalid", e.inner().to_string())
    })
}

/// The `Idempotency-Key` of a create: 1 to 255 printable ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    let key = headers
        .get("idempotency-key")
        .ok_or_else(|| {
            Problem::bad_request(
                "idempotency-key-required",
                "Idempotency-Key: required on creates, so that a retried create makes one Tenant",
            )
        })?
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..0x7f).contains(&b)))
        .ok_or_else(|| {
            Problem::bad_request(
                "bad-request",
                "Idempotency-Key: 1 to 255 printable ASCII characters without spaces",
            )
        })?;
    Ok(key.to_string())
}

pub(super) fn json_body(
    headers: &HeaderMap,
    body: &Bytes,
    media_type: &str,
) -> Result<Value, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case(media_type) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "The body's media type is not accepted",
            format!("Content-Type: expected {media_type}, not {content_type:?}"),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| Problem::bad_request("bad-request", format!("the body is not JSON: {e}")))
}

/// How long `Prefer: wait=N` asks to wait (RFC 7240), capped at [`MAX_WAIT`].
pub fn prefer_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|pref| {
            let (name, value) = pref.split(';').next()?.split_once('=')?;
            (name.trim().eq_ignore_ascii_case("wait"))
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())
                .flatten()
        })
        .map(|s| Duration::from_secs(s.min(MAX_WAIT)))
}

/// `POST /v1/tenants`.
pub async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let value = json_body(&headers, &body, "application/json")?;
    let mut tenant = new_tenant(&value)?;
    let name = tenant.name_any();
    let allowance = count_write(&state, &name, tenant.spec.plan.as_deref())?;
    // serde_json's maps are sorted: the hash does not depend on the order of keys sent.
    let hash = hex(&Sha256::digest(
        serde_json::to_vec(&value).unwrap_or_default(),
    ));
    let annotations = tenant
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    annotations.insert(IDEMPOTENCY_KEY.into(), key.clone());
    annotations.insert(REQUEST_HASH.into(), hash.clone());
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let answer = match tenants(&state).create(&params, &tenant).await {
        Ok(created) => {
            history::touch(&created);
            accepted(&state, &headers, Kind::Apply, &created, false).await
        }
        Err(kube::Error::Api(status)) if status.code == 409 && status.reason == "AlreadyExists" => {
            let existing = visible(&state, &name).await?;
            let stored = |k: &str| existing.annotations().get(k).cloned();
            match (stored(IDEMPOTENCY_KEY), stored(REQUEST_HASH)) {
                (Some(k), Some(h)) if k == key && h == hash => {
                    accepted(&state, &headers, Kind::Apply, &existing, true).await
                }
                (Some(k), _) if k == key => Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency-key-mismatch",
                    "The Idempotency-Key was used with another request",
                    format!(
                        "Idempotency-Key {key:?} created Tenant {name} with another body; use a new key for another request"
                    ),
                )),
                _ => Err(Problem::new(
                    StatusCode::CONFLICT,
                    "already-exists",
                    "The object already exists",
                    format!("Tenant {name} already exists (made by another request)"),
                )),
            }
        }
        Err(e) => Err(Problem::from_kube(e, &format!("creating Tenant {name}"))),
    };
    answer.map(|response| allowance.apply(response))
}

/// Counts a write by the current caller to `tenant` (of plan `plan`) against the API's write
/// limits. Errors: 429 once the caller's quota for the tenant is spent.
pub(super) fn count_write(
    state: &ApiState,
    tenant: &str,
    plan: Option<&str>,
) -> Result<limits::Allowance, Problem> {
    let caller = auth::caller().ok_or_else(|| Problem::unauthenticated("no caller"))?;
    let allowance = state.write_limits.check(&caller.username, tenant, plan);
    if allowance.is_err() {
        // Refused before any write: no row in the tenant's history for it.
        history::untouch();
    }
    allowance
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The generation an `If-Match: "g<N>"` names. Errors: 428 without one, 400 when malformed.
fn if_match(headers: &HeaderMap) -> Result<i64, Problem> {
    let value = headers
        .get(header::IF_MATCH)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition-required",
                "The change needs a precondition",
                "If-Match: required; send the ETag of GET /v1/tenants/{name}/spec (\"g<generation>\")",
            )
        })?
        .to_str()
        .unwrap_or_default();
    value
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .strip_prefix('g')
        .and_then(|g| g.parse().ok())
        .ok_or_else(|| {
            Problem::bad_request(
                "bad-request",
                format!(
                    "If-Match: {value:?} is not an ETag of a Tenant's spec (\"g<generation>\")"
                ),
            )
        })
}

fn stale(tenant: &Tenant, expected: i64) -> Option<Problem> {
    let current = tenant.metadata.generation.unwrap_or(0);
    (current != expected).then(|| {
        Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition-failed",
            "The object changed since it was read",
            format!(
                "Tenant {}: If-Match names generation {expected}, the spec is at generation {current}",
                tenant.name_any()
            ),
        )
        .with("currentEtag", json!(spec_etag(tenant)))
    })
}

/// `PATCH /v1/tenants/{name}`: a JSON merge patch (`application/merge-patch+json`) of
/// `spec`, `metadata.labels` and `metadata.annotations`.
pub async fn patch(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let patch = json_body(&headers, &body, "application/merge-patch+json")?;
    let expected = if_match(&headers)?;
    check_patch(&patch)?;
    change(&state, &headers, &name, patch, Some(expected), Kind::Apply).await
}

/// `POST /v1/tenants/{name}/suspend`: set `spec.suspended` to true.
pub async fn suspend(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    set_suspended(&state, &headers, &name, true).await
}

/// `POST /v1/tenants/{name}/resume`: set `spec.suspended` to false.
pub async fn resume(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    set_suspended(&state, &headers, &name, false).await
}

/// Both actions carry no precondition: setting the flag is idempotent.
async fn set_suspended(
    state: &ApiState,
    headers: &HeaderMap,
    name: &str,
    suspended: bool,
) -> Result<Response, Problem> {
    let patch = json!({"spec": {"suspended": suspended}});
    change(state, headers, name, patch, None, Kind::Apply).await
}

/// `POST /v1/tenants/{name}/database/rotate-password`: a new value of the Tenant's
/// `landlord.dev/rotate-database-password` annotation, set as the caller (so RBAC's `patch
/// tenants` decides, as for `kubectl annotate`). The operator then gives the database role
/// a new password and the `landlord-database` Secret after it; the operation is done when
/// `status.database.passwordRotation` shows the value.
///
/// With an `Idempotency-Key`, the value is derived from the caller and the key: a retried
/// request finds it already asked, writes nothing and answers the same operation (while
/// it is the latest rotation asked; a key sent again after another rotation asks a new
/// one). Without, the value is the request's id. Errors: 404 (no such Tenant visible), 409
/// (no `spec.database`, or the annotation is managed by a GitOps tool), 403 (RBAC, also on
/// a replay).
pub async fn rotate_password(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let key = match headers.contains_key("idempotency-key") {
        true => Some(idempotency_key(&headers)?),
        false => None,
    };
    let current = visible(&state, &name).await?;
    if current.spec.database.is_none() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "no-database",
            "The Tenant has no database",
            format!("Tenant {name} has no spec.database, so no password to rotate"),
        ));
    }
    // Keyed: the value is the caller's and the key's (two callers' equal keys are two
    // rotations). Unkeyed: the request's id, which the history and the audit log carry.
    let caller = auth::caller().ok_or_else(|| Problem::unauthenticated("no caller"))?;
    let rotation = match &key {
        Some(key) => {
            let digest = Sha256::digest(format!("{}\n{key}", caller.username).as_bytes());
            format!("api-{}", &hex(&digest)[..32])
        }
        None => format!(
            "api-{}",
            auth::request_id().unwrap_or_else(auth::new_request_id)
        ),
    };
    if current.annotations().get(ROTATE_PASSWORD) == Some(&rotation) {
        // Already asked: answered without a write, to a caller who may make it (a replay
        // tells whether the rotation happened, so it needs the right the rotation needs).
        if !auth::may(&state.kube, "patch", None, &name).await? {
            return Err(auth::forbidden(&format!("patch Tenant {name}")));
        }
        return accepted(&state, &headers, Kind::RotatePassword, &current, true).await;
    }
    let patch = json!({"metadata": {"annotations": {ROTATE_PASSWORD: rotation}}});
    change(&state, &headers, &name, patch, None, Kind::RotatePassword).await
}

/// Only what a caller may change through the API: the spec, labels and annotations.
fn check_patch(patch: &Value) -> Result<(), Problem> {
    let object = patch.as_object().ok_or_else(|| {
        Problem::invalid_field("(body)", "FieldValueInvalid", "must be a JSON object")
    })?;
    for (key, value) in object {
        match key.as_str() {
            "spec" => {}
            "metadata" => {
                let meta = value.as_object().ok_or_else(|| {
                    Problem::invalid_field("metadata", "FieldValueInvalid", "must be an object")
                })?;
                if let Some(other) = meta
                    .keys()
                    .find(|k| !matches!(k.as_str(), "labels" | "annotations"))
                {
                    return Err(Problem::invalid_field(
                        &format!("metadata.{other}"),
                        "FieldValueNotSupported",
                        "not changeable through the API (allowed: labels, annotations)",
                    ));
                }
            }
            other => {
                return Err(Problem::invalid_field(
                    other,
                    "FieldValueNotSupported",
                    "not changeable through the API (allowed: spec, metadata.labels, metadata.annotations)",
                ));
            }
        }
    }
    Ok(())
}

/// Applies a merge patch to the Tenant as the caller, after the precondition, the GitOps
/// guard and a check of the resulting spec; answers the operation of `kind` it made.
async fn change(
    state: &ApiState,
    headers: &HeaderMap,
    name: &str,
    patch: Value,
    expected: Option<i64>,
    kind: Kind,
) -> Result<Response, Problem> {
    let current = visible(state, name).await?;
    let allowance = count_write(state, name, current.spec.plan.as_deref())?;
    if let Some(problem) = expected.and_then(|g| stale(&current, g)) {
        return Err(problem);
    }
    let owned = gitops::owned_fields(current.managed_fields(), &state.gitops_managers, &patch);
    if !owned.is_empty() {
        let named: Vec<String> = owned
            .iter()
            .map(|o| format!("{} is managed by {}", o.field, o.manager))
            .collect();
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "field-owned-by-gitops",
            "A field of the change is managed by a GitOps tool",
            format!("Tenant {name}: {}; change it in Git", named.join(", ")),
        )
        .with("conflicts", json!(owned)));
    }
    if let Some(spec_patch) = patch.get("spec") {
        let mut spec = serde_json::to_value(&current.spec).unwrap_or(Value::Null);
        json_patch::merge(&mut spec, spec_patch);
        spec_of::<TenantSpec>(&spec, "Tenant")?;
    }
    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let Some(expected) = expected else {
        // No precondition asked (suspend, resume, rotate): the change applies to whatever
        // is there.
        let patched = tenants(state)
            .patch(name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|e| Problem::from_kube(e, &format!("changing Tenant {name}")))?;
        return accepted(state, headers, kind, &patched, false)
            .await
            .map(|response| allowance.apply(response));
    };
    // The precondition is the spec's generation; the patch carries the resourceVersion read,
    // so that a change in between is caught. When only the status moved in between (the
    // operator writes it), the generation is still the one asked for: read again and retry.
    let mut current = current;
    let mut attempts = 0;
    let patched = loop {
        attempts += 1;
        let mut guarded = patch.clone();
        let rv = json!(current.resource_version());
        match guarded.get_mut("metadata").and_then(Value::as_object_mut) {
            Some(meta) => {
                meta.insert("resourceVersion".into(), rv);
            }
            None => {
                if let Some(object) = guarded.as_object_mut() {
                    object.insert("metadata".into(), json!({"resourceVersion": rv}));
                }
            }
        }
        match tenants(state)
            .patch(name, &params, &Patch::Merge(&guarded))
            .await
        {
            Ok(patched) => break patched,
            Err(kube::Error::Api(status)) if status.code == 409 && attempts < 5 => {
                current = visible(state, name).await?;
                if let Some(problem) = stale(&current, expected) {
                    return Err(problem);
                }
            }
            Err(e) => return Err(Problem::from_kube(e, &format!("changing Tenant {name}"))),
        }
    };
    accepted(state, headers, kind, &patched, false)
        .await
        .map(|response| allowance.apply(response))
}

/// `DELETE /v1/tenants/{name}`, with `If-Match: "g<generation>"`.
pub async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let expected = if_match(&headers)?;
    let current = visible(&state, &name).await?;
    let allowance = count_write(&state, &name, current.spec.plan.as_deref())?;
    if let Some(problem) = stale(&current, expected) {
        return Err(problem);
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: current.uid(),
            resource_version: current.resource_version(),
        }),
        ..Default::default()
    };
    tenants(&state)
        .delete(&name, &params)
        .await
        .map_err(|e| Problem::from_kube(e, &format!("deleting Tenant {name}")))?;
    accepted(&state, &headers, Kind::Delete, &current, false)
        .await
        .map(|response| allowance.apply(response))
}

/// `GET /v1/operations/{id}`, with `Prefer: wait=N`.
pub async fn get_operation(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let id = Id::decode(&id).ok_or_else(|| Problem::not_found(format!("operation {id}")))?;
    let operation = settle(&state, &id, prefer_wait(&headers)).await?;
    Ok(operation_response(operation, prefer_wait(&headers), false))
}

/// The operation `id`, after waiting up to `wait` for it to finish.
async fn settle(state: &ApiState, id: &Id, wait: Option<Duration>) -> Result<Operation, Problem> {
    if !landlord_crds::tenant::is_valid_name(&id.tenant) {
        return Err(Problem::not_found(format!("operation {}", id.encode())));
    }
    let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
    loop {
        let tenant = match tenants(state).get_opt(&id.tenant).await {
            Ok(tenant) => tenant,
            Err(kube::Error::Api(status)) if status.code == 403 => {
                return Err(Problem::not_found(format!("operation {}", id.encode())));
            }
            Err(e) => {
                return Err(Problem::from_kube(
                    e,
                    &format!("reading Tenant {}", id.tenant),
                ));
            }
        };
        let operation = operation::derive(id, tenant.as_ref());
        if operation.done || tokio::time::Instant::now() >= deadline {
            return Ok(operation);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn accepted(
    state: &ApiState,
    headers: &HeaderMap,
    kind: Kind,
    tenant: &Tenant,
    replayed: bool,
) -> Result<Response, Problem> {
    let id = Id::of(kind, tenant)
        .ok_or_else(|| Problem::internal("the API server answered a Tenant without name or uid"))?;
    let wait = prefer_wait(headers);
    let operation = match wait {
        Some(_) => settle(state, &id, wait).await?,
        // For a deletion, `tenant` is the object as it was before: still there, so running.
        None => operation::derive(&id, Some(tenant)),
    };
    Ok(operation_response(operation, wait, replayed))
}

fn operation_response(operation: Operation, wait: Option<Duration>, replayed: bool) -> Response {
    let status = if operation.done {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let location = format!("/v1/operations/{}", operation.id);
    let mut response = (status, Json(&operation)).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    if !operation.done {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    if let Some(wait) = wait
        && let Ok(value) = HeaderValue::from_str(&format!("wait={}", wait.as_secs()))
    {
        headers.insert("preference-applied", value);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn a_caller_is_named_by_user_group_or_service_account() {
        let tenant: Tenant = serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme"},
            "spec": {"tier": "shared",
                "admins": [{"kind": "User", "name": "alice"},
                           {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"}],
                "viewers": [{"kind": "Group", "name": "support"}]},
        }))
        .unwrap();
        let who = |username: &str, groups: &[&str]| Caller {
            username: username.into(),
            uid: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        assert!(names_caller(&tenant, &who("alice", &[])));
        assert!(names_caller(
            &tenant,
            &who("system:serviceaccount:tools:ci", &[])
        ));
        assert!(names_caller(&tenant, &who("bob", &["support"])));
        // Not the same ServiceAccount name in another namespace, nor a user called "ci".
        assert!(!names_caller(
            &tenant,
            &who("system:serviceaccount:other:ci", &[])
        ));
        assert!(!names_caller(&tenant, &who("ci", &["tools"])));
    }

    #[test]
    fn prefer_wait_is_read_and_capped() {
        assert_eq!(
            prefer_wait(&headers(&[("prefer", "wait=10")])),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            prefer_wait(&headers(&[("prefer", "respond-async, wait=600")])),
            Some(Duration::from_secs(MAX_WAIT))
        );
        assert_eq!(prefer_wait(&headers(&[("prefer", "respond-async")])), None);
        assert_eq!(prefer_wait(&headers(&[])), None);
    }

    #[test]
    fn if_match_needs_a_spec_etag() {
        assert_eq!(if_match(&headers(&[("if-match", "\"g3\"")])).unwrap(), 3);
        assert_eq!(if_match(&headers(&[("if-match", "W/\"g3\"")])).unwrap(), 3);
        assert_eq!(
            if_match(&headers(&[])).unwrap_err().status,
            StatusCode::PRECONDITION_REQUIRED
        );
        assert_eq!(
            if_match(&headers(&[("if-match", "\"12345\"")]))
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn a_bad_create_body_names_the_field() {
        let problem =
            new_tenant(&json!({"metadata": {"name": "a"}, "spec": {"tier": "gold"}})).unwrap_err();
        assert_eq!(problem.errors[0].field, "spec.tier");
        let problem =
            new_tenant(&json!({"metadata": {"name": "a", "uid": "x"}, "spec": {"tier": "shared"}}))
                .unwrap_err();
        assert_eq!(problem.errors[0].field, "metadata.uid");
        let problem = new_tenant(&json!({"metadata": {}, "spec": {"tier": "shared"}})).unwrap_err();
        assert_eq!(problem.errors[0].field, "metadata.name");
        let problem = new_tenant(&json!({"metadata": {"name": "a"}, "status": {}})).unwrap_err();
        assert_eq!(problem.errors[0].field, "status");
        assert!(
            new_tenant(&json!({"metadata": {"name": "a"}, "spec": {"tier": "shared"}})).is_ok()
        );
    }

    #[test]
    fn only_spec_labels_and_annotations_are_patched() {
        assert!(
            check_patch(&json!({"spec": {"suspended": true}, "metadata": {"labels": {"a": "b"}}}))
                .is_ok()
        );
        let problem = check_patch(&json!({"metadata": {"finalizers": []}})).unwrap_err();
        assert_eq!(problem.errors[0].field, "metadata.finalizers");
        let problem = check_patch(&json!({"status": {}})).unwrap_err();
        assert_eq!(problem.errors[0].field, "status");
    }

    #[test]
    fn idempotency_keys_are_required_and_bounded() {
        assert_eq!(
            idempotency_key(&headers(&[("idempotency-key", "k-1")])).unwrap(),
            "k-1"
        );
        assert_eq!(
            idempotency_key(&headers(&[])).unwrap_err().kind,
            "idempotency-key-required"
        );
        assert_eq!(
            idempotency_key(&headers(&[("idempotency-key", "a b")]))
                .unwrap_err()
                .kind,
            "bad-request"
        );
    }
}

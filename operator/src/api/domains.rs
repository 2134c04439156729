//! A tenant's Domains and effective flags over HTTP: `/v1/tenants/{name}/domains...` and
//! `/v1/tenants/{name}/flags`.
//!
//! Every read and write is made as the caller in the tenant's namespace, so the tenant-admin
//! Role (create, change, delete Domains), the viewer Role (read) and the admission policy
//! `landlord-domain-names` (names a tenant may hold) decide exactly as for `kubectl`. A
//! Tenant the caller may not read is not found, whatever its namespace holds.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use landlord_crds::{Domain, DomainSpec, Tenant};
use serde_json::{Value, json};

use super::{
    ApiState, auth,
    problem::Problem,
    tenants::{self, wire},
};

/// The annotation whose change makes the Domain controller look up the TXT record at once.
pub const VERIFY_REQUESTED: &str = "landlord.dev/verify-requested-at";
/// The field manager of the API's writes.
const MANAGER: &str = "landlord-api";

/// The tenant (as the caller sees it) and its namespace.
async fn namespace(state: &ApiState, name: &str) -> Result<(Tenant, String), Problem> {
    let tenant = tenants::visible(state, name).await?;
    let namespace = tenant
        .status
        .as_ref()
        .and_then(|s| s.namespace.clone())
        .unwrap_or_else(|| tenant.namespace_name());
    Ok((tenant, namespace))
}

/// `GET /v1/tenants/{name}/domains`.
pub async fn list(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let (_, namespace) = namespace(&state, &name).await?;
    let api = Api::<Domain>::namespaced(auth::caller_client(&state.kube), &namespace);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| Problem::from_kube(e, &format!("listing the Domains of Tenant {name}")))?;
    Ok(Json(
        json!({"items": list.items.iter().map(wire).collect::<Vec<_>>()}),
    ))
}

/// The Domain `domain` of tenant `name`, read as the caller, with the tenant and namespace.
async fn visible(
    state: &ApiState,
    name: &str,
    domain: &str,
) -> Result<(Domain, Tenant, String), Problem> {
    let (tenant, namespace) = namespace(state, name).await?;
    if !is_object_name(domain) {
        // No Domain can have this name.
        return Err(Problem::not_found(format!(
            "Domain {domain:?} of Tenant {name}"
        )));
    }
    let api = Api::<Domain>::namespaced(auth::caller_client(&state.kube), &namespace);
    match api.get_opt(domain).await {
        Ok(Some(found)) => Ok((found, tenant, namespace)),
        Ok(None) => Err(Problem::not_found(format!(
            "Domain {domain} of Tenant {name}"
        ))),
        Err(e) => Err(Problem::from_kube(
            e,
            &format!("reading Domain {domain} of Tenant {name}"),
        )),
    }
}

/// Whether `name` can name a Kubernetes object (a DNS-1123 subdomain).
fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// `GET /v1/tenants/{name}/domains/{domain}`: the Domain, with the TXT record to publish in
/// `status.verification`.
pub async fn get(
    State(state): State<ApiState>,
    Path((name, domain)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let (found, _, _) = visible(&state, &name, &domain).await?;
    Ok(Json(wire(&found)))
}

/// The body of a create: `{metadata: {name}, spec}`; the spec is checked against the Domain
/// type, the error naming the field.
fn new_domain(body: &Value) -> Result<Domain, Problem> {
    let (_, name) = tenants::create_body(body, "Domain", &["name"])?;
    let spec: DomainSpec = tenants::spec_of(body.get("spec").unwrap_or(&Value::Null), "Domain")?;
    Ok(Domain::new(name, spec))
}

/// `POST /v1/tenants/{name}/domains`: creates the Domain as the caller; answers `201` with
/// it (its `status.verification` follows once the operator has looked at it).
pub async fn create(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let value = tenants::json_body(&headers, &body, "application/json")?;
    let mut domain = new_domain(&value)?;
    let (tenant, namespace) = namespace(&state, &name).await?;
    let allowance = tenants::count_write(&state, &name, tenant.spec.plan.as_deref())?;
    domain.metadata.namespace = Some(namespace.clone());
    let api = Api::<Domain>::namespaced(auth::caller_client(&state.kube), &namespace);
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let created = api.create(&params, &domain).await.map_err(|e| {
        Problem::from_kube(
            e,
            &format!("creating Domain {} of Tenant {name}", domain.name_any()),
        )
    })?;
    Ok(allowance.apply((StatusCode::CREATED, Json(wire(&created))).into_response()))
}

/// `DELETE /v1/tenants/{name}/domains/{domain}`: `204` once the API server took it.
pub async fn delete(
    State(state): State<ApiState>,
    Path((name, domain)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let (_, tenant, namespace) = visible(&state, &name, &domain).await?;
    let allowance = tenants::count_write(&state, &name, tenant.spec.plan.as_deref())?;
    let api = Api::<Domain>::namespaced(auth::caller_client(&state.kube), &namespace);
    match api.delete(&domain, &DeleteParams::default()).await {
        Ok(_) => Ok(allowance.apply(StatusCode::NO_CONTENT.into_response())),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(Problem::not_found(format!(
            "Domain {domain} of Tenant {name}"
        ))),
        Err(e) => Err(Problem::from_kube(
            e,
            &format!("deleting Domain {domain} of Tenant {name}"),
        )),
    }
}

/// `POST /v1/tenants/{name}/domains/{domain}/verify`: look up the TXT record now (the
/// operator otherwise looks at growing intervals, up to 15 minutes). Marks the Domain with
/// the time asked (annotation `landlord.dev/verify-requested-at`, as the caller), which the
/// Domain controller sees; answers `202` with the Domain.
pub async fn verify(
    State(state): State<ApiState>,
    Path((name, domain)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let (found, tenant, namespace) = visible(&state, &name, &domain).await?;
    let allowance = tenants::count_write(&state, &name, tenant.spec.plan.as_deref())?;
    let api = Api::<Domain>::namespaced(auth::caller_client(&state.kube), &namespace);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = json!({"metadata": {
        "annotations": {VERIFY_REQUESTED: now},
        "resourceVersion": found.resource_version(),
    }});
    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let patched = api
        .patch(&domain, &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| Problem::from_kube(e, &format!("marking Domain {domain} of Tenant {name}")))?;
    Ok(allowance.apply((StatusCode::ACCEPTED, Json(wire(&patched))).into_response()))
}

/// `GET /v1/tenants/{name}/flags`: the tenant's effective flags, as Landlord resolved them
/// into its ConfigMap `landlord-flags` (read as the caller): `{revision, flags: {key:
/// {value, variant, reason, ...}}}`.
pub async fn flags(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    use landlord_controllers::tenant::flags::{CONFIG_MAP, KEY};
    let (_, namespace) = namespace(&state, &name).await?;
    let api = Api::<ConfigMap>::namespaced(auth::caller_client(&state.kube), &namespace);
    let config_map = api
        .get_opt(CONFIG_MAP)
        .await
        .map_err(|e| Problem::from_kube(e, &format!("reading the flags of Tenant {name}")))?;
    let text = config_map
        .and_then(|c| c.data)
        .and_then(|mut d| d.remove(KEY))
        .ok_or_else(|| {
            Problem::not_found(format!(
                "the flags of Tenant {name} (not resolved yet: see its FlagsReady condition)"
            ))
        })?;
    serde_json::from_str(&text)
        .map(Json)
        .map_err(|e| Problem::internal(format!("the flags of Tenant {name} are not JSON: {e}")))
}

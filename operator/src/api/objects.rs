//! A tenant's own Landlord objects over HTTP: its Domains (`/v1/tenants/{name}/domains...`),
//! FeatureFlagSets (`/v1/tenants/{name}/flagsets...`) and WebhookEndpoints
//! (`/v1/tenants/{name}/webhooks...`), listed, read, created and deleted by one set of
//! handlers.
//!
//! Every read and write is made as the caller in the tenant's namespace, so the tenant-admin
//! Role (create, change, delete), the viewer Role (read), the CRDs' rules and the admission
//! policies (`landlord-domain-names`) decide exactly as for `kubectl`. A Tenant the caller
//! may not read is not found, whatever its namespace holds.

use std::fmt::Debug;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
};
use landlord_crds::{
    Domain, DomainSpec, FeatureFlagSet, FeatureFlagSetSpec, Tenant, WebhookEndpoint,
    WebhookEndpointSpec,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{
    ApiState, auth,
    problem::Problem,
    tenants::{self, wire},
};

/// The field manager of the API's writes.
pub const MANAGER: &str = "landlord-api";

/// A Landlord object that lives in its tenant's namespace, made from a name and a spec.
pub trait TenantObject:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// What a create's body carries as `spec`.
    type Spec: DeserializeOwned;

    fn from_spec(name: &str, spec: Self::Spec) -> Self;
}

impl TenantObject for Domain {
    type Spec = DomainSpec;

    fn from_spec(name: &str, spec: DomainSpec) -> Self {
        Domain::new(name, spec)
    }
}

impl TenantObject for FeatureFlagSet {
    type Spec = FeatureFlagSetSpec;

    fn from_spec(name: &str, spec: FeatureFlagSetSpec) -> Self {
        FeatureFlagSet::new(name, spec)
    }
}

impl TenantObject for WebhookEndpoint {
    type Spec = WebhookEndpointSpec;

    fn from_spec(name: &str, spec: WebhookEndpointSpec) -> Self {
        WebhookEndpoint::new(name, spec)
    }
}

/// The tenant (as the caller sees it) and its namespace.
pub(super) async fn namespace(state: &ApiState, name: &str) -> Result<(Tenant, String), Problem> {
    let tenant = tenants::visible(state, name).await?;
    let namespace = tenant
        .status
        .as_ref()
        .and_then(|s| s.namespace.clone())
        .unwrap_or_else(|| tenant.namespace_name());
    Ok((tenant, namespace))
}

fn api<K: TenantObject>(state: &ApiState, namespace: &str) -> Api<K> {
    Api::namespaced(auth::caller_client(&state.kube), namespace)
}

/// `GET /v1/tenants/{name}/<plural>`: `{items}`.
pub async fn list<K: TenantObject>(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let (_, namespace) = namespace(&state, &name).await?;
    let list = api::<K>(&state, &namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| {
            Problem::from_kube(
                e,
                &format!("listing the {}s of Tenant {name}", K::kind(&())),
            )
        })?;
    Ok(Json(
        json!({"items": list.items.iter().map(wire).collect::<Vec<_>>()}),
    ))
}

/// The object `object` of tenant `name`, read as the caller, with the tenant and namespace.
pub(super) async fn visible<K: TenantObject>(
    state: &ApiState,
    name: &str,
    object: &str,
) -> Result<(K, Tenant, String), Problem> {
    let kind = K::kind(&());
    let (tenant, namespace) = namespace(state, name).await?;
    if !is_object_name(object) {
        // No object can have this name.
        return Err(Problem::not_found(format!(
            "{kind} {object:?} of Tenant {name}"
        )));
    }
    match api::<K>(state, &namespace).get_opt(object).await {
        Ok(Some(found)) => Ok((found, tenant, namespace)),
        Ok(None) => Err(Problem::not_found(format!(
            "{kind} {object} of Tenant {name}"
        ))),
        Err(e) => Err(Problem::from_kube(
            e,
            &format!("reading {kind} {object} of Tenant {name}"),
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

/// `GET /v1/tenants/{name}/<plural>/{object}`: the object with its status.
pub async fn get<K: TenantObject>(
    State(state): State<ApiState>,
    Path((name, object)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let (found, _, _) = visible::<K>(&state, &name, &object).await?;
    Ok(Json(wire(&found)))
}

/// The body of a create: `{metadata: {name}, spec}`; the spec is checked against the
/// object's type, the error naming the field.
fn new_object<K: TenantObject>(body: &Value) -> Result<K, Problem> {
    let kind = K::kind(&());
    let (_, name) = tenants::create_body(body, &kind, &["name"])?;
    let spec: K::Spec = tenants::spec_of(body.get("spec").unwrap_or(&Value::Null), &kind)?;
    Ok(K::from_spec(name, spec))
}

/// `POST /v1/tenants/{name}/<plural>`: creates the object as the caller; answers `201`
/// with it (its status follows once the operator has looked at it).
pub async fn create<K: TenantObject>(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let value = tenants::json_body(&headers, &body, "application/json")?;
    let mut object = new_object::<K>(&value)?;
    let (tenant, namespace) = namespace(&state, &name).await?;
    let allowance = tenants::count_write(&state, &name, tenant.spec.plan.as_deref())?;
    object.meta_mut().namespace = Some(namespace.clone());
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let created = api::<K>(&state, &namespace)
        .create(&params, &object)
        .await
        .map_err(|e| {
            Problem::from_kube(
                e,
                &format!(
                    "creating {} {} of Tenant {name}",
                    K::kind(&()),
                    object.name_any()
                ),
            )
        })?;
    Ok(allowance.apply((StatusCode::CREATED, Json(wire(&created))).into_response()))
}

/// `DELETE /v1/tenants/{name}/<plural>/{object}`: `204` once the API server took it.
pub async fn delete<K: TenantObject>(
    State(state): State<ApiState>,
    Path((name, object)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let kind = K::kind(&());
    let (_, tenant, namespace) = visible::<K>(&state, &name, &object).await?;
    let allowance = tenants::count_write(&state, &name, tenant.spec.plan.as_deref())?;
    match api::<K>(&state, &namespace)
        .delete(&object, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(allowance.apply(StatusCode::NO_CONTENT.into_response())),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(Problem::not_found(format!(
            "{kind} {object} of Tenant {name}"
        ))),
        Err(e) => Err(Problem::from_kube(
            e,
            &format!("deleting {kind} {object} of Tenant {name}"),
        )),
    }
}

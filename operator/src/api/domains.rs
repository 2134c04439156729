//! What the API offers of a tenant's Domains and flags besides the objects themselves
//! ([`super::objects`]): `POST /v1/tenants/{name}/domains/{domain}/verify` and
//! `GET /v1/tenants/{name}/flags`, made as the caller in the tenant's namespace.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use landlord_crds::Domain;
use serde_json::{Value, json};

use super::{
    ApiState, auth,
    objects::{self, MANAGER},
    problem::Problem,
    tenants::{self, wire},
};

/// The annotation whose change makes the Domain controller look up the TXT record at once.
pub const VERIFY_REQUESTED: &str = "landlord.dev/verify-requested-at";

/// `POST /v1/tenants/{name}/domains/{domain}/verify`: look up the TXT record now (the
/// operator otherwise looks at growing intervals, up to 15 minutes). Marks the Domain with
/// the time asked (annotation `landlord.dev/verify-requested-at`, as the caller), which the
/// Domain controller sees; answers `202` with the Domain.
pub async fn verify(
    State(state): State<ApiState>,
    Path((name, domain)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let (found, tenant, namespace) = objects::visible::<Domain>(&state, &name, &domain).await?;
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
    let (_, namespace) = objects::namespace(&state, &name).await?;
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

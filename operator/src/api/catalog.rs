//! `GET /v1/tenants/{name}/catalog`: the catalog Services offered to a tenant's tier, what
//! its `spec.services` may list.
//!
//! Tenants cannot read the platform namespace, so there is no Kubernetes verb of theirs
//! behind this: the caller must be able to read the Tenant (as for every tenant route, a
//! Tenant it may not read is not found), and the API then lists the catalog in the platform
//! namespace with its own read-only right (`list` on `services.landlord.dev`). It
//! answers what a tenant needs to choose a service and nothing of how the platform runs it:
//! no image, command, environment or resources.

use axum::{
    Json,
    extract::{Path, State},
};
use kube::{Api, ResourceExt, api::ListParams};
use landlord_crds::{
    Service, conditions,
    service::{ServicePort, Uses},
    tenant::Tier,
};
use serde::Serialize;

use super::{ApiState, problem::Problem, tenants};

/// A tenant's catalog.
#[derive(Serialize, Debug, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    /// The Tenant's tier, which the entries are offered to.
    pub tier: Tier,
    /// The catalog Services that run for that tier, by name.
    pub items: Vec<CatalogEntry>,
}

/// A catalog Service as a tenant sees it.
#[derive(Serialize, Debug, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    /// The Service's name: what `spec.services[].name` of the Tenant lists.
    pub name: String,
    /// The ports its instances listen on.
    pub ports: Vec<ServicePort>,
    /// The path prefix it serves under the tenant's Domains, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What it uses of the tenant's stack (database, topics, flags).
    pub uses: Uses,
    /// The tiers it runs for.
    pub tiers: Vec<Tier>,
    /// Whether the catalog Service is Ready (its `Ready` condition).
    pub ready: bool,
}

impl CatalogEntry {
    fn of(service: &Service) -> Self {
        Self {
            name: service.name_any(),
            ports: service.spec.ports.clone(),
            path: service.spec.path.clone(),
            uses: service.spec.uses.clone(),
            tiers: service.spec.tiers.clone(),
            ready: service
                .status
                .as_ref()
                .is_some_and(|s| conditions::is_true(&s.conditions, "Ready")),
        }
    }
}

/// `GET /v1/tenants/{name}/catalog`.
pub async fn catalog(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Catalog>, Problem> {
    let tenant = tenants::visible(&state, &name).await?;
    let tier = tenant.spec.tier;
    let namespace = state.platform_namespace.as_str();
    let list = Api::<Service>::namespaced(state.kube.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| {
            Problem::from_kube(
                e,
                &format!("listing the catalog (Services in namespace {namespace})"),
            )
        })?;
    let mut items: Vec<CatalogEntry> = list
        .items
        .iter()
        .filter(|s| s.spec.tiers.contains(&tier))
        .map(CatalogEntry::of)
        .collect();
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(Catalog { tier, items }))
}

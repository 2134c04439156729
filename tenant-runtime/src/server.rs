//! The HTTP API: OFREP evaluation, the tenant's context, and the probes and metrics.
//!
//! | path | what |
//! |---|---|
//! | `POST /ofrep/v1/evaluate/flags/{key}` | one flag (OFREP) |
//! | `POST /ofrep/v1/evaluate/flags` | every flag, with `ETag` / `If-None-Match` (OFREP) |
//! | `GET /v1/tenant` | name, namespace, tier, plan, displayName, suspended, config |
//! | `GET /healthz`, `/readyz`, `/metrics` | probes (no tenant needed) and Prometheus text |

/// The message of the log line that gives the address the server bound (field `address`).
pub const SERVING: &str = "serving OFREP, /v1/tenant, /healthz, /readyz and /metrics";

use std::sync::Arc;

use axum::{
    Extension, Json, Router,
    body::{Body, Bytes},
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, Response, StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use prometheus::{Encoder, Registry, TextEncoder};
use serde_json::{Value, json};

use crate::{
    catalog::{Catalog, TenantView},
    metrics::Metrics,
    ofrep::{self, Flags, Reply},
    tenant::{Tenant, TenantLayer},
};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub catalog: Arc<Catalog>,
    pub metrics: Arc<Metrics>,
    pub registry: Registry,
}

/// The whole API. `layer` decides which tenant a request is for; the probes and metrics
/// are outside it.
pub fn router(state: AppState, layer: TenantLayer) -> Router {
    let rejections = state.metrics.rejections.clone();
    let layer = layer.on_reject(move |code| rejections.with_label_values(&[code]).inc());
    let tenant_routes = Router::new()
        .route("/ofrep/v1/evaluate/flags/{key}", post(evaluate))
        .route("/ofrep/v1/evaluate/flags", post(evaluate_bulk))
        .route("/v1/tenant", get(tenant_context))
        .layer(layer);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(tenant_routes)
        .with_state(state)
}

fn flags_of(view: Option<&TenantView>) -> Flags<'_> {
    match view.and_then(|v| v.flags.as_ref()) {
        None => Flags::None,
        Some(Ok(document)) => Flags::Document(document),
        Some(Err(why)) => Flags::Unreadable(why),
    }
}

async fn evaluate(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(key): Path<String>,
    body: Bytes,
) -> Response<Body> {
    let view = state.catalog.get(tenant.as_str());
    let reply = ofrep::evaluate(flags_of(view.as_deref()), &key, &body);
    respond(&state, "evaluate", reply)
}

async fn evaluate_bulk(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let view = state.catalog.get(tenant.as_str());
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let reply = ofrep::evaluate_bulk(
        flags_of(view.as_deref()),
        tenant.as_str(),
        &body,
        if_none_match,
    );
    respond(&state, "bulk", reply)
}

fn respond(state: &AppState, endpoint: &str, reply: Reply) -> Response<Body> {
    state
        .metrics
        .requests
        .with_label_values(&[endpoint, reply.outcome.as_str()])
        .inc();
    let mut response = match reply.body {
        Some(body) => (reply.status, Json(body)).into_response(),
        None => reply.status.into_response(),
    };
    if let Some(etag) = reply.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// The tenant's context, as its `landlord-tenant` and `landlord-config` ConfigMaps say.
async fn tenant_context(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
) -> (StatusCode, Json<Value>) {
    let view = state.catalog.get(tenant.as_str());
    let (status, outcome, body) = context_body(&tenant, view.as_deref());
    state
        .metrics
        .requests
        .with_label_values(&["tenant", outcome])
        .inc();
    (status, Json(body))
}

/// The body of `GET /v1/tenant`: pure, for tests.
pub fn context_body(
    tenant: &Tenant,
    view: Option<&TenantView>,
) -> (StatusCode, &'static str, Value) {
    let Some((view, identity)) = view.and_then(|v| v.identity.as_ref().map(|i| (v, i))) else {
        return (
            StatusCode::NOT_FOUND,
            "not_found",
            json!({
                "error": "TenantContextMissing",
                "message": format!("no {} ConfigMap of tenant {tenant} was found", crate::catalog::IDENTITY_CONFIG_MAP),
            }),
        );
    };
    let text = |key: &str| identity.get(key).cloned();
    (
        StatusCode::OK,
        "success",
        json!({
            "name": tenant.as_str(),
            "namespace": view.namespace,
            "tier": text("tier"),
            "plan": text("plan"),
            "displayName": text("displayName"),
            "suspended": identity.get("suspended").is_some_and(|s| s == "true"),
            "config": view.config.clone().unwrap_or_default(),
        }),
    )
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.catalog.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "loading the tenants' ConfigMaps",
        )
    }
}

async fn metrics(State(state): State<AppState>) -> (StatusCode, String) {
    state.metrics.tenants.set(state.catalog.len() as i64);
    let mut buffer = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut buffer) {
        Ok(()) => (
            StatusCode::OK,
            String::from_utf8_lossy(&buffer).into_owned(),
        ),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::Request;
    use k8s_openapi::api::core::v1::ConfigMap;
    use tower::ServiceExt;

    use super::*;

    fn cm(namespace: &str, name: &str, data: Value) -> ConfigMap {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": namespace}, "data": data}),
        )
        .unwrap()
    }

    fn app(layer: TenantLayer) -> (Router, AppState) {
        let registry = Registry::new();
        let state = AppState {
            catalog: Arc::new(Catalog::default()),
            metrics: Arc::new(Metrics::new(&registry).unwrap()),
            registry,
        };
        let flags = json!({"tenant": "acme", "revision": "r1", "flags": {
            "dark-mode": {"type": "boolean", "value": true, "variant": "on", "reason": "STATIC", "source": "p/ui"}}});
        let maps = [
            cm(
                "tenant-acme",
                "landlord-flags",
                json!({"flags.json": flags.to_string()}),
            ),
            cm(
                "tenant-acme",
                "landlord-tenant",
                json!({"name": "acme", "tier": "shared", "plan": "pro", "suspended": "false"}),
            ),
            cm(
                "tenant-acme",
                "landlord-config",
                json!({"brandColor": "teal"}),
            ),
        ];
        state.catalog.set(
            "acme",
            TenantView::from_config_maps("acme", "tenant-acme", &maps),
        );
        (router(state.clone(), layer), state)
    }

    async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    fn post(path: &str, tenant: Option<&str>, etag: Option<&str>) -> Request<Body> {
        let mut builder = Request::post(path).header("content-type", "application/json");
        if let Some(t) = tenant {
            // What a shared tenant's route sends: the name and its assertion.
            builder = builder.header("X-Landlord-Tenant", t).header(
                crate::assertion::HEADER,
                crate::assertion::assertion(POOL_KEY, t),
            );
        }
        if let Some(e) = etag {
            builder = builder.header("If-None-Match", e);
        }
        builder
            .body(Body::from(r#"{"context":{"targetingKey":"u"}}"#))
            .unwrap()
    }

    const POOL_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[tokio::test]
    async fn the_pooled_api_serves_the_named_tenant_and_rejects_requests_without_one() {
        // Configured as the pooled binary configures it.
        let keys = crate::assertion::TenantKeys::new(POOL_KEY).unwrap();
        let (app, _) = app(TenantLayer::new().keys(keys).known(|_| true));
        let (status, _, body) = send(
            &app,
            post("/ofrep/v1/evaluate/flags/dark-mode", Some("acme"), None),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["value"], true);

        let (status, _, body) =
            send(&app, post("/ofrep/v1/evaluate/flags/dark-mode", None, None)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("MissingTenant"), "{body}");

        let (status, headers, _) =
            send(&app, post("/ofrep/v1/evaluate/flags", Some("acme"), None)).await;
        assert_eq!(status, StatusCode::OK);
        let etag = headers.get("etag").unwrap().to_str().unwrap().to_string();
        let (status, headers, body) = send(
            &app,
            post("/ofrep/v1/evaluate/flags", Some("acme"), Some(&etag)),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert_eq!(headers.get("etag").unwrap(), etag.as_str());
        assert!(body.is_empty());

        let (status, _, text) =
            send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains(
                r#"tenant_runtime_requests_total{endpoint="bulk",outcome="not_modified"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"tenant_runtime_rejections_total{code="MissingTenant"} 1"#),
            "{text}"
        );
        assert!(text.contains("tenant_runtime_tenants 1"), "{text}");
        assert!(
            !text.contains("acme"),
            "tenant names never label metrics: {text}"
        );
    }

    #[tokio::test]
    async fn the_tenant_context_comes_from_its_config_maps() {
        let (app, _) = app(TenantLayer::new().fixed(Tenant::parse("acme").unwrap()));
        let (status, _, body) = send(
            &app,
            Request::get("/v1/tenant").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            json!({"name": "acme", "namespace": "tenant-acme", "tier": "shared", "plan": "pro",
                   "displayName": null, "suspended": false, "config": {"brandColor": "teal"}})
        );
        let missing = context_body(&Tenant::parse("globex").unwrap(), None);
        assert_eq!(missing.0, StatusCode::NOT_FOUND);
        let (status, _, _) = send(
            &app,
            Request::get("/v1/tenant")
                .header("X-Landlord-Tenant", "globex")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn probes_need_no_tenant_and_readiness_waits_for_the_first_listing() {
        let (app, state) = app(TenantLayer::new());
        let get = |p: &str| Request::get(p).body(Body::empty()).unwrap();
        assert_eq!(send(&app, get("/healthz")).await.0, StatusCode::OK);
        assert_eq!(
            send(&app, get("/readyz")).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.catalog.mark_ready();
        assert_eq!(send(&app, get("/readyz")).await.0, StatusCode::OK);
    }
}

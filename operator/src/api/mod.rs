//! `landlord api`: Landlord's self-service HTTP API, for portals and customers' automation.
//!
//! Kubernetes stays the only store of tenant state: the API is a REST front over the
//! `landlord.dev` objects, and every read and write is made as the caller (see [`auth`]; the
//! one read made as the API itself is its watch of the Tenants, which finds those that name
//! a caller, see [`tenants::list`]), so
//! RBAC, the CRDs' CEL rules, the admission policies and the audit log decide and record a
//! call through the API exactly as the same call from `kubectl`. The routes, their
//! documentation ([`openapi`], served at `/v1/openapi.json`) and the schemas of the bodies
//! come from one table ([`endpoints`]) and the CRDs' own types, so they cannot drift apart.
//!
//! Ports: `--address` (the API, plain HTTP: TLS ends at the gateway in front of it) and
//! `--probe-address` (`/healthz`, `/readyz`, `/metrics`).

// A `Problem` is the answer of a failed request, made once per request and turned into a
// response at once: boxing it would buy nothing but noise at every `?`.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod catalog;
pub mod connection;
pub mod domains;
pub mod gitops;
pub mod history;
pub mod limits;
pub mod objects;
pub mod openapi;
pub mod operation;
pub mod problem;
pub mod stream;
pub mod tenants;

use std::{net::SocketAddr, sync::Arc, time::Instant};

use anyhow::Context as _;
use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Response},
    routing::{MethodRouter, delete, get, patch, post},
};
use kube::Client;
use landlord_crds::{Domain, FeatureFlagSet, WebhookEndpoint};
use prometheus::{Encoder, HistogramVec, IntCounter, IntCounterVec, Registry, TextEncoder};
use tracing::info;

use problem::Problem;

/// The largest request body accepted, in bytes.
pub const MAX_BODY: usize = 256 * 1024;

/// Arguments of `landlord api`.
#[derive(clap::Args, Debug)]
pub struct ApiArgs {
    /// Where the API listens (port 0: one the kernel chooses; the address bound is logged
    /// as `address` with "serving the API").
    #[arg(long, env = "LANDLORD_API_ADDRESS", default_value = "0.0.0.0:8080")]
    pub address: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    #[arg(
        long,
        env = "LANDLORD_API_PROBE_ADDRESS",
        default_value = "0.0.0.0:8081"
    )]
    pub probe_address: SocketAddr,
    /// The audience bearer tokens must be minted for (TokenReview `spec.audiences`).
    #[arg(long, env = "LANDLORD_API_AUDIENCE", default_value = "landlord-api")]
    pub audience: String,
    /// The namespace of the catalog (Landlord `Service`s), as the operator's
    /// `--platform-namespace`.
    #[arg(
        long,
        env = "LANDLORD_PLATFORM_NAMESPACE",
        default_value = "landlord-platform"
    )]
    pub platform_namespace: String,
    /// Field managers of GitOps tools: a change of a field one of them owns is refused.
    #[arg(
        long,
        env = "LANDLORD_API_GITOPS_FIELD_MANAGERS",
        value_delimiter = ',',
        default_value = "argocd-controller,kustomize-controller,helm-controller"
    )]
    pub gitops_field_managers: Vec<String>,
    /// Writes (create, change, suspend, resume, delete) one caller may make to one tenant per
    /// minute, for tenants whose plan has no limit of its own. Per replica.
    #[arg(long, env = "LANDLORD_API_WRITES_PER_MINUTE", default_value = "60")]
    pub writes_per_minute: std::num::NonZeroU32,
    /// The same for one plan (`spec.plan`), as `PLAN=N`; repeat for several plans.
    #[arg(long = "plan-writes-per-minute", value_parser = limits::parse_plan_limit)]
    pub plan_writes_per_minute: Vec<(String, std::num::NonZeroU32)>,
    /// Event streams (`GET /v1/tenants/{name}/events`) one caller may hold open at once,
    /// per replica.
    #[arg(long, env = "LANDLORD_API_STREAMS_PER_CALLER", default_value = "10")]
    pub streams_per_caller: usize,
    /// Event streams one replica serves at once, from all callers.
    #[arg(long, env = "LANDLORD_API_STREAMS_PER_REPLICA", default_value = "1000")]
    pub streams_per_replica: usize,
    /// Log format: json or text.
    #[arg(long, env = "LANDLORD_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: crate::telemetry::LogFormat,
    /// `postgres://` URL of the database the API keeps tenants' API history in (it creates
    /// its table; the webhook outbox's database serves). Without it, writes are recorded
    /// only in the API server's audit log and `GET /v1/tenants/{name}/history` answers 501.
    /// Holds a password: give it through the environment (a Secret).
    #[arg(long, env = "LANDLORD_API_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Days a row of the API history is kept (rows of deleted Tenants too).
    #[arg(long, env = "LANDLORD_API_HISTORY_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub history_retention_days: u32,
}

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    /// The API's own client: token reviews, and the base of [`auth::caller_client`].
    pub kube: Client,
    pub authenticator: Arc<auth::Authenticator>,
    pub gitops_managers: Arc<Vec<String>>,
    pub metrics: Arc<Metrics>,
    pub write_limits: Arc<limits::WriteLimits>,
    pub streams: Arc<stream::Streams>,
    /// Every Tenant (without managed fields), watched with the API's own client: which
    /// Tenants name a caller who may not list them all (see [`tenants::list`]).
    pub tenant_index: kube::runtime::reflector::Store<landlord_crds::Tenant>,
    /// Where the catalog lives (`--platform-namespace`).
    pub platform_namespace: Arc<String>,
    /// Tenants' API history (`--database-url`), when kept.
    pub history: Option<history::History>,
}

/// The API's metrics.
pub struct Metrics {
    /// `landlord_api_requests_total{method, route, code}`.
    pub requests: IntCounterVec,
    /// `landlord_api_request_duration_seconds{method, route}`.
    pub duration: HistogramVec,
    /// `landlord_api_history_failures_total`: writes answered that the history database
    /// did not record.
    pub history_failures: IntCounter,
}

impl Metrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            prometheus::Opts::new("landlord_api_requests_total", "API requests answered"),
            &["method", "route", "code"],
        )?;
        let duration = HistogramVec::new(
            prometheus::HistogramOpts::new(
                "landlord_api_request_duration_seconds",
                "Time to answer an API request",
            ),
            &["method", "route"],
        )?;
        let history_failures = IntCounter::new(
            "landlord_api_history_failures_total",
            "Writes answered that the history database did not record",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(history_failures.clone()))?;
        Ok(Metrics {
            requests,
            duration,
            history_failures,
        })
    }
}

/// One route of the API: the router and the OpenAPI document are both built from these.
pub struct Endpoint {
    pub method: Method,
    /// The path, in the syntax axum and OpenAPI share (`/v1/tenants/{name}`).
    pub path: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    /// Whether it needs a bearer token.
    pub authenticated: bool,
    /// The request body's media type and schema (a `components/schemas` name).
    pub request: Option<(&'static str, &'static str)>,
    /// Success status and the schema of its JSON body.
    pub responses: &'static [(u16, Option<&'static str>)],
    /// The media type of its success bodies.
    pub produces: &'static str,
    /// Problem statuses it may answer besides 401 (and 503, 500).
    pub problems: &'static [u16],
    /// The schema of the type its query string deserialises into: one OpenAPI query
    /// parameter per property.
    pub query: Option<fn() -> schemars::Schema>,
}

/// Every route of the API.
pub fn endpoints() -> Vec<(Endpoint, MethodRouter<ApiState>)> {
    use tenants as t;
    let e = |method: Method,
             path: &'static str,
             operation_id: &'static str,
             summary: &'static str,
             request: Option<(&'static str, &'static str)>,
             responses: &'static [(u16, Option<&'static str>)],
             problems: &'static [u16]| Endpoint {
        method,
        path,
        operation_id,
        summary,
        authenticated: true,
        request,
        responses,
        produces: "application/json",
        problems,
        query: None,
    };
    const OP: &[(u16, Option<&str>)] = &[(200, Some("Operation")), (202, Some("Operation"))];
    vec![
        (
            Endpoint {
                authenticated: false,
                ..e(
                    Method::GET,
                    "/v1/openapi.json",
                    "getOpenApi",
                    "This document (OpenAPI 3.1)",
                    None,
                    &[(200, None)],
                    &[],
                )
            },
            get(openapi::serve),
        ),
        (
            Endpoint {
                authenticated: false,
                produces: "text/html",
                ..e(
                    Method::GET,
                    "/v1/docs",
                    "getDocs",
                    "A page listing the API's operations",
                    None,
                    &[(200, None)],
                    &[],
                )
            },
            get(docs),
        ),
        (
            e(
                Method::GET,
                "/v1/me",
                "getMe",
                "The caller as the Kubernetes API server authenticated it",
                None,
                &[(200, Some("Caller"))],
                &[],
            ),
            get(t::me),
        ),
        (
            Endpoint {
                query: Some(openapi::query_schema::<t::ListQuery>),
                ..e(
                    Method::GET,
                    "/v1/tenants",
                    "listTenants",
                    "Tenants the caller may list, by name, a page at a time",
                    None,
                    &[(200, Some("TenantList"))],
                    &[400, 403, 422],
                )
            },
            get(t::list),
        ),
        (
            e(
                Method::POST,
                "/v1/tenants",
                "createTenant",
                "Create a Tenant (Idempotency-Key required)",
                Some(("application/json", "NewTenant")),
                OP,
                &[400, 403, 409, 415, 422, 429],
            ),
            post(t::create),
        ),
        (
            e(
                Method::GET,
                "/v1/tenants/{name}",
                "getTenant",
                "A Tenant (ETag: its resourceVersion)",
                None,
                &[(200, Some("Tenant")), (304, None)],
                &[404],
            ),
            get(t::get),
        ),
        (
            e(
                Method::PATCH,
                "/v1/tenants/{name}",
                "patchTenant",
                "Change a Tenant's spec, labels or annotations (JSON merge patch; If-Match required)",
                Some(("application/merge-patch+json", "TenantPatch")),
                OP,
                &[400, 403, 404, 409, 412, 415, 422, 428, 429],
            ),
            patch(t::patch),
        ),
        (
            e(
                Method::DELETE,
                "/v1/tenants/{name}",
                "deleteTenant",
                "Delete a Tenant (If-Match required)",
                None,
                OP,
                &[400, 403, 404, 412, 422, 428, 429],
            ),
            delete(t::delete),
        ),
        (
            e(
                Method::GET,
                "/v1/tenants/{name}/spec",
                "getTenantSpec",
                "A Tenant's desired state (ETag: \"g<generation>\", the precondition of changes)",
                None,
                &[(200, Some("TenantSpec")), (304, None)],
                &[404],
            ),
            get(t::get_spec),
        ),
        (
            e(
                Method::GET,
                "/v1/tenants/{name}/status",
                "getTenantStatus",
                "A Tenant's phase, conditions and endpoints",
                None,
                &[(200, Some("TenantStatus"))],
                &[404],
            ),
            get(t::get_status),
        ),
        (
            e(
                Method::GET,
                "/v1/tenants/{name}/connection",
                "getTenantConnection",
                "Where a Tenant's database, NATS topics and URLs are; the credentials too when the caller may read the tenant's Secrets (Cache-Control: no-store)",
                None,
                &[(200, Some("Connection"))],
                &[404],
            ),
            get(connection::connection),
        ),
        (
            Endpoint {
                produces: "text/event-stream",
                ..e(
                    Method::GET,
                    "/v1/tenants/{name}/events",
                    "streamTenantEvents",
                    "A Tenant's status as it changes, as server-sent events: `status` ({generation, observedGeneration, phase, conditions}; id: the resourceVersion) first and on every change, `deleted` when it is gone, `error` (a problem) when the watch fails; the stream ends after 300 s",
                    None,
                    &[(200, None)],
                    &[404, 429],
                )
            },
            get(stream::tenant_events),
        ),
        (
            e(
                Method::POST,
                "/v1/tenants/{name}/suspend",
                "suspendTenant",
                "Suspend a Tenant (idempotent)",
                None,
                OP,
                &[403, 404, 409, 422, 429],
            ),
            post(t::suspend),
        ),
        (
            e(
                Method::POST,
                "/v1/tenants/{name}/resume",
                "resumeTenant",
                "Resume a suspended Tenant (idempotent)",
                None,
                OP,
                &[403, 404, 409, 422, 429],
            ),
            post(t::resume),
        ),
        (
            e(
                Method::POST,
                "/v1/tenants/{name}/database/rotate-password",
                "rotateTenantDatabasePassword",
                "Give a Tenant's database role a new password (the landlord-database Secret follows); the operation is done when status.database.passwordRotation shows it. With an Idempotency-Key, a retry makes no second rotation",
                None,
                OP,
                &[400, 403, 404, 409, 422, 429],
            ),
            post(t::rotate_password),
        ),
        (
            Endpoint {
                query: Some(openapi::query_schema::<history::HistoryQuery>),
                ..e(
                    Method::GET,
                    "/v1/tenants/{name}/history",
                    "getTenantHistory",
                    "The writes made through this API to a Tenant and its namespace's objects (who, what, when, the answer, the request id the API server's audit log has), newest first, a page at a time; for callers who may get tenants/history",
                    None,
                    &[(200, Some("HistoryPage"))],
                    &[400, 403, 404, 422, 501],
                )
            },
            get(history::history),
        ),
        (
            e(
                Method::GET,
                "/v1/tenants/{name}/domains",
                "listDomains",
                "A Tenant's Domains, read as the caller in its namespace",
                None,
                &[(200, Some("DomainList"))],
                &[403, 404],
            ),
            get(objects::list::<Domain>),
        ),
        (
            e(
                Method::POST,
                "/v1/tenants/{name}/domains",
                "createDomain",
                "Create a Domain in a Tenant's namespace, as the caller; status.verification then names the TXT record to publish",
                Some(("application/json", "NewDomain")),
                &[(201, Some("Domain"))],
                &[400, 403, 404, 409, 415, 422, 429],
            ),
            post(objects::create::<Domain>),
        ),
        (
            e(
                Method::GET,
                "/v1/tenants/{name}/domains/{domain}",
                "getDomain",
                "A Domain of a Tenant, with the TXT record to publish (status.verification) and its conditions",
                None,
                &[(200, Some("Domain"))],
                &[403, 404],
            ),
            get(objects::get::<Domain>),
        ),
        (
            e(
                Method::DELETE,
                "/v1/tenants/{name}/domains/{domain}",
                "deleteDomain",
                "Delete a Domain of a Tenant, as the caller",
                None,
                &[(204, None)],
                &[403, 404, 429],
            ),
            delete(objects::delete::<Domain>),
        ),
        (
            e(
                Method::POST,
                "/v1/tenants/{name}/domains/{domain}/verify",
                "verifyDomain",
                "Look up the Domain's TXT record now rather than at the operator's next interval",
                None,
                &[(202, Some("Domain"))],
                &[403, 404, 409, 429],
            ),
            post(domains::verify),
        ),
        (
            e(
                Method::GET,
                "/v1/tenants/{name}/flags",
                "getTenantFlags",
                "A Tenant's effective feature flags, as Landlord resolved them (read as the caller)",
                None,
                &[(200, Some("EffectiveFlags"))],
                &[403, 404],
            ),
            get(domains::flags),
        ),
        (
            e(
                Method::GET,
                "/v1/tenants/{name}/catalog",
                "getTenantCatalog",
                "The catalog Services offered to a Tenant's tier (what its spec.services may list), to callers who may read the Tenant",
                None,
                &[(200, Some("Catalog"))],
                &[403, 404],
            ),
            get(catalog::catalog),
        ),
        (
            e(
                Method::GET,
                "/v1/tenants/{name}/flagsets",
                "listFeatureFlagSets",
                "A Tenant's own FeatureFlagSets (its overrides of the platform's flags), read as the caller in its namespace",
                None,
                &[(200, Some("FeatureFlagSetList"))],
                &[403, 404],
            ),
            get(objects::list::<FeatureFlagSet>),
        ),
        (
            e(
                Method::POST,
                "/v1/tenants/{name}/flagsets",
                "createFeatureFlagSet",
                "Create a FeatureFlagSet in a Tenant's namespace, as the caller; the tenant's effective flags (getTenantFlags) then include it",
                Some(("application/json", "NewFeatureFlagSet")),
                &[(201, Some("FeatureFlagSet"))],
                &[400, 403, 404, 409, 415, 422, 429],
            ),
            post(objects::create::<FeatureFlagSet>),
        ),
        (
            e(
                Method::GET,
                "/v1/tenants/{name}/flagsets/{flagset}",
                "getFeatureFlagSet",
                "A FeatureFlagSet of a Tenant, with its conditions",
                None,
                &[(200, Some("FeatureFlagSet"))],
                &[403, 404],
            ),
            get(objects::get::<FeatureFlagSet>),
        ),
        (
            e(
                Method::DELETE,
                "/v1/tenants/{name}/flagsets/{flagset}",
                "deleteFeatureFlagSet",
                "Delete a FeatureFlagSet of a Tenant, as the caller",
                None,
                &[(204, None)],
                &[403, 404, 429],
            ),
            delete(objects::delete::<FeatureFlagSet>),
        ),
        (
            e(
                Method::GET,
                "/v1/tenants/{name}/webhooks",
                "listWebhookEndpoints",
                "A Tenant's own WebhookEndpoints (subscriptions to its events), read as the caller in its namespace",
                None,
                &[(200, Some("WebhookEndpointList"))],
                &[403, 404],
            ),
            get(objects::list::<WebhookEndpoint>),
        ),
        (
            e(
                Method::POST,
                "/v1/tenants/{name}/webhooks",
                "createWebhookEndpoint",
                "Create a WebhookEndpoint in a Tenant's namespace, as the caller; spec.secretRef names the Secret of its signing secret there",
                Some(("application/json", "NewWebhookEndpoint")),
                &[(201, Some("WebhookEndpoint"))],
                &[400, 403, 404, 409, 415, 422, 429],
            ),
            post(objects::create::<WebhookEndpoint>),
        ),
        (
            e(
                Method::GET,
                "/v1/tenants/{name}/webhooks/{webhook}",
                "getWebhookEndpoint",
                "A WebhookEndpoint of a Tenant, with its delivery status (status.conditions: Ready, DeliveryFailing naming the last error)",
                None,
                &[(200, Some("WebhookEndpoint"))],
                &[403, 404],
            ),
            get(objects::get::<WebhookEndpoint>),
        ),
        (
            e(
                Method::DELETE,
                "/v1/tenants/{name}/webhooks/{webhook}",
                "deleteWebhookEndpoint",
                "Delete a WebhookEndpoint of a Tenant, as the caller (its signing Secret stays)",
                None,
                &[(204, None)],
                &[403, 404, 429],
            ),
            delete(objects::delete::<WebhookEndpoint>),
        ),
        (
            e(
                Method::GET,
                "/v1/operations/{id}",
                "getOperation",
                "An operation, derived from its Tenant (Prefer: wait=N waits up to N s, at most 60)",
                None,
                OP,
                &[404],
            ),
            get(t::get_operation),
        ),
    ]
}

/// The API's router: every [`endpoints`] route, authenticated where it says so, with a
/// problem for unknown paths and methods.
pub fn router(state: ApiState) -> Router {
    let mut router = Router::new();
    for (endpoint, handler) in endpoints() {
        router = router.route(endpoint.path, handler);
    }
    router
        .fallback(|| async {
            Problem::not_found("no such path in this API (see /v1/openapi.json)")
        })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "The method is not allowed here",
                "see /v1/openapi.json for the methods of this path",
            )
        })
        // After routing (so the route is known): unknown paths need no token.
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Gives the request an id, authenticates it (except the public routes) and runs it as its
/// caller; counts and logs it.
async fn authenticate(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = auth::new_request_id();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let routes = endpoints();
    let public = routes
        .iter()
        .any(|(e, _)| !e.authenticated && e.path == route);
    let endpoint = routes
        .into_iter()
        .find(|(e, _)| e.path == route && e.method == method)
        .map(|(e, _)| e);
    let path = request.uri().path().to_string();
    let mut caller_name = None;
    let mut response = if public {
        auth::with_request_id(id.clone(), next.run(request)).await
    } else {
        let header = request.headers().get(header::AUTHORIZATION).cloned();
        match state.authenticator.authenticate(header.as_ref()).await {
            Ok(caller) => {
                caller_name = Some(caller.username.clone());
                // Writes that reach a Tenant go to its history before the answer goes out.
                let recorder = match (&state.history, &endpoint) {
                    (Some(store), Some(endpoint)) if is_write(&method) => {
                        Some(history::Recorder::new(
                            store.clone(),
                            history::Request {
                                request_id: id.clone(),
                                caller: caller.username.clone(),
                                action: endpoint.operation_id.to_string(),
                                method: method.to_string(),
                                path: history::recorded_path(&path, &route),
                            },
                            state.metrics.history_failures.clone(),
                        ))
                    }
                    _ => None,
                };
                let scope = auth::Scope {
                    caller: Arc::new(caller),
                    request_id: id.clone(),
                };
                let handled = auth::as_caller(scope, next.run(request));
                let response = match &recorder {
                    Some(recorder) => recorder.scope(handled).await,
                    None => handled.await,
                };
                if let Some(recorder) = recorder {
                    let location = response
                        .headers()
                        .get(header::LOCATION)
                        .and_then(|l| l.to_str().ok())
                        .map(str::to_string);
                    let status = response.status().as_u16();
                    recorder.finish(status, location.as_deref()).await;
                }
                response
            }
            Err(problem) => {
                auth::with_request_id(id.clone(), async { problem.into_response() }).await
            }
        }
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let code = response.status().as_u16().to_string();
    state
        .metrics
        .requests
        .with_label_values(&[method.as_str(), &route, &code])
        .inc();
    state
        .metrics
        .duration
        .with_label_values(&[method.as_str(), &route])
        .observe(started.elapsed().as_secs_f64());
    info!(
        request_id = %id,
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        caller = caller_name.as_deref().unwrap_or("-"),
        "api request"
    );
    response
}

/// Whether a request of `method` may change something.
fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn docs() -> Html<String> {
    let rows: String = endpoints()
        .iter()
        .map(|(e, _)| {
            format!(
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
                e.method,
                e.path,
                e.summary.replace('<', "&lt;")
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Landlord API</title></head>\
         <body><h1>Landlord API v1</h1><p>The machine-readable contract is \
         <a href=\"/v1/openapi.json\">/v1/openapi.json</a> (OpenAPI 3.1). Every route but this \
         page and the document needs <code>Authorization: Bearer &lt;token&gt;</code>; errors \
         are <code>application/problem+json</code>.</p><table>{rows}</table></body></html>"
    ))
}

fn probe_router(client: Client, registry: Registry) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let client = client.clone();
                async move {
                    match client.apiserver_version().await {
                        Ok(_) => (StatusCode::OK, "ok".to_string()),
                        Err(e) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("the Kubernetes API server cannot be reached: {e}"),
                        ),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut buffer = Vec::new();
                    match TextEncoder::new().encode(&registry.gather(), &mut buffer) {
                        Ok(()) => (StatusCode::OK, buffer).into_response(),
                        Err(e) => {
                            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
                        }
                    }
                }
            }),
        )
}

/// Runs the API until SIGTERM or Ctrl-C.
pub async fn serve(args: ApiArgs) -> anyhow::Result<()> {
    let config = kube::Config::infer()
        .await
        .context("finding the cluster (kubeconfig or in-cluster)")?;
    let own = Client::try_from(config).context("building the API's own client")?;
    let registry = Registry::new();
    let (tenant_index, index_writer) = kube::runtime::reflector::store();
    let index = tokio::spawn({
        use futures::StreamExt as _;
        use kube::runtime::{WatchStreamExt as _, reflector, watcher};
        let stream = watcher(
            kube::Api::<landlord_crds::Tenant>::all(own.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(|tenant| tenant.metadata.managed_fields = None);
        reflector(index_writer, stream).for_each(|event| {
            if let Err(error) = event {
                tracing::warn!(%error, "watching Tenants (the API's index of admins and viewers)");
            }
            std::future::ready(())
        })
    });
    let state = ApiState {
        kube: own.clone(),
        authenticator: Arc::new(auth::Authenticator::new(own.clone(), args.audience.clone())),
        gitops_managers: Arc::new(args.gitops_field_managers.clone()),
        metrics: Arc::new(Metrics::new(&registry)?),
        write_limits: Arc::new(limits::WriteLimits::new(
            args.writes_per_minute,
            &args.plan_writes_per_minute.iter().cloned().collect(),
        )),
        streams: stream::Streams::new(args.streams_per_caller, args.streams_per_replica),
        tenant_index,
        platform_namespace: Arc::new(args.platform_namespace.clone()),
        history: args
            .database_url
            .as_deref()
            .map(history::History::connect)
            .transpose()
            .context("--database-url: not a PostgreSQL URL")?,
    };
    // The history's retention, applied hourly by every replica (the delete is idempotent).
    let retention = state.history.clone().map(|store| {
        let days = args.history_retention_days;
        tokio::spawn(async move {
            loop {
                match store.forget_older_than(days).await {
                    Ok(0) => {}
                    Ok(n) => info!(
                        rows = n,
                        days, "deleted API history older than its retention"
                    ),
                    Err(error) => tracing::warn!(%error, "deleting old API history failed"),
                }
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            }
        })
    });
    let write_limits = state.write_limits.clone();
    let forget = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            write_limits.forget_idle();
        }
    });
    let api = tokio::net::TcpListener::bind(args.address)
        .await
        .with_context(|| format!("listening on {}", args.address))?;
    let probes = tokio::net::TcpListener::bind(args.probe_address)
        .await
        .with_context(|| format!("listening on {}", args.probe_address))?;
    info!(
        address = %api.local_addr()?,
        probe_address = %probes.local_addr()?,
        audience = %args.audience,
        "serving the API"
    );
    let probe_server =
        tokio::spawn(async move { axum::serve(probes, probe_router(own, registry)).await });
    let streams = state.streams.clone();
    axum::serve(api, router(state))
        .with_graceful_shutdown(async move {
            crate::run::shutdown_signal().await;
            // Event streams would hold the shutdown for minutes: end them now.
            streams.close();
        })
        .await
        .context("serving the API")?;
    probe_server.abort();
    forget.abort();
    index.abort();
    if let Some(retention) = retention {
        retention.abort();
    }
    Ok(())
}

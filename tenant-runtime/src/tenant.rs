//! Which tenant a request is for: a tower layer that reads it from the request (the header the
//! route sets, or the host), checks it, puts it in the request's extensions and the tracing
//! span, and rejects requests without a valid tenant.
//!
//! A pool service (one instance for many tenants) must also check the tenant assertion the
//! route adds ([`crate::assertion`]): with [`TenantLayer::keys`], a request whose tenant is
//! not asserted under the platform's key is refused, so a caller that reaches the pool
//! without passing through a tenant's route cannot name another tenant.
//!
//! ```no_run
//! use tenant_runtime::tenant::{Tenant, TenantLayer};
//! use axum::{Extension, Router, routing::get};
//!
//! let app: Router = Router::new()
//!     .route("/hello", get(|Extension(tenant): Extension<Tenant>| async move {
//!         format!("hello, {tenant}")
//!     }))
//!     .layer(TenantLayer::new().base_domain("example.com"));
//! ```
//!
//! In a pool service:
//!
//! ```no_run
//! # use tenant_runtime::{TenantKeys, TenantLayer};
//! let layer = TenantLayer::new().keys(TenantKeys::from_env().expect("LANDLORD_TENANT_KEY"));
//! ```

use std::{
    collections::BTreeMap,
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use futures::future::{Either, Ready, ready};
use tower::{Layer, Service};
use tracing::{Instrument, instrument::Instrumented};

use crate::assertion::{self, TenantKeys};

/// The header a shared-tier route sets to name the tenant of a request.
pub const DEFAULT_HEADER: &str = "X-Landlord-Tenant";

/// A tenant's name: a DNS label (1 to 63 lowercase letters, digits and `-`, starting and
/// ending with a letter or digit), as Kubernetes names the Tenant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tenant(String);

impl Tenant {
    /// Checks a name against the DNS label rules.
    pub fn parse(name: &str) -> Result<Self, InvalidName> {
        let bytes = name.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let valid = !bytes.is_empty()
            && bytes.len() <= 63
            && bytes.iter().all(|b| alnum(b) || *b == b'-')
            && bytes.first().is_some_and(alnum)
            && bytes.last().is_some_and(alnum);
        if valid {
            Ok(Self(name.to_string()))
        } else {
            Err(InvalidName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name that is not a DNS label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a tenant name is a DNS label: 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit"
)]
pub struct InvalidName;

/// Why a request was turned away. Each has a fixed status and a CamelCase code, sent as
/// `{"error": <code>, "message": <text>}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The request names no tenant (400).
    MissingTenant { header: String },
    /// The header or host does not hold a valid tenant name (400).
    InvalidTenant { reason: String },
    /// The header and the host name different tenants (400).
    ConflictingTenants { header: Tenant, host: Tenant },
    /// This instance serves one tenant and the request names another (403).
    OtherTenant { serves: Tenant, requested: Tenant },
    /// No such tenant is served here (404).
    UnknownTenant { tenant: Tenant },
    /// The request names a tenant without the route's assertion (401).
    MissingAssertion { tenant: Tenant },
    /// The assertion does not name this tenant under the platform's key (403).
    ForgedAssertion { tenant: Tenant },
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::MissingTenant { .. }
            | Rejection::InvalidTenant { .. }
            | Rejection::ConflictingTenants { .. } => StatusCode::BAD_REQUEST,
            Rejection::MissingAssertion { .. } => StatusCode::UNAUTHORIZED,
            Rejection::OtherTenant { .. } | Rejection::ForgedAssertion { .. } => {
                StatusCode::FORBIDDEN
            }
            Rejection::UnknownTenant { .. } => StatusCode::NOT_FOUND,
        }
    }

    /// A bounded code: the JSON `error` field and the rejection metric's label.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::MissingTenant { .. } => "MissingTenant",
            Rejection::InvalidTenant { .. } => "InvalidTenant",
            Rejection::ConflictingTenants { .. } => "ConflictingTenants",
            Rejection::OtherTenant { .. } => "OtherTenant",
            Rejection::UnknownTenant { .. } => "UnknownTenant",
            Rejection::MissingAssertion { .. } => "MissingAssertion",
            Rejection::ForgedAssertion { .. } => "ForgedAssertion",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Rejection::MissingTenant { header } => {
                format!("the request names no tenant: set the {header} header")
            }
            Rejection::InvalidTenant { reason } => reason.clone(),
            Rejection::ConflictingTenants { header, host } => {
                format!("the tenant header names {header} but the host belongs to tenant {host}")
            }
            Rejection::OtherTenant { serves, requested } => format!(
                "this instance serves tenant {serves} only; the request names tenant {requested}"
            ),
            Rejection::UnknownTenant { tenant } => format!("tenant {tenant} is not served here"),
            Rejection::MissingAssertion { tenant } => format!(
                "the request names tenant {tenant} without the {} header its route adds",
                assertion::HEADER
            ),
            Rejection::ForgedAssertion { tenant } => format!(
                "the {} header does not assert tenant {tenant}",
                assertion::HEADER
            ),
        }
    }

    /// The JSON response of the rejection.
    pub fn into_response<B: From<String>>(self) -> Response<B> {
        let body = serde_json::json!({"error": self.code(), "message": self.message()});
        let mut response = Response::new(B::from(body.to_string()));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// Whether a tenant is served (e.g. a pooled instance knows the shared-tier tenants).
pub type Known = Arc<dyn Fn(&Tenant) -> bool + Send + Sync>;

/// Called with each rejection's code, e.g. to count rejections.
pub type OnReject = Arc<dyn Fn(&'static str) + Send + Sync>;

/// How the tenant of a request is found. Built with [`TenantLayer::new`] and its methods.
#[derive(Clone)]
pub struct TenantLayer {
    header: axum::http::HeaderName,
    base_domain: Option<String>,
    hosts: BTreeMap<String, Tenant>,
    fixed: Option<Tenant>,
    keys: Option<TenantKeys>,
    known: Option<Known>,
    on_reject: Option<OnReject>,
}

impl fmt::Debug for TenantLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantLayer")
            .field("header", &self.header)
            .field("base_domain", &self.base_domain)
            .field("hosts", &self.hosts)
            .field("fixed", &self.fixed)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Default for TenantLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl TenantLayer {
    /// Reads the tenant from the `X-Landlord-Tenant` header only.
    pub fn new() -> Self {
        Self {
            header: axum::http::HeaderName::from_static("x-landlord-tenant"),
            base_domain: None,
            hosts: BTreeMap::new(),
            fixed: None,
            keys: None,
            known: None,
            on_reject: None,
        }
    }

    /// Reads the tenant from another header.
    pub fn header(mut self, name: axum::http::HeaderName) -> Self {
        self.header = name;
        self
    }

    /// Also takes the tenant from the host: `<tenant>.<base_domain>`.
    pub fn base_domain(mut self, domain: &str) -> Self {
        self.base_domain = Some(domain.trim_matches('.').to_ascii_lowercase());
        self
    }

    /// Also takes the tenant from a host in this table (custom domains).
    pub fn host(mut self, host: &str, tenant: Tenant) -> Self {
        self.hosts.insert(host.to_ascii_lowercase(), tenant);
        self
    }

    /// Serves this tenant only: requests naming no tenant are for it, requests naming
    /// another are rejected with 403.
    pub fn fixed(mut self, tenant: Tenant) -> Self {
        self.fixed = Some(tenant);
        self
    }

    /// Requires the route's tenant assertion ([`crate::assertion`]) under one of `keys`:
    /// without it 401, with a wrong one 403, checked before whether the tenant is known (so
    /// a caller without assertions cannot learn which tenants exist). What every pool
    /// service must use.
    pub fn keys(mut self, keys: TenantKeys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Rejects tenants for which `known` is false with 404.
    pub fn known(mut self, known: impl Fn(&Tenant) -> bool + Send + Sync + 'static) -> Self {
        self.known = Some(Arc::new(known));
        self
    }

    /// Calls `hook` with the code of every rejection.
    pub fn on_reject(mut self, hook: impl Fn(&'static str) + Send + Sync + 'static) -> Self {
        self.on_reject = Some(Arc::new(hook));
        self
    }

    /// The tenant of a request with these headers (and, for HTTP/2, this URI authority).
    pub fn resolve(
        &self,
        headers: &HeaderMap,
        authority: Option<&str>,
    ) -> Result<Tenant, Rejection> {
        let from_header = self.tenant_in_header(headers)?;
        let from_host = self.tenant_of_host(headers, authority)?;
        let named = match (from_header, from_host) {
            (Some(header), Some(host)) if header != host => {
                return Err(Rejection::ConflictingTenants { header, host });
            }
            (Some(tenant), _) | (None, Some(tenant)) => Some(tenant),
            (None, None) => None,
        };
        let tenant = match (&self.fixed, named) {
            (Some(serves), Some(requested)) if *serves != requested => {
                return Err(Rejection::OtherTenant {
                    serves: serves.clone(),
                    requested,
                });
            }
            (_, Some(tenant)) => tenant,
            (Some(serves), None) => serves.clone(),
            (None, None) => {
                return Err(Rejection::MissingTenant {
                    header: self.header.to_string(),
                });
            }
        };
        if let Some(keys) = &self.keys {
            let mut values = headers.get_all(assertion::HEADER).iter();
            let asserted = match (values.next(), values.next()) {
                (None, _) => return Err(Rejection::MissingAssertion { tenant }),
                (Some(value), None) => value
                    .to_str()
                    .is_ok_and(|value| keys.verify(&tenant, value.trim())),
                // Two assertions: which one would a proxy have set?
                (Some(_), Some(_)) => false,
            };
            if !asserted {
                return Err(Rejection::ForgedAssertion { tenant });
            }
        }
        match &self.known {
            Some(known) if !known(&tenant) => Err(Rejection::UnknownTenant { tenant }),
            _ => Ok(tenant),
        }
    }

    fn tenant_in_header(&self, headers: &HeaderMap) -> Result<Option<Tenant>, Rejection> {
        let mut values = headers.get_all(&self.header).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(Rejection::InvalidTenant {
                reason: format!("the {} header is given more than once", self.header),
            });
        }
        let invalid = || Rejection::InvalidTenant {
            reason: format!(
                "the {} header does not hold a tenant name: {InvalidName}",
                self.header
            ),
        };
        let name = value.to_str().map_err(|_| invalid())?;
        Tenant::parse(name.trim()).map(Some).map_err(|_| invalid())
    }

    fn tenant_of_host(
        &self,
        headers: &HeaderMap,
        authority: Option<&str>,
    ) -> Result<Option<Tenant>, Rejection> {
        if self.base_domain.is_none() && self.hosts.is_empty() {
            return Ok(None);
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or(authority);
        let Some(host) = host else {
            return Ok(None);
        };
        // Strip a port; IPv6 literals never name a tenant.
        let host = host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if let Some(tenant) = self.hosts.get(&host) {
            return Ok(Some(tenant.clone()));
        }
        let Some(label) = self.base_domain.as_ref().and_then(|base| {
            host.strip_suffix(base.as_str())
                .and_then(|rest| rest.strip_suffix('.'))
        }) else {
            return Ok(None);
        };
        Tenant::parse(label)
            .map(Some)
            .map_err(|_| Rejection::InvalidTenant {
                reason: format!("host {host} does not name a tenant: {InvalidName}"),
            })
    }
}

impl<S> Layer<S> for TenantLayer {
    type Service = TenantService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenantService {
            inner,
            config: Arc::new(self.clone()),
        }
    }
}

/// The service [`TenantLayer`] wraps around another.
#[derive(Clone, Debug)]
pub struct TenantService<S> {
    inner: S,
    config: Arc<TenantLayer>,
}

impl<S, B, ResBody> Service<Request<B>> for TenantService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<ResBody>, S::Error>>, Instrumented<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let authority = request.uri().authority().map(|a| a.as_str().to_string());
        match self.config.resolve(request.headers(), authority.as_deref()) {
            Ok(tenant) => {
                // Fill the `tenant` field of an enclosing request span, if it declares one,
                // and run the inner service in a span of its own that carries the tenant.
                tracing::Span::current().record("tenant", tenant.as_str());
                let span = tracing::info_span!("tenant_request", tenant = %tenant);
                request.extensions_mut().insert(tenant);
                Either::Right(self.inner.call(request).instrument(span))
            }
            Err(rejection) => {
                tracing::debug!(code = rejection.code(), message = %rejection.message(), "request rejected");
                if let Some(hook) = &self.config.on_reject {
                    hook(rejection.code());
                }
                Either::Left(ready(Ok(rejection.into_response())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::convert::Infallible;

    use axum::body::Body;
    use tower::{ServiceExt, service_fn};

    use super::*;

    /// An inner service that answers with the tenant it finds in the extensions.
    async fn echo(request: Request<Body>) -> Result<Response<Body>, Infallible> {
        let tenant = request.extensions().get::<Tenant>().cloned();
        Ok(Response::new(Body::from(
            tenant.map(|t| t.to_string()).unwrap_or_default(),
        )))
    }

    async fn call(layer: TenantLayer, request: Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = layer
            .layer(service_fn(echo))
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, body)
    }

    fn get(headers: &[(&str, &str)]) -> Request<Body> {
        let mut builder = Request::get("/ofrep/v1/evaluate/flags");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_request_with_the_tenant_header_carries_the_tenant() {
        let (status, body) = call(TenantLayer::new(), get(&[("X-Landlord-Tenant", "acme")])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "acme");
    }

    #[tokio::test]
    async fn a_request_without_a_tenant_is_rejected() {
        let (status, body) = call(TenantLayer::new(), get(&[])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "MissingTenant");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("x-landlord-tenant")
        );
    }

    #[tokio::test]
    async fn names_that_are_not_dns_labels_are_rejected() {
        for bad in [
            "Acme",
            "-acme",
            "acme-",
            "ac_me",
            "a.b",
            "",
            &"a".repeat(64),
        ] {
            let (status, body) = call(TenantLayer::new(), get(&[("X-Landlord-Tenant", bad)])).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
            assert_eq!(body["error"], "InvalidTenant", "{bad:?}");
        }
        let (status, body) = call(
            TenantLayer::new(),
            get(&[("X-Landlord-Tenant", "a"), ("X-Landlord-Tenant", "b")]),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["message"].as_str().unwrap().contains("more than once"));
    }

    #[tokio::test]
    async fn the_host_names_the_tenant_under_the_base_domain_or_in_the_table() {
        let layer = TenantLayer::new()
            .base_domain("apps.example.com")
            .host("shop.acme.io", Tenant::parse("acme").unwrap());
        let (status, body) = call(
            layer.clone(),
            get(&[("Host", "globex.apps.example.com:8080")]),
        )
        .await;
        assert_eq!((status, body), (StatusCode::OK, "globex".into()));
        let (status, body) = call(layer.clone(), get(&[("Host", "SHOP.acme.io")])).await;
        assert_eq!((status, body), (StatusCode::OK, "acme".into()));
        let (status, body) = call(layer.clone(), get(&[("Host", "elsewhere.org")])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "MissingTenant");
        let (status, body) = call(layer.clone(), get(&[("Host", "a.b.apps.example.com")])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "InvalidTenant");
        let (status, body) = call(
            layer,
            get(&[
                ("Host", "globex.apps.example.com"),
                ("X-Landlord-Tenant", "acme"),
            ]),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "ConflictingTenants");
    }

    #[tokio::test]
    async fn a_fixed_instance_serves_its_tenant_and_refuses_others() {
        let layer = TenantLayer::new().fixed(Tenant::parse("acme").unwrap());
        let (status, body) = call(layer.clone(), get(&[])).await;
        assert_eq!((status, body), (StatusCode::OK, "acme".into()));
        let (status, body) = call(layer.clone(), get(&[("X-Landlord-Tenant", "acme")])).await;
        assert_eq!((status, body), (StatusCode::OK, "acme".into()));
        let (status, body) = call(layer, get(&[("X-Landlord-Tenant", "globex")])).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"], "OtherTenant");
    }

    #[tokio::test]
    async fn unknown_tenants_are_not_found_and_rejections_are_reported() {
        let rejected = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = rejected.clone();
        let layer = TenantLayer::new()
            .header(axum::http::HeaderName::from_static("x-tenant"))
            .known(|t| t.as_str() == "acme")
            .on_reject(move |code| seen.lock().unwrap().push(code));
        let (status, _) = call(layer.clone(), get(&[("X-Tenant", "acme")])).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = call(layer.clone(), get(&[("X-Tenant", "globex")])).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "UnknownTenant");
        // The default header is not read once another is configured.
        let (status, _) = call(layer, get(&[("X-Landlord-Tenant", "acme")])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            *rejected.lock().unwrap(),
            vec!["UnknownTenant", "MissingTenant"]
        );
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn pool_layer() -> TenantLayer {
        TenantLayer::new()
            .keys(TenantKeys::new(KEY).unwrap())
            .known(|t| ["acme", "globex"].contains(&t.as_str()))
    }

    fn asserted(tenant: &str) -> String {
        assertion::assertion(KEY, tenant)
    }

    #[tokio::test]
    async fn a_pool_accepts_the_tenant_its_route_asserted() {
        let token = asserted("acme");
        let (status, body) = call(
            pool_layer(),
            get(&[
                ("X-Landlord-Tenant", "acme"),
                ("X-Landlord-Tenant-Assertion", &token),
            ]),
        )
        .await;
        assert_eq!((status, body), (StatusCode::OK, "acme".into()));
    }

    #[tokio::test]
    async fn a_pool_refuses_the_bare_header_with_401() {
        let (status, body) = call(pool_layer(), get(&[("X-Landlord-Tenant", "acme")])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "MissingAssertion");
        // Unknown tenants get the same answer: no assertion, no way to tell who exists.
        let (status, _) = call(pool_layer(), get(&[("X-Landlord-Tenant", "initech")])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_pool_refuses_forged_and_other_tenants_assertions_with_403() {
        let other_key = assertion::assertion(b"fedcba9876543210fedcba9876543210", "acme");
        let globex = asserted("globex");
        let acme = asserted("acme");
        for forged in [
            // Another tenant's (e.g. the caller's own, read from its HTTPRoute).
            globex.as_str(),
            // The right tenant under a key the pool does not hold.
            other_key.as_str(),
            "v1.",
            "acme",
            "v1.AAAA",
        ] {
            let (status, body) = call(
                pool_layer(),
                get(&[
                    ("X-Landlord-Tenant", "acme"),
                    ("X-Landlord-Tenant-Assertion", forged),
                ]),
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{forged:?}");
            assert_eq!(body["error"], "ForgedAssertion", "{forged:?}");
            assert!(
                !body["message"].as_str().unwrap().contains(&acme),
                "the right assertion never appears in an answer"
            );
        }
        // Twice, once right and once wrong: refused.
        let (status, _) = call(
            pool_layer(),
            get(&[
                ("X-Landlord-Tenant", "acme"),
                ("X-Landlord-Tenant-Assertion", &acme),
                ("X-Landlord-Tenant-Assertion", &globex),
            ]),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn the_tenant_is_recorded_in_the_request_span() {
        use std::sync::{Mutex, OnceLock};
        use tracing_subscriber::{Registry, layer::SubscriberExt};

        /// Captures the fields of every span that is created.
        #[derive(Clone, Default)]
        struct Spans(Arc<Mutex<Vec<String>>>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
            fn on_new_span(
                &self,
                attrs: &tracing::span::Attributes<'_>,
                _: &tracing::span::Id,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                struct Fields<'a>(&'a mut String);
                impl tracing::field::Visit for Fields<'_> {
                    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn fmt::Debug) {
                        self.0.push_str(&format!("{}={v:?}", f.name()));
                    }
                }
                let mut text = format!("{}:", attrs.metadata().name());
                attrs.record(&mut Fields(&mut text));
                self.0.lock().unwrap().push(text);
            }
        }
        // The process's global subscriber, not a thread's default: whether a span is of
        // interest is cached per callsite for the whole process, and a span first reached
        // by a test on another thread (without this subscriber) would otherwise be cached
        // as of interest to nobody (one run in ten here).
        static SPANS: OnceLock<Spans> = OnceLock::new();
        let spans = SPANS.get_or_init(|| {
            let spans = Spans::default();
            tracing::subscriber::set_global_default(Registry::default().with(spans.clone()))
                .expect("no other global subscriber in these tests");
            spans
        });
        let (status, _) = call(TenantLayer::new(), get(&[("X-Landlord-Tenant", "acme")])).await;
        assert_eq!(status, StatusCode::OK);
        let seen = spans.0.lock().unwrap();
        assert!(
            seen.iter().any(|s| s == "tenant_request:tenant=acme"),
            "{seen:?}"
        );
    }
}

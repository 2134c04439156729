//! What a verified Domain should have, built purely from the Domain, its Tenant, the catalog
//! Services it routes to and the operator's configuration.

use landlord_crds::conditions::Reason;
use std::collections::BTreeMap;

use k8s_openapi::{
    api::networking::v1::{
        HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
        IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{Resource, ResourceExt};
use landlord_crds::{
    Domain, Service as CatalogService, Tenant,
    conditions::{Observation, Status, domain::ROUTED},
    domain::{Route, TlsMode},
    tenant::Tier,
};

use super::upstream::{
    BackendRef, Certificate, CertificateSpec, GATEWAY_GROUP, Gateway, GatewaySpec, GrantFrom,
    GrantTo, HTTPRoute, HTTPRouteFilter, HTTPRouteMatch, HTTPRouteRule, HTTPRouteSpec, Header,
    HeaderModifier, IssuerRef, Listener, ListenerSet, ListenerSetSpec, ListenerTls,
    ParentReference, PathMatch, ReferenceGrant, ReferenceGrantSpec, SecretRef,
};
use crate::labels;

/// Header that tells the shared pool which tenant a request is for (the route sets it, so a
/// client cannot choose another tenant's value).
pub const TENANT_HEADER: &str = "X-Landlord-Tenant";
/// Spellings of Landlord's headers that frameworks folding `_` into `-` (CGI, WSGI) would
/// read as them: a shared tenant's route removes them, so only the route's values arrive.
pub const HEADER_VARIANTS: [&str; 2] = ["X_Landlord_Tenant", "X_Landlord_Tenant_Assertion"];
/// Label on a Domain's children naming the Domain.
pub const DOMAIN_LABEL: &str = "landlord.dev/domain";
/// Gateway API allows 16 rules per HTTPRoute; Landlord writes one per backend.
pub const MAX_BACKENDS: usize = 16;

/// Where a path prefix goes: a Kubernetes Service named after the catalog Service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backend {
    pub service: String,
    pub namespace: String,
    pub port: i32,
    pub port_name: String,
}

/// A route of the Domain, resolved against the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedRoute {
    pub path_prefix: String,
    pub backend: Backend,
}

/// The catalog Services the Domain's routes name (its own routes, or by default every
/// service of the tenant that declares a path).
pub fn route_services(domain: &Domain, tenant: &Tenant) -> Vec<String> {
    if domain.spec.routes.is_empty() {
        tenant
            .spec
            .services
            .iter()
            .map(|s| s.name.clone())
            .collect()
    } else {
        domain
            .spec
            .routes
            .iter()
            .map(|r| r.service.clone())
            .collect()
    }
}

fn not_routed(reason: Reason, message: String) -> Observation {
    Observation::new(ROUTED, Status::False, reason, message)
}

/// Resolves the Domain's routes: each must name a service the tenant runs, present in the
/// catalog, offered for the tenant's tier, with the named (or a first) port. A route that
/// cannot be resolved gives the Routed condition that says why.
pub fn resolve_routes(
    domain: &Domain,
    tenant: &Tenant,
    catalog: &BTreeMap<String, CatalogService>,
) -> Result<Vec<ResolvedRoute>, Observation> {
    let routes: Vec<Route> = if domain.spec.routes.is_empty() {
        tenant
            .spec
            .services
            .iter()
            .filter_map(|s| {
                let path = catalog.get(&s.name)?.spec.path.clone()?;
                Some(Route {
                    path_prefix: path,
                    service: s.name.clone(),
                    port: None,
                })
            })
            .collect()
    } else {
        domain.spec.routes.clone()
    };
    if routes.is_empty() {
        return Err(not_routed(
            Reason::NoRoutes,
            "spec.routes is empty and none of the tenant's services (spec.services of its Tenant) declares a path".into(),
        ));
    }
    let tier = tenant.spec.tier;
    let mut resolved = Vec::with_capacity(routes.len());
    for route in &routes {
        let name = &route.service;
        if !tenant.spec.services.iter().any(|s| &s.name == name) {
            return Err(not_routed(
                Reason::ServiceNotSelected,
                format!(
                    "route {} goes to service {name}, which Tenant {} does not run (spec.services)",
                    route.path_prefix,
                    tenant.name_any()
                ),
            ));
        }
        let Some(service) = catalog.get(name) else {
            return Err(not_routed(
                Reason::ServiceNotFound,
                format!(
                    "route {} goes to service {name}, which is not in the catalog",
                    route.path_prefix
                ),
            ));
        };
        if !service.spec.tiers.contains(&tier) {
            return Err(not_routed(
                Reason::ServiceNotOffered,
                format!(
                    "route {} goes to service {name}, which does not run for the {} tier",
                    route.path_prefix,
                    tier.as_str()
                ),
            ));
        }
        let port = match &route.port {
            Some(port) => service.spec.ports.iter().find(|p| &p.name == port),
            None => service.spec.ports.first(),
        };
        let Some(port) = port else {
            let wanted = route
                .port
                .as_deref()
                .map(|p| format!("port {p}"))
                .unwrap_or_else(|| "a port".into());
            return Err(not_routed(
                Reason::UnknownPort,
                format!(
                    "route {} goes to service {name}, which has no {wanted}",
                    route.path_prefix
                ),
            ));
        };
        let namespace = match tier {
            Tier::Dedicated => tenant.namespace_name(),
            Tier::Shared => service.namespace().unwrap_or_default(),
        };
        resolved.push(ResolvedRoute {
            path_prefix: route.path_prefix.clone(),
            backend: Backend {
                service: name.clone(),
                namespace,
                port: port.port,
                port_name: port.name.clone(),
            },
        });
    }
    Ok(resolved)
}

/// Metadata of a Domain's child in the Domain's namespace, owned by the Domain.
fn child_meta(domain: &Domain, tenant: &str, name: String, owner: &OwnerReference) -> ObjectMeta {
    let mut labels = labels::tenant_labels(tenant);
    labels.insert(DOMAIN_LABEL.into(), domain_label(domain));
    ObjectMeta {
        name: Some(name),
        namespace: domain.namespace(),
        labels: Some(labels),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

/// A label value naming the Domain (names may be longer than a label value allows).
fn domain_label(domain: &Domain) -> String {
    let name = domain.name_any();
    if name.len() <= 63 {
        name
    } else {
        format!(
            "{}-{}",
            name[..54].trim_end_matches(['.', '-']),
            short_hash(&name)
        )
    }
}

fn short_hash(text: &str) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// The controller reference of a Domain's children.
pub fn owner_reference(domain: &Domain) -> Option<OwnerReference> {
    domain.controller_owner_ref(&())
}

/// The Secret that holds the Domain's certificate: the user's (mode Secret), or the one
/// cert-manager writes (mode Managed).
pub fn tls_secret(domain: &Domain) -> Option<String> {
    let tls = domain.spec.tls.clone().unwrap_or_default();
    match tls.mode {
        TlsMode::None => None,
        TlsMode::Secret => tls.secret_name,
        TlsMode::Managed => Some(managed_secret_name(&domain.name_any())),
    }
}

fn managed_secret_name(domain: &str) -> String {
    if domain.len() + 4 <= 253 {
        format!("{domain}-tls")
    } else {
        format!(
            "{}-{}-tls",
            domain[..236].trim_end_matches(['.', '-']),
            short_hash(domain)
        )
    }
}

/// The URL the Domain serves.
pub fn url(domain: &Domain) -> String {
    let scheme = if tls_secret(domain).is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", domain.spec.hostname)
}

/// Groups the routes by backend (one HTTPRoute rule or Ingress backend each), in the order
/// the backends first appear.
fn by_backend(routes: &[ResolvedRoute]) -> Vec<(&Backend, Vec<&str>)> {
    let mut groups: Vec<(&Backend, Vec<&str>)> = Vec::new();
    for route in routes {
        match groups.iter_mut().find(|(b, _)| *b == &route.backend) {
            Some((_, paths)) => paths.push(&route.path_prefix),
            None => groups.push((&route.backend, vec![&route.path_prefix])),
        }
    }
    groups
}

/// Whether the routes fit in one HTTPRoute.
pub fn too_many_backends(routes: &[ResolvedRoute]) -> Option<Observation> {
    let n = by_backend(routes).len();
    (n > MAX_BACKENDS).then(|| {
        not_routed(
            Reason::TooManyRoutes,
            format!("the routes go to {n} different services or ports; an HTTPRoute holds at most {MAX_BACKENDS}"),
        )
    })
}

fn gateway_ref(gateway_namespace: &str, gateway_name: &str) -> ParentReference {
    ParentReference {
        group: GATEWAY_GROUP.into(),
        kind: "Gateway".into(),
        namespace: gateway_namespace.into(),
        name: gateway_name.into(),
    }
}

/// The HTTPS listener of a Domain with TLS: port 443, its hostname, terminating TLS with its
/// certificate Secret (in the same namespace, so no ReferenceGrant is needed).
fn https_listener(domain: &Domain, secret: &str) -> Listener {
    Listener {
        name: "https".into(),
        hostname: domain.spec.hostname.clone(),
        port: 443,
        protocol: "HTTPS".into(),
        tls: ListenerTls {
            mode: "Terminate".into(),
            certificate_refs: vec![SecretRef {
                group: String::new(),
                kind: "Secret".into(),
                name: secret.into(),
            }],
        },
    }
}

/// The ListenerSet of a Domain with TLS ([`HttpsListener::ListenerSet`]): its HTTPS listener,
/// attached to the platform's Gateway.
pub fn listener_set(
    domain: &Domain,
    tenant: &str,
    owner: &OwnerReference,
    secret: &str,
    gateway_namespace: &str,
    gateway_name: &str,
) -> ListenerSet {
    ListenerSet {
        metadata: child_meta(domain, tenant, domain.name_any(), owner),
        spec: ListenerSetSpec {
            parent_ref: gateway_ref(gateway_namespace, gateway_name),
            listeners: vec![https_listener(domain, secret)],
        },
    }
}

/// The Gateway of a Domain with TLS ([`HttpsListener::Gateway`]): its HTTPS listener alone, of
/// the platform's GatewayClass. Its listener admits routes of its own namespace only (the
/// Gateway API default), and only for the Domain's hostname.
pub fn https_gateway(
    domain: &Domain,
    tenant: &str,
    owner: &OwnerReference,
    secret: &str,
    class: &str,
) -> Gateway {
    Gateway {
        metadata: child_meta(domain, tenant, domain.name_any(), owner),
        spec: GatewaySpec {
            gateway_class_name: class.into(),
            listeners: vec![https_listener(domain, secret)],
        },
    }
}

/// The parent reference of an HTTPS listener object (ListenerSet or Gateway) for a route.
pub fn parent_of<K: Resource<DynamicType = ()>>(listener: &K) -> ParentReference {
    ParentReference {
        group: GATEWAY_GROUP.into(),
        kind: K::kind(&()).into_owned(),
        namespace: listener.meta().namespace.clone().unwrap_or_default(),
        name: listener.meta().name.clone().unwrap_or_default(),
    }
}

/// The HTTPRoute of a Domain: attached to the platform's Gateway (and to the Domain's
/// HTTPS listener object when `https` names one, see [`parent_of`]), one rule per backend; for shared-tier tenants the
/// rule sets the tenant header and `assertion` (the tenant's assertion under the platform's
/// key, [`crate::pool`]), overwriting whatever the client sent, removes their `_` spellings,
/// and the backends are the pool's Services in their own namespace.
#[allow(clippy::too_many_arguments)]
pub fn http_route(
    domain: &Domain,
    tenant: &Tenant,
    routes: &[ResolvedRoute],
    owner: &OwnerReference,
    gateway_namespace: &str,
    gateway_name: &str,
    https: Option<ParentReference>,
    assertion: Option<&str>,
) -> HTTPRoute {
    let shared = tenant.spec.tier == Tier::Shared;
    let tenant_name = tenant.name_any();
    let rules = by_backend(routes)
        .into_iter()
        .map(|(backend, paths)| HTTPRouteRule {
            matches: paths
                .into_iter()
                .map(|path| HTTPRouteMatch {
                    path: PathMatch {
                        type_: "PathPrefix".into(),
                        value: path.to_string(),
                    },
                })
                .collect(),
            filters: if shared {
                vec![HTTPRouteFilter {
                    type_: "RequestHeaderModifier".into(),
                    request_header_modifier: Some(HeaderModifier {
                        set: std::iter::once(Header {
                            name: TENANT_HEADER.into(),
                            value: tenant_name.clone(),
                        })
                        .chain(assertion.map(|value| Header {
                            name: crate::pool::ASSERTION_HEADER.into(),
                            value: value.into(),
                        }))
                        .collect(),
                        remove: HEADER_VARIANTS.iter().map(|h| h.to_string()).collect(),
                    }),
                }]
            } else {
                Vec::new()
            },
            backend_refs: vec![BackendRef {
                group: String::new(),
                kind: "Service".into(),
                name: backend.service.clone(),
                namespace: shared.then(|| backend.namespace.clone()),
                port: backend.port,
            }],
        })
        .collect();
    HTTPRoute {
        metadata: child_meta(domain, &tenant_name, domain.name_any(), owner),
        spec: HTTPRouteSpec {
            parent_refs: std::iter::once(gateway_ref(gateway_namespace, gateway_name))
                .chain(https)
                .collect(),
            hostnames: vec![domain.spec.hostname.clone()],
            rules,
        },
        status: None,
    }
}

/// Name of the ReferenceGrant of a tenant (in the platform namespace).
pub fn reference_grant_name(tenant: &str) -> String {
    format!("landlord-tenant-{tenant}")
}

/// Lets the HTTPRoutes of a shared-tier tenant's namespace reach the pool Services it runs.
/// The same object for every Domain of the tenant (built from the Tenant alone), so Domains
/// never fight over it. Not owned (owners cannot be in another namespace): the Tenant's
/// cleanup deletes it.
pub fn reference_grant(tenant: &Tenant, platform_namespace: &str) -> ReferenceGrant {
    let tenant_name = tenant.name_any();
    let mut services: Vec<String> = tenant
        .spec
        .services
        .iter()
        .map(|s| s.name.clone())
        .collect();
    services.sort();
    services.dedup();
    // The schema allows 16 targets; beyond that, grant the namespace's Services as a whole.
    let to = if services.len() <= 16 {
        services
            .into_iter()
            .map(|name| GrantTo {
                group: String::new(),
                kind: "Service".into(),
                name: Some(name),
            })
            .collect()
    } else {
        vec![GrantTo {
            group: String::new(),
            kind: "Service".into(),
            name: None,
        }]
    };
    ReferenceGrant {
        metadata: ObjectMeta {
            name: Some(reference_grant_name(&tenant_name)),
            namespace: Some(platform_namespace.into()),
            labels: Some(labels::tenant_labels(&tenant_name)),
            ..Default::default()
        },
        spec: ReferenceGrantSpec {
            from: vec![GrantFrom {
                group: GATEWAY_GROUP.into(),
                kind: "HTTPRoute".into(),
                namespace: tenant.namespace_name(),
            }],
            to,
        },
    }
}

/// The Ingress of a Domain, where Gateway API is not installed (dedicated tenants only: an
/// Ingress can neither reach another namespace nor set the tenant header).
pub fn ingress(
    domain: &Domain,
    tenant: &str,
    routes: &[ResolvedRoute],
    owner: &OwnerReference,
    ingress_class: Option<&str>,
) -> Ingress {
    let paths = routes
        .iter()
        .map(|route| HTTPIngressPath {
            path: Some(route.path_prefix.clone()),
            path_type: "Prefix".into(),
            backend: IngressBackend {
                service: Some(IngressServiceBackend {
                    name: route.backend.service.clone(),
                    port: Some(ServiceBackendPort {
                        name: Some(route.backend.port_name.clone()),
                        number: None,
                    }),
                }),
                resource: None,
            },
        })
        .collect();
    Ingress {
        metadata: child_meta(domain, tenant, domain.name_any(), owner),
        spec: Some(IngressSpec {
            ingress_class_name: ingress_class.map(str::to_string),
            rules: Some(vec![IngressRule {
                host: Some(domain.spec.hostname.clone()),
                http: Some(HTTPIngressRuleValue { paths }),
            }]),
            tls: tls_secret(domain).map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![domain.spec.hostname.clone()]),
                    secret_name: Some(secret),
                }]
            }),
            default_backend: None,
        }),
        status: None,
    }
}

/// The cert-manager Certificate of a Domain with managed TLS.
pub fn certificate(
    domain: &Domain,
    tenant: &str,
    owner: &OwnerReference,
    issuer: &str,
) -> Certificate {
    Certificate {
        metadata: child_meta(domain, tenant, domain.name_any(), owner),
        spec: CertificateSpec {
            secret_name: managed_secret_name(&domain.name_any()),
            dns_names: vec![domain.spec.hostname.clone()],
            issuer_ref: IssuerRef {
                group: "cert-manager.io".into(),
                kind: "ClusterIssuer".into(),
                name: issuer.into(),
            },
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn domain(spec: serde_json::Value) -> Domain {
        serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Domain",
            "metadata": {"name": "shop", "namespace": "tenant-acme", "uid": "d-uid"},
            "spec": spec,
        }))
        .expect("domain fixture")
    }

    fn tenant(tier: &str, services: &[&str]) -> Tenant {
        let services: Vec<_> = services.iter().map(|s| json!({"name": s})).collect();
        serde_json::from_value(json!({
            "apiVersion": "landlord.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme", "uid": "t-uid"},
            "spec": {"tier": tier, "services": services},
        }))
        .expect("tenant fixture")
    }

    fn catalog() -> BTreeMap<String, CatalogService> {
        [
            json!({"metadata": {"name": "web", "namespace": "platform"}, "spec": {"image": "web:1", "path": "/", "ports": [{"name": "http", "port": 8080}]}}),
            json!({"metadata": {"name": "api", "namespace": "platform"}, "spec": {"image": "api:1", "path": "/api", "ports": [{"name": "http", "port": 9000}, {"name": "admin", "port": 9001}]}}),
            json!({"metadata": {"name": "worker", "namespace": "platform"}, "spec": {"image": "w:1", "tiers": ["dedicated"]}}),
        ]
        .into_iter()
        .map(|mut v| {
            v["apiVersion"] = json!("landlord.dev/v1alpha1");
            v["kind"] = json!("Service");
            let s: CatalogService = serde_json::from_value(v).expect("service fixture");
            (s.name_any(), s)
        })
        .collect()
    }

    fn owner() -> OwnerReference {
        owner_reference(&domain(json!({"hostname": "shop.acme.com"}))).expect("owner")
    }

    #[test]
    fn default_routes_are_the_services_paths() {
        let routes = resolve_routes(
            &domain(json!({"hostname": "shop.acme.com"})),
            &tenant("dedicated", &["web", "api", "worker"]),
            &catalog(),
        )
        .expect("routes");
        let summary: Vec<_> = routes
            .iter()
            .map(|r| {
                (
                    r.path_prefix.as_str(),
                    r.backend.service.as_str(),
                    r.backend.namespace.as_str(),
                    r.backend.port,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("/", "web", "tenant-acme", 8080),
                ("/api", "api", "tenant-acme", 9000)
            ]
        );
    }

    #[test]
    fn explicit_routes_pick_named_ports_and_shared_backends_are_the_pool() {
        let routes = resolve_routes(
            &domain(json!({"hostname": "shop.acme.com", "routes": [{"pathPrefix": "/admin", "service": "api", "port": "admin"}]})),
            &tenant("shared", &["api"]),
            &catalog(),
        )
        .expect("routes");
        assert_eq!(
            routes[0].backend,
            Backend {
                service: "api".into(),
                namespace: "platform".into(),
                port: 9001,
                port_name: "admin".into()
            }
        );
    }

    #[test]
    fn unroutable_specs_name_the_route_and_the_reason() {
        let cases = [
            (
                json!({"hostname": "h.com", "routes": [{"pathPrefix": "/", "service": "web"}]}),
                &["api"][..],
                "ServiceNotSelected",
            ),
            (
                json!({"hostname": "h.com", "routes": [{"pathPrefix": "/", "service": "ghost"}]}),
                &["ghost"][..],
                "ServiceNotFound",
            ),
            (
                json!({"hostname": "h.com", "routes": [{"pathPrefix": "/", "service": "api", "port": "grpc"}]}),
                &["api"][..],
                "UnknownPort",
            ),
            (
                json!({"hostname": "h.com", "routes": [{"pathPrefix": "/w", "service": "worker"}]}),
                &["worker"][..],
                "ServiceNotOffered",
            ),
            (json!({"hostname": "h.com"}), &["worker"][..], "NoRoutes"),
        ];
        for (spec, services, reason) in cases {
            let tier = if reason == "ServiceNotOffered" {
                "shared"
            } else {
                "dedicated"
            };
            let observed =
                resolve_routes(&domain(spec.clone()), &tenant(tier, services), &catalog())
                    .expect_err("unroutable");
            assert_eq!(observed.reason, reason, "{spec}");
            assert_eq!(observed.status, Status::False);
            assert_eq!(observed.type_, ROUTED);
        }
    }

    #[test]
    fn shared_tier_route_sets_the_tenant_header_and_targets_the_pool() {
        let d = domain(json!({"hostname": "shop.acme.com"}));
        let t = tenant("shared", &["web", "api"]);
        let routes = resolve_routes(&d, &t, &catalog()).expect("routes");
        let route = http_route(
            &d,
            &t,
            &routes,
            &owner(),
            "gw-ns",
            "public",
            None,
            Some("v1.acme-assertion"),
        );
        let value = serde_json::to_value(&route).expect("json");
        assert_eq!(value["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(value["kind"], "HTTPRoute");
        assert_eq!(value["metadata"]["namespace"], "tenant-acme");
        assert_eq!(value["metadata"]["labels"]["landlord.dev/tenant"], "acme");
        assert_eq!(value["spec"]["hostnames"], json!(["shop.acme.com"]));
        assert_eq!(
            value["spec"]["parentRefs"],
            json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "gw-ns", "name": "public"}])
        );
        let rule = &value["spec"]["rules"][1];
        assert_eq!(
            rule["matches"],
            json!([{"path": {"type": "PathPrefix", "value": "/api"}}])
        );
        assert_eq!(
            rule["filters"],
            json!([{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                "set": [
                    {"name": "X-Landlord-Tenant", "value": "acme"},
                    {"name": "X-Landlord-Tenant-Assertion", "value": "v1.acme-assertion"}],
                "remove": ["X_Landlord_Tenant", "X_Landlord_Tenant_Assertion"]}}])
        );
        assert_eq!(
            rule["backendRefs"],
            json!([{"group": "", "kind": "Service", "name": "api", "namespace": "platform", "port": 9000}])
        );
    }

    #[test]
    fn dedicated_tier_route_stays_in_the_namespace_without_header() {
        let d = domain(json!({"hostname": "shop.acme.com", "routes": [
            {"pathPrefix": "/", "service": "web"}, {"pathPrefix": "/static", "service": "web"}]}));
        let t = tenant("dedicated", &["web"]);
        let routes = resolve_routes(&d, &t, &catalog()).expect("routes");
        let value = serde_json::to_value(http_route(
            &d,
            &t,
            &routes,
            &owner(),
            "gw",
            "gw",
            None,
            None,
        ))
        .expect("json");
        let rules = value["spec"]["rules"].as_array().expect("rules");
        assert_eq!(rules.len(), 1, "one rule per backend");
        assert_eq!(rules[0]["matches"].as_array().map(Vec::len), Some(2));
        assert!(rules[0].get("filters").is_none());
        assert!(rules[0]["backendRefs"][0].get("namespace").is_none());
    }

    #[test]
    fn reference_grant_lets_the_tenant_namespace_reach_its_pool_services() {
        let value = serde_json::to_value(reference_grant(
            &tenant("shared", &["web", "api", "web"]),
            "platform",
        ))
        .expect("json");
        assert_eq!(value["metadata"]["namespace"], "platform");
        assert_eq!(value["metadata"]["name"], "landlord-tenant-acme");
        assert_eq!(
            value["spec"]["from"],
            json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "tenant-acme"}])
        );
        assert_eq!(
            value["spec"]["to"],
            json!([{"group": "", "kind": "Service", "name": "api"}, {"group": "", "kind": "Service", "name": "web"}])
        );
    }

    #[test]
    fn ingress_uses_named_ports_and_the_tls_secret() {
        let d = domain(
            json!({"hostname": "shop.acme.com", "tls": {"mode": "Secret", "secretName": "shop-cert"}}),
        );
        let t = tenant("dedicated", &["web"]);
        let routes = resolve_routes(&d, &t, &catalog()).expect("routes");
        let value = serde_json::to_value(ingress(&d, "acme", &routes, &owner(), Some("nginx")))
            .expect("json");
        assert_eq!(value["spec"]["ingressClassName"], "nginx");
        assert_eq!(value["spec"]["rules"][0]["host"], "shop.acme.com");
        assert_eq!(
            value["spec"]["rules"][0]["http"]["paths"][0],
            json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}})
        );
        assert_eq!(
            value["spec"]["tls"],
            json!([{"hosts": ["shop.acme.com"], "secretName": "shop-cert"}])
        );
    }

    #[test]
    fn managed_tls_certificate_and_urls() {
        let d = domain(json!({"hostname": "shop.acme.com"}));
        let value =
            serde_json::to_value(certificate(&d, "acme", &owner(), "letsencrypt")).expect("json");
        assert_eq!(value["apiVersion"], "cert-manager.io/v1");
        assert_eq!(value["spec"]["secretName"], "shop-tls");
        assert_eq!(value["spec"]["dnsNames"], json!(["shop.acme.com"]));
        assert_eq!(
            value["spec"]["issuerRef"],
            json!({"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "letsencrypt"})
        );
        assert_eq!(url(&d), "https://shop.acme.com");
        assert_eq!(
            url(&domain(
                json!({"hostname": "a.com", "tls": {"mode": "None"}})
            )),
            "http://a.com"
        );
        let long = "x".repeat(252);
        assert!(managed_secret_name(&long).len() <= 253);
        assert!(managed_secret_name(&long).ends_with("-tls"));
    }

    #[test]
    fn tls_domains_get_an_https_listener_the_route_attaches_to() {
        let d = domain(json!({"hostname": "shop.acme.com"}));
        let t = tenant("dedicated", &["web"]);
        let set = listener_set(&d, "acme", &owner(), "shop-tls", "gw-ns", "public");
        let value = serde_json::to_value(&set).expect("json");
        assert_eq!(value["kind"], "ListenerSet");
        assert_eq!(
            value["spec"]["parentRef"],
            json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "gw-ns", "name": "public"})
        );
        assert_eq!(
            value["spec"]["listeners"],
            json!([{"name": "https", "hostname": "shop.acme.com", "port": 443, "protocol": "HTTPS",
                    "tls": {"mode": "Terminate", "certificateRefs": [{"group": "", "kind": "Secret", "name": "shop-tls"}]}}])
        );
        let routes = resolve_routes(&d, &t, &catalog()).expect("routes");
        let route = serde_json::to_value(http_route(
            &d,
            &t,
            &routes,
            &owner(),
            "gw-ns",
            "public",
            Some(parent_of(&set)),
            None,
        ))
        .expect("json");
        assert_eq!(
            route["spec"]["parentRefs"][1],
            json!({"group": "gateway.networking.k8s.io", "kind": "ListenerSet", "namespace": "tenant-acme", "name": "shop"})
        );
    }

    #[test]
    fn without_listener_sets_a_tls_domain_gets_a_gateway_of_its_own() {
        let d = domain(json!({"hostname": "shop.acme.com"}));
        let t = tenant("shared", &["web"]);
        let gateway = https_gateway(&d, "acme", &owner(), "shop-tls", "traefik");
        let value = serde_json::to_value(&gateway).expect("json");
        assert_eq!(value["kind"], "Gateway");
        assert_eq!(value["metadata"]["namespace"], "tenant-acme");
        assert_eq!(value["spec"]["gatewayClassName"], "traefik");
        // The same listener a ListenerSet would carry; routes of other namespaces are not
        // admitted (no allowedRoutes: the Gateway API default is the Gateway's namespace).
        let set = listener_set(&d, "acme", &owner(), "shop-tls", "gw-ns", "public");
        assert_eq!(
            value["spec"]["listeners"],
            serde_json::to_value(&set.spec.listeners).expect("json")
        );
        assert!(value["spec"]["listeners"][0].get("allowedRoutes").is_none());
        let routes = resolve_routes(&d, &t, &catalog()).expect("routes");
        let route = serde_json::to_value(http_route(
            &d,
            &t,
            &routes,
            &owner(),
            "gw-ns",
            "public",
            Some(parent_of(&gateway)),
            Some("signed"),
        ))
        .expect("json");
        assert_eq!(
            route["spec"]["parentRefs"],
            json!([
                {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "gw-ns", "name": "public"},
                {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "tenant-acme", "name": "shop"}
            ])
        );
    }

    #[test]
    fn too_many_backends_is_reported() {
        let routes: Vec<_> = (0..17)
            .map(|i| ResolvedRoute {
                path_prefix: format!("/{i}"),
                backend: Backend {
                    service: format!("s{i}"),
                    namespace: "n".into(),
                    port: 80,
                    port_name: "http".into(),
                },
            })
            .collect();
        assert_eq!(
            too_many_backends(&routes).map(|o| o.reason),
            Some(Reason::TooManyRoutes)
        );
        assert!(too_many_backends(&routes[..16]).is_none());
    }
}

//! Domains end to end: the real operator binary (as the chart's ServiceAccount), the real
//! Gateway API and cert-manager schemas (installed by `e2e/cluster up` from their Go
//! modules), and a real DNS server (Knot, on loopback) holding the TXT records the tests
//! publish.
//!
//! Tests in this file share the cluster-wide Domain and Tenant watches and the Lease, so they
//! run one at a time, each with an operator of its own.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::{
    core::v1::{ConfigMap, Namespace, Secret},
    networking::v1::Ingress,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use landlord_controllers::pool;
use landlord_crds::{Domain, Tenant, conditions, tenant::Phase};
use landlord_e2e::{
    Cluster,
    audit::{self, operator_deletes},
    cluster::repo_root,
    manifests::{FIELD_MANAGER, ensure_platform_namespace, install_crds_on},
    operator,
    tenants::{self, Harness},
    unique_name, wait,
};

const LANDLORD: &str = env!("CARGO_BIN_EXE_landlord");
const TIMEOUT: Duration = Duration::from_secs(60);
const ISSUER: &str = "landlord-test-issuer";
/// A second ClusterIssuer the test platform offers (`--certificate-issuers`).
const OTHER_ISSUER: &str = "landlord-test-staging";
/// Labels the test platform reserves under its zone (`--reserved-hostnames`).
const RESERVED: &str = "login,api,admin,www";

/// The test platform the operator was configured with.
struct Platform {
    /// Hostnames under this zone are pre-verified by the operator's configuration.
    platform_zone: String,
    /// The operator's platform namespace (catalog Services, ReferenceGrants), this test's own.
    platform: String,
}

/// The operator's flags for Domains on the stack `cluster`.
fn domain_flags(cluster: &Cluster, platform_zone: &str, platform: &str) -> Vec<String> {
    vec![
        format!("--platform-namespace={platform}"),
        format!("--dns-resolver={}", cluster.dns_server()),
        format!("--pre-verified-zones={platform_zone}"),
        format!("--reserved-hostnames={RESERVED}"),
        format!("--cluster-issuer={ISSUER}"),
        format!("--certificate-issuers={OTHER_ISSUER}"),
        "--verification-interval-seconds=1".into(),
    ]
}

async fn harness() -> anyhow::Result<Harness<Platform>> {
    let setup = Harness::setup(LANDLORD).await?;
    let cluster = setup.cluster;
    let platform_zone = format!("platform.{}", cluster.dns_zone());
    // The admission policy's parameters, in step with the operator's flags (as the chart
    // renders them from one set of values).
    set_domain_policy(
        &setup.client,
        &platform_zone,
        RESERVED,
        &format!("{ISSUER},{OTHER_ISSUER}"),
    )
    .await?;
    let platform = unique_name("platform");
    ensure_platform_namespace(&setup.client, &platform).await?;
    setup
        .args(domain_flags(cluster, &platform_zone, &platform))
        .start_with(Platform {
            platform_zone,
            platform,
        })
        .await
}

/// Writes the parameters of the `landlord-domain-names` admission policy (the ConfigMap
/// `manifests/policies/domain-names.yaml` ships) as comma-separated lists.
async fn set_domain_policy(
    client: &Client,
    zones: &str,
    reserved: &str,
    issuers: &str,
) -> anyhow::Result<()> {
    let params: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "landlord-domain-policy", "namespace": operator::NAMESPACE},
        "data": {"preVerifiedZones": zones, "reservedHostnames": reserved, "certificateIssuers": issuers},
    }))?;
    Api::<ConfigMap>::namespaced(client.clone(), operator::NAMESPACE)
        .patch(
            "landlord-domain-policy",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&params),
        )
        .await?;
    Ok(())
}

/// A dry-run create of a Domain `spec` in `namespace` by `client`: the API server's answer.
async fn try_create_domain(
    client: &Client,
    namespace: &str,
    name: &str,
    spec: &serde_json::Value,
    dry_run: bool,
) -> anyhow::Result<Result<Domain, kube::Error>> {
    let domain: Domain = serde_json::from_value(serde_json::json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "Domain",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))?;
    let params = PostParams {
        dry_run,
        ..PostParams::default()
    };
    Ok(Api::<Domain>::namespaced(client.clone(), namespace)
        .create(&params, &domain)
        .await)
}

/// Waits until the admission policy refuses (`refused`) or admits a dry-run create of
/// `spec`: a new policy, or new parameters, take a moment to be in force.
async fn wait_admission(
    client: &Client,
    namespace: &str,
    spec: serde_json::Value,
    refused: bool,
) -> anyhow::Result<()> {
    wait::until(
        &format!(
            "admission {} {spec}",
            if refused { "refuses" } else { "admits" }
        ),
        TIMEOUT,
        || async {
            let answer = try_create_domain(client, namespace, "probe", &spec, true).await?;
            Ok((answer.is_err() == refused).then_some(()))
        },
    )
    .await
}

/// The API server's refusal of a request: its code and message.
fn refusal<T: std::fmt::Debug>(answer: Result<T, kube::Error>) -> anyhow::Result<(u16, String)> {
    match answer {
        Err(kube::Error::Api(status)) => Ok((status.code, status.message)),
        other => anyhow::bail!("expected a refusal, got {other:?}"),
    }
}

/// A catalog Service serving `path` on port `http` 8080.
async fn catalog_service(
    client: &Client,
    platform: &str,
    name: &str,
    path: &str,
) -> anyhow::Result<()> {
    let service: landlord_crds::Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "Service",
        "metadata": {"name": name, "namespace": platform},
        "spec": {"image": "registry.example.com/web:1", "path": path,
                 "ports": [{"name": "http", "port": 8080}]},
    }))?;
    Api::<landlord_crds::Service>::namespaced(client.clone(), platform)
        .create(&PostParams::default(), &service)
        .await?;
    Ok(())
}

/// Deletes the test's platform namespace (its catalog Services with it).
async fn delete_platform(h: &Harness<Platform>) -> anyhow::Result<()> {
    Api::<Namespace>::all(h.client.clone())
        .delete(&h.platform, &DeleteParams::default())
        .await?;
    Ok(())
}

/// Creates a Tenant running `services` and waits until it is Ready (no Domains yet).
async fn ready_tenant(client: &Client, tier: &str, services: &[&str]) -> anyhow::Result<String> {
    ready_tenant_with_admin(client, tier, services, None).await
}

/// Like `ready_tenant`, with `admin` (a user name) bound to the tenant-admin Role.
async fn ready_tenant_with_admin(
    client: &Client,
    tier: &str,
    services: &[&str],
    admin: Option<&str>,
) -> anyhow::Result<String> {
    let name = unique_name("dom");
    let services: Vec<_> = services
        .iter()
        .map(|s| serde_json::json!({"name": s}))
        .collect();
    let admins: Vec<_> = admin
        .iter()
        .map(|user| serde_json::json!({"kind": "User", "name": user}))
        .collect();
    tenants::create(
        client,
        &name,
        serde_json::json!({"tier": tier, "services": services, "admins": admins}),
    )
    .await?;
    tenants::wait_phase(client, &name, Phase::Ready, TIMEOUT).await?;
    Ok(name)
}

async fn create_domain(
    client: &Client,
    namespace: &str,
    name: &str,
    spec: serde_json::Value,
) -> anyhow::Result<()> {
    let domain: Domain = serde_json::from_value(serde_json::json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "Domain",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))?;
    Api::<Domain>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &domain)
        .await?;
    Ok(())
}

fn condition<'a>(
    domain: &'a Domain,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    domain
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, type_))
}

/// Waits until the Domain's condition `type_` has `status` (and `reason`, when given).
async fn wait_condition(
    client: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
) -> anyhow::Result<Domain> {
    let api = Api::<Domain>::namespaced(client.clone(), namespace);
    wait::until(
        &format!("Domain {namespace}/{name} {type_}={status} {reason:?}"),
        TIMEOUT,
        || async {
            let d = api.get(name).await?;
            match condition(&d, type_) {
                Some(c) if c.status == status && reason.is_none_or(|r| r == c.reason) => {
                    Ok(Some(d))
                }
                other => anyhow::bail!("{type_} is {other:?}; status {:?}", d.status),
            }
        },
    )
    .await
}

fn gateway_api(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind),
        plural,
    )
}

fn certificates() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"),
        "certificates",
    )
}

async fn get_dynamic(
    client: &Client,
    resource: &ApiResource,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Option<DynamicObject>> {
    Ok(
        Api::<DynamicObject>::namespaced_with(client.clone(), namespace, resource)
            .get_opt(name)
            .await?,
    )
}

async fn tenant_status(client: &Client, name: &str) -> anyhow::Result<landlord_crds::TenantStatus> {
    Ok(Api::<Tenant>::all(client.clone())
        .get(name)
        .await?
        .status
        .unwrap_or_default())
}

#[tokio::test]
async fn domain_is_routed_only_once_its_txt_record_exists() -> anyhow::Result<()> {
    let h = harness().await?;
    let service = unique_name("web");
    catalog_service(&h.client, &h.platform, &service, "/").await?;
    let tenant = ready_tenant(&h.client, "dedicated", &[&service]).await?;
    let ns = format!("tenant-{tenant}");
    let hostname = format!("{}.{}", unique_name("shop"), h.cluster.dns_zone());
    create_domain(
        &h.client,
        &ns,
        "shop",
        serde_json::json!({"hostname": hostname, "tls": {"mode": "None"}}),
    )
    .await?;

    // Pending: the status says which record to create; nothing is routed.
    let pending = wait_condition(
        &h.client,
        &ns,
        "shop",
        "Verified",
        "False",
        Some("RecordNotFound"),
    )
    .await?;
    let record = pending
        .status
        .as_ref()
        .and_then(|s| s.verification.clone())
        .context("no status.verification")?;
    assert_eq!(record.record_type, "TXT");
    assert_eq!(
        record.record_name,
        format!("_landlord-challenge.{hostname}")
    );
    assert!(
        record
            .record_value
            .starts_with("landlord-domain-verification=")
    );
    assert!(
        condition(&pending, "Verified").is_some_and(|c| c.message.contains(&record.record_value)),
        "the Verified message names the value to publish"
    );
    assert_eq!(
        condition(&pending, "Routed").map(|c| c.reason.as_str()),
        Some("NotVerified")
    );
    assert_eq!(
        condition(&pending, "Ready").map(|c| c.status.as_str()),
        Some("False")
    );
    let routes = gateway_api("HTTPRoute", "httproutes");
    assert!(
        get_dynamic(&h.client, &routes, &ns, "shop")
            .await?
            .is_none(),
        "routed before verification"
    );
    let tenant_pending = wait::until("Tenant DomainsReady False", TIMEOUT, || async {
        let s = tenant_status(&h.client, &tenant).await?;
        Ok(conditions::find(&s.conditions, "DomainsReady")
            .filter(|c| c.status == "False" && c.reason == "DomainNotReady")
            .map(|_| s.clone()))
    })
    .await?;
    assert!(tenant_pending.endpoints.is_empty());
    // A wrong value does not verify.
    h.cluster
        .set_txt(&record.record_name, "landlord-domain-verification=0000")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = Api::<Domain>::namespaced(h.client.clone(), &ns)
        .get("shop")
        .await?;
    assert_eq!(
        condition(&still, "Verified").map(|c| c.status.as_str()),
        Some("False")
    );
    assert!(
        get_dynamic(&h.client, &routes, &ns, "shop")
            .await?
            .is_none()
    );

    // The record is published: verified, routed through the real HTTPRoute schema, ready.
    h.cluster
        .set_txt(&record.record_name, &record.record_value)?;
    let ready = wait_condition(&h.client, &ns, "shop", "Ready", "True", None).await?;
    assert_eq!(
        condition(&ready, "Verified").map(|c| c.reason.as_str()),
        Some("TxtRecordFound")
    );
    assert_eq!(
        condition(&ready, "Conflict").map(|c| c.status.as_str()),
        Some("False")
    );
    assert_eq!(
        condition(&ready, "Routed").map(|c| c.reason.as_str()),
        Some("HTTPRouteApplied")
    );
    assert_eq!(
        condition(&ready, "CertificateReady").map(|c| c.reason.as_str()),
        Some("TlsDisabled")
    );
    let status = ready.status.clone().context("status")?;
    assert_eq!(status.tenant.as_deref(), Some(tenant.as_str()));
    assert_eq!(status.url, Some(format!("http://{hostname}")));
    let route = get_dynamic(&h.client, &routes, &ns, "shop")
        .await?
        .context("no HTTPRoute")?;
    assert_eq!(
        route.data["spec"]["hostnames"],
        serde_json::json!([hostname])
    );
    assert_eq!(
        route.data["spec"]["parentRefs"][0]["name"], "landlord",
        "attached to the configured Gateway"
    );
    let backend = &route.data["spec"]["rules"][0]["backendRefs"][0];
    assert_eq!(
        (backend["name"].as_str(), backend["port"].as_i64()),
        (Some(service.as_str()), Some(8080))
    );
    assert!(
        backend.get("namespace").is_none(),
        "dedicated: the tenant's own Service"
    );
    assert!(
        route.data["spec"]["rules"][0].get("filters").is_none(),
        "no tenant header for dedicated"
    );
    assert_eq!(route.labels().get("landlord.dev/tenant"), Some(&tenant));

    let tenant_ready = wait::until("Tenant endpoints", TIMEOUT, || async {
        let s = tenant_status(&h.client, &tenant).await?;
        Ok((s.phase == Some(Phase::Ready) && !s.endpoints.is_empty()).then_some(s))
    })
    .await?;
    assert_eq!(tenant_ready.endpoints, [format!("http://{hostname}")]);
    assert!(conditions::is_true(
        &tenant_ready.conditions,
        "DomainsReady"
    ));

    // Verification sticks: removing the record later does not unroute the Domain.
    h.cluster
        .unset_txt(&record.record_name, &record.record_value)?;
    h.cluster
        .unset_txt(&record.record_name, "landlord-domain-verification=0000")?;
    // An unchanged, ready Domain causes no write, even when reconciled again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes_before = h.operator.metric("landlord_api_writes_total").await?;
    touch_causes_no_writes(
        &h,
        &ns,
        "shop",
        writes_before,
        "a ready Domain that did not change caused writes",
    )
    .await?;
    let again = Api::<Domain>::namespaced(h.client.clone(), &ns)
        .get("shop")
        .await?;
    assert_eq!(
        condition(&again, "Ready").map(|c| c.status.as_str()),
        Some("True")
    );

    // Play the Gateway's controller: its refusal of the route reaches the Domain and its
    // Tenant, naming the Gateway and the controller's reason; its acceptance makes the
    // Domain Ready again, naming the controller.
    let gateway = format!(
        "Gateway {}/landlord",
        route.data["spec"]["parentRefs"][0]["namespace"]
            .as_str()
            .context("parentRefs[0].namespace")?
    );
    let report = |accepted: &str, reason: &str, message: &str| {
        let condition = |type_: &str, status: &str, reason: &str, message: &str| {
            serde_json::json!({"type": type_, "status": status, "reason": reason,
                               "message": message, "observedGeneration": route.metadata.generation,
                               "lastTransitionTime": "2026-01-01T00:00:00Z"})
        };
        serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "status": {"parents": [{
                "parentRef": route.data["spec"]["parentRefs"][0].clone(),
                "controllerName": "example.com/gateway-controller",
                "conditions": [
                    condition("Accepted", accepted, reason, message),
                    condition("ResolvedRefs", "True", "ResolvedRefs", "every backend resolves"),
                ],
            }]}
        })
    };
    let set_report = |status: serde_json::Value| {
        let routes = Api::<DynamicObject>::namespaced_with(h.client.clone(), &ns, &routes);
        async move {
            routes
                .patch_status(
                    "shop",
                    &PatchParams::apply("gateway-controller-test").force(),
                    &Patch::Apply(&status),
                )
                .await
        }
    };
    set_report(report(
        "False",
        "NotAllowedByListeners",
        "no listener of the Gateway allows routes from this namespace",
    ))
    .await?;
    let refused = wait_condition(
        &h.client,
        &ns,
        "shop",
        "Routed",
        "False",
        Some("RouteNotAccepted"),
    )
    .await?;
    let message = condition(&refused, "Routed")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(&gateway)
            && message.contains("NotAllowedByListeners")
            && message.contains("no listener of the Gateway allows routes"),
        "{message}"
    );
    assert_eq!(
        condition(&refused, "Ready").map(|c| c.reason.as_str()),
        Some("RouteNotAccepted")
    );
    wait::until(
        "Tenant DomainsReady False (route refused)",
        TIMEOUT,
        || async {
            let s = tenant_status(&h.client, &tenant).await?;
            Ok(conditions::find(&s.conditions, "DomainsReady")
                .filter(|c| c.status == "False")
                .map(|_| ()))
        },
    )
    .await?;
    set_report(report("True", "Accepted", "the route is accepted")).await?;
    let accepted = wait_condition(
        &h.client,
        &ns,
        "shop",
        "Routed",
        "True",
        Some("HTTPRouteAccepted"),
    )
    .await?;
    assert!(
        condition(&accepted, "Routed")
            .is_some_and(|c| c.message.contains("example.com/gateway-controller")),
        "{:?}",
        condition(&accepted, "Routed")
    );
    wait_condition(&h.client, &ns, "shop", "Ready", "True", None).await?;

    h.delete_tenant(&tenant).await?;
    delete_platform(&h).await
}

#[tokio::test]
async fn shared_tier_route_sets_the_tenant_header_and_managed_tls_gets_a_certificate()
-> anyhow::Result<()> {
    let h = harness().await?;
    let service = unique_name("api");
    catalog_service(&h.client, &h.platform, &service, "/api").await?;
    let tenant = ready_tenant(&h.client, "shared", &[&service]).await?;
    let ns = format!("tenant-{tenant}");
    // The tenant's own name in the pre-verified zone: no TXT record needed.
    let hostname = format!("{tenant}.{}", h.platform_zone);
    create_domain(
        &h.client,
        &ns,
        "app",
        serde_json::json!({"hostname": hostname}),
    )
    .await?;

    let pending = wait_condition(
        &h.client,
        &ns,
        "app",
        "Routed",
        "True",
        Some("HTTPRouteApplied"),
    )
    .await?;
    assert_eq!(
        condition(&pending, "Verified").map(|c| c.reason.as_str()),
        Some("PreVerifiedZone")
    );
    assert_eq!(
        condition(&pending, "CertificateReady").map(|c| c.reason.as_str()),
        Some("CertificatePending")
    );
    assert_eq!(
        condition(&pending, "Ready").map(|c| c.reason.as_str()),
        Some("CertificatePending")
    );

    let route = get_dynamic(
        &h.client,
        &gateway_api("HTTPRoute", "httproutes"),
        &ns,
        "app",
    )
    .await?
    .context("no HTTPRoute")?;
    let rule = &route.data["spec"]["rules"][0];
    assert_eq!(
        rule["matches"][0]["path"],
        serde_json::json!({"type": "PathPrefix", "value": "/api"})
    );
    // The tenant header, its assertion under the platform's key (Secret landlord-tenant-keys,
    // which the operator made in the platform namespace), and no `_` spellings of either.
    let secrets = Api::<Secret>::namespaced(h.client.clone(), &h.platform);
    let primary = |secret: &Secret| -> anyhow::Result<Vec<u8>> {
        Ok(secret
            .data
            .as_ref()
            .and_then(|d| d.get(pool::PRIMARY))
            .context("no primary key")?
            .0
            .clone())
    };
    let key = primary(&secrets.get(pool::KEYS_SECRET).await?)?;
    let asserted = tenant_runtime::assertion::assertion(&key, &tenant);
    assert_eq!(
        rule["filters"][0]["requestHeaderModifier"],
        serde_json::json!({
            "set": [
                {"name": "X-Landlord-Tenant", "value": tenant},
                {"name": "X-Landlord-Tenant-Assertion", "value": asserted}],
            "remove": ["X_Landlord_Tenant", "X_Landlord_Tenant_Assertion"]})
    );
    // What the pool checks: this tenant's, and nobody else's.
    let keys = tenant_runtime::TenantKeys::new(key.clone())?;
    assert!(keys.verify(&tenant_runtime::Tenant::parse(&tenant)?, &asserted));
    assert!(!keys.verify(&tenant_runtime::Tenant::parse("acme")?, &asserted));
    assert_eq!(
        rule["backendRefs"][0]["namespace"],
        h.platform.as_str(),
        "the pool's Service"
    );
    let grant = get_dynamic(
        &h.client,
        &gateway_api("ReferenceGrant", "referencegrants"),
        &h.platform,
        &format!("landlord-tenant-{tenant}"),
    )
    .await?
    .context("no ReferenceGrant for the cross-namespace backend")?;
    assert_eq!(grant.data["spec"]["from"][0]["namespace"], ns.as_str());
    assert_eq!(grant.data["spec"]["to"][0]["name"], service.as_str());

    // HTTPS: the Domain's own listener on the Gateway, with the certificate's Secret.
    let listeners = get_dynamic(
        &h.client,
        &gateway_api("ListenerSet", "listenersets"),
        &ns,
        "app",
    )
    .await?
    .context("no ListenerSet")?;
    let listener = &listeners.data["spec"]["listeners"][0];
    assert_eq!(listener["hostname"], hostname.as_str());
    assert_eq!(listener["protocol"], "HTTPS");
    assert_eq!(listener["tls"]["certificateRefs"][0]["name"], "app-tls");
    assert_eq!(
        route.data["spec"]["parentRefs"][1],
        serde_json::json!({"group": "gateway.networking.k8s.io", "kind": "ListenerSet", "namespace": ns, "name": "app"})
    );
    // The Certificate passed the real cert-manager schema.
    let certificates = certificates();
    let certificate = get_dynamic(&h.client, &certificates, &ns, "app")
        .await?
        .context("no Certificate")?;
    assert_eq!(
        certificate.data["spec"]["dnsNames"],
        serde_json::json!([hostname])
    );
    assert_eq!(certificate.data["spec"]["secretName"], "app-tls");
    assert_eq!(certificate.data["spec"]["issuerRef"]["name"], ISSUER);
    assert_eq!(
        certificate.data["spec"]["issuerRef"]["kind"],
        "ClusterIssuer"
    );

    // Play cert-manager: the Certificate becomes Ready, and so does the Domain.
    let status = serde_json::json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                                    "message": "Certificate is up to date and has not expired",
                                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    });
    Api::<DynamicObject>::namespaced_with(h.client.clone(), &ns, &certificates)
        .patch_status(
            "app",
            &PatchParams::apply("cert-manager-test").force(),
            &Patch::Apply(&status),
        )
        .await?;
    let ready = wait_condition(&h.client, &ns, "app", "Ready", "True", None).await?;
    assert_eq!(
        condition(&ready, "CertificateReady").map(|c| c.reason.as_str()),
        Some("CertificateIssued")
    );
    let endpoints = wait::until("Tenant endpoints", TIMEOUT, || async {
        let s = tenant_status(&h.client, &tenant).await?;
        Ok((!s.endpoints.is_empty()).then_some(s.endpoints))
    })
    .await?;
    assert_eq!(endpoints, [format!("https://{hostname}")]);

    // A rotation: the platform admin makes a new primary key and keeps the old one as the
    // secondary (the pool accepts both). The route is signed with the new key at once.
    let rotated = "a-rotated-tenant-key-0123456789abcdefghij";
    let patch = serde_json::json!({"stringData": {
        pool::PRIMARY: rotated,
        pool::SECONDARY: String::from_utf8(key)?,
    }});
    secrets
        .patch(
            pool::KEYS_SECRET,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    let resigned = tenant_runtime::assertion::assertion(rotated.as_bytes(), &tenant);
    wait::until("the route signed with the new key", TIMEOUT, || async {
        let route = get_dynamic(
            &h.client,
            &gateway_api("HTTPRoute", "httproutes"),
            &ns,
            "app",
        )
        .await?
        .context("no HTTPRoute")?;
        let set = &route.data["spec"]["rules"][0]["filters"][0]["requestHeaderModifier"]["set"];
        Ok((set[1]["value"] == resigned.as_str()).then_some(()))
    })
    .await?;

    h.delete_tenant(&tenant).await?;
    delete_platform(&h).await
}

#[tokio::test]
async fn a_second_claim_gets_conflict_until_the_holder_is_deleted() -> anyhow::Result<()> {
    let h = harness().await?;
    let service = unique_name("web");
    catalog_service(&h.client, &h.platform, &service, "/").await?;
    let first = ready_tenant(&h.client, "dedicated", &[&service]).await?;
    let second = ready_tenant(&h.client, "dedicated", &[&service]).await?;
    let (ns1, ns2) = (format!("tenant-{first}"), format!("tenant-{second}"));
    // Outside the platform zone (where no two tenants may claim one name): both verify
    // by TXT record.
    let hostname = format!("{}.{}", unique_name("contested"), h.cluster.dns_zone());
    let spec = serde_json::json!({"hostname": hostname, "tls": {"mode": "None"}});
    create_domain(&h.client, &ns1, "www", spec.clone()).await?;
    publish_record(&h, &ns1, "www").await?;
    wait_condition(&h.client, &ns1, "www", "Ready", "True", None).await?;
    create_domain(&h.client, &ns2, "www", spec).await?;
    publish_record(&h, &ns2, "www").await?;

    let loser = wait_condition(
        &h.client,
        &ns2,
        "www",
        "Conflict",
        "True",
        Some("HostnameClaimed"),
    )
    .await?;
    assert!(
        condition(&loser, "Conflict").is_some_and(|c| c.message.contains(&format!("{ns1}/www"))),
        "the Conflict message names the holder"
    );
    assert_eq!(
        condition(&loser, "Ready").map(|c| c.status.as_str()),
        Some("False")
    );
    let routes = gateway_api("HTTPRoute", "httproutes");
    assert!(
        get_dynamic(&h.client, &routes, &ns2, "www")
            .await?
            .is_none(),
        "the loser is routed"
    );
    // The decision is stable: the holder stays the holder.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let holder = Api::<Domain>::namespaced(h.client.clone(), &ns1)
        .get("www")
        .await?;
    assert_eq!(
        condition(&holder, "Conflict").map(|c| c.status.as_str()),
        Some("False")
    );
    assert!(
        get_dynamic(&h.client, &routes, &ns1, "www")
            .await?
            .is_some()
    );
    let second_status = tenant_status(&h.client, &second).await?;
    assert_eq!(
        conditions::find(&second_status.conditions, "DomainsReady").map(|c| c.reason.as_str()),
        Some("DomainNotReady")
    );

    // The holder goes: the other claim takes over.
    Api::<Domain>::namespaced(h.client.clone(), &ns1)
        .delete("www", &DeleteParams::default())
        .await?;
    let winner = wait_condition(&h.client, &ns2, "www", "Ready", "True", None).await?;
    assert_eq!(
        condition(&winner, "Conflict").map(|c| c.status.as_str()),
        Some("False")
    );
    let route = get_dynamic(&h.client, &routes, &ns2, "www")
        .await?
        .context("no HTTPRoute for the new holder")?;
    assert_eq!(
        route.data["spec"]["hostnames"],
        serde_json::json!([hostname])
    );

    h.delete_tenant(&first).await?;
    h.delete_tenant(&second).await?;
    delete_platform(&h).await
}

#[tokio::test]
async fn deleting_a_tenant_removes_its_routes_before_its_workloads_and_namespace()
-> anyhow::Result<()> {
    let h = harness().await?;
    let service = unique_name("web");
    catalog_service(&h.client, &h.platform, &service, "/").await?;
    // Shared: the route crosses into the platform namespace through a ReferenceGrant.
    // Dedicated: the route's backends are the tenant's own Deployments.
    deletion_order(&h, "shared", &service).await?;
    deletion_order(&h, "dedicated", &service).await?;
    delete_platform(&h).await
}

/// Publishes the TXT record a Domain's status asks for.
async fn publish_record(h: &Harness<Platform>, namespace: &str, name: &str) -> anyhow::Result<()> {
    let pending = wait_condition(
        &h.client,
        namespace,
        name,
        "Verified",
        "False",
        Some("RecordNotFound"),
    )
    .await?;
    let record = pending
        .status
        .and_then(|s| s.verification)
        .context("no status.verification")?;
    h.cluster.set_txt(&record.record_name, &record.record_value)
}

async fn deletion_order(h: &Harness<Platform>, tier: &str, service: &str) -> anyhow::Result<()> {
    let tenant = ready_tenant(&h.client, tier, &[service]).await?;
    let ns = format!("tenant-{tenant}");
    // A name below the tenant's own in the pre-verified zone.
    let hostname = format!("bye.{tenant}.{}", h.platform_zone);
    create_domain(
        &h.client,
        &ns,
        "bye",
        serde_json::json!({"hostname": hostname, "tls": {"mode": "None"}}),
    )
    .await?;
    wait_condition(&h.client, &ns, "bye", "Ready", "True", None).await?;
    let grant_name = format!("landlord-tenant-{tenant}");
    let grants = gateway_api("ReferenceGrant", "referencegrants");
    let shared = tier == "shared";
    assert_eq!(
        get_dynamic(&h.client, &grants, &h.platform, &grant_name)
            .await?
            .is_some(),
        shared,
        "a ReferenceGrant exists exactly for the shared tier"
    );

    let mark = audit::end(h.cluster)?;
    h.delete_tenant(&tenant).await?;
    assert!(
        get_dynamic(&h.client, &grants, &h.platform, &grant_name)
            .await?
            .is_none(),
        "the ReferenceGrant outlived its tenant"
    );
    let deletes = operator_deletes(h.cluster, mark)?;
    let position = |what: &str| deletes.iter().position(|d| d == what);
    let route = position(&format!("httproutes {ns}/bye"))
        .with_context(|| format!("the operator never deleted the HTTPRoute: {deletes:#?}"))?;
    let namespace = position(&format!("namespaces {ns}/{ns}"))
        .with_context(|| format!("the operator never deleted the namespace: {deletes:#?}"))?;
    // The namespace (and with it everything in it) goes only after the routes.
    assert!(route < namespace, "deletion order: {deletes:#?}");
    if shared {
        let grant = position(&format!("referencegrants {}/{grant_name}", h.platform))
            .with_context(|| {
                format!("the operator never deleted the ReferenceGrant: {deletes:#?}")
            })?;
        assert!(grant < namespace, "deletion order: {deletes:#?}");
    } else {
        // No traffic is routed to a workload that is being removed.
        let deployment = position(&format!("deployments {ns}/{service}")).with_context(|| {
            format!("the operator never deleted the tenant's Deployment: {deletes:#?}")
        })?;
        assert!(
            route < deployment && deployment < namespace,
            "deletion order: {deletes:#?}"
        );
    }
    Ok(())
}

/// On a stack without Gateway API and cert-manager: managed TLS says cert-manager is
/// missing, dedicated Domains get an Ingress, shared ones say they need Gateway API.
#[tokio::test]
async fn without_gateway_api_and_cert_manager() -> anyhow::Result<()> {
    let _serial = tenants::serial().await;
    let cluster = Cluster::up_in_with(
        &repo_root()
            .join("target")
            .join(unique_name("landlord-dev-noupstream")),
        &[("LANDLORD_DEV_UPSTREAM_CRDS", "none")],
    )?;
    let result = without_upstream_scenario(&cluster).await;
    cluster.clean()?;
    result
}

async fn without_upstream_scenario(cluster: &Cluster) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let zone = format!("platform.{}", cluster.dns_zone());
    install_crds_on(&client).await?;
    let platform = unique_name("platform");
    ensure_platform_namespace(&client, &platform).await?;
    let _operator = operator::start_as_chart(
        cluster,
        &client,
        LANDLORD.as_ref(),
        &domain_flags(cluster, &zone, &platform),
    )
    .await?;
    let service = unique_name("web");
    catalog_service(&client, &platform, &service, "/").await?;

    let dedicated = ready_tenant(&client, "dedicated", &[&service]).await?;
    let ns = format!("tenant-{dedicated}");
    let hostname = format!("plain.{dedicated}.{zone}");
    create_domain(
        &client,
        &ns,
        "plain",
        serde_json::json!({"hostname": hostname}),
    )
    .await?;
    let domain = wait_condition(
        &client,
        &ns,
        "plain",
        "Routed",
        "True",
        Some("IngressApplied"),
    )
    .await?;
    let certificate = condition(&domain, "CertificateReady").context("no CertificateReady")?;
    assert_eq!(
        (certificate.status.as_str(), certificate.reason.as_str()),
        ("False", "CertManagerNotInstalled")
    );
    assert!(
        certificate.message.contains("certificates.cert-manager.io"),
        "{}",
        certificate.message
    );
    assert_eq!(
        condition(&domain, "Ready").map(|c| c.reason.as_str()),
        Some("CertManagerNotInstalled")
    );
    let ingress = Api::<Ingress>::namespaced(client.clone(), &ns)
        .get("plain")
        .await?;
    let spec = ingress.spec.context("Ingress without spec")?;
    let rule = &spec.rules.unwrap_or_default()[0];
    assert_eq!(rule.host.as_deref(), Some(hostname.as_str()));
    let path = &rule.http.as_ref().context("no http")?.paths[0];
    assert_eq!(
        path.backend.service.as_ref().map(|s| s.name.as_str()),
        Some(service.as_str())
    );
    assert_eq!(
        spec.tls.unwrap_or_default()[0].secret_name.as_deref(),
        Some("plain-tls")
    );

    let shared = ready_tenant(&client, "shared", &[&service]).await?;
    let shared_ns = format!("tenant-{shared}");
    create_domain(
        &client,
        &shared_ns,
        "pool",
        serde_json::json!({"hostname": format!("{shared}.{zone}"), "tls": {"mode": "None"}}),
    )
    .await?;
    wait_condition(
        &client,
        &shared_ns,
        "pool",
        "Routed",
        "False",
        Some("GatewayApiRequired"),
    )
    .await?;
    assert!(
        Api::<Ingress>::namespaced(client.clone(), &shared_ns)
            .get_opt("pool")
            .await?
            .is_none()
    );
    Ok(())
}

/// Touches the labels of Domain `namespace/name` (no spec change), waits until the operator
/// has reconciled since, and asserts its write count is still `writes_before` (`message`
/// when not).
async fn touch_causes_no_writes(
    h: &Harness<Platform>,
    namespace: &str,
    name: &str,
    writes_before: f64,
    message: &str,
) -> anyhow::Result<()> {
    let reconciles_before = h.reconciles().await?;
    Api::<Domain>::namespaced(h.client.clone(), namespace)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await?;
    h.wait_reconcile("the touched Domain reconciled", reconciles_before)
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.operator.metric("landlord_api_writes_total").await?,
        writes_before,
        "{message}"
    );
    Ok(())
}

/// The operator's write count once it has stopped moving (the Tenants' statuses follow
/// their Domains' for a moment).
async fn settled_writes(h: &Harness<Platform>) -> anyhow::Result<f64> {
    let mut last = h.operator.metric("landlord_api_writes_total").await?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = h.operator.metric("landlord_api_writes_total").await?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    anyhow::bail!("the operator kept writing for a minute ({last} writes)")
}

/// The children a Domain would have: none may exist for a refused one.
async fn assert_no_children(
    h: &Harness<Platform>,
    namespace: &str,
    name: &str,
) -> anyhow::Result<()> {
    for (resource, kind) in [
        (gateway_api("HTTPRoute", "httproutes"), "HTTPRoute"),
        (gateway_api("ListenerSet", "listenersets"), "ListenerSet"),
        (certificates(), "Certificate"),
    ] {
        assert!(
            get_dynamic(&h.client, &resource, namespace, name)
                .await?
                .is_none(),
            "a refused Domain {namespace}/{name} got a {kind}"
        );
    }
    Ok(())
}

/// H4: in the platform's pre-verified zone a tenant admin holds only its own name and the
/// names below it. Reserved names, another tenant's name and unbound names are refused at
/// apply time, with the tenant's own credentials; Domains that got past admission (made
/// before the policy or its parameters) are refused by the operator, get no route and no
/// certificate, and lose a verification they had.
#[tokio::test]
async fn a_tenant_holds_only_its_own_names_in_the_platform_zone() -> anyhow::Result<()> {
    let h = harness().await?;
    let service = unique_name("web");
    catalog_service(&h.client, &h.platform, &service, "/").await?;
    let tenant = ready_tenant_with_admin(
        &h.client,
        "dedicated",
        &[&service],
        Some(h.cluster.user_name()),
    )
    .await?;
    let other = ready_tenant(&h.client, "dedicated", &[&service]).await?;
    let (ns, other_ns) = (format!("tenant-{tenant}"), format!("tenant-{other}"));
    let zone = &h.platform_zone;
    let user = h.cluster.user_client().await?;
    let spec = |hostname: &str| serde_json::json!({"hostname": hostname});
    // Each attack: the Domain's name, its hostname, and the refusal's reason.
    let attacks = [
        ("login", format!("login.{zone}"), "HostnameReserved"),
        ("sso", format!("sso.login.{zone}"), "HostnameReserved"),
        ("admin", format!("admin.{zone}"), "HostnameReserved"),
        ("theirs", format!("{other}.{zone}"), "HostnameNotBound"),
        (
            "below-theirs",
            format!("shop.{other}.{zone}"),
            "HostnameNotBound",
        ),
        ("apex", zone.clone(), "HostnameNotBound"),
        (
            "lookalike",
            format!("{tenant}-shop.{zone}"),
            "HostnameNotBound",
        ),
    ];

    // At apply time, as the tenant admin: refused, naming the field.
    wait_admission(&user, &ns, spec(&attacks[0].1), true).await?;
    for (name, hostname, reason) in &attacks {
        let (code, message) =
            refusal(try_create_domain(&user, &ns, name, &spec(hostname), false).await?)?;
        assert_eq!(code, 403, "{hostname}: {message}");
        assert!(
            message.contains(&format!("spec.hostname {hostname} is")),
            "{hostname}: the refusal does not name the field: {message}"
        );
        let why = if *reason == "HostnameReserved" {
            "reserved by the platform".to_string()
        } else {
            format!("where Tenant {tenant} may hold only {tenant}.{zone}")
        };
        assert!(message.contains(&why), "{hostname}: {message}");
    }
    // Its own name, and names below it (a reserved label included), are the tenant's at once.
    let own = [
        ("own", format!("{tenant}.{zone}")),
        ("own-www", format!("www.{tenant}.{zone}")),
    ];
    for (name, hostname) in &own {
        try_create_domain(
            &user,
            &ns,
            name,
            &serde_json::json!({"hostname": hostname, "tls": {"mode": "None"}}),
            false,
        )
        .await?
        .with_context(|| format!("the tenant admin may claim {hostname}"))?;
    }
    for (name, _) in &own {
        let ready = wait_condition(&h.client, &ns, name, "Ready", "True", None).await?;
        assert_eq!(
            condition(&ready, "Verified").map(|c| c.reason.as_str()),
            Some("PreVerifiedZone")
        );
    }

    // Domains that got past admission: the policy's parameters were not in step when they
    // were created (or the policy came later). The operator refuses them all the same.
    set_domain_policy(&h.client, "", "", &format!("{ISSUER},{OTHER_ISSUER}")).await?;
    wait_admission(&user, &ns, spec(&attacks[0].1), false).await?;
    for (name, hostname, _) in &attacks {
        try_create_domain(&user, &ns, name, &spec(hostname), false)
            .await?
            .with_context(|| format!("creating {hostname} without the policy's parameters"))?;
    }
    set_domain_policy(
        &h.client,
        zone,
        RESERVED,
        &format!("{ISSUER},{OTHER_ISSUER}"),
    )
    .await?;
    for (name, hostname, reason) in &attacks {
        let refused =
            wait_condition(&h.client, &ns, name, "Verified", "False", Some(reason)).await?;
        let verified = condition(&refused, "Verified").context("no Verified")?;
        assert!(
            verified
                .message
                .starts_with(&format!("spec.hostname {hostname} ")),
            "{}",
            verified.message
        );
        assert_eq!(
            condition(&refused, "Routed").map(|c| c.reason.as_str()),
            Some("NotVerified")
        );
        assert_eq!(
            condition(&refused, "Ready").map(|c| (c.status.as_str(), c.reason.as_str())),
            Some(("False", *reason))
        );
        assert_no_children(&h, &ns, name).await?;
    }
    // The victim claims its own name: the attacker's earlier claim is no standby.
    create_domain(
        &h.client,
        &other_ns,
        "mine",
        serde_json::json!({"hostname": format!("{other}.{zone}"), "tls": {"mode": "None"}}),
    )
    .await?;
    let mine = wait_condition(&h.client, &other_ns, "mine", "Ready", "True", None).await?;
    assert_eq!(
        condition(&mine, "Conflict").map(|c| c.status.as_str()),
        Some("False")
    );

    // A verification left from before (an older operator pre-verified any name in the
    // zone) does not stick: the refusal wins, and nothing is routed.
    let forged = serde_json::json!({"status": {"conditions": [{
        "type": "Verified", "status": "True", "reason": "PreVerifiedZone",
        "message": "an older operator said so", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    Api::<Domain>::namespaced(h.client.clone(), &ns)
        .patch_status("login", &PatchParams::default(), &Patch::Merge(&forged))
        .await?;
    wait_condition(
        &h.client,
        &ns,
        "login",
        "Verified",
        "False",
        Some("HostnameReserved"),
    )
    .await?;
    assert_no_children(&h, &ns, "login").await?;

    // Settled: refused Domains cause no write when reconciled again.
    let writes_before = settled_writes(&h).await?;
    touch_causes_no_writes(
        &h,
        &ns,
        "theirs",
        writes_before,
        "a refused Domain that did not change caused writes",
    )
    .await?;

    h.delete_tenant(&tenant).await?;
    h.delete_tenant(&other).await?;
    delete_platform(&h).await
}

/// M4: a Domain names only a ClusterIssuer the platform offers. Any other is refused at
/// apply time (with the tenant's own credentials, on create and on change); one that got
/// past admission gets `IssuerNotOffered` and no Certificate.
#[tokio::test]
async fn only_issuers_the_platform_offers_sign_a_tenants_certificate() -> anyhow::Result<()> {
    let h = harness().await?;
    let service = unique_name("web");
    catalog_service(&h.client, &h.platform, &service, "/").await?;
    let tenant = ready_tenant_with_admin(
        &h.client,
        "dedicated",
        &[&service],
        Some(h.cluster.user_name()),
    )
    .await?;
    let ns = format!("tenant-{tenant}");
    let zone = &h.platform_zone;
    let user = h.cluster.user_client().await?;
    let with_issuer = |hostname: String, issuer: &str| serde_json::json!({"hostname": hostname, "tls": {"mode": "Managed", "issuer": issuer}});
    let mesh = with_issuer(format!("mesh.{tenant}.{zone}"), "internal-mesh-ca");

    wait_admission(&user, &ns, mesh.clone(), true).await?;
    let (code, message) = refusal(try_create_domain(&user, &ns, "mesh", &mesh, false).await?)?;
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("spec.tls.issuer internal-mesh-ca is not an issuer this platform offers")
            && message.contains(&format!("use one of {ISSUER}, {OTHER_ISSUER}")),
        "{message}"
    );

    // An issuer the platform offers signs the tenant's certificate.
    try_create_domain(
        &user,
        &ns,
        "shop",
        &with_issuer(format!("{tenant}.{zone}"), OTHER_ISSUER),
        false,
    )
    .await?
    .context("the tenant admin names an offered issuer")?;
    wait_condition(
        &h.client,
        &ns,
        "shop",
        "CertificateReady",
        "False",
        Some("CertificatePending"),
    )
    .await?;
    let certificate = get_dynamic(&h.client, &certificates(), &ns, "shop")
        .await?
        .context("no Certificate for an offered issuer")?;
    assert_eq!(certificate.data["spec"]["issuerRef"]["name"], OTHER_ISSUER);
    // Switching it to an issuer not offered is refused too.
    let switch = serde_json::json!({"spec": {"tls": {"issuer": "internal-mesh-ca"}}});
    let (code, message) = refusal(
        Api::<Domain>::namespaced(user.clone(), &ns)
            .patch("shop", &PatchParams::default(), &Patch::Merge(&switch))
            .await,
    )?;
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("spec.tls.issuer internal-mesh-ca"),
        "{message}"
    );

    // Past admission (parameters out of step with the operator): the operator refuses it.
    set_domain_policy(
        &h.client,
        zone,
        RESERVED,
        &format!("{ISSUER},{OTHER_ISSUER},internal-mesh-ca"),
    )
    .await?;
    wait_admission(&user, &ns, mesh.clone(), false).await?;
    try_create_domain(&user, &ns, "mesh", &mesh, false)
        .await?
        .context("creating the Domain while the parameters are out of step")?;
    set_domain_policy(
        &h.client,
        zone,
        RESERVED,
        &format!("{ISSUER},{OTHER_ISSUER}"),
    )
    .await?;
    let refused = wait_condition(
        &h.client,
        &ns,
        "mesh",
        "CertificateReady",
        "False",
        Some("IssuerNotOffered"),
    )
    .await?;
    let certificate = condition(&refused, "CertificateReady").context("no CertificateReady")?;
    assert!(
        certificate
            .message
            .starts_with("spec.tls.issuer internal-mesh-ca is not an issuer this platform offers"),
        "{}",
        certificate.message
    );
    assert_eq!(
        condition(&refused, "Ready").map(|c| c.reason.as_str()),
        Some("IssuerNotOffered")
    );
    // Give the operator the time it took for the offered one: still no Certificate.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        get_dynamic(&h.client, &certificates(), &ns, "mesh")
            .await?
            .is_none(),
        "a Certificate from an issuer the platform does not offer"
    );

    h.delete_tenant(&tenant).await?;
    delete_platform(&h).await
}

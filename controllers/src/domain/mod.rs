//! The Domain controller.
//!
//! fetch (the Domain, its Tenant and the other claims on its hostname from caches; the catalog
//! Services and live children by GET; the TXT record from DNS) → validate/decide (pure:
//! verification, conflict, routes) → desired (pure builders) → apply (server-side apply, only
//! on drift; children removed when the Domain may not route) → status (pure, written only
//! when it changed).
//!
//! Verification: the status gives a TXT record (`_landlord-challenge.<hostname>`, see
//! `verify`); Landlord looks it up through the configured DNS server, every
//! `verification_interval` (jittered, and less often the longer a Domain stays unverified),
//! until it is found; then `Verified` stays True. Hostnames under a pre-verified zone are
//! verified at once. Only a verified Domain that holds its hostname (see `claim`) in the
//! namespace of a ready Tenant gets children: an HTTPRoute (Gateway API) or an Ingress, and
//! for managed TLS a cert-manager Certificate. Whether Gateway API and cert-manager are
//! installed is discovered at run time (cached briefly), so installing them later needs no
//! restart.
//!
//! Children are read by GET at each reconcile rather than cached (their CRDs may be absent
//! or appear later); drift is corrected at the next reconcile, at the latest after `RESYNC`.
//! The HTTPRoutes Landlord made are also watched (metadata only, once Gateway API is
//! served), so that what a Gateway controller reports on one reaches `Routed` at once.

pub mod claim;
pub mod config;
pub mod desired;
pub mod dns;
pub mod error;
pub mod status;
pub mod upstream;
pub mod verify;

use landlord_crds::conditions::Reason;
use std::{
    collections::BTreeMap,
    fmt::Debug,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{core::v1::Secret, networking::v1::Ingress},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Preconditions},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use landlord_crds::{
    Domain, DomainStatus, Service as CatalogService, Tenant,
    conditions::{
        self, Observation, Status,
        domain::{CERTIFICATE_READY, CONFLICT, ROUTED, VERIFIED},
        tenant::NAMESPACE_READY,
    },
    domain::{Tls, TlsMode, Verification},
    tenant::Tier,
};
use serde::{Serialize, de::DeserializeOwned};
use tracing::{info, warn};

use crate::{
    Context,
    apply::{self, EnsureError, Outcome},
    reflectors::Reflectors,
};
use claim::Claim;
use desired::ResolvedRoute;
use dns::Resolver;
pub use error::Error;
use error::Result;
use status::{Observed, RouteReport};
use upstream::{Certificate, Gateway, HTTPRoute, ListenerSet, ReferenceGrant};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "domain";
const MANAGER: &str = "landlord/domain";
const STATUS_MANAGER: &str = "landlord/domain-status";
/// How often a ready Domain is looked at again without any change (reads only).
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a verified Domain that is not ready yet (certificate pending, tenant not ready)
/// is looked at again.
const RECHECK: Duration = Duration::from_secs(10);
/// The longest wait between two lookups of a Domain that stays unverified.
const MAX_VERIFICATION_INTERVAL: Duration = Duration::from_secs(900);
pub use config::{DomainConfig, HttpsListener, ISSUER_NOT_OFFERED};
/// How long the discovered presence of Gateway API and cert-manager is trusted.
const CAPABILITIES_TTL: Duration = Duration::from_secs(20);

/// Which optional APIs the cluster serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub gateway_api: bool,
    /// Gateway API ListenerSets (standard channel since v1.5): per-Domain HTTPS listeners.
    pub listener_sets: bool,
    pub cert_manager: bool,
}

/// What every Domain reconcile shares.
pub struct State {
    ctx: Arc<Context>,
    domains: Store<Domain>,
    tenants: Store<Tenant>,
    tenants_synced: crate::reflectors::Synced,
    undecodable: crate::reflectors::undecodable::Undecodables<Domain>,
    resolver: Option<Resolver>,
    capabilities: Mutex<Option<(Instant, Capabilities)>>,
}

impl State {
    async fn capabilities(&self) -> Result<Capabilities> {
        if let Some((at, caps)) = *self.capabilities.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < CAPABILITIES_TTL
        {
            return Ok(caps);
        }
        let client = &self.ctx.client;
        let gateway = served(client, "gateway.networking.k8s.io/v1").await?;
        let cert_manager = served(client, "cert-manager.io/v1").await?;
        let has = |list: &[String], name: &str| list.iter().any(|r| r == name);
        let caps = Capabilities {
            gateway_api: has(&gateway, "httproutes") && has(&gateway, "referencegrants"),
            listener_sets: has(&gateway, "listenersets"),
            cert_manager: has(&cert_manager, "certificates"),
        };
        *self.capabilities.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), caps));
        Ok(caps)
    }
}

/// The resources the API server serves in group version `gv` (none when it is unknown).
async fn served(client: &kube::Client, gv: &str) -> Result<Vec<String>> {
    match client.list_api_group_resources(gv).await {
        Ok(list) => Ok(list.resources.into_iter().map(|r| r.name).collect()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(e) => Err(Error::kube(format!("discovering {gv}"))(e)),
    }
}

/// The DNS server verification asks: the configured one, else the system's.
fn resolver(config: &DomainConfig) -> Option<Resolver> {
    config
        .dns_resolver
        .or_else(|| {
            std::fs::read_to_string("/etc/resolv.conf")
                .ok()
                .and_then(|text| dns::nameserver_from_resolv_conf(&text))
        })
        .map(Resolver::new)
}

/// The Domain controller: subscribes to the shared reflectors at once (call before
/// [`Reflectors::start`]); the future runs it until `shutdown` resolves.
pub fn run(
    ctx: Arc<Context>,
    reflectors: &Reflectors,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let resolver = resolver(&ctx.config.domains);
    match &resolver {
        Some(r) => info!(server = %r.server, "domain verification asks this DNS server"),
        None => warn!(
            "no DNS server configured or found in /etc/resolv.conf: Domains cannot be verified by TXT record"
        ),
    }
    let client = ctx.client.clone();
    let tenants = reflectors.tenants.store();
    let tenant_events = reflectors.tenants.touched();
    let domains = reflectors.domains.store();
    let domain_events = reflectors.domains.touched();
    let changed_claims = reflectors.domains.touched();
    let in_namespace = domains.clone();
    let same_hostname = domains.clone();
    let signed = domains.clone();
    let shared_tenants = tenants.clone();
    // The HTTPRoutes Landlord made (metadata only: a status change moves their
    // resourceVersion): what a Gateway controller reports on one re-reconciles its Domain at
    // once. Watched from when Gateway API is served (asked again every CAPABILITIES_TTL
    // until then), so a cluster without it logs no failing watch.
    let route_events = {
        use futures::StreamExt as _;
        let client = client.clone();
        futures::stream::once(async move {
            loop {
                let served = served(&client, "gateway.networking.k8s.io/v1").await;
                if served.is_ok_and(|r| r.iter().any(|name| name == "httproutes")) {
                    break;
                }
                tokio::time::sleep(CAPABILITIES_TTL).await;
            }
            watcher(
                Api::<kube::core::PartialObjectMeta<HTTPRoute>>::all(client),
                watcher::Config::default().labels(desired::DOMAIN_LABEL),
            )
            .default_backoff()
            .touched_objects()
        })
        .flatten()
        .boxed()
    };
    let route_events = crate::runner::logged(CONTROLLER, "HTTPRoute", route_events);
    // The tenant key's Secret, metadata only (no key material in this watch): a rotation
    // re-signs every shared tenant's routes. The watch fails until the operator's Secrets
    // binding exists in the platform namespace (or while that namespace does not).
    let key_events = watcher(
        Api::<kube::core::PartialObjectMeta<Secret>>::namespaced(
            client,
            &ctx.config.platform_namespace,
        ),
        watcher::Config::default().fields(&format!("metadata.name={}", crate::pool::KEYS_SECRET)),
    )
    .default_backoff()
    .touched_objects();
    let key_events = crate::runner::logged(CONTROLLER, "Secret landlord-tenant-keys", key_events);
    let tenants_synced = reflectors.tenants.synced();
    let state = Arc::new(State {
        ctx,
        domains: domains.clone(),
        tenants,
        tenants_synced,
        undecodable: reflectors.domains.undecodable(),
        resolver,
        capabilities: Mutex::new(None),
    });
    let controller = Controller::for_shared_stream(domain_events, domains)
        // What the Gateway controller reports on a Domain's HTTPRoute (Routed).
        .owns_stream(route_events)
        // A Tenant's change (ready, terminating, tier, services) concerns its Domains.
        .watches_shared_stream(tenant_events, move |tenant: Arc<Tenant>| {
            let namespace = tenant.namespace_name();
            in_namespace
                .state()
                .into_iter()
                .filter(|d| d.namespace().as_deref() == Some(namespace.as_str()))
                .map(|d| ObjectRef::from_obj(&*d))
                .collect::<Vec<_>>()
        })
        // A new tenant key: every shared tenant's Domains sign their routes with it.
        .watches_stream(key_events, move |_| {
            let shared: Vec<String> = shared_tenants
                .state()
                .iter()
                .filter(|t| t.spec.tier == Tier::Shared)
                .map(|t| t.namespace_name())
                .collect();
            signed
                .state()
                .into_iter()
                .filter(|d| d.namespace().is_some_and(|ns| shared.contains(&ns)))
                .map(|d| ObjectRef::from_obj(&*d))
                .collect::<Vec<_>>()
        })
        // A claim that changes or goes away concerns the other claims on its hostname.
        .watches_shared_stream(changed_claims, move |changed: Arc<Domain>| {
            same_hostname
                .state()
                .into_iter()
                .filter(|d| d.spec.hostname == changed.spec.hostname && d.uid() != changed.uid())
                .map(|d| ObjectRef::from_obj(&*d))
                .collect::<Vec<_>>()
        });
    crate::runner::run(controller, state, shutdown)
}

impl crate::runner::Reconciler for State {
    type Object = Domain;
    type Error = Error;
    const NAME: &'static str = CONTROLLER;

    fn context(&self) -> &Context {
        &self.ctx
    }

    async fn caches_ready(&self) {
        self.tenants_synced.wait().await;
    }

    async fn reconcile(&self, domain: Arc<Domain>) -> Result<Action> {
        apply_domain(&domain, self).await
    }

    fn undecodable(&self) -> Option<&crate::reflectors::undecodable::Undecodables<Domain>> {
        Some(&self.undecodable)
    }

    fn category(error: &Error) -> &'static str {
        error.category()
    }
}

fn jittered(base: Duration) -> Duration {
    base.mul_f64(0.75 + fastrand::f64() * 0.5)
}

/// How long to wait before looking up the record of a Domain that has been unverified for
/// `age`: the configured interval at first, then a twentieth of its age, at most 15 minutes
/// (a change to the Domain, e.g. an annotation, triggers a lookup at once).
pub fn verification_delay(age: Duration, interval: Duration) -> Duration {
    (age / 20).clamp(interval, MAX_VERIFICATION_INTERVAL.max(interval))
}

/// The Tenant whose namespace this is, ready or not.
fn tenant_in(tenants: &Store<Tenant>, namespace: &str) -> Option<Arc<Tenant>> {
    tenants
        .state()
        .into_iter()
        .find(|t| t.namespace_name() == namespace)
}

/// The Tenant whose (ready) namespace holds the Domain, or the condition saying why none.
fn tenant_of(
    tenant: Option<Arc<Tenant>>,
    namespace: &str,
) -> std::result::Result<Arc<Tenant>, Observation> {
    match tenant {
        None => Err(Observation::new(
            ROUTED,
            Status::False,
            Reason::NotATenantNamespace,
            format!("namespace {namespace} is not the namespace of a Tenant"),
        )),
        Some(t) if t.meta().deletion_timestamp.is_some() => Err(Observation::new(
            ROUTED,
            Status::False,
            Reason::TenantTerminating,
            format!("Tenant {} is being deleted", t.name_any()),
        )),
        Some(t)
            if !t
                .status
                .as_ref()
                .is_some_and(|s| conditions::is_true(&s.conditions, NAMESPACE_READY)) =>
        {
            Err(Observation::new(
                ROUTED,
                Status::False,
                Reason::TenantNotReady,
                format!(
                    "namespace {namespace} of Tenant {} is not ready yet",
                    t.name_any()
                ),
            ))
        }
        Some(t) => Ok(t),
    }
}

/// Verification: what the platform's configuration decides (reserved names, names in
/// pre-verified zones) first, so that a name reserved or unbound later is refused even when
/// it was verified before; then sticky once True; else the TXT record.
async fn verified(
    domain: &Domain,
    tenant: Option<&str>,
    namespace: &str,
    record: &Verification,
    state: &State,
) -> Observation {
    let hostname = &domain.spec.hostname;
    let config = &state.ctx.config.domains;
    if let Some(decided) = verify::by_configuration(
        hostname,
        tenant,
        namespace,
        &config.pre_verified_zones,
        &config.reserved_hostnames,
    ) {
        return decided;
    }
    if let Some(c) = domain
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, VERIFIED))
        .filter(|c| c.status == "True")
    {
        // Written by Landlord; one of an older release's reasons reads as the usual one.
        let reason = Reason::parse(&c.reason).unwrap_or(Reason::TxtRecordFound);
        return Observation::new(VERIFIED, Status::True, reason, c.message.clone());
    }
    let Some(resolver) = &state.resolver else {
        return Observation::new(
            VERIFIED,
            Status::False,
            Reason::ResolverUnavailable,
            "no DNS server is configured (--dns-resolver) or found in /etc/resolv.conf",
        );
    };
    match resolver.txt(&record.record_name).await {
        Ok(values) if verify::found(&values, &record.record_value) => Observation::new(
            VERIFIED,
            Status::True,
            Reason::TxtRecordFound,
            format!(
                "found the TXT record {} (asked {})",
                record.record_name, resolver.server
            ),
        ),
        Ok(_) => Observation::new(
            VERIFIED,
            Status::False,
            Reason::RecordNotFound,
            format!(
                "create a TXT record {} with the value {} (see status.verification)",
                record.record_name, record.record_value
            ),
        ),
        Err(e) => Observation::new(
            VERIFIED,
            Status::False,
            Reason::LookupFailed,
            format!("looking up the TXT record {}: {e}", record.record_name),
        ),
    }
}

/// The Conflict condition: True when another claim holds the hostname.
fn conflict(domain: &Domain, verified: bool, others: &[Arc<Domain>]) -> Observation {
    let mine = Claim::with_verified(domain, verified);
    let mut claims: Vec<Claim> = others
        .iter()
        .filter(|d| d.spec.hostname == domain.spec.hostname && d.uid() != domain.uid())
        .map(|d| Claim::of(d))
        .collect();
    claims.push(mine.clone());
    match claim::holder(&claims) {
        Some(holder) if holder.uid != mine.uid => Observation::new(
            CONFLICT,
            Status::True,
            Reason::HostnameClaimed,
            format!(
                "{} is held by Domain {}; this Domain takes over when that one is deleted",
                domain.spec.hostname,
                holder.describe()
            ),
        ),
        _ => Observation::new(
            CONFLICT,
            Status::False,
            Reason::NoConflict,
            format!("no other Domain holds {}", domain.spec.hostname),
        ),
    }
}

async fn apply_domain(domain: &Domain, state: &State) -> Result<Action> {
    let namespace = domain.namespace().ok_or(Error::Incomplete("namespace"))?;
    let uid = domain.uid().ok_or(Error::Incomplete("uid"))?;
    let record = verify::record(&domain.spec.hostname, &uid);
    let tenant = tenant_in(&state.tenants, &namespace);
    let claimant = tenant.as_ref().map(|t| t.name_any());
    let verified = verified(domain, claimant.as_deref(), &namespace, &record, state).await;
    // A refused Domain claims nothing, so its Conflict condition must not follow the other
    // claims on its hostname: those change without this Domain being looked at again.
    let conflict = if verify::is_refusal(&verified) {
        Observation::new(
            CONFLICT,
            Status::False,
            Reason::NotClaimed,
            format!(
                "{} is refused (see Verified), so this Domain claims nothing",
                domain.spec.hostname
            ),
        )
    } else {
        conflict(domain, verified.is_true(), &state.domains.state())
    };
    let caps = state.capabilities().await?;
    let tenant = tenant_of(tenant, &namespace);

    // Why the Domain may not have children, if it may not.
    let blocked = match &tenant {
        Err(observation) => Some(observation.clone()),
        Ok(_) if !verified.is_true() => Some(Observation::new(
            ROUTED,
            Status::False,
            Reason::NotVerified,
            format!("{} is not verified yet", domain.spec.hostname),
        )),
        Ok(_) if conflict.is_true() => Some(Observation::new(
            ROUTED,
            Status::False,
            Reason::Conflict,
            conflict.message.clone(),
        )),
        Ok(_) => None,
    };
    let owner = desired::owner_reference(domain).ok_or(Error::Incomplete("uid"))?;
    let children = Children {
        domain,
        namespace: &namespace,
        state,
        caps,
    };

    let certificate = match (&blocked, &tenant) {
        (Some(_), _) | (_, Err(_)) => {
            children.remove_certificate().await?;
            certificate_unavailable(domain.spec.tls.as_ref(), caps, &state.ctx.config.domains)
                .unwrap_or_else(|| {
                Observation::new(
                    CERTIFICATE_READY,
                    Status::False,
                    Reason::WaitingForRoute,
                    "the certificate is requested once the hostname is verified and held by this Domain",
                )
            })
        }
        (None, Ok(tenant)) => children.certificate(tenant, &owner).await?,
    };

    let (routed, url) = match (&blocked, &tenant) {
        (Some(observation), _) => {
            children.remove_routes(None).await?;
            (observation.clone(), None)
        }
        (None, Err(observation)) => (observation.clone(), None),
        (None, Ok(tenant)) => {
            let routed = children.routes(tenant, &owner).await?;
            let url = routed.is_true().then(|| desired::url(domain));
            (routed, url)
        }
    };

    let observed = Observed {
        verified,
        conflict,
        routed,
        certificate,
    };
    let tenant_name = tenant.as_ref().ok().map(|t| t.name_any());
    let status = status::compute(domain, tenant_name, Some(record), url, &observed, &now());
    write_status(domain, status, state).await?;

    let ready = status::ready(&observed).is_true();
    let refused =
        verify::is_refusal(&observed.verified) || observed.certificate.reason == ISSUER_NOT_OFFERED;
    Ok(Action::requeue(if refused {
        // Settled: nothing to look up, and only a change of the Domain, its Tenant or the
        // operator's configuration (a restart) changes the answer.
        RESYNC
    } else if !observed.verified.is_true() {
        let age = domain
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| Timestamp::now().duration_since(t.0).try_into().ok())
            .unwrap_or_default();
        jittered(verification_delay(
            age,
            state.ctx.config.domains.verification_interval,
        ))
    } else if ready {
        RESYNC
    } else {
        jittered(RECHECK)
    }))
}

/// The CertificateReady condition when the certificate cannot be had whatever the Domain's
/// state: no TLS (True), an issuer the platform does not offer, cert-manager missing, no
/// issuer.
fn certificate_unavailable(
    tls: Option<&Tls>,
    caps: Capabilities,
    config: &DomainConfig,
) -> Option<Observation> {
    let tls = tls.cloned().unwrap_or_default();
    match tls.mode {
        TlsMode::None => Some(Observation::new(
            CERTIFICATE_READY,
            Status::True,
            Reason::TlsDisabled,
            "spec.tls.mode is None: served over plain HTTP",
        )),
        TlsMode::Secret => None,
        TlsMode::Managed => config
            .refused_issuer(tls.issuer.as_deref())
            .or_else(|| {
                (!caps.cert_manager).then(|| Observation::new(
                    CERTIFICATE_READY,
                    Status::False,
                    Reason::CertManagerNotInstalled,
                    "spec.tls.mode Managed needs cert-manager, whose CRD certificates.cert-manager.io is not installed; install cert-manager, or use spec.tls.mode Secret or None",
                ))
            })
            .or_else(|| {
                (tls.issuer.is_none() && config.cluster_issuer.is_none()).then(|| Observation::new(
                    CERTIFICATE_READY,
                    Status::False,
                    Reason::NoIssuer,
                    "spec.tls.mode Managed needs an issuer, and the platform offers none by default: configure the operator's --cluster-issuer, or name one of its --certificate-issuers in spec.tls.issuer",
                ))
            }),
    }
}

/// The children of one Domain, read by GET and written by server-side apply.
struct Children<'a> {
    domain: &'a Domain,
    namespace: &'a str,
    state: &'a State,
    caps: Capabilities,
}

impl Children<'_> {
    fn api<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        Api::namespaced(self.state.ctx.client.clone(), self.namespace)
    }

    async fn certificate(
        &self,
        tenant: &Tenant,
        owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> Result<Observation> {
        let domain = self.domain;
        if let Some(observation) = certificate_unavailable(
            domain.spec.tls.as_ref(),
            self.caps,
            &self.state.ctx.config.domains,
        ) {
            self.remove_certificate().await?;
            return Ok(observation);
        }
        let tls = domain.spec.tls.clone().unwrap_or_default();
        if tls.mode == TlsMode::Secret {
            self.remove_certificate().await?;
            let name = tls.secret_name.unwrap_or_default();
            let secret = self
                .api::<Secret>()
                .get_opt(&name)
                .await
                .map_err(Error::kube(format!("reading Secret {name}")))?;
            return Ok(match secret {
                None => Observation::new(
                    CERTIFICATE_READY,
                    Status::False,
                    Reason::SecretNotFound,
                    format!(
                        "Secret {name} (spec.tls.secretName) does not exist in namespace {}",
                        self.namespace
                    ),
                ),
                Some(s) if s.type_.as_deref() != Some("kubernetes.io/tls") => Observation::new(
                    CERTIFICATE_READY,
                    Status::False,
                    Reason::SecretInvalid,
                    format!("Secret {name} (spec.tls.secretName) is not of type kubernetes.io/tls"),
                ),
                Some(_) => Observation::new(
                    CERTIFICATE_READY,
                    Status::True,
                    Reason::SecretFound,
                    format!("the certificate comes from Secret {name}"),
                ),
            });
        }
        let issuer = tls
            .issuer
            .or_else(|| self.state.ctx.config.domains.cluster_issuer.clone())
            .unwrap_or_default();
        let desired = desired::certificate(domain, &tenant.name_any(), owner, &issuer);
        let api = self.api::<Certificate>();
        let live = get(&api, &domain.name_any(), "Certificate").await?;
        match self.ensure(&api, live.as_ref(), &desired).await? {
            Err(rejected) => Ok(Observation::new(
                CERTIFICATE_READY,
                Status::False,
                Reason::CertificateRejected,
                format!(
                    "the API server rejected Certificate {}: {rejected}",
                    domain.name_any()
                ),
            )),
            Ok(_) => {
                let ready = live
                    .as_ref()
                    .and_then(|c| c.status.as_ref())
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
                Ok(match ready {
                    Some(c) if c.status == "True" => Observation::new(
                        CERTIFICATE_READY,
                        Status::True,
                        Reason::CertificateIssued,
                        format!(
                            "Certificate {} from ClusterIssuer {issuer} is ready (Secret {})",
                            domain.name_any(),
                            desired.spec.secret_name
                        ),
                    ),
                    other => Observation::new(
                        CERTIFICATE_READY,
                        Status::False,
                        Reason::CertificatePending,
                        format!(
                            "waiting for cert-manager to issue Certificate {} from ClusterIssuer {issuer}{}",
                            domain.name_any(),
                            other
                                .and_then(|c| c.message.as_deref())
                                .map(|m| format!(": {m}"))
                                .unwrap_or_default()
                        ),
                    ),
                })
            }
        }
    }

    async fn routes(
        &self,
        tenant: &Tenant,
        owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> Result<Observation> {
        let domain = self.domain;
        let catalog = self.catalog(tenant).await?;
        let routes: Vec<ResolvedRoute> = match desired::resolve_routes(domain, tenant, &catalog) {
            Ok(routes) => routes,
            Err(observation) => {
                self.remove_routes(None).await?;
                return Ok(observation);
            }
        };
        let config = &self.state.ctx.config;
        if self.caps.gateway_api {
            if let Some(observation) = desired::too_many_backends(&routes) {
                self.remove_routes(None).await?;
                return Ok(observation);
            }
            // Shared tenants: the pool trusts the tenant header only with its assertion,
            // signed with the platform's key.
            let assertion = if tenant.spec.tier == Tier::Shared {
                let api = Api::<Secret>::namespaced(
                    self.state.ctx.client.clone(),
                    &config.platform_namespace,
                );
                let secret = get(&api, crate::pool::KEYS_SECRET, "Secret").await?;
                match crate::pool::signing_key(secret.as_ref(), &config.platform_namespace) {
                    Ok(key) => Some(crate::pool::assertion(&key, &tenant.name_any())),
                    // An existing route keeps its last assertion: the pool refuses it once
                    // the key it was made with is gone, and the route is signed again as
                    // soon as the Secret is usable.
                    Err(problem) => {
                        return Ok(Observation::new(
                            ROUTED,
                            Status::False,
                            problem.reason(),
                            problem.message(),
                        ));
                    }
                }
            } else {
                None
            };
            if tenant.spec.tier == Tier::Shared {
                let grant = desired::reference_grant(tenant, &config.platform_namespace);
                let api = Api::<ReferenceGrant>::namespaced(
                    self.state.ctx.client.clone(),
                    &config.platform_namespace,
                );
                let live = get(&api, &grant.name_any(), "ReferenceGrant").await?;
                if let Err(rejected) = self.ensure(&api, live.as_ref(), &grant).await? {
                    return Ok(Observation::new(
                        ROUTED,
                        Status::False,
                        Reason::RouteRejected,
                        format!(
                            "the API server rejected ReferenceGrant {}: {rejected}",
                            grant.name_any()
                        ),
                    ));
                }
            }
            // HTTPS: the Domain's own listener (ListenerSet or Gateway, see HttpsListener).
            let https = match desired::tls_secret(domain) {
                Some(secret) => match &config.domains.https_listener {
                    HttpsListener::ListenerSet if self.caps.listener_sets => {
                        self.remove_https_gateway().await?;
                        let set = desired::listener_set(
                            domain,
                            &tenant.name_any(),
                            owner,
                            &secret,
                            &config.gateway_namespace,
                            &config.domains.gateway_name,
                        );
                        Some(self.https_listener(set).await?)
                    }
                    HttpsListener::ListenerSet => None,
                    HttpsListener::Gateway { class } => {
                        self.remove_listener_set().await?;
                        let gateway = desired::https_gateway(
                            domain,
                            &tenant.name_any(),
                            owner,
                            &secret,
                            class,
                        );
                        Some(self.https_listener(gateway).await?)
                    }
                },
                None => None,
            };
            let https = match https {
                Some(Err(refused)) => return Ok(refused),
                Some(Ok(parent)) => Some(parent),
                None => {
                    self.remove_listener_set().await?;
                    self.remove_https_gateway().await?;
                    None
                }
            };
            let tls_note = match (&https, desired::tls_secret(domain)) {
                (Some(parent), _) => format!(
                    "; HTTPS through {} {}/{}",
                    parent.kind, parent.namespace, parent.name
                ),
                (None, Some(_)) => format!(
                    "; ListenerSets are not served, so the Gateway itself must terminate TLS for {}",
                    domain.spec.hostname
                ),
                (None, None) => String::new(),
            };
            let route = desired::http_route(
                domain,
                tenant,
                &routes,
                owner,
                &config.gateway_namespace,
                &config.domains.gateway_name,
                https,
                assertion.as_deref(),
            );
            let api = self.api::<HTTPRoute>();
            let live = get(&api, &route.name_any(), "HTTPRoute").await?;
            self.remove_routes(Some(RouteKind::HTTPRoute)).await?;
            Ok(match self.ensure(&api, live.as_ref(), &route).await? {
                Err(rejected) => Observation::new(
                    ROUTED,
                    Status::False,
                    Reason::RouteRejected,
                    format!(
                        "the API server rejected HTTPRoute {}: {rejected}",
                        route.name_any()
                    ),
                ),
                Ok(outcome) => {
                    // What the controllers reported is of the stored spec: none yet for
                    // a spec just written.
                    let stored = live.as_ref().filter(|_| outcome == Outcome::Unchanged);
                    let applied = format!(
                        "HTTPRoute {} attaches {} to Gateway {}/{}{tls_note}",
                        route.name_any(),
                        domain.spec.hostname,
                        config.gateway_namespace,
                        config.domains.gateway_name
                    );
                    match status::route_report(stored, &route.spec.parent_refs) {
                        RouteReport::Accepted(controllers) => Observation::new(
                            ROUTED,
                            Status::True,
                            Reason::HTTPRouteAccepted,
                            format!("{applied}; accepted by {}", controllers.join(", ")),
                        ),
                        RouteReport::Pending(parents) => Observation::new(
                            ROUTED,
                            Status::True,
                            Reason::HTTPRouteApplied,
                            format!(
                                "{applied}; no Gateway API controller has reported on it yet for {}",
                                parents.join(", ")
                            ),
                        ),
                        RouteReport::Refused {
                            parent,
                            condition,
                            reason,
                            message,
                        } => Observation::new(
                            ROUTED,
                            Status::False,
                            Reason::RouteNotAccepted,
                            format!(
                                "{parent} does not take HTTPRoute {} for {}: its controller reports {condition} False ({reason}: {message})",
                                route.name_any(),
                                domain.spec.hostname
                            ),
                        ),
                    }
                }
            })
        } else if tenant.spec.tier == Tier::Shared {
            self.remove_routes(None).await?;
            Ok(Observation::new(
                ROUTED,
                Status::False,
                Reason::GatewayApiRequired,
                "shared-tier routes reach the pool in the platform namespace and set the X-Landlord-Tenant header and its assertion, which needs Gateway API (gateway.networking.k8s.io HTTPRoute, ReferenceGrant); it is not installed",
            ))
        } else {
            let ingress = desired::ingress(
                domain,
                &tenant.name_any(),
                &routes,
                owner,
                config.domains.ingress_class.as_deref(),
            );
            let api = self.api::<Ingress>();
            let live = get(&api, &ingress.name_any(), "Ingress").await?;
            self.remove_routes(Some(RouteKind::Ingress)).await?;
            Ok(match self.ensure(&api, live.as_ref(), &ingress).await? {
                Err(rejected) => Observation::new(
                    ROUTED,
                    Status::False,
                    Reason::RouteRejected,
                    format!(
                        "the API server rejected Ingress {}: {rejected}",
                        ingress.name_any()
                    ),
                ),
                Ok(_) => Observation::new(
                    ROUTED,
                    Status::True,
                    Reason::IngressApplied,
                    format!(
                        "Ingress {} routes {} (Gateway API is not installed)",
                        ingress.name_any(),
                        domain.spec.hostname
                    ),
                ),
            })
        }
    }

    /// The catalog Services the routes may name, from the platform namespace.
    async fn catalog(&self, tenant: &Tenant) -> Result<BTreeMap<String, CatalogService>> {
        let platform = &self.state.ctx.config.platform_namespace;
        let api = Api::<CatalogService>::namespaced(self.state.ctx.client.clone(), platform);
        let mut catalog = BTreeMap::new();
        for name in desired::route_services(self.domain, tenant) {
            if catalog.contains_key(&name) {
                continue;
            }
            if let Some(service) = get(&api, &name, "Service").await? {
                catalog.insert(name, service);
            }
        }
        Ok(catalog)
    }

    /// Applies a child; `Ok(Err(message))` when the API server rejects it as invalid (the
    /// real schema speaks: reported in a condition, not retried until something changes).
    async fn ensure<K>(
        &self,
        api: &Api<K>,
        live: Option<&K>,
        desired: &K,
    ) -> Result<std::result::Result<Outcome, String>>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
    {
        match apply::ensure(api, live, desired, MANAGER, &self.state.ctx.metrics).await {
            Ok(Outcome::Applied) => {
                info!(kind = %K::kind(&()), name = %desired.name_any(), "applied");
                Ok(Ok(Outcome::Applied))
            }
            Ok(Outcome::Unchanged) => Ok(Ok(Outcome::Unchanged)),
            Err(EnsureError::Kube(kube::Error::Api(status))) if status.code == 422 => {
                Ok(Err(status.message.clone()))
            }
            Err(EnsureError::Encode(source)) => Err(Error::Encode {
                what: "Domain child",
                source,
            }),
            Err(EnsureError::Foreign(message)) => Ok(Err(message)),
            Err(EnsureError::Kube(source)) => Err(Error::Kube {
                action: format!("applying {} {}", K::kind(&()), desired.name_any()),
                source,
            }),
        }
    }

    /// Removes the Domain's route objects, except the kind `keep`.
    async fn remove_routes(&self, keep: Option<RouteKind>) -> Result<()> {
        if keep != Some(RouteKind::Ingress) {
            self.remove(&self.api::<Ingress>()).await?;
        }
        if keep != Some(RouteKind::HTTPRoute) && self.caps.gateway_api {
            self.remove(&self.api::<HTTPRoute>()).await?;
            self.remove_listener_set().await?;
            self.remove_https_gateway().await?;
        }
        Ok(())
    }

    async fn remove_listener_set(&self) -> Result<()> {
        if self.caps.listener_sets {
            self.remove(&self.api::<ListenerSet>()).await?;
        }
        Ok(())
    }

    /// Removes the Domain's own Gateway (left from `--https-listener Gateway`). An operator
    /// in ListenerSet mode may lack the right to read Gateways (RBAC from before that mode):
    /// then it never made one, and a refusal means nothing to remove.
    async fn remove_https_gateway(&self) -> Result<()> {
        if !self.caps.gateway_api {
            return Ok(());
        }
        match self.remove(&self.api::<Gateway>()).await {
            Err(Error::Kube {
                source: kube::Error::Api(status),
                ..
            }) if status.code == 403
                && self.state.ctx.config.domains.https_listener == HttpsListener::ListenerSet =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Makes the Domain's HTTPS listener object (ListenerSet or Gateway) as desired: the
    /// parent reference its HTTPRoute attaches to, or the Routed condition naming the object
    /// the API server refused.
    async fn https_listener<K>(
        &self,
        desired: K,
    ) -> Result<std::result::Result<upstream::ParentReference, Observation>>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
        K: Serialize + DeserializeOwned + Clone + Debug,
    {
        let api = self.api::<K>();
        let kind = K::kind(&());
        let live = get(&api, &desired.name_any(), &kind).await?;
        Ok(match self.ensure(&api, live.as_ref(), &desired).await? {
            Ok(_) => Ok(desired::parent_of(&desired)),
            Err(rejected) => Err(Observation::new(
                ROUTED,
                Status::False,
                Reason::RouteRejected,
                format!(
                    "the API server rejected {kind} {}: {rejected}",
                    desired.name_any()
                ),
            )),
        })
    }

    async fn remove_certificate(&self) -> Result<()> {
        if self.caps.cert_manager {
            self.remove(&self.api::<Certificate>()).await?;
        }
        Ok(())
    }

    /// Deletes the Domain's child of this kind if it exists and is this Domain's.
    async fn remove<K>(&self, api: &Api<K>) -> Result<()>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
    {
        let name = self.domain.name_any();
        let Some(live) = get(api, &name, K::kind(&()).as_ref()).await? else {
            return Ok(());
        };
        let ours = live
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == self.domain.uid().as_ref());
        if !ours || live.meta().deletion_timestamp.is_some() {
            return Ok(());
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: live.uid(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match crate::apply::delete_named(api, &name, &params, MANAGER, &self.state.ctx.metrics)
            .await
        {
            Ok(removed) => {
                if removed {
                    info!(kind = %K::kind(&()), name = %name, "removed");
                }
                Ok(())
            }
            // Another object of that name now (the uid precondition failed): not ours.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(Error::kube(format!("deleting {} {name}", K::kind(&())))(e)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RouteKind {
    HTTPRoute,
    Ingress,
}

async fn get<K>(api: &Api<K>, name: &str, kind: &str) -> Result<Option<K>>
where
    K: Resource + DeserializeOwned + Clone + Debug,
{
    api.get_opt(name)
        .await
        .map_err(Error::kube(format!("reading {kind} {name}")))
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// Writes the status only when it differs from the current one.
async fn write_status(domain: &Domain, status: DomainStatus, state: &State) -> Result<()> {
    let api = Api::<Domain>::namespaced(
        state.ctx.client.clone(),
        &domain.namespace().unwrap_or_default(),
    );
    crate::apply::status(
        &api,
        domain,
        domain.status.as_ref(),
        &status,
        STATUS_MANAGER,
        &state.ctx.metrics,
    )
    .await
    .map_err(Error::kube("writing Domain status"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_checks_slow_down_as_a_domain_stays_unverified() {
        let base = Duration::from_secs(60);
        assert_eq!(verification_delay(Duration::ZERO, base), base);
        assert_eq!(verification_delay(Duration::from_secs(600), base), base);
        assert_eq!(
            verification_delay(Duration::from_secs(4000), base),
            Duration::from_secs(200)
        );
        assert_eq!(
            verification_delay(Duration::from_secs(86_400), base),
            MAX_VERIFICATION_INTERVAL
        );
        // A configured interval above the cap wins.
        let slow = Duration::from_secs(3600);
        assert_eq!(verification_delay(Duration::ZERO, slow), slow);
    }

    const ALL: Capabilities = Capabilities {
        gateway_api: true,
        listener_sets: true,
        cert_manager: true,
    };

    fn issuers(default: Option<&str>, more: &[&str]) -> DomainConfig {
        DomainConfig {
            cluster_issuer: default.map(str::to_string),
            certificate_issuers: more.iter().map(|i| i.to_string()).collect(),
            ..DomainConfig::default()
        }
    }

    fn managed(issuer: Option<&str>) -> Tls {
        Tls {
            mode: TlsMode::Managed,
            issuer: issuer.map(str::to_string),
            secret_name: None,
        }
    }

    #[test]
    fn offered_issuers_are_the_default_and_the_listed_ones_once_each() {
        let config = issuers(Some("public"), &["staging", "public"]);
        assert_eq!(config.offered_issuers(), ["public", "staging"]);
        assert_eq!(issuers(None, &[]).offered_issuers(), Vec::<&str>::new());
    }

    #[test]
    fn an_issuer_the_platform_does_not_offer_is_refused_naming_the_field() {
        let config = issuers(Some("public"), &["staging"]);
        for offered in [None, Some("public"), Some("staging")] {
            assert_eq!(
                certificate_unavailable(Some(&managed(offered)), ALL, &config),
                None,
                "{offered:?}"
            );
        }
        let refused = certificate_unavailable(Some(&managed(Some("mesh-ca"))), ALL, &config)
            .expect("refused");
        assert_eq!(
            (refused.status, refused.reason),
            (Status::False, ISSUER_NOT_OFFERED)
        );
        assert_eq!(
            refused.message,
            "spec.tls.issuer mesh-ca is not an issuer this platform offers; use one of public, staging, or leave spec.tls.issuer unset for the default public"
        );
        // Refused before anything else is looked at, cert-manager or not.
        let without = Capabilities {
            cert_manager: false,
            ..ALL
        };
        assert_eq!(
            certificate_unavailable(Some(&managed(Some("mesh-ca"))), without, &config)
                .map(|o| o.reason),
            Some(ISSUER_NOT_OFFERED)
        );
        // A platform that offers no issuer by name refuses every named one.
        let none = certificate_unavailable(Some(&managed(Some("x"))), ALL, &issuers(None, &[]))
            .expect("refused");
        assert!(
            none.message
                .ends_with("it offers none: use spec.tls.mode Secret or None")
        );
        let listed =
            certificate_unavailable(Some(&managed(Some("x"))), ALL, &issuers(None, &["a"]))
                .expect("refused");
        assert!(
            listed.message.ends_with("use one of a"),
            "{}",
            listed.message
        );
    }

    #[test]
    fn managed_tls_without_any_issuer_or_cert_manager_says_so() {
        let no_issuer = certificate_unavailable(Some(&managed(None)), ALL, &issuers(None, &["a"]));
        assert_eq!(no_issuer.map(|o| o.reason), Some(Reason::NoIssuer));
        let without = Capabilities {
            cert_manager: false,
            ..ALL
        };
        let missing = certificate_unavailable(None, without, &issuers(Some("public"), &[]));
        assert_eq!(
            missing.map(|o| o.reason),
            Some(Reason::CertManagerNotInstalled)
        );
        let plain = Tls {
            mode: TlsMode::None,
            ..Tls::default()
        };
        assert!(
            certificate_unavailable(Some(&plain), without, &issuers(None, &[]))
                .is_some_and(|o| o.is_true())
        );
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(100)).as_secs_f64();
            assert!((75.0..=125.0).contains(&d), "{d}");
        }
    }
}

//! The Domain part of the operator's configuration: verification, routing and TLS.

use std::{net::SocketAddr, time::Duration};

use landlord_crds::conditions::{Observation, Reason, Status, domain::CERTIFICATE_READY};

/// Reason of a CertificateReady condition refusing `spec.tls.issuer`.
pub const ISSUER_NOT_OFFERED: Reason = Reason::IssuerNotOffered;

/// Operator configuration of the Domain controller.
#[derive(Clone, Debug)]
pub struct DomainConfig {
    /// DNS server that verification asks; `None`: the first nameserver of /etc/resolv.conf.
    pub dns_resolver: Option<SocketAddr>,
    /// Zones the platform owns: `<tenant>.<zone>` and the names below it are the tenant's
    /// without a TXT record; other names in them are refused (see `verify`).
    pub pre_verified_zones: Vec<String>,
    /// Names no tenant may hold: bare labels (under every pre-verified zone) or hostnames,
    /// each with the names below it.
    pub reserved_hostnames: Vec<String>,
    /// The Gateway that HTTPRoutes attach to (in `Config::gateway_namespace`).
    pub gateway_name: String,
    /// cert-manager ClusterIssuer of managed certificates, unless a Domain names its own.
    pub cluster_issuer: Option<String>,
    /// Further ClusterIssuers a Domain may name in `spec.tls.issuer` (besides
    /// `cluster_issuer`); any other is refused.
    pub certificate_issuers: Vec<String>,
    /// Where a Domain with TLS gets its HTTPS listener.
    pub https_listener: HttpsListener,
    /// `ingressClassName` of Ingresses (when Gateway API is not installed).
    pub ingress_class: Option<String>,
    /// Time between two lookups of the TXT record of an unverified Domain, at first.
    pub verification_interval: Duration,
}

/// Where a Domain with TLS gets its HTTPS listener (port 443, its hostname, terminating with
/// its certificate Secret); its HTTPRoute attaches to that listener and to the platform's
/// Gateway (plain HTTP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpsListener {
    /// A `ListenerSet` in the tenant's namespace attached to the platform's Gateway (Gateway
    /// API standard channel since v1.5), which must admit it in `spec.allowedListeners`. One
    /// Gateway, one address, no limit of 64 listeners. The default.
    ListenerSet,
    /// A `Gateway` of this GatewayClass in the tenant's namespace, for implementations that
    /// do not serve ListenerSets yet (Traefik before v3.8, for one). Cheap where the
    /// implementation serves all Gateways of its class from the same proxies on shared ports
    /// (Traefik); where it provisions a proxy and a load balancer per Gateway, prefer
    /// `ListenerSet`.
    Gateway { class: String },
}

impl Default for DomainConfig {
    fn default() -> Self {
        Self {
            dns_resolver: None,
            pre_verified_zones: Vec::new(),
            reserved_hostnames: Vec::new(),
            gateway_name: "landlord".into(),
            https_listener: HttpsListener::ListenerSet,
            cluster_issuer: None,
            certificate_issuers: Vec::new(),
            ingress_class: None,
            verification_interval: Duration::from_secs(60),
        }
    }
}

impl DomainConfig {
    /// The ClusterIssuers a Domain may name: the default first, without repeats.
    pub fn offered_issuers(&self) -> Vec<&str> {
        let mut offered: Vec<&str> = Vec::new();
        for issuer in self.cluster_issuer.iter().chain(&self.certificate_issuers) {
            if !offered.contains(&issuer.as_str()) {
                offered.push(issuer);
            }
        }
        offered
    }

    /// The CertificateReady condition refusing `spec.tls.issuer` when the platform does not
    /// offer it (a tenant must not get certificates from, say, an internal mesh CA).
    pub fn refused_issuer(&self, issuer: Option<&str>) -> Option<Observation> {
        let issuer = issuer?;
        let offered = self.offered_issuers();
        if offered.contains(&issuer) {
            return None;
        }
        let instead = match (&self.cluster_issuer, offered.as_slice()) {
            (_, []) => "it offers none: use spec.tls.mode Secret or None".to_string(),
            (Some(default), _) => format!(
                "use one of {}, or leave spec.tls.issuer unset for the default {default}",
                offered.join(", ")
            ),
            (None, _) => format!("use one of {}", offered.join(", ")),
        };
        Some(Observation::new(
            CERTIFICATE_READY,
            Status::False,
            ISSUER_NOT_OFFERED,
            format!("spec.tls.issuer {issuer} is not an issuer this platform offers; {instead}"),
        ))
    }
}

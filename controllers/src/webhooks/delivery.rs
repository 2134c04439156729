//! Sending one event to one endpoint: where it may go (the SSRF guard), the POST itself, and
//! what its answer means for the next attempt.

use std::{
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector, connect::dns::Name},
    rt::TokioExecutor,
};

use super::signature::SigningKey;

/// Which endpoints may send to private addresses (loopback, RFC 1918, link-local, CGNAT,
/// IPv6 unique-local and link-local): the cluster's own network, the node, the cloud's
/// metadata service. A tenant that could point its endpoint there would make the operator
/// probe them for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PrivateNetworks {
    /// No endpoint.
    None,
    /// Endpoints in the platform namespace (written by platform admins, e.g. an in-cluster
    /// receiver); never a tenant's.
    #[default]
    Platform,
    /// Every endpoint (a cluster where tenants are trusted).
    All,
}

impl std::str::FromStr for PrivateNetworks {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "none" => Ok(Self::None),
            "platform" => Ok(Self::Platform),
            "all" => Ok(Self::All),
            _ => Err(format!("{text:?}: expected none, platform or all")),
        }
    }
}

/// Whether an address is outside the public internet.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            // IPv4-compatible (::a.b.c.d, deprecated) embeds an IPv4 address too.
            if v6.segments()[..6].iter().all(|s| *s == 0) {
                return true;
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                // Site-local (deprecated), still routed inside some networks.
                || (first & 0xffc0) == 0xfec0
                // NAT64 and 6to4 embed IPv4 addresses that may be private.
                || first == 0x0064
                || first == 0x2002
        }
    }
}

/// Why an endpoint's URL is not sent to (the message names the URL's host, never a secret).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("{0} is not an absolute http(s) URL with a host")]
    Url(String),
    #[error(
        "{host} is a private address, which this endpoint may not reach (--webhook-private-networks)"
    )]
    Private { host: String },
    #[error("http:// is only for endpoints that may reach private addresses; use https://")]
    PlainHttp,
}

/// Checks a URL before sending: http(s) with a host; `http://` only when `private_ok`; an IP
/// literal host must be public unless `private_ok` (names are checked when resolved, see
/// [`Sender`]).
pub fn check_url(url: &str, private_ok: bool) -> Result<http::Uri, Refusal> {
    let uri: http::Uri = url.parse().map_err(|_| Refusal::Url(url.to_string()))?;
    let host = uri.host().ok_or_else(|| Refusal::Url(url.to_string()))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if private_ok => {}
        Some("http") => return Err(Refusal::PlainHttp),
        _ => return Err(Refusal::Url(url.to_string())),
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>()
        && !private_ok
        && is_private(ip)
    {
        return Err(Refusal::Private {
            host: host.to_string(),
        });
    }
    Ok(uri)
}

/// A resolver that drops private addresses (and fails when none is left): the connection
/// goes to an address checked here, so a name that resolves to a public address when checked
/// and a private one when connecting (DNS rebinding) cannot get through.
#[derive(Clone)]
struct PublicOnly;

impl tower::Service<Name> for PublicOnly {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| !is_private(a.ip())).collect();
            if public.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{} resolves only to private addresses, which this endpoint may not reach (--webhook-private-networks)",
                        name.as_str()
                    ),
                ));
            }
            Ok(public.into_iter())
        })
    }
}

type Https<R> = hyper_rustls::HttpsConnector<HttpConnector<R>>;

/// The HTTP clients of delivery: one that connects only to public addresses, one that may
/// connect anywhere. Neither follows redirects.
#[derive(Clone)]
pub struct Sender {
    public: Client<Https<PublicOnly>, Full<Bytes>>,
    any: Client<Https<hyper_util::client::legacy::connect::dns::GaiResolver>, Full<Bytes>>,
    timeout: Duration,
}

/// TLS (with the system's trusted roots) over `http`; plain http where the URL says so.
fn https<R>(http: HttpConnector<R>) -> std::io::Result<Https<R>> {
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// What an attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered { status: u16 },
    /// Another status; `retry_after` when the receiver sent a `Retry-After` in seconds.
    Answered {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer (connect, TLS, timeout): the message says which, naming no secret.
    NoAnswer(String),
}

impl Sender {
    /// Clients with the system's trusted roots; `timeout` bounds each attempt.
    pub fn new(timeout: Duration) -> std::io::Result<Self> {
        let mut public = HttpConnector::new_with_resolver(PublicOnly);
        public.enforce_http(false);
        public.set_connect_timeout(Some(timeout));
        let mut any = HttpConnector::new();
        any.enforce_http(false);
        any.set_connect_timeout(Some(timeout));
        Ok(Self {
            public: Client::builder(TokioExecutor::new()).build(https(public)?),
            any: Client::builder(TokioExecutor::new()).build(https(any)?),
            timeout,
        })
    }

    /// POSTs `body` to `uri` signed with `key`, as event `id` at `now` (Unix seconds).
    pub async fn send(
        &self,
        uri: http::Uri,
        private_ok: bool,
        key: &SigningKey,
        id: &str,
        now: i64,
        body: Arc<str>,
    ) -> Outcome {
        let request = http::Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "Landlord-Webhooks/1")
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", key.sign(id, now, body.as_bytes()))
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())));
        let request = match request {
            Ok(request) => request,
            Err(e) => return Outcome::NoAnswer(format!("building the request: {e}")),
        };
        let response = if private_ok {
            tokio::time::timeout(self.timeout, self.any.request(request)).await
        } else {
            tokio::time::timeout(self.timeout, self.public.request(request)).await
        };
        let response = match response {
            Err(_) => {
                return Outcome::NoAnswer(format!(
                    "no answer within {} s",
                    self.timeout.as_secs_f64()
                ));
            }
            Ok(Err(e)) => return Outcome::NoAnswer(describe(&e)),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read the body (at most 64 KiB, for a second) so that the connection can be
        // reused; a larger or slower one is dropped with its connection.
        let body = http_body_util::Limited::new(response.into_body(), 64 * 1024);
        let _ = tokio::time::timeout(Duration::from_secs(1), body.collect()).await;
        if (200..300).contains(&status) {
            Outcome::Delivered { status }
        } else {
            Outcome::Answered {
                status,
                retry_after,
            }
        }
    }
}

/// The chain of an error's sources, which is where hyper puts the cause.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Waits between attempts, after the first: the Standard Webhooks schedule (5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h). After the last, the event is given up for
/// that endpoint.
pub const SCHEDULE: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(14 * 3600),
    Duration::from_secs(20 * 3600),
    Duration::from_secs(24 * 3600),
];

/// What to do after attempt number `attempt` (1-based) failed: wait this long (with ±20 %
/// jitter, or the receiver's `Retry-After` when longer, up to a day), or give up (None).
pub fn next_attempt(attempt: i32, retry_after: Option<Duration>, jitter: f64) -> Option<Duration> {
    let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
    let base = *SCHEDULE.get(index)?;
    let jittered = base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0));
    let wait = match retry_after {
        Some(asked) => jittered.max(asked.min(Duration::from_secs(24 * 3600))),
        None => jittered,
    };
    Some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_told_from_public_ones() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "::a9fe:a9fe",
            "fec0::1",
        ] {
            assert!(is_private(private.parse().expect(private)), "{private}");
        }
        for public in ["1.1.1.1", "8.8.8.8", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert!(!is_private(public.parse().expect(public)), "{public}");
        }
    }

    #[test]
    fn urls_are_checked_before_anything_is_sent() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert_eq!(
            check_url("http://hooks.example.com/x", false),
            Err(Refusal::PlainHttp)
        );
        assert!(check_url("http://10.0.0.5:8080/x", true).is_ok());
        assert!(matches!(
            check_url("https://169.254.169.254/latest", false),
            Err(Refusal::Private { .. })
        ));
        assert!(matches!(
            check_url("https://[::1]:8443/", false),
            Err(Refusal::Private { .. })
        ));
        assert!(matches!(check_url("ftp://x/", true), Err(Refusal::Url(_))));
        assert!(matches!(check_url("/relative", true), Err(Refusal::Url(_))));
    }

    #[tokio::test]
    async fn names_that_resolve_only_to_private_addresses_are_refused() {
        use tower::Service as _;
        let refused = PublicOnly
            .call("localhost".parse::<Name>().expect("a name"))
            .await
            .expect_err("localhost is private");
        assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(refused.to_string().contains("localhost"), "{refused}");
    }

    #[test]
    fn retries_follow_the_schedule_and_honour_retry_after() {
        assert_eq!(next_attempt(1, None, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(next_attempt(2, None, 0.0), Some(Duration::from_secs(240)));
        assert_eq!(
            next_attempt(1, Some(Duration::from_secs(60)), 0.5),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            next_attempt(1, Some(Duration::from_secs(10 * 86400)), 0.5),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            next_attempt(9, None, 1.0),
            Some(Duration::from_secs(24 * 3600).mul_f64(1.2))
        );
        assert_eq!(
            next_attempt(10, None, 0.5),
            None,
            "given up after the schedule"
        );
        assert_eq!(next_attempt(0, None, 0.5), None);
    }
}

//! Per-connection and per-request context shared by the pipeline, stages and logs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Uri, Version};

use crate::country::CountryCode;
use crate::error::ErrorKind;
use crate::ids::TraceContext;

/// What is known about a client connection when it is accepted.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's socket address.
    pub peer: SocketAddr,
    /// The peer's IP formatted once as a header value (for `X-Forwarded-For`), so requests on
    /// a keep-alive connection do not each format and allocate it.
    pub peer_ip: HeaderValue,
    /// The local address the connection arrived on.
    pub local: SocketAddr,
    /// The listener's name from config.
    pub listener: Arc<str>,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// What the TLS handshake established, for connections that arrived over TLS.
    pub tls: Option<Arc<TlsInfo>>,
    /// The load balancer's socket address when a PROXY protocol header named the client
    /// (`peer` is then the client the header named).
    pub proxied_by: Option<SocketAddr>,
}

/// Facts of a TLS connection, established once per connection by the handshake, for stages,
/// headers and logs. Cleartext connections have none.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// The SNI name the client asked for (lowercase), if it sent one.
    pub sni: Option<Arc<str>>,
    /// The negotiated ALPN protocol (`h2`, `http/1.1`), if any.
    pub alpn: Option<&'static str>,
    /// Protocol version as OpenSSL spells it: `TLSv1.2`, `TLSv1.3`.
    pub version: &'static str,
    /// Cipher suite, such as `TLS13_AES_128_GCM_SHA256`.
    pub cipher: &'static str,
    /// The handshake resumed an earlier session.
    pub resumed: bool,
    /// The client sent early data (0-RTT) that was accepted.
    pub early_data: bool,
    /// Host names (exact or `*.wildcard`) the served certificate covers; used by strict SNI.
    pub cert_names: Arc<[Box<str>]>,
    /// The client certificate, when one was presented and verified.
    pub client_cert: Option<ClientCertInfo>,
}

/// A verified client certificate, formatted once per connection as header values.
#[derive(Debug, Clone)]
pub struct ClientCertInfo {
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: HeaderValue,
    /// Subject distinguished name (RFC 4514 form).
    pub subject: HeaderValue,
    /// Subject alternative names, comma separated (`DNS:a.example, URI:spiffe://…`).
    pub sans: HeaderValue,
}

impl TlsInfo {
    /// True when `host` (without port, any case) is covered by the served certificate: an exact
    /// name, or a `*.wildcard` matching exactly one label.
    #[must_use]
    pub fn covers_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.cert_names.iter().any(|name| {
            if let Some(suffix) = name.strip_prefix("*.") {
                host.split_once('.').is_some_and(|(label, rest)| {
                    !label.is_empty() && rest.eq_ignore_ascii_case(suffix)
                })
            } else {
                name.eq_ignore_ascii_case(host)
            }
        })
    }
}

/// Everything the pipeline learns about one request, from arrival to the access log line.
#[derive(Debug)]
pub struct RequestCtx {
    /// The connection the request arrived on.
    pub conn: Arc<ConnInfo>,
    /// The request ID (generated, or the client's where trusted).
    pub request_id: HeaderValue,
    /// Trace context continued from the client or started here.
    pub trace: TraceContext,
    /// The client's IP address: the single identity used by logs, limits and headers.
    pub client_ip: IpAddr,
    /// When the request head was received.
    pub started: Instant,
    /// The method as received.
    pub method: Method,
    /// The request target as received (before rewrites).
    pub uri: Uri,
    /// The protocol version as received.
    pub version: Version,
    /// The `Host` (or `:authority`) as received, for logs.
    pub host: Option<HeaderValue>,
    /// The `User-Agent`, for logs.
    pub user_agent: Option<HeaderValue>,
    /// The `Referer`, for logs.
    pub referer: Option<HeaderValue>,
    /// The route that took the request.
    pub route: Option<Arc<str>>,
    /// The upstream the request was forwarded to.
    pub upstream: Option<Arc<str>>,
    /// The target that answered (or failed last), `host:port` as configured.
    pub upstream_target: Option<Arc<str>>,
    /// Time from forwarding the request until the upstream's response headers arrived.
    pub upstream_duration: Option<Duration>,
    /// Attempts beyond the first.
    pub retries: u8,
    /// The gRPC status Rampart answered a gRPC call with itself (its HTTP status is 200, the
    /// outcome is here); `None` for every other answer.
    pub grpc_status: Option<u8>,
    /// Why the request was refused or failed, if it was.
    pub reason: Option<ErrorKind>,
    /// Internal detail of the failure, for the logs.
    pub detail: Option<String>,
    /// The request's `Origin` when the route's CORS policy allows it, for the response's
    /// `Access-Control-Allow-Origin`.
    pub cors_origin: Option<HeaderValue>,
    /// The request arrived in TLS early data, before the handshake completed (RFC 8470).
    pub early_data: bool,
    /// The client's country from the GeoIP database, when one is configured and knows it.
    pub country: Option<CountryCode>,
    /// The client's autonomous system number from the GeoIP database, when known.
    pub asn: Option<u32>,
    /// The stage that answered or refused the request, when one did.
    pub stage: Option<&'static str>,
    /// Why a stage answered the request itself (the reason of its
    /// [`Flow::Respond`](crate::Flow::Respond)), for the access log.
    pub answer: Option<&'static str>,
    /// How the response cache served the request (`HIT`, `MISS`, `STALE`, `REVALIDATED`,
    /// `BYPASS`), on routes with a cache, for the access log.
    pub cache: Option<&'static str>,
    /// Who the request authenticated as, when the route requires authentication.
    pub principal: Option<Arc<crate::principal::Principal>>,
    /// Per-request state stages keep between phases, keyed by type (empty until a stage
    /// inserts something: no allocation).
    pub extensions: http::Extensions,
}

/// Request extension set by the HTTP front end: the request arrived in TLS early data
/// (0-RTT), before the handshake completed, and may be a replay (RFC 8470).
#[derive(Debug, Clone, Copy)]
pub struct EarlyData;

impl ConnInfo {
    /// Describes a connection from `peer` accepted on `local` by listener `listener`.
    #[must_use]
    pub fn new(
        peer: SocketAddr,
        local: SocketAddr,
        listener: Arc<str>,
        scheme: &'static str,
    ) -> Self {
        let peer_ip = crate::ip_value::ip_header_value(peer.ip());
        Self {
            peer,
            peer_ip,
            local,
            listener,
            scheme,
            tls: None,
            proxied_by: None,
        }
    }

    /// Records that a PROXY protocol header named `client` as the peer of this connection.
    #[must_use]
    pub fn with_proxy_source(mut self, client: SocketAddr) -> Self {
        self.proxied_by = Some(self.peer);
        self.peer_ip = crate::ip_value::ip_header_value(client.ip().to_canonical());
        self.peer = client;
        self
    }

    /// Adds what the TLS handshake established (and makes the scheme `https`).
    #[must_use]
    pub fn with_tls(mut self, tls: Arc<TlsInfo>) -> Self {
        self.scheme = "https";
        self.tls = Some(tls);
        self
    }
}

impl RequestCtx {
    /// A context for a request just received on `conn`.
    #[must_use]
    pub fn new(conn: Arc<ConnInfo>, method: Method, uri: Uri, version: Version) -> Self {
        let client_ip = conn.peer.ip();
        Self {
            conn,
            request_id: HeaderValue::from_static(""),
            trace: TraceContext {
                trace_id: 0,
                span_id: 0,
                parent_id: None,
                flags: 0,
            },
            client_ip,
            started: Instant::now(),
            method,
            uri,
            version,
            host: None,
            user_agent: None,
            referer: None,
            route: None,
            upstream: None,
            upstream_target: None,
            upstream_duration: None,
            retries: 0,
            grpc_status: None,
            reason: None,
            detail: None,
            cors_origin: None,
            early_data: false,
            country: None,
            asn: None,
            stage: None,
            answer: None,
            cache: None,
            principal: None,
            extensions: http::Extensions::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_names_cover_exact_and_one_label_wildcards() {
        let tls = TlsInfo {
            cert_names: vec!["api.example.com".into(), "*.apps.example.com".into()].into(),
            ..TlsInfo::default()
        };
        assert!(tls.covers_host("api.example.com"));
        assert!(tls.covers_host("API.Example.com."));
        assert!(tls.covers_host("a.apps.example.com"));
        assert!(!tls.covers_host("apps.example.com"));
        assert!(!tls.covers_host("a.b.apps.example.com"));
        assert!(!tls.covers_host("other.example.com"));
    }
}

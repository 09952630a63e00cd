//! The proxy handler: turns the client's request into the upstream's, forwards it, turns the
//! answer back, and turns a `101 Switching Protocols` into a tunnel.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use rampart_config::model::{ForwardedPolicy, RouteRetry, UpstreamProtocol};
use rampart_core::headers::{AddedFields, connection_has, has_field, remove_hop_by_hop};
use rampart_core::ip_value::ip_header_value;
use rampart_core::{Body, ProxyError, RequestCtx};
use rampart_upstream::proxy_header::ClientConnection;
use rampart_upstream::{ForwardOpts, UpstreamSet, forward_with};

use super::HandlerEnv;
use crate::pipeline::settings::Settings;
use crate::pipeline::tunnel;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// What a listener sends upstream about the client: its forwarding headers policy and the
/// names of the headers carrying the client certificate (client copies are removed).
pub(crate) struct ForwardPolicy {
    /// `X-Forwarded-*`: rewrite, append or drop.
    pub(crate) x_forwarded: ForwardedPolicy,
    /// Also send RFC 7239 `Forwarded`.
    pub(crate) forwarded: bool,
    /// Fingerprint, subject and SANs header names.
    pub(crate) client_cert_headers: Arc<[HeaderName; 3]>,
}

/// The route a request is forwarded for.
pub(super) struct ProxyRoute<'a> {
    pub(super) set: &'a Arc<UpstreamSet>,
    pub(super) retry: Option<&'a RouteRetry>,
    /// The route's `timeout`, when set (else the upstream's).
    pub(super) timeout: Option<Duration>,
    /// The fields Rampart adds must be in the request's map (see `Handler::proxy`).
    pub(super) fields_in_map: bool,
    /// The route's mirror and fallback.
    pub(super) traffic: Option<&'a super::Traffic>,
}

/// Forwards `req` to the route's upstream and returns its response (or a tunnel's 101).
pub(super) async fn run(
    route: &ProxyRoute<'_>,
    mut req: Box<Request<Body>>,
    ctx: &mut RequestCtx,
    env: &HandlerEnv<'_>,
) -> Result<Box<Response<Body>>, ProxyError> {
    let set = route.set;
    ctx.upstream = Some(set.name.clone());
    let upgrade = is_upgrade(&req);
    let client_side = upgrade.then(|| tunnel::ClientSide::of(&mut *req));
    let downstream_version = req.version();
    // Rampart's own HTTP/1.1 client writes the added fields itself; hyper's client (HTTP/2,
    // upgrades) and a balancer hashing on a header read them from the map.
    let direct = !route.fields_in_map && !upgrade && set.protocol == UpstreamProtocol::Http1;
    let added = prepare_request(&mut req, ctx, env.forward, env.settings, upgrade, direct);
    if set.proxy_protocol.is_some() {
        req.extensions_mut().insert(client_connection(ctx));
    }
    let mut fallback = None;
    if let Some(traffic) = route.traffic
        && !upgrade
    {
        if let Some(mirror) = &traffic.mirror {
            mirror.copy(&mut req, added.as_bytes(), ctx).await?;
        }
        if let Some(f) = &traffic.fallback
            && let Some(body) = super::replay::small_body(&mut req, f.max_body).await?
        {
            fallback = Some((f, super::replay::copy_of(&req, added.as_bytes(), body)));
        }
    }
    let mut timeout = route.timeout.unwrap_or(set.request_timeout);
    // A gRPC call's deadline caps the wait (what is left of it): past it, the caller has given
    // up, and the answer is DEADLINE_EXCEEDED. gRPC is HTTP/2, so HTTP/1 requests skip this.
    if downstream_version == Version::HTTP_2
        && let Some(deadline) = req
            .headers()
            .get(&GRPC_TIMEOUT)
            .and_then(|v| grpc_timeout(v.as_bytes()))
    {
        timeout = timeout.min(deadline.saturating_sub(ctx.started.elapsed()));
    }
    let opts = ForwardOpts {
        timeout,
        upgrade,
        client_ip: Some(ctx.client_ip),
        route_retry: route.retry,
        added: added.as_bytes(),
    };
    // Without a fallback the upstream's future is awaited here, not inside the fallback's:
    // that one is boxed, so a route without a fallback carries none of its state.
    let forwarded = match fallback {
        None => forward_with(set, req, &opts).await,
        Some(fallback) => Box::pin(super::fallback::forward(set, req, &opts, fallback, ctx)).await,
    };
    let fwd = match forwarded {
        Ok(fwd) => fwd,
        Err(e) => {
            ctx.upstream_target = e.target;
            ctx.retries = e.retries;
            return Err(e.error);
        }
    };
    ctx.upstream_target = Some(fwd.target);
    ctx.upstream_duration = Some(fwd.upstream_time);
    ctx.retries = fwd.retries;
    let hop_by_hop = fwd.hop_by_hop;
    let mut resp = fwd.response;
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    match client_side {
        Some(client_side) if switching => {
            let upstream_side = hyper::upgrade::on(&mut *resp);
            let report = tunnel::spawn(
                client_side,
                upstream_side,
                env.settings.tunnel_idle_timeout,
                ctx.request_id.clone(),
            );
            resp.extensions_mut().insert(report);
            remove_hop_by_hop(resp.headers_mut(), true);
        }
        // Rampart's HTTP/1.1 client left no hop-by-hop field in the map: no pass needed.
        _ if !hop_by_hop => {}
        _ => remove_hop_by_hop(resp.headers_mut(), false),
    }
    let upstream_version = resp.version();
    add_via(resp.headers_mut(), env.settings, upstream_version);
    if downstream_version != Version::HTTP_2 {
        *resp.version_mut() = Version::HTTP_11;
    }
    Ok(resp)
}

/// A `grpc-timeout` value: up to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`); `None`
/// when malformed (the call then runs under the route's timeout alone).
fn grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// What a PROXY protocol header sent upstream says about the client's connection.
fn client_connection(ctx: &RequestCtx) -> ClientConnection {
    let conn = &ctx.conn;
    let sni = conn.tls.as_ref().and_then(|t| t.sni.as_deref());
    let host = ctx.host.as_ref().and_then(|h| h.to_str().ok());
    ClientConnection {
        source: conn.peer,
        destination: conn.local,
        authority: sni.or(host).map(str::to_owned),
        unique_id: Bytes::copy_from_slice(ctx.request_id.as_bytes()),
        tls: conn
            .tls
            .as_ref()
            .map(|t| (t.version, t.client_cert.is_some())),
    }
}

/// An HTTP/1.1 request asking to switch protocols (WebSocket and others). `h2c` upgrades are
/// never forwarded: Rampart speaks HTTP/2 to clients itself.
fn is_upgrade(req: &Request<Body>) -> bool {
    req.version() == Version::HTTP_11
        && connection_has(req.headers(), b"upgrade")
        && req
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|u| !u.as_bytes().eq_ignore_ascii_case(b"h2c"))
}

/// Rewrites the client's request into the one the upstream gets: hop-by-hop headers removed,
/// origin-form target, `Host`, forwarding headers, `Via`, request ID and trace context. With
/// `direct`, the added fields are returned as [`AddedFields`] for the HTTP/1.1 encoder instead
/// of going into the map (any field of the same name the request carries is removed from the
/// map, so the upstream receives what inserting them would have sent); otherwise the returned
/// fields are empty.
fn prepare_request(
    req: &mut Request<Body>,
    ctx: &RequestCtx,
    forward: &ForwardPolicy,
    settings: &Settings,
    upgrade: bool,
    direct: bool,
) -> AddedFields {
    let authority = req.uri().authority().map(|a| a.as_str().to_owned());
    let version = req.version();
    let origin_form = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(origin_form);
    let headers = req.headers_mut();
    if !direct {
        // Room for the headers added below in one growth instead of several.
        headers.reserve(6);
    }
    remove_hop_by_hop(headers, upgrade);
    // An absolute-form target or an HTTP/2 `:authority` is the request's host (RFC 9112 §3.2.2).
    if let Some(authority) = authority
        && !has_field(headers, &header::HOST)
        && let Ok(v) = HeaderValue::from_str(&authority)
    {
        headers.insert(header::HOST, v);
    }
    // An HTTP/1.0 request may have no host at all, but the upstream speaks HTTP/1.1, where Host
    // is mandatory: use the authority the client reached, the connection's local address
    // (RFC 9112 §3.3).
    if !has_field(headers, &header::HOST)
        && let Ok(v) = HeaderValue::from_str(&ctx.conn.local.to_string())
    {
        headers.insert(header::HOST, v);
    }
    let previous = take_previous(headers, forward.x_forwarded == ForwardedPolicy::Append);
    let added = Added {
        ctx,
        forward,
        settings,
        version,
    };
    if direct {
        remove_replaced(headers, ctx, forward);
        let mut fields = AddedFields::with_capacity(ADDED_ROOM);
        added.write(&mut fields, previous);
        fields
    } else {
        added.write(headers, previous);
        AddedFields::default()
    }
}

/// Bytes of added field lines on a typical request (forwarding headers, `Via`, a 32-digit
/// request ID, `traceparent`): one allocation holds them.
const ADDED_ROOM: usize = 256;

/// Where the fields Rampart adds to the upstream request go: the request's map (replacing
/// what is there), or serialized field lines for the HTTP/1.1 encoder.
trait FieldSink {
    /// Sets `name` to `value`.
    fn set(&mut self, name: &HeaderName, value: &HeaderValue);
    /// Sets `name` to `value`, bytes Rampart formatted from a valid alphabet.
    fn set_bytes(&mut self, name: &HeaderName, value: &[u8]);
    /// Adds `value` after the values `name` already has.
    fn add(&mut self, name: &HeaderName, value: &HeaderValue);
}

impl FieldSink for HeaderMap {
    fn set(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.insert(name.clone(), value.clone());
    }

    fn set_bytes(&mut self, name: &HeaderName, value: &[u8]) {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            self.insert(name.clone(), v);
        }
    }

    fn add(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.append(name.clone(), value.clone());
    }
}

impl FieldSink for AddedFields {
    fn set(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.push(name, value.as_bytes());
    }

    fn set_bytes(&mut self, name: &HeaderName, value: &[u8]) {
        self.push(name, value);
    }

    fn add(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.push(name, value.as_bytes());
    }
}

/// Before fields go to the encoder: removes the request's own fields of the names Rampart
/// sets (the forwarding headers are gone already, see [`take_previous`]). `Via` is appended
/// to, not replaced, so the client's stays.
fn remove_replaced(headers: &mut HeaderMap, ctx: &RequestCtx, forward: &ForwardPolicy) {
    // One pass over the names; requests rarely carry these.
    if headers
        .keys()
        .any(|n| *n == X_REQUEST_ID || *n == TRACEPARENT)
    {
        headers.remove(&X_REQUEST_ID);
        headers.remove(&TRACEPARENT);
    }
    if let Some(cert) = ctx.conn.tls.as_ref().and_then(|t| t.client_cert.as_ref()) {
        let [fingerprint, subject, sans] = &*forward.client_cert_headers;
        headers.remove(fingerprint);
        headers.remove(subject);
        if !cert.sans.is_empty() {
            headers.remove(sans);
        }
    }
}

/// What the added fields are made of.
struct Added<'a> {
    ctx: &'a RequestCtx,
    forward: &'a ForwardPolicy,
    settings: &'a Settings,
    /// The client's HTTP version (for `Via`).
    version: Version,
}

impl Added<'_> {
    /// Forwarding headers, client certificate headers, `Via`, `X-Request-ID`, `traceparent`,
    /// in that order.
    fn write<S: FieldSink>(&self, sink: &mut S, previous: Previous) {
        let ctx = self.ctx;
        set_forwarding_headers(sink, previous, ctx, self.forward);
        if let Some(cert) = ctx.conn.tls.as_ref().and_then(|t| t.client_cert.as_ref()) {
            let [fingerprint, subject, sans] = &*self.forward.client_cert_headers;
            sink.set(fingerprint, &cert.fingerprint);
            sink.set(subject, &cert.subject);
            if !cert.sans.is_empty() {
                sink.set(sans, &cert.sans);
            }
        }
        if let Some(via) = self.settings.via.for_version(self.version) {
            sink.add(&header::VIA, via);
        }
        sink.set(&X_REQUEST_ID, &ctx.request_id);
        sink.set_bytes(&TRACEPARENT, &ctx.trace.header_bytes());
    }
}

/// `Via` on the response: the hop to the client, named after the upstream's version.
fn add_via(headers: &mut HeaderMap, settings: &Settings, version: Version) {
    if let Some(via) = settings.via.for_version(version) {
        headers.append(header::VIA, via.clone());
    }
}

/// Client-sent forwarding headers, read before they are removed (kept only under `append`).
#[derive(Default)]
struct Previous {
    xff: Option<String>,
    forwarded: Option<String>,
    proto: Option<HeaderValue>,
    host: Option<HeaderValue>,
}

fn is_forwarding_header(name: &HeaderName) -> bool {
    name == X_FORWARDED_FOR
        || name == X_FORWARDED_PROTO
        || name == X_FORWARDED_HOST
        || name == FORWARDED
}

/// Removes client-sent forwarding headers, returning their values when `keep` says they count.
fn take_previous(headers: &mut HeaderMap, keep: bool) -> Previous {
    // Fast path: one pass over the names; most requests carry none of these headers.
    if !headers.keys().any(is_forwarding_header) {
        return Previous::default();
    }
    let previous = if keep {
        Previous {
            xff: joined(headers, &X_FORWARDED_FOR),
            forwarded: joined(headers, &FORWARDED),
            proto: headers.get(&X_FORWARDED_PROTO).cloned(),
            host: headers.get(&X_FORWARDED_HOST).cloned(),
        }
    } else {
        Previous::default()
    };
    for name in [
        &X_FORWARDED_FOR,
        &X_FORWARDED_PROTO,
        &X_FORWARDED_HOST,
        &FORWARDED,
    ] {
        headers.remove(name);
    }
    previous
}

/// Applies the listener's policy to `X-Forwarded-For/-Proto/-Host` and, when enabled, the RFC
/// 7239 `Forwarded` header. `previous` holds the client's values (see [`take_previous`]).
fn set_forwarding_headers<S: FieldSink>(
    sink: &mut S,
    previous: Previous,
    ctx: &RequestCtx,
    forward: &ForwardPolicy,
) {
    if forward.x_forwarded == ForwardedPolicy::Drop {
        return;
    }
    // `rewrite` sends the one client IP; `append` extends the received chain with the address
    // this hop received the request from (the peer, or the client a PROXY header named).
    let hop = ctx.conn.peer.ip().to_canonical();
    let xff = match previous.xff {
        Some(prev) => HeaderValue::from_str(&format!("{prev}, {hop}")).ok(),
        None => Some(client_ip_value(ctx)),
    };
    if let Some(xff) = xff {
        sink.set(&X_FORWARDED_FOR, &xff);
    }
    // Scheme and host describe the original request: a trusted hop in front (say, a load
    // balancer terminating TLS) knew them first, so under `append` its values win.
    let scheme = ctx.conn.scheme;
    match &previous.proto {
        Some(proto) => sink.set(&X_FORWARDED_PROTO, proto),
        None => sink.set(&X_FORWARDED_PROTO, &HeaderValue::from_static(scheme)),
    }
    if let Some(host) = previous.host.as_ref().or(ctx.host.as_ref()) {
        sink.set(&X_FORWARDED_HOST, host);
    }
    if forward.forwarded {
        let mut element = String::with_capacity(64);
        let node = if previous.forwarded.is_some() {
            hop
        } else {
            ctx.client_ip
        };
        match node {
            IpAddr::V4(v4) => {
                let _ = write!(element, "for={v4}");
            }
            IpAddr::V6(v6) => {
                let _ = write!(element, "for=\"[{v6}]\"");
            }
        }
        let _ = write!(element, ";proto={scheme}");
        if let Some(host) = ctx.host.as_ref().and_then(|h| h.to_str().ok()) {
            let _ = write!(element, ";host=\"{}\"", host.replace(['"', '\\'], ""));
        }
        let value = match previous.forwarded {
            Some(prev) => format!("{prev}, {element}"),
            None => element,
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            sink.set(&FORWARDED, &v);
        }
    }
}

/// The client IP as a header value: the connection's cached one when the client is the peer.
fn client_ip_value(ctx: &RequestCtx) -> HeaderValue {
    if ctx.client_ip == ctx.conn.peer.ip() {
        return ctx.conn.peer_ip.clone();
    }
    ip_header_value(ctx.client_ip)
}

/// All values of a header joined with `, ` (the form proxies extend), if any.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for v in headers.get_all(name) {
        let Ok(v) = v.to_str() else { continue };
        match &mut out {
            Some(s) => {
                s.push_str(", ");
                s.push_str(v);
            }
            None => out = Some(v.to_owned()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_every_unit_and_refuse_the_rest() {
        assert_eq!(grpc_timeout(b"1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(grpc_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout(b"3M"), Some(Duration::from_secs(180)));
        assert_eq!(grpc_timeout(b"7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            grpc_timeout(b"99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in [&b""[..], b"m", b"123456789m", b"12x", b"-1S", b"1 S"] {
            assert_eq!(grpc_timeout(bad), None, "{bad:?}");
        }
    }
}

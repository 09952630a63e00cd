//! The pipeline's own checks and answers before routing: the health fast path, the HTTPS
//! redirect of redirect listeners, TLS early data and strict SNI, and path normalization.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri};
use rampart_core::{Body, EarlyData, ErrorKind, ProxyError, RequestCtx};

use crate::observe::tls_stats::TlsStats;
use crate::pipeline::normalize::normalize_path;
use crate::pipeline::plane::TlsPolicy;
use crate::pipeline::session::Shared;

/// Methods served from TLS early data: safe ones only (RFC 9110 §9.2.1). An idempotent but
/// unsafe method (PUT, DELETE) could still be replayed after a later change and undo it.
fn early_data_allowed(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

static EARLY_DATA: HeaderName = HeaderName::from_static("early-data");

/// Early data (425 or `Early-Data: 1`, RFC 8470) and strict SNI (421).
pub(crate) fn check_tls(
    req: &mut Request<Body>,
    ctx: &mut RequestCtx,
    tls: &TlsPolicy,
    stats: &TlsStats,
) -> Result<(), ProxyError> {
    if req.extensions().get::<EarlyData>().is_some() {
        ctx.early_data = true;
        if !early_data_allowed(req.method()) {
            stats.early_data_rejected();
            return Err(ProxyError::new(
                ErrorKind::TooEarly,
                format!("{} received in TLS early data", req.method()),
            ));
        }
        req.headers_mut()
            .insert(EARLY_DATA.clone(), HeaderValue::from_static("1"));
    }
    if tls.strict_sni {
        let host = ctx
            .host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let covered = ctx
            .conn
            .tls
            .as_ref()
            .is_some_and(|t| t.covers_host(strip_port(host)));
        if !covered {
            return Err(ProxyError::new(
                ErrorKind::MisdirectedRequest,
                format!("host {host:?} is not served by this connection's certificate"),
            ));
        }
    }
    Ok(())
}

/// `host` without a `:port` (IPv6 literals keep their brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

/// A redirect listener's answer: the same host and target over HTTPS.
pub(crate) fn redirect_https(
    req: &Request<Body>,
    ctx: &RequestCtx,
    status: StatusCode,
    port: &str,
) -> Result<Response<Body>, ProxyError> {
    let host = ctx
        .host
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .map(strip_port)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ProxyError::new(ErrorKind::BadRequest, "no host to redirect to"))?;
    let target = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
    let location = HeaderValue::from_str(&format!("https://{host}{port}{target}"))
        .map_err(|_| ProxyError::new(ErrorKind::BadRequest, "invalid host for redirect"))?;
    let mut resp = Response::new(Body::full(Bytes::new()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::LOCATION, location);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    Ok(resp)
}

/// `/healthz` (the process is alive) and `/readyz` (listening, config loaded, not draining),
/// answered before routing, limits or logging cost anything.
pub(crate) fn fast_path(req: &Request<Body>, shared: &Shared) -> Option<Response<Body>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    let (status, text) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, "ok\n"),
        "/readyz" if shared.is_draining() => (StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        "/readyz" => (StatusCode::OK, "ready\n"),
        _ => return None,
    };
    let mut resp = Response::new(Body::full(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(resp)
}

/// Normalizes the path in place (see [`crate::pipeline::normalize`]).
pub(crate) fn normalize(req: &mut Request<Body>) -> Result<(), ProxyError> {
    let normalized = match normalize_path(req.uri().path()) {
        Ok(Cow::Borrowed(_)) => return Ok(()),
        Ok(Cow::Owned(p)) => p,
        Err(e) => return Err(ProxyError::new(ErrorKind::BadRequest, e.detail())),
    };
    let pq = match req.uri().query() {
        Some(q) => format!("{normalized}?{q}"),
        None => normalized,
    };
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.path_and_query = PathAndQuery::try_from(pq).ok();
    *req.uri_mut() = Uri::from_parts(parts)
        .map_err(|_| ProxyError::new(ErrorKind::BadRequest, "invalid URI after normalization"))?;
    Ok(())
}

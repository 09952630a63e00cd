//! The request pipeline: every request from every protocol goes through [`handle`].
//!
//! Order: identity (request ID, trace context) → fast path (`/healthz`, `/readyz`) → limits
//! (414, 431) and request sanity (400) → path normalization → route lookup (404) → the route's
//! stages → handler → response stages in reverse → `X-Request-ID`, then the access log line
//! when the response body is done.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use rampart_core::ids::{is_valid_request_id, new_request_id};
use rampart_core::{
    Body, BoxError, ErrorKind, Flow, ProxyError, RequestCtx, TraceContext, error_response,
    respond::negotiation_header,
};
use rampart_router::RequestView;

use crate::access_log::{AccessLog, Outcome};
use crate::conn::ConnCtx;
use crate::conn_io::ConnState;
use crate::normalize::normalize_path;
use crate::runtime::{CompiledRoute, ListenerRt, Runtime};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Handles one request end to end and returns the response whose body, once finished, writes
/// the access log line.
pub(crate) async fn handle(req: Request<Incoming>, conn: Arc<ConnCtx>) -> Response<ResponseBody> {
    conn.state.request_started();
    let (rt, listener_index) = conn.runtime();
    let (parts, body) = req.into_parts();
    let ctx = RequestCtx::new(
        conn.info.clone(),
        parts.method.clone(),
        parts.uri.clone(),
        parts.version,
    );
    // Created before anything is awaited: if this future is dropped before it answers (the
    // client reset its HTTP/2 stream or closed the connection), dropping `finish` still writes
    // the log line and tells the connection the request is over.
    if parts.version == Version::HTTP_2 {
        conn.gauge.switch(crate::metrics::HTTP1, crate::metrics::H2);
    }
    let mut finish = Finish {
        ctx: Box::new(ctx),
        status: CLIENT_CLOSED_REQUEST,
        log: conn.shared.access_log.clone(),
        tracer: conn.shared.tracer.clone(),
        state: conn.state.clone(),
        done: false,
        rt,
        listener: listener_index.unwrap_or(usize::MAX),
        route: None,
    };
    let rt: &Runtime = &finish.rt;
    let ctx = &mut *finish.ctx;
    // Boxed once here: the request then moves through the stages, the handler and the retry
    // loop as one pointer instead of being copied whole at every step.
    let mut req = Box::new(Request::from_parts(parts, Body::Incoming(body)));
    let Some(listener) = rt.listeners.get(finish.listener) else {
        // A reload removed this connection's listener (the connection is being closed): no
        // route of any other listener may answer it.
        ctx.request_id = new_request_id();
        let err = ProxyError::new(ErrorKind::NoRoute, "the listener was removed by a reload");
        let mut resp = reject(&err, ctx, None);
        resp.headers_mut()
            .insert(X_REQUEST_ID.clone(), ctx.request_id.clone());
        if ctx.version < Version::HTTP_2 {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        finish.status = resp.status().as_u16();
        return resp.map(|inner| ResponseBody::new(inner, finish));
    };
    identify(&mut req, ctx, listener);
    if let Some(tracer) = &conn.shared.tracer {
        tracer.sample(&mut ctx.trace);
    }
    crate::gates::identify_client(&req, ctx, &listener.gates, &rt.gates);
    // What error responses negotiate on: `Accept`, or a gRPC request's content type.
    let accept = negotiation_header(req.headers(), req.version()).cloned();
    let route_slot = &mut finish.route;
    let mut resp = match process(rt, listener, req, ctx, &conn, accept.as_ref(), route_slot).await {
        Ok(resp) => resp,
        Err(err) => reject(&err, ctx, accept.as_ref()),
    };
    // Unique to each response, so never worth an HPACK table entry: sent as a never-indexed
    // literal, it costs no table insertion and evicts nothing the next response could reuse.
    let mut id = ctx.request_id.clone();
    id.set_sensitive(true);
    resp.headers_mut().insert(X_REQUEST_ID.clone(), id);
    if let Some(hsts) = listener.tls.as_ref().and_then(|t| t.hsts.as_ref())
        && !resp
            .headers()
            .contains_key(header::STRICT_TRANSPORT_SECURITY)
    {
        resp.headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    if let Some(audit) = &conn.shared.audit {
        audit.security(ctx);
    }
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        conn.state.switch_protocols();
    }
    finish.status = resp.status().as_u16();
    resp.map(|inner| ResponseBody::new(inner, finish))
}

/// The status logged for a request the client abandoned before any response existed (nginx's
/// "client closed request"); it is never sent.
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// Turns a failure into its response (boxed, as every response on the way to hyper is) and
/// records why.
fn reject(
    err: &ProxyError,
    ctx: &mut RequestCtx,
    accept: Option<&HeaderValue>,
) -> Box<Response<Body>> {
    ctx.reason = Some(err.kind);
    ctx.detail = Some(err.detail.to_string());
    if err.kind.side() == rampart_core::Side::Upstream {
        tracing::warn!(request_id = ?ctx.request_id, route = ?ctx.route, upstream = ?ctx.upstream, reason = err.kind.code(), detail = %err.detail, "upstream failure");
    } else {
        tracing::debug!(request_id = ?ctx.request_id, reason = err.kind.code(), detail = %err.detail, "request refused");
    }
    let mut resp = Box::new(error_response(err, &ctx.request_id, accept));
    // After a framing or header refusal the rest of an HTTP/1 connection cannot be trusted.
    if crate::sanity::closes_connection(err.kind) && ctx.version < Version::HTTP_2 {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Request ID and trace context, plus the headers the access log wants.
fn identify(req: &mut Request<Body>, ctx: &mut RequestCtx, listener: &ListenerRt) {
    // One pass over the fields instead of a hash lookup per header (they are few, and the
    // comparisons of standard names are integer compares).
    let (mut id, mut traceparent, mut host, mut agent, mut referer) =
        (None, None, None, None, None);
    for (name, value) in req.headers() {
        if *name == header::HOST {
            host = host.or(Some(value));
        } else if *name == header::USER_AGENT {
            agent = agent.or(Some(value));
        } else if *name == header::REFERER {
            referer = referer.or(Some(value));
        } else if *name == X_REQUEST_ID {
            id = id.or(Some(value));
        } else if *name == TRACEPARENT {
            traceparent = traceparent.or(Some(value));
        }
    }
    ctx.request_id = match id {
        Some(id) if listener.trust_request_id && is_valid_request_id(id) => id.clone(),
        _ => new_request_id(),
    };
    ctx.trace = TraceContext::continue_or_start(traceparent);
    ctx.user_agent = agent.cloned();
    ctx.referer = referer.cloned();
    // An absolute-form target or an HTTP/2 `:authority` is the request's host; a `Host` header
    // beside it is ignored (RFC 9112 §3.2.2, RFC 9113 §8.3.1), as `rampart explain` does.
    ctx.host = req
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .or_else(|| host.cloned());
}

async fn process(
    rt: &Runtime,
    listener: &ListenerRt,
    mut req: Box<Request<Body>>,
    ctx: &mut RequestCtx,
    conn: &ConnCtx,
    accept: Option<&HeaderValue>,
    route_slot: &mut Option<Arc<CompiledRoute>>,
) -> Result<Box<Response<Body>>, ProxyError> {
    let head_flags = conn.state.take_head_flags();
    if listener.health_endpoints
        && let Some(resp) = fast_path(&req, conn)
    {
        return Ok(Box::new(resp));
    }
    check_limits(&req, rt)?;
    check_sanity(&req)?;
    crate::sanity::check_head_flags(head_flags)?;
    crate::gates::admit(&mut req, ctx, &listener.gates, &rt.gates)?;
    if let Some((status, port)) = &listener.redirect_https {
        return redirect_https(&req, ctx, *status, port).map(Box::new);
    }
    // The connection's client certificate reaches upstreams only in headers Rampart sets.
    let cert_headers = &listener.client_cert_headers;
    if req.headers().keys().any(|k| cert_headers.contains(k)) {
        for name in cert_headers.iter() {
            req.headers_mut().remove(name);
        }
    }
    if let Some(tls) = &listener.tls {
        check_tls(&mut req, ctx, tls)?;
    }
    // The host the request is routed by is the one stages, handlers and the upstream see.
    if req.uri().authority().is_some()
        && let Some(host) = &ctx.host
    {
        req.headers_mut().insert(header::HOST, host.clone());
    }
    normalize(&mut req)?;
    let view = RequestView {
        method: req.method(),
        host: ctx.host.as_ref().and_then(|h| h.to_str().ok()),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
    };
    let Some(found) = listener.router.lookup(&view) else {
        return Err(ProxyError::new(ErrorKind::NoRoute, "no route matches"));
    };
    let route: &CompiledRoute = route_slot.insert(Arc::clone(found.value));
    ctx.route = Some(route.name.clone());
    // Every response of a matched route, the handler's, a stage's answer or an error, goes
    // back through all of the route's response stages (security headers, CORS, header edits):
    // this is the one place where that happens.
    let mut resp = match run_route(route, rt, listener, req, ctx).await {
        Ok(resp) => resp,
        Err(err) => reject(&err, ctx, accept),
    };
    for stage in route.stages.iter().rev() {
        stage.on_response(&mut resp, ctx);
    }
    Ok(resp)
}

/// A matched route's request stages, then its handler.
async fn run_route(
    route: &CompiledRoute,
    rt: &Runtime,
    listener: &ListenerRt,
    mut req: Box<Request<Body>>,
    ctx: &mut RequestCtx,
) -> Result<Box<Response<Body>>, ProxyError> {
    for stage in &route.stages {
        if let Flow::Respond(resp) = stage.on_request(&mut req, ctx).resolve().await? {
            return Ok(resp);
        }
    }
    crate::client_body::prepare(&mut req, &rt.gates)?;
    route
        .handler
        .run(req, ctx, rt, listener, route.timeout)
        .await
}

/// Methods served from TLS early data: safe ones only (RFC 9110 §9.2.1). An idempotent but
/// unsafe method (PUT, DELETE) could still be replayed after a later change and undo it.
fn early_data_allowed(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

static EARLY_DATA: HeaderName = HeaderName::from_static("early-data");

/// Early data (425 or `Early-Data: 1`, RFC 8470) and strict SNI (421).
fn check_tls(
    req: &mut Request<Body>,
    ctx: &mut RequestCtx,
    tls: &crate::tls::TlsListener,
) -> Result<(), ProxyError> {
    if req.extensions().get::<crate::conn::EarlyData>().is_some() {
        ctx.early_data = true;
        if !early_data_allowed(req.method()) {
            tls.stats.early_data_rejected();
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
fn redirect_https(
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
fn fast_path(req: &Request<Body>, conn: &ConnCtx) -> Option<Response<Body>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    let (status, text) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, "ok\n"),
        "/readyz" if conn.shared.is_draining() => (StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
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

/// 414 for a long target, 431 for too many or too large headers.
fn check_limits(req: &Request<Body>, rt: &Runtime) -> Result<(), ProxyError> {
    let s = &rt.settings;
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > s.max_uri_length {
        return Err(ProxyError::new(
            ErrorKind::UriTooLong,
            format!("request target of {target_len} bytes"),
        ));
    }
    let headers = req.headers();
    if headers.len() > s.max_header_count {
        return Err(ProxyError::new(
            ErrorKind::HeadersTooLarge,
            format!("{} header fields", headers.len()),
        ));
    }
    let size: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if size > s.max_header_size {
        return Err(ProxyError::new(
            ErrorKind::HeadersTooLarge,
            format!("{size} bytes of headers"),
        ));
    }
    Ok(())
}

/// Requests that are well-formed HTTP but must not be served: ambiguous framing, missing or
/// repeated `Host`, a `Host` that disagrees with the target (see [`crate::sanity`]).
fn check_sanity(req: &Request<Body>) -> Result<(), ProxyError> {
    crate::sanity::check(req)
}

/// Normalizes the path in place (see [`crate::normalize`]).
fn normalize(req: &mut Request<Body>) -> Result<(), ProxyError> {
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

/// What finishing a request does, exactly once: the access log line and the connection's
/// request count. Dropped unfinished, it finishes the request as abandoned by the client.
pub(crate) struct Finish {
    ctx: Box<RequestCtx>,
    status: u16,
    log: Option<Arc<AccessLog>>,
    /// The OTLP span pipeline, when `[tracing]` is enabled.
    tracer: Option<Arc<crate::otel::Tracer>>,
    state: Arc<ConnState>,
    done: bool,
    /// The snapshot the request ran on, the index of its listener there, and its route: what
    /// the request's metrics count into.
    rt: Arc<Runtime>,
    listener: usize,
    route: Option<Arc<CompiledRoute>>,
}

impl Finish {
    fn complete(&mut self, bytes_sent: u64, completed: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        crate::metrics::record(
            &self.rt.metrics,
            self.route.as_deref().map(|r| &r.metrics),
            self.rt.listeners.get(self.listener).map(|l| &*l.no_route),
            self.listener,
            &self.ctx,
            self.status,
        );
        if let Some(tracer) = &self.tracer {
            tracer.finish(&self.ctx, self.status);
        }
        if let Some(log) = &self.log {
            log.record(
                &self.ctx,
                Outcome {
                    status: self.status,
                    bytes_sent,
                    completed,
                },
            );
        }
        self.state.request_finished();
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if !self.done {
            self.ctx
                .detail
                .get_or_insert_with(|| "client went away before the response".to_owned());
            self.complete(0, false);
        }
    }
}

/// The body hyper sends to the client: counts bytes and finishes the request when done.
pub(crate) struct ResponseBody {
    inner: Body,
    bytes: u64,
    finish: Option<Finish>,
}

impl ResponseBody {
    fn new(inner: Body, finish: Finish) -> Self {
        Self {
            inner,
            bytes: 0,
            finish: Some(finish),
        }
    }

    fn done(&mut self, completed: bool) {
        if let Some(mut finish) = self.finish.take() {
            finish.complete(self.bytes, completed);
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                this.bytes += f.data_ref().map_or(0, |d| d.len() as u64);
                if this.inner.is_end_stream() {
                    this.done(true);
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed mid-stream");
                if let Some(f) = &mut this.finish {
                    f.ctx.reason.get_or_insert(ErrorKind::UpstreamReset);
                    f.ctx.detail.get_or_insert_with(|| e.to_string());
                }
                this.done(false);
            }
            None => this.done(true),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        let completed = self.inner.is_end_stream();
        self.done(completed);
    }
}

//! One request through the pipeline, whatever protocol carried it: [`handle`].
//!
//! Order: identity (request ID, trace context, client IP) → fast path (`/healthz`, `/readyz`)
//! → the front end's verdict (limits 414/431, request sanity 400) → listener gates (access
//! list, country header) → HTTPS redirect → TLS checks (early data 425, strict SNI 421) → path
//! normalization → route lookup (404) → the route's stages and handler (see
//! [`run_route`]) → response stages in reverse → `X-Request-ID` and HSTS; the access log line
//! is written when the response body is done (see [`super::finish`]).

use std::sync::Arc;

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use rampart_core::ids::{is_valid_request_id, new_request_id};
use rampart_core::{
    Body, ErrorKind, ForwardBehind, ProxyError, RequestCtx, TraceContext, error_response,
    respond::negotiation_header,
};
use rampart_router::RequestView;

use crate::pipeline::behind::forward_behind;
use crate::pipeline::checks::{check_tls, fast_path, normalize, redirect_https};
use crate::pipeline::finish::{Finish, ResponseBody};
use crate::pipeline::plane::{CompiledRoute, ListenerRt, Plane};
use crate::pipeline::route_run::run_handler;
use crate::pipeline::session::Session;
use crate::pipeline::tunnel::TunnelReport;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// How a request arrived: the plane it runs on (loaded by the front end when it dispatched
/// the request), its listener's index there, and what the front end's own checks found.
pub(crate) struct Arrival {
    pub(crate) plane: Arc<Plane>,
    /// `None`: a reload removed the connection's listener.
    pub(crate) listener: Option<usize>,
    /// The front end's refusal (limits, framing, header sanity), if any: answered after the
    /// fast path, as the first refusal of the pipeline. Boxed: the rare case should not make
    /// every request's future carry a whole error.
    pub(crate) refusal: Option<Box<ProxyError>>,
}

/// Handles one request end to end and returns the response whose body, once finished, writes
/// the access log line. The request comes boxed from its front end: it then moves through the
/// stages, the handler and the retry loop as one pointer instead of being copied whole at
/// every step.
pub(crate) async fn handle(
    mut req: Box<Request<Body>>,
    session: Arc<Session>,
    arrival: Arrival,
) -> Response<ResponseBody> {
    let ctx = RequestCtx::new(
        session.info.clone(),
        req.method().clone(),
        req.uri().clone(),
        req.version(),
    );
    // Created before anything is awaited: if this future is dropped before it answers (the
    // client reset its HTTP/2 stream or closed the connection), dropping `finish` still writes
    // the log line and tells the connection the request is over.
    let mut finish = Finish::new(
        Box::new(ctx),
        &session,
        arrival.plane,
        arrival.listener.unwrap_or(usize::MAX),
    );
    let listener_index = finish.listener;
    let plane: &Arc<Plane> = &finish.plane;
    let ctx = &mut *finish.ctx;
    let Some(listener) = plane.listeners.get(finish.listener) else {
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
    if let Some(tracer) = &session.shared.tracer {
        tracer.sample(&mut ctx.trace);
    }
    crate::pipeline::gates::identify_client(&req, ctx, &listener.gates, &plane.gates);
    // What error responses negotiate on: `Accept`, or a gRPC request's content type.
    let accept = negotiation_header(req.headers(), req.version()).cloned();
    let route_slot = &mut finish.route;
    let entry = Entry {
        plane,
        listener,
        listener_index,
        session: &session,
        accept: accept.as_ref(),
    };
    let mut resp = match process(&entry, req, ctx, arrival.refusal, route_slot).await {
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
    // HTTP/3 is advertised on the listener's TCP side only: an HTTP/3 client already uses it.
    if let Some(alt) = &listener.alt_svc
        && ctx.version != Version::HTTP_3
        && !resp.headers().contains_key(header::ALT_SVC)
    {
        resp.headers_mut()
            .insert(header::ALT_SVC, alt.value(ctx.conn.local.port()).clone());
    }
    if let Some(audit) = &session.shared.audit {
        audit.security(ctx);
    }
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        session.carrier.switch_protocols();
        finish.tunnel = resp.extensions_mut().remove::<TunnelReport>();
    }
    finish.status = resp.status().as_u16();
    resp.map(|inner| ResponseBody::new(inner, finish))
}

/// Turns a failure into its response (boxed, as every response on the way to the front end
/// is) and records why.
fn reject(
    err: &ProxyError,
    ctx: &mut RequestCtx,
    accept: Option<&HeaderValue>,
) -> Box<Response<Body>> {
    ctx.reason = Some(err.kind);
    ctx.detail = Some(err.detail.to_string());
    if err.kind.side() == rampart_core::Side::Upstream {
        tracing::warn!(
            request_id = ctx.request_id.to_str().unwrap_or("-"),
            route = ctx.route.as_deref().unwrap_or("-"),
            upstream = ctx.upstream.as_deref().unwrap_or("-"),
            reason = err.kind.code(),
            detail = %err.detail,
            "upstream failure"
        );
    } else {
        tracing::debug!(request_id = ctx.request_id.to_str().unwrap_or("-"), reason = err.kind.code(), stage = ctx.stage, detail = %err.detail, "request refused");
    }
    let mut resp = Box::new(error_response(err, &ctx.request_id, accept));
    ctx.grpc_status = grpc_status_of(&resp);
    // After a framing or header refusal the rest of an HTTP/1 connection cannot be trusted.
    if closes_connection(err.kind) && ctx.version < Version::HTTP_2 {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The `grpc-status` of a trailers-only gRPC answer Rampart built itself.
fn grpc_status_of(resp: &Response<Body>) -> Option<u8> {
    let value = resp.headers().get("grpc-status")?;
    std::str::from_utf8(value.as_bytes()).ok()?.parse().ok()
}

/// True for refusals after which an HTTP/1 connection is closed: the framing of what follows
/// on the connection can no longer be trusted.
const fn closes_connection(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::AmbiguousFraming
            | ErrorKind::InvalidHeader
            | ErrorKind::HostMismatch
            | ErrorKind::BadRequest
            | ErrorKind::BodyTooSlow
    )
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

/// What every step of one request's processing reads.
struct Entry<'a> {
    plane: &'a Arc<Plane>,
    listener: &'a ListenerRt,
    /// The listener's index in the plane.
    listener_index: usize,
    session: &'a Session,
    accept: Option<&'a HeaderValue>,
}

async fn process(
    entry: &Entry<'_>,
    mut req: Box<Request<Body>>,
    ctx: &mut RequestCtx,
    refusal: Option<Box<ProxyError>>,
    route_slot: &mut Option<Arc<CompiledRoute>>,
) -> Result<Box<Response<Body>>, ProxyError> {
    let Entry {
        plane, listener, ..
    } = *entry;
    if listener.health_endpoints
        && let Some(resp) = fast_path(&req, &entry.session.shared)
    {
        return Ok(Box::new(resp));
    }
    if let Some(refusal) = refusal {
        return Err(*refusal);
    }
    crate::pipeline::gates::admit(&mut req, ctx, &listener.gates, &plane.gates)?;
    if let Some((status, port)) = &listener.redirect_https {
        return redirect_https(&req, ctx, *status, port).map(Box::new);
    }
    // The connection's client certificate reaches upstreams only in headers Rampart sets.
    let cert_headers = &listener.forward.client_cert_headers;
    if req.headers().keys().any(|k| cert_headers.contains(k)) {
        for name in cert_headers.iter() {
            req.headers_mut().remove(name);
        }
    }
    if let Some(tls) = &listener.tls {
        check_tls(&mut req, ctx, tls, &plane.tls_stats)?;
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
    let route: &Arc<CompiledRoute> = route_slot.insert(Arc::clone(found.value));
    ctx.route = Some(route.name.clone());
    // Every response of a matched route, the handler's, a stage's answer or an error, goes
    // back through all of the route's response stages (security headers, CORS, header edits):
    // this is the one place where that happens.
    let mut resp = match run_route(entry, route, req, ctx).await {
        Ok(resp) => resp,
        Err(err) => reject(&err, ctx, entry.accept),
    };
    route.stages.on_response(&mut resp, ctx);
    Ok(resp)
}

/// A matched route: its request-head stages, then the rest ([`run_handler`]). A stage that
/// answers may have the request forwarded behind its answer ([`ForwardBehind`]).
async fn run_route(
    entry: &Entry<'_>,
    route: &Arc<CompiledRoute>,
    mut req: Box<Request<Body>>,
    ctx: &mut RequestCtx,
) -> Result<Box<Response<Body>>, ProxyError> {
    if let Some(answer) = route.stages.on_request(&mut req, ctx).await? {
        if ctx.extensions.get::<ForwardBehind>().is_some() {
            forward_behind(entry.plane, entry.listener_index, route, req, ctx);
        }
        return Ok(answer);
    }
    run_handler(route, entry.plane, entry.listener, req, ctx).await
}

//! Forwarding a request behind a stage's answer ([`ForwardBehind`]): the stage answered the
//! client (a cache with a stale object), and the request still goes on, in a task of its own,
//! through the route's later request stages and its handler. The response goes through the
//! route's response stages and its body is read to the end (so that a stage copying it, such
//! as the cache's, sees it whole), then dropped. Nothing of it reaches the client or the
//! access log.

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use rampart_core::{Body, ForwardBehind, RequestCtx, error_response};

use crate::pipeline::plane::{CompiledRoute, Plane};
use crate::pipeline::route_run::run_handler;

/// Longest a background response body is read, when the route sets no timeout.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// Starts forwarding `req` behind the answer a request-head stage gave (the stage recorded in
/// `ctx`), with the request's extensions.
pub(crate) fn forward_behind(
    plane: &Arc<Plane>,
    listener: usize,
    route: &Arc<CompiledRoute>,
    req: Box<Request<Body>>,
    ctx: &mut RequestCtx,
) {
    let Some(start) = route.stages.answered_at(ctx).map(|i| i + 1) else {
        return;
    };
    let mut behind = Box::new(RequestCtx::new(
        Arc::clone(&ctx.conn),
        ctx.method.clone(),
        ctx.uri.clone(),
        ctx.version,
    ));
    behind.request_id = ctx.request_id.clone();
    behind.trace = ctx.trace;
    behind.client_ip = ctx.client_ip;
    behind.host.clone_from(&ctx.host);
    behind.route.clone_from(&ctx.route);
    behind.country = ctx.country;
    behind.asn = ctx.asn;
    behind.early_data = ctx.early_data;
    behind.extensions = std::mem::take(&mut ctx.extensions);
    behind.extensions.remove::<ForwardBehind>();
    let (plane, route) = (Arc::clone(plane), Arc::clone(route));
    tokio::spawn(async move {
        let Some(listener) = plane.listeners.get(listener) else {
            return;
        };
        let mut req = req;
        let ctx = &mut *behind;
        let result = match route.stages.on_request_from(start, &mut req, ctx).await {
            Ok(Some(answer)) => Ok(answer),
            Ok(None) => run_handler(&route, &plane, listener, req, ctx).await,
            Err(e) => Err(e),
        };
        let mut resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(route = %route.name, reason = e.kind.code(), detail = %e.detail, "background request failed");
                Box::new(error_response(&e, &ctx.request_id, None))
            }
        };
        route.stages.on_response(&mut resp, ctx);
        let mut body = std::mem::take(resp.body_mut());
        let drain = async {
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(route.timeout.unwrap_or(DRAIN_LIMIT), drain).await;
    });
}

//! A matched route after its request-head stages: [`run_handler`] (the client body guard,
//! the request-body stages, the upstream choice, the handler), for requests answered to the
//! client and for those forwarded behind a stage's answer alike.

use http::{Request, Response};
use rampart_core::{Body, ProxyError, RequestCtx};

use crate::pipeline::handler::HandlerEnv;
use crate::pipeline::plane::{CompiledRoute, ListenerRt, Plane};

/// After the request-head stages: the client body guard, the request-body stages, the
/// upstream choice, then the handler.
pub(crate) async fn run_handler(
    route: &CompiledRoute,
    plane: &Plane,
    listener: &ListenerRt,
    mut req: Box<Request<Body>>,
    ctx: &mut RequestCtx,
) -> Result<Box<Response<Body>>, ProxyError> {
    let stages = &route.stages;
    crate::pipeline::client_body::prepare(&mut req, &plane.gates)?;
    if let Some(answer) = stages.on_request_body(&mut req, ctx).await? {
        return Ok(answer);
    }
    let chosen = if route.handler.forwards() {
        stages.choose_upstream(&req, ctx)
    } else {
        None
    };
    route
        .handler
        .run(
            req,
            ctx,
            &handler_env(plane, listener),
            route.timeout,
            chosen,
        )
        .await
}

/// What the handler reads of the plane and the listener.
const fn handler_env<'a>(plane: &'a Plane, listener: &'a ListenerRt) -> HandlerEnv<'a> {
    HandlerEnv {
        settings: &plane.settings,
        forward: &listener.forward,
        upstreams: &plane.upstreams,
    }
}

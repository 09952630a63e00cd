//! Route handlers: what answers a request once its route and stages let it through.

mod echo;
mod fixed;
mod proxy;

use std::sync::Arc;

use http::{Request, Response};
use rampart_config::model::RouteRetry;
use rampart_core::{Body, ProxyError, RequestCtx};
use rampart_upstream::UpstreamSet;

pub(crate) use fixed::{RedirectSpec, RespondSpec};

use crate::runtime::{ListenerRt, Runtime};

/// What a route does with a request.
pub(crate) enum Handler {
    /// Forward to an upstream.
    Proxy(Arc<UpstreamSet>, Option<Arc<RouteRetry>>),
    /// Answer with a redirect.
    Redirect(RedirectSpec),
    /// Answer with a fixed response.
    Respond(RespondSpec),
    /// Answer with a JSON description of the request.
    Echo,
}

impl Handler {
    /// One line for `rampart explain`.
    pub(crate) fn summary(&self) -> String {
        match self {
            Self::Proxy(set, _) => {
                let labels = set.target_labels();
                let mut targets: Vec<&str> = labels.iter().map(AsRef::as_ref).collect();
                let source = set.discovery_source();
                if let Some(source) = &source {
                    targets.insert(0, source);
                }
                let protocol = match set.protocol {
                    rampart_config::model::UpstreamProtocol::Http1 => "http1",
                    rampart_config::model::UpstreamProtocol::H2c => "h2c",
                    rampart_config::model::UpstreamProtocol::H2 => "h2 over TLS",
                };
                format!(
                    "proxy to upstream {:?} ({protocol}: {})",
                    set.name,
                    targets.join(", ")
                )
            }
            Self::Redirect(r) => r.summary(),
            Self::Respond(r) => r.summary(),
            Self::Echo => "echo the request as JSON".to_owned(),
        }
    }

    /// Produces the response for `req`.
    pub(crate) async fn run(
        &self,
        req: Request<Body>,
        ctx: &mut RequestCtx,
        rt: &Runtime,
        listener: &ListenerRt,
        timeout: Option<std::time::Duration>,
    ) -> Result<Response<Body>, ProxyError> {
        match self {
            Self::Proxy(set, retry) => {
                proxy::run(set, retry.as_deref(), req, ctx, rt, listener, timeout).await
            }
            Self::Redirect(r) => Ok(r.respond(&req, ctx)),
            Self::Respond(r) => Ok(r.respond()),
            Self::Echo => echo::run(req, ctx).await,
        }
    }
}

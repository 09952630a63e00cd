//! Route handlers: what answers a request once its route and stages let it through.

mod echo;
mod fixed;
mod proxy;

use std::sync::Arc;

use http::{Request, Response};
use rampart_config::Config;
use rampart_config::model::RouteRetry;
use rampart_core::{Body, ProxyError, RequestCtx};
use rampart_upstream::UpstreamSet;

pub(crate) use fixed::{RedirectSpec, RespondSpec};

use crate::runtime::{ListenerRt, Runtime};

/// What a route does with a request.
pub(crate) enum Handler {
    /// Forward to an upstream; the flag says the fields Rampart adds must go into the request's
    /// `HeaderMap` (see [`Handler::proxy`]).
    Proxy(Arc<UpstreamSet>, Option<Arc<RouteRetry>>, bool),
    /// Answer with a redirect.
    Redirect(RedirectSpec),
    /// Answer with a fixed response.
    Respond(RespondSpec),
    /// Answer with a JSON description of the request.
    Echo,
}

impl Handler {
    /// Forwarding to `set`. The fields Rampart adds (forwarding headers, `Via`, request ID,
    /// trace context) are written by the HTTP/1.1 encoder, except when the upstream's balancer
    /// hashes on a header (`hash_on = "header:…"`): it reads the request's map before the
    /// request is encoded, so they go into the map as they did before.
    pub(crate) fn proxy(
        set: &Arc<UpstreamSet>,
        retry: Option<&RouteRetry>,
        config: &Config,
    ) -> Self {
        let hashes_on_header = config.raw().upstreams.iter().any(|u| {
            u.name.as_str() == &*set.name
                && u.hash_on
                    .as_ref()
                    .is_some_and(|h| h.get().starts_with("header:"))
        });
        Self::Proxy(
            Arc::clone(set),
            retry.cloned().map(Arc::new),
            hashes_on_header,
        )
    }

    /// One line for `rampart explain`.
    pub(crate) fn summary(&self) -> String {
        match self {
            Self::Proxy(set, ..) => {
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
        req: Box<Request<Body>>,
        ctx: &mut RequestCtx,
        rt: &Runtime,
        listener: &ListenerRt,
        timeout: Option<std::time::Duration>,
    ) -> Result<Box<Response<Body>>, ProxyError> {
        match self {
            Self::Proxy(set, retry, fields_in_map) => {
                let route = proxy::ProxyRoute {
                    set,
                    retry: retry.as_deref(),
                    timeout,
                    fields_in_map: *fields_in_map,
                };
                proxy::run(&route, req, ctx, rt, listener).await
            }
            Self::Redirect(r) => Ok(Box::new(r.respond(&req, ctx))),
            Self::Respond(r) => Ok(Box::new(r.respond())),
            Self::Echo => echo::run(req, ctx).await.map(Box::new),
        }
    }
}

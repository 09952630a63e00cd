//! Route handlers: what answers a request once its route and stages let it through.

mod echo;
mod fallback;
mod fixed;
mod mirror;
mod proxy;
mod replay;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use http::{Request, Response};
use rampart_config::Config;
use rampart_config::model::RouteRetry;
use rampart_core::{Body, ErrorKind, ProxyError, RequestCtx};
use rampart_upstream::UpstreamSet;

pub(crate) use fallback::Fallback;
pub(crate) use fixed::{RedirectSpec, RespondSpec};
pub(crate) use mirror::Mirror;
pub(crate) use proxy::ForwardPolicy;

/// The upstreams requests can be forwarded to: the route's own, or one a stage chose.
#[derive(Default)]
pub(crate) struct Upstreams {
    /// The compiled upstream sets, by name.
    pub(crate) sets: HashMap<String, Arc<UpstreamSet>>,
    /// Upstreams whose balancer hashes on a request header (see [`Handler::proxy`]).
    pub(crate) header_hashed: HashSet<String>,
}

/// What a handler reads besides the request: the request settings, the listener's
/// forwarding policy, and the upstreams.
pub(crate) struct HandlerEnv<'a> {
    pub(crate) settings: &'a Settings,
    pub(crate) forward: &'a ForwardPolicy,
    pub(crate) upstreams: &'a Upstreams,
}

use crate::pipeline::settings::Settings;

/// Where else a proxying route sends its requests: a shadow copy, a fallback upstream.
pub(crate) struct Traffic {
    pub(crate) mirror: Option<Mirror>,
    pub(crate) fallback: Option<Fallback>,
}

/// What a route does with a request.
pub(crate) enum Handler {
    /// Forward to an upstream; the flag says the fields Rampart adds must go into the request's
    /// `HeaderMap` (see [`Handler::proxy`]); with the route's mirror and fallback, if any.
    Proxy(
        Arc<UpstreamSet>,
        Option<Arc<RouteRetry>>,
        bool,
        Option<Box<Traffic>>,
    ),
    /// Answer with a redirect.
    Redirect(RedirectSpec),
    /// Answer with a fixed response.
    Respond(RespondSpec),
    /// Answer with a JSON description of the request.
    Echo,
    /// Serve files from a directory.
    Static(Arc<rampart_compress::StaticFiles>),
}

impl Handler {
    /// Forwarding to `set`. The fields Rampart adds (forwarding headers, `Via`, request ID,
    /// trace context) are written by the HTTP/1.1 encoder, except when the upstream's balancer
    /// hashes on a header (`hash_on = "header:…"`, see [`hashes_on_header`]): it reads the
    /// request's map before the request is encoded, so they go into the map as they did
    /// before.
    pub(crate) fn proxy(
        set: &Arc<UpstreamSet>,
        retry: Option<&RouteRetry>,
        config: &Config,
        traffic: Traffic,
    ) -> Self {
        let traffic = (traffic.mirror.is_some() || traffic.fallback.is_some()).then_some(traffic);
        Self::Proxy(
            Arc::clone(set),
            retry.cloned().map(Arc::new),
            hashes_on_header(config, &set.name),
            traffic.map(Box::new),
        )
    }

    /// True for handlers that forward to an upstream (the routes whose stages may choose
    /// another upstream).
    pub(crate) const fn forwards(&self) -> bool {
        matches!(self, Self::Proxy(..))
    }

    /// One line for `rampart explain`.
    pub(crate) fn summary(&self) -> String {
        match self {
            Self::Proxy(set, _, _, traffic) => {
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
                let mut shadow = String::new();
                if let Some(m) = traffic.as_ref().and_then(|t| t.mirror.as_ref()) {
                    shadow.push_str(&format!(", mirrored to upstream {:?}", m.upstream()));
                }
                if let Some(f) = traffic.as_ref().and_then(|t| t.fallback.as_ref()) {
                    shadow.push_str(&format!(", falling back to upstream {:?}", f.upstream()));
                }
                format!(
                    "proxy to upstream {:?} ({protocol}: {}){shadow}",
                    set.name,
                    targets.join(", ")
                )
            }
            Self::Redirect(r) => r.summary(),
            Self::Respond(r) => r.summary(),
            Self::Echo => "echo the request as JSON".to_owned(),
            Self::Static(files) => files.summary(),
        }
    }

    /// Produces the response for `req`. `chosen` is the upstream a stage chose instead of
    /// the route's (the stage's name, and the upstream's).
    pub(crate) async fn run(
        &self,
        req: Box<Request<Body>>,
        ctx: &mut RequestCtx,
        env: &HandlerEnv<'_>,
        timeout: Option<std::time::Duration>,
        chosen: Option<(&'static str, Arc<str>)>,
    ) -> Result<Box<Response<Body>>, ProxyError> {
        match self {
            Self::Proxy(set, retry, fields_in_map, traffic) => {
                let (set, fields_in_map) = match chosen {
                    None => (set, *fields_in_map),
                    Some((stage, name)) => {
                        let Some(set) = env.upstreams.sets.get(&*name) else {
                            ctx.stage = Some(stage);
                            return Err(ProxyError::new(
                                ErrorKind::Internal,
                                format!("stage {stage} chose unknown upstream {name:?}"),
                            ));
                        };
                        (set, env.upstreams.header_hashed.contains(&*name))
                    }
                };
                let route = proxy::ProxyRoute {
                    set,
                    retry: retry.as_deref(),
                    timeout,
                    fields_in_map,
                    traffic: traffic.as_deref(),
                };
                proxy::run(&route, req, ctx, env).await
            }
            Self::Redirect(r) => Ok(Box::new(r.respond(&req, ctx))),
            Self::Respond(r) => Ok(Box::new(r.respond())),
            Self::Echo => echo::run(req, ctx).await.map(Box::new),
            Self::Static(files) => {
                let (parts, _) = req.into_parts();
                // Boxed: the file-serving state stays out of the proxying routes' futures.
                Box::pin(files.serve(&parts)).await.map(Box::new)
            }
        }
    }
}

/// True when upstream `name`'s balancer hashes on a request header (`hash_on = "header:…"`).
pub(crate) fn hashes_on_header(config: &Config, name: &str) -> bool {
    config.raw().upstreams.iter().any(|u| {
        u.name.as_str() == name
            && u.hash_on
                .as_ref()
                .is_some_and(|h| h.get().starts_with("header:"))
    })
}

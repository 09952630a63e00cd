//! A route's fallback upstream: it gets the request when the route's own upstream has no
//! usable target (none healthy, circuit open or full, every connect failed: the request never
//! reached it) or answers with one of the configured statuses. The request is sent again from
//! a copy, so only requests whose body is small and of known length have a fallback.

use std::collections::HashMap;
use std::sync::Arc;

use http::Request;
use rampart_config::ConfigError;
use rampart_config::model::Fallback as FallbackConfig;
use rampart_core::{Body, ErrorKind, RequestCtx, RouteSpec};
use rampart_upstream::{ForwardError, ForwardOpts, Forwarded, UpstreamSet, forward_with};

/// A route's compiled `fallback`.
pub(crate) struct Fallback {
    set: Arc<UpstreamSet>,
    on_status: Box<[u16]>,
    /// Largest body kept to send again.
    pub(crate) max_body: u64,
}

impl Fallback {
    /// Compiles route `spec`'s `fallback` table against the compiled upstream sets.
    pub(crate) fn new(
        config: &FallbackConfig,
        spec: &RouteSpec<'_>,
        sets: &HashMap<String, Arc<UpstreamSet>>,
    ) -> Result<Self, ConfigError> {
        let name = config.upstream.as_str();
        let set = sets.get(name).ok_or_else(|| {
            spec.error(
                Some(config.upstream.span()),
                "fallback.upstream",
                format!("unknown upstream {name:?}"),
            )
        })?;
        if spec.route.upstream.as_deref().map(String::as_str) == Some(name) {
            return Err(spec.error(
                Some(config.upstream.span()),
                "fallback.upstream",
                "the fallback is the route's own upstream",
            ));
        }
        if let Some(bad) = config
            .on_status
            .iter()
            .find(|s| !(200..=599).contains(s.get()))
        {
            return Err(spec.error(
                Some(bad.span()),
                "fallback.on_status",
                format!("{} is not a final status: expected 200 to 599", bad.get()),
            ));
        }
        Ok(Self {
            set: Arc::clone(set),
            on_status: config.on_status.iter().map(|s| *s.get()).collect(),
            max_body: config.max_body.get(),
        })
    }

    /// The fallback upstream's name.
    pub(crate) fn upstream(&self) -> &str {
        &self.set.name
    }
}

/// Failures after which the request never reached the route's upstream.
const fn unavailable(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::NoTarget
            | ErrorKind::CircuitOpen
            | ErrorKind::UpstreamOverloaded
            | ErrorKind::UpstreamConnect
            | ErrorKind::UpstreamConnectTimeout
    )
}

/// Forwards `req` to `set`, then sends `copy` to `fallback` when `set` was unavailable or
/// answered with a fallback status.
/// The access log then names the fallback upstream, and its `detail` says why.
pub(crate) async fn forward(
    set: &Arc<UpstreamSet>,
    req: Box<Request<Body>>,
    opts: &ForwardOpts<'_>,
    (fallback, copy): (&Fallback, Request<Body>),
    ctx: &mut RequestCtx,
) -> Result<Forwarded, ForwardError> {
    let first = forward_with(set, req, opts).await;
    let why = match &first {
        Ok(fwd) if fallback.on_status.contains(&fwd.response.status().as_u16()) => {
            format!("status {}", fwd.response.status().as_u16())
        }
        Err(e) if unavailable(e.error.kind) => e.error.kind.code().to_owned(),
        _ => return first,
    };
    drop(first);
    ctx.upstream = Some(fallback.set.name.clone());
    ctx.detail = Some(format!("fallback from upstream {}: {why}", set.name));
    // The copy carries the added fields in its map.
    let opts = ForwardOpts {
        added: &[],
        ..*opts
    };
    forward_with(&fallback.set, Box::new(copy), &opts).await
}

//! Compiling one route: its stages from every registered stage factory, in the registry's
//! order, and its handler (proxy, redirect, fixed response, echo, static files).

use std::collections::HashMap;
use std::sync::Arc;

use rampart_config::model::Route;
use rampart_config::{Config, ConfigError};
use rampart_core::{Prepared, RouteSpec, Stage};
use rampart_upstream::UpstreamSet;

use crate::observe::metrics::{Registry, RouteMetrics};
use crate::pipeline::handler::{Fallback, Handler, Mirror, RedirectSpec, RespondSpec, Traffic};
use crate::pipeline::plane::CompiledRoute;
use crate::pipeline::stages::{RouteStages, StageRegistry};

/// The stage factories, what each prepared for this config, and where stage decisions count.
pub(crate) type StageBuild<'a> = (&'a StageRegistry, &'a [Prepared], &'a Registry);

/// Compiles route `r` (at config path `path`), reporting every problem it finds.
pub(crate) fn compile_route(
    r: &Route,
    path: &str,
    config: &Config,
    upstreams: &HashMap<String, Arc<UpstreamSet>>,
    (registry, prepared, metrics): StageBuild<'_>,
    route_metrics: RouteMetrics,
) -> Result<CompiledRoute, Vec<ConfigError>> {
    let spec = RouteSpec {
        config,
        route: r,
        path,
    };
    let mut errors = Vec::new();
    let mut stages: Vec<Box<dyn Stage>> = Vec::new();
    for (factory, prepared) in registry.factories().iter().zip(prepared) {
        match factory.build(&spec, prepared) {
            Ok(built) => stages.extend(built),
            Err(e) => errors.extend(e),
        }
    }
    let handler = handler(r, &spec, upstreams, metrics).map_err(|e| {
        errors.push(e);
        std::mem::take(&mut errors)
    })?;
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(CompiledRoute {
        name: Arc::from(r.name.as_str()),
        stages: RouteStages::new(stages, |stage| metrics.stage(&r.name, stage)),
        handler,
        timeout: r.timeout.map(rampart_config::HumanDuration::get),
        metrics: route_metrics,
    })
}

fn handler(
    r: &Route,
    spec: &RouteSpec<'_>,
    upstreams: &HashMap<String, Arc<UpstreamSet>>,
    metrics: &Registry,
) -> Result<Handler, ConfigError> {
    if let (Some(mirror), None) = (&r.mirror, &r.upstream) {
        return Err(spec.error(
            Some(mirror.upstream.span()),
            "mirror",
            "mirroring copies proxied requests: the route needs an `upstream`",
        ));
    }
    if let (Some(fallback), None) = (&r.fallback, &r.upstream) {
        return Err(spec.error(
            Some(fallback.upstream.span()),
            "fallback",
            "a fallback stands in for the route's `upstream`, which it needs",
        ));
    }
    if let Some(u) = &r.upstream {
        let set = upstreams.get(u.as_str()).ok_or_else(|| {
            spec.error(
                Some(u.span()),
                "upstream",
                format!("unknown upstream {:?}", u.get()),
            )
        })?;
        let traffic = Traffic {
            mirror: r
                .mirror
                .as_ref()
                .map(|m| Mirror::new(m, spec, upstreams, metrics))
                .transpose()?,
            fallback: r
                .fallback
                .as_ref()
                .map(|f| Fallback::new(f, spec, upstreams))
                .transpose()?,
        };
        Ok(Handler::proxy(set, r.retry.as_ref(), spec.config, traffic))
    } else if let Some(redirect) = &r.redirect {
        RedirectSpec::new(redirect)
            .map(Handler::Redirect)
            .map_err(|m| spec.error(Some(redirect.to.span()), "redirect", m))
    } else if let Some(respond) = &r.respond {
        RespondSpec::new(respond)
            .map(Handler::Respond)
            .map_err(|m| spec.error(Some(respond.status.span()), "respond", m))
    } else if let Some(files) = &r.static_files {
        rampart_compress::StaticFiles::compile(spec, files)
            .map(|files| Handler::Static(Arc::new(files)))
            .map_err(|errors| {
                errors
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| spec.error(None, "static", "invalid static handler"))
            })
    } else {
        Ok(Handler::Echo)
    }
}

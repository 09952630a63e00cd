//! `rampart explain`: what Rampart would do with a request, without sending it anywhere.

use std::fmt;

use http::{HeaderMap, Method, Uri};
use rampart_router::{Explanation, RequestView};
use serde::Serialize;

use crate::pipeline::normalize::normalize_path;
use crate::pipeline::plane::ListenerRt;
use crate::runtime::compile::Runtime;

/// The full story of one request: listener, normalized path, the winning route with its stages
/// and handler, and why every other route lost.
#[derive(Debug, Serialize)]
pub struct ExplainReport {
    /// The listener the request was evaluated on.
    pub listener: String,
    /// The path as given.
    pub request_path: String,
    /// The path after normalization.
    pub path: Option<String>,
    /// Why the path would be refused with 400, when it would.
    pub path_error: Option<String>,
    /// Answered by the health fast path before routing.
    pub fast_path: bool,
    /// The path the upstream gets after the winning route's rewrites, when they change it.
    pub upstream_path: Option<String>,
    /// Stages the winning route runs, in order.
    pub stages: Vec<&'static str>,
    /// What the winning route does.
    pub handler: Option<String>,
    /// The router's account of the decision.
    pub routing: Option<Explanation>,
}

/// Explains `method url` with `headers` on `listener` (default: the listener whose port the URL
/// names, else the first one).
///
/// # Errors
/// An unknown listener name.
pub fn explain(
    rt: &Runtime,
    listener: Option<&str>,
    method: &Method,
    url: &Uri,
    headers: &HeaderMap,
) -> Result<ExplainReport, String> {
    let l = pick_listener(rt, listener, url)?;
    let host = url.authority().map(|a| a.as_str().to_owned()).or_else(|| {
        headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    });
    let (path, path_error) = match normalize_path(url.path()) {
        Ok(p) => (Some(p.into_owned()), None),
        Err(e) => (None, Some(e.detail().to_owned())),
    };
    let mut report = ExplainReport {
        listener: l.name.to_string(),
        request_path: url.path().to_owned(),
        path,
        upstream_path: None,
        path_error,
        fast_path: l.health_endpoints
            && matches!(url.path(), "/healthz" | "/readyz")
            && (method == Method::GET || method == Method::HEAD),
        stages: Vec::new(),
        handler: None,
        routing: None,
    };
    let Some(path) = report.path.clone() else {
        return Ok(report);
    };
    if report.fast_path {
        return Ok(report);
    }
    let view = RequestView {
        method,
        host: host.as_deref(),
        path: &path,
        query: url.query(),
        headers,
    };
    if let Some(found) = l.router.lookup(&view) {
        report.stages = found.value.stage_names();
        report.handler = Some(found.value.handler_summary());
        report.upstream_path = rt
            .config
            .raw()
            .routes
            .iter()
            .find(|r| r.name.as_str() == found.value.name())
            .and_then(|r| r.rewrite.as_ref())
            .map(|rw| rampart_filters::rewrite::rewritten_path(rw, &path))
            .filter(|p| *p != path);
    }
    report.routing = Some(l.router.explain(&view));
    Ok(report)
}

impl ExplainReport {
    /// True when a route (or the health fast path) would answer the request.
    #[must_use]
    pub const fn is_routed(&self) -> bool {
        self.fast_path || self.handler.is_some()
    }
}

fn pick_listener<'a>(
    rt: &'a Runtime,
    name: Option<&str>,
    url: &Uri,
) -> Result<&'a ListenerRt, String> {
    let rt = rt.plane();
    if let Some(name) = name {
        return rt.listener(name).ok_or_else(|| {
            let names: Vec<&str> = rt.listeners.iter().map(|l| &*l.name).collect();
            format!("unknown listener {name:?}; listeners: {}", names.join(", "))
        });
    }
    let port = url.port_u16();
    rt.listeners
        .iter()
        .find(|l| Some(l.bind.port()) == port)
        .or_else(|| rt.listeners.first())
        .ok_or_else(|| "the config has no listener".to_owned())
}

impl fmt::Display for ExplainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "listener: {}", self.listener)?;
        if let Some(e) = &self.path_error {
            writeln!(f, "path:     {}", self.request_path)?;
            return writeln!(f, "result:   400 Bad Request ({e})");
        }
        if let Some(p) = &self.path {
            write!(f, "path:     {}", self.request_path)?;
            if *p != self.request_path {
                write!(f, " → normalized {p}")?;
            }
            if let Some(up) = &self.upstream_path {
                write!(f, " → upstream gets {up}")?;
            }
            writeln!(f)?;
        }
        if self.fast_path {
            return writeln!(
                f,
                "result:   answered by the health fast path before routing"
            );
        }
        match &self.handler {
            Some(h) => {
                writeln!(
                    f,
                    "stages:   {}",
                    if self.stages.is_empty() {
                        "(none)".to_owned()
                    } else {
                        self.stages.join(" → ")
                    }
                )?;
                writeln!(f, "handler:  {h}")?;
            }
            None => writeln!(f, "result:   404 Not Found (no route matches)")?,
        }
        if let Some(routing) = &self.routing {
            if f.alternate() {
                writeln!(f, "{routing:#}")?;
            } else {
                writeln!(f, "{routing}")?;
            }
        }
        Ok(())
    }
}

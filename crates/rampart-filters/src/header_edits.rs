//! `request_headers` and `response_headers`: remove, then set (replacing), then add. Names and
//! values are parsed once when the config is compiled. Headers that frame the message
//! (`Content-Length`, `Transfer-Encoding`, `Connection`, ...) and, on requests, `Host` cannot
//! be edited: the config refuses them.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use rampart_config::ConfigError;
use rampart_config::model::HeaderEdits;
use rampart_core::{Body, Flow, Phases, RequestCtx, Stage, StageFuture};
use rampart_core::{Prepared, RouteSpec, StageFactory};

/// One side's compiled edits.
#[derive(Debug, Default)]
pub struct Edits {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
}

impl Edits {
    /// Compiles a `request_headers` or `response_headers` table.
    ///
    /// # Errors
    /// An invalid header name or value (validation refuses those first).
    pub fn new(cfg: &HeaderEdits) -> Result<Self, String> {
        let name = |n: &str| {
            HeaderName::from_bytes(n.as_bytes()).map_err(|e| format!("header name {n:?}: {e}"))
        };
        let pair = |(n, v): (&String, &rampart_config::Located<String>)| {
            Ok((
                name(n)?,
                HeaderValue::from_str(v).map_err(|e| format!("header {n:?}: {e}"))?,
            ))
        };
        Ok(Self {
            remove: cfg
                .remove
                .iter()
                .map(|n| name(n))
                .collect::<Result<_, String>>()?,
            set: cfg.set.iter().map(pair).collect::<Result<_, String>>()?,
            add: cfg.add.iter().map(pair).collect::<Result<_, String>>()?,
        })
    }

    /// Applies the edits to `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }

    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}

/// A route's request and response header edits.
#[derive(Debug)]
pub struct HeaderEditStage {
    request: Edits,
    response: Edits,
}

impl HeaderEditStage {
    /// Compiles a route's `request_headers` and `response_headers`.
    ///
    /// # Errors
    /// See [`Edits::new`].
    pub fn new(
        request: Option<&HeaderEdits>,
        response: Option<&HeaderEdits>,
    ) -> Result<Self, String> {
        Ok(Self {
            request: request.map(Edits::new).transpose()?.unwrap_or_default(),
            response: response.map(Edits::new).transpose()?.unwrap_or_default(),
        })
    }
}

impl Stage for HeaderEditStage {
    fn name(&self) -> &'static str {
        "header_edits"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST | Phases::RESPONSE
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        _ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        if !self.request.is_empty() {
            self.request.apply(req.headers_mut());
        }
        Ok(Flow::Continue).into()
    }

    fn on_response(&self, resp: &mut Response<Body>, _ctx: &mut RequestCtx) {
        if !self.response.is_empty() {
            self.response.apply(resp.headers_mut());
        }
    }
}

/// Builds the `header_edits` stage of routes with `request_headers` or `response_headers`.
#[derive(Debug, Clone, Copy)]
pub struct HeaderEditStages;

impl StageFactory for HeaderEditStages {
    fn name(&self) -> &'static str {
        "header_edits"
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        _prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        let r = route.route;
        if r.request_headers.is_none() && r.response_headers.is_none() {
            return Ok(Vec::new());
        }
        let stage = HeaderEditStage::new(r.request_headers.as_ref(), r.response_headers.as_ref())
            .map_err(|m| vec![route.error(None, "request_headers", m)])?;
        Ok(vec![Box::new(stage)])
    }
}

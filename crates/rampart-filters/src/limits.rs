//! Per-route limits: the method allow-list (405 with `Allow`) and the request body size (413).

use http::header::{self, HeaderValue};
use http::{Method, Request};
use rampart_config::ConfigError;
use rampart_core::{
    Body, ErrorKind, Flow, Phases, ProxyError, RequestCtx, Stage, StageFuture, Streamed,
};
use rampart_core::{Prepared, RouteSpec, StageFactory};

/// Refuses methods a route does not allow with 405 and an `Allow` header. Allowing `GET`
/// allows `HEAD` too, as HTTP requires of a server that answers GET.
#[derive(Debug)]
pub struct MethodAllowList {
    allowed: Vec<Method>,
    allow_header: HeaderValue,
}

impl MethodAllowList {
    /// A stage allowing exactly `methods` (plus `HEAD` when `GET` is listed).
    ///
    /// # Errors
    /// A method name that is not a valid token.
    pub fn new(methods: &[String]) -> Result<Self, String> {
        let mut allowed = Vec::with_capacity(methods.len() + 1);
        for m in methods {
            let method =
                Method::from_bytes(m.as_bytes()).map_err(|_| format!("invalid method {m:?}"))?;
            if !allowed.contains(&method) {
                allowed.push(method);
            }
        }
        if allowed.contains(&Method::GET) && !allowed.contains(&Method::HEAD) {
            allowed.push(Method::HEAD);
        }
        let list = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let allow_header = HeaderValue::from_str(&list).map_err(|e| e.to_string())?;
        Ok(Self {
            allowed,
            allow_header,
        })
    }
}

impl Stage for MethodAllowList {
    fn name(&self) -> &'static str {
        "allow_methods"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        _ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        if self.allowed.contains(req.method()) {
            Ok(Flow::Continue).into()
        } else {
            Err(ProxyError::method_not_allowed(self.allow_header.clone())).into()
        }
    }
}

/// Refuses request bodies larger than `max` bytes: at once with 413 when `Content-Length`
/// says so, otherwise by failing the stream as soon as the limit is crossed (413 if no response
/// has started yet).
#[derive(Debug)]
pub struct BodyLimit {
    max: u64,
}

impl BodyLimit {
    /// A limit of `max` bytes.
    #[must_use]
    pub const fn new(max: u64) -> Self {
        Self { max }
    }
}

impl Stage for BodyLimit {
    fn name(&self) -> &'static str {
        "body_limit"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        _ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max) {
            let detail = format!("content-length exceeds the limit of {} bytes", self.max);
            return Err(ProxyError::new(ErrorKind::BodyTooLarge, detail)).into();
        }
        if declared.is_none() {
            let body = std::mem::take(req.body_mut());
            *req.body_mut() = match body {
                Body::Incoming(incoming) => Body::limited(Streamed::Incoming(incoming), self.max),
                Body::Client(client) => Body::limited(Streamed::Client(client), self.max),
                other => other,
            };
        }
        Ok(Flow::Continue).into()
    }
}

/// Builds the `allow_methods` stage of routes that list methods.
#[derive(Debug, Clone, Copy)]
pub struct MethodStages;

impl StageFactory for MethodStages {
    fn name(&self) -> &'static str {
        "allow_methods"
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        _prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        let r = route.route;
        if r.allow_methods.is_empty() {
            return Ok(Vec::new());
        }
        let methods: Vec<String> = r.allow_methods.iter().map(|m| m.to_string()).collect();
        let stage = MethodAllowList::new(&methods)
            .map_err(|m| vec![route.error(None, "allow_methods", m)])?;
        Ok(vec![Box::new(stage)])
    }
}

/// Builds every route's `body_limit` stage: the route's `max_body_size`, else
/// `limits.max_body_size`.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimitStages;

impl StageFactory for BodyLimitStages {
    fn name(&self) -> &'static str {
        "body_limit"
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        _prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        let max = route
            .route
            .max_body_size
            .unwrap_or(route.config.raw().limits.max_body_size)
            .get();
        Ok(vec![Box::new(BodyLimit::new(max))])
    }
}

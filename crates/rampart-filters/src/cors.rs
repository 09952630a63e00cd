//! CORS per route: preflights are answered here with 204 (or refused with 403) and never
//! forwarded; actual cross-origin requests go on, and their responses get
//! `Access-Control-Allow-Origin` when the origin is allowed.
//!
//! Origin lookup is a hash-set probe for exact origins, one probe per label for wildcard
//! subdomains (`https://*.example.com`), then the regexes. Every response whose headers depend
//! on the request's `Origin` says so with `Vary: Origin`, so that caches do not hand one
//! origin's answer to another.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use http::header::{self, Entry, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use rampart_config::ConfigError;
use rampart_config::model::{Cors, OriginPattern};
use rampart_core::{Body, ErrorKind, Flow, Phases, ProxyError, RequestCtx, Stage, StageFuture};
use rampart_core::{Prepared, RouteSpec, StageFactory};

/// The stage's name; a request it refused is a preflight (it refuses nothing else).
const CORS: &str = "cors";

static VARY_PREFLIGHT: HeaderValue = HeaderValue::from_static(
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
);

/// A route's compiled CORS policy.
#[derive(Debug)]
pub struct CorsStage {
    any_origin: bool,
    exact: HashSet<Box<[u8]>, BuildHasherDefault<Fnv>>,
    /// Wildcard suffixes (`.example.com[:port]`) and the schemes allowed for each.
    subdomains: HashMap<Box<[u8]>, Vec<Box<[u8]>>>,
    regexes: Option<regex::bytes::RegexSet>,
    methods: Vec<Method>,
    allow_methods: HeaderValue,
    /// Allowed request headers, lower-case; `None` means any (`*`).
    headers: Option<HashSet<Box<[u8]>>>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<HeaderValue>,
}

impl CorsStage {
    /// Compiles a route's `cors` table.
    ///
    /// # Errors
    /// An origin, method or header the config validation should have refused.
    pub fn new(cfg: &Cors) -> Result<Self, String> {
        let mut any_origin = false;
        let mut exact = HashSet::default();
        let mut subdomains: HashMap<Box<[u8]>, Vec<Box<[u8]>>> = HashMap::new();
        for origin in &cfg.allow_origins {
            match OriginPattern::parse(origin)? {
                OriginPattern::Any => any_origin = true,
                OriginPattern::Exact(o) => {
                    exact.insert(o.into_bytes().into_boxed_slice());
                }
                OriginPattern::Subdomains { scheme, suffix } => subdomains
                    .entry(suffix.into_bytes().into_boxed_slice())
                    .or_default()
                    .push(scheme.into_bytes().into_boxed_slice()),
            }
        }
        let regexes = if cfg.allow_origin_regex.is_empty() {
            None
        } else {
            let sources = cfg.allow_origin_regex.iter().map(|p| p.as_str());
            Some(regex::bytes::RegexSet::new(sources).map_err(|e| e.to_string())?)
        };
        let methods = cfg
            .allow_methods
            .iter()
            .map(|m| Method::from_bytes(m.as_bytes()).map_err(|e| format!("{:?}: {e}", m.get())))
            .collect::<Result<Vec<_>, _>>()?;
        let join = |items: &mut dyn Iterator<Item = &str>| {
            let list: Vec<&str> = items.collect();
            HeaderValue::from_str(&list.join(", ")).map_err(|e| e.to_string())
        };
        let allow_methods = join(&mut methods.iter().map(Method::as_str))?;
        let any_header = cfg.allow_headers.iter().any(|h| h.as_str() == "*");
        let headers = (!any_header).then(|| {
            cfg.allow_headers
                .iter()
                .map(|h| h.to_ascii_lowercase().into_bytes().into_boxed_slice())
                .collect()
        });
        let allow_headers = match (&headers, cfg.allow_headers.is_empty()) {
            (Some(_), false) => Some(join(&mut cfg.allow_headers.iter().map(|h| h.as_str()))?),
            _ => None,
        };
        let expose_headers = if cfg.expose_headers.is_empty() {
            None
        } else {
            Some(join(&mut cfg.expose_headers.iter().map(|h| h.as_str()))?)
        };
        Ok(Self {
            any_origin,
            exact,
            subdomains,
            regexes,
            methods,
            allow_methods,
            headers,
            allow_headers,
            expose_headers,
            credentials: cfg.allow_credentials,
            max_age: cfg.max_age.map(|d| HeaderValue::from(d.get().as_secs())),
        })
    }

    /// Whether `origin` may read responses.
    fn allows(&self, origin: &[u8]) -> bool {
        if self.any_origin || self.exact.contains(origin) {
            return true;
        }
        if !self.subdomains.is_empty() && self.allows_subdomain(origin) {
            return true;
        }
        self.regexes
            .as_ref()
            .is_some_and(|set| set.is_match(origin))
    }

    /// `https://a.b.example.com:8443` against the suffixes `.b.example.com:8443` and
    /// `.example.com:8443` (and `.com:8443`), each with its scheme.
    fn allows_subdomain(&self, origin: &[u8]) -> bool {
        let Some(sep) = origin.windows(3).position(|w| w == b"://") else {
            return false;
        };
        let (scheme, host) = (&origin[..sep], &origin[sep + 3..]);
        // The first label must be non-empty: a suffix starts at a dot after it.
        host.iter().enumerate().skip(1).any(|(i, b)| {
            *b == b'.'
                && self
                    .subdomains
                    .get(&host[i..])
                    .is_some_and(|schemes| schemes.iter().any(|s| **s == *scheme))
        })
    }

    /// The preflight's answer: 204 with the allowances, or 403.
    fn preflight(&self, allowed: bool, headers: &HeaderMap) -> Result<Response<Body>, ProxyError> {
        let refuse = |why: &str| {
            Err(ProxyError::new(
                ErrorKind::CorsRejected,
                format!("CORS preflight refused: {why}"),
            ))
        };
        if !allowed {
            return refuse("origin not allowed");
        }
        let method = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !self.methods.iter().any(|m| m.as_str().as_bytes() == method) {
            return refuse("method not allowed");
        }
        let requested = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS);
        if let (Some(allowed), Some(requested)) = (&self.headers, requested) {
            let ok = requested
                .as_bytes()
                .split(|b| *b == b',')
                .map(trim)
                .filter(|h| !h.is_empty())
                .all(|h| {
                    allowed.contains(h) || allowed.contains(h.to_ascii_lowercase().as_slice())
                });
            if !ok {
                return refuse("request header not allowed");
            }
        }
        let mut resp = Response::new(Body::Empty);
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            self.allow_methods.clone(),
        );
        match (&self.allow_headers, requested) {
            (Some(list), _) => {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, list.clone());
            }
            // `*` allows any header: echo what was asked (a literal `*` means nothing to
            // browsers when credentials are allowed).
            (None, Some(requested)) if self.headers.is_none() => {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
            }
            _ => {}
        }
        if let Some(age) = &self.max_age {
            h.insert(header::ACCESS_CONTROL_MAX_AGE, age.clone());
        }
        Ok(resp)
    }

    /// `Access-Control-Allow-Origin` (and credentials) for an allowed origin, `Vary: Origin`
    /// whenever the answer depends on the origin. The route's policy is the only source of
    /// CORS answers: the upstream's own are removed when the origin is not allowed.
    fn decorate(&self, headers: &mut HeaderMap, origin: Option<&HeaderValue>, preflight: bool) {
        if origin.is_none() {
            remove_upstream_cors(headers);
        }
        if let Some(origin) = origin {
            let value = if self.any_origin && !self.credentials {
                HeaderValue::from_static("*")
            } else {
                origin.clone()
            };
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            if self.credentials {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            if !preflight && let Some(expose) = &self.expose_headers {
                headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
            }
        }
        if preflight {
            headers.insert(header::VARY, VARY_PREFLIGHT.clone());
        } else if !self.any_origin || self.credentials {
            add_vary_origin(headers);
        }
    }
}

/// Appends `Origin` to `Vary` unless it is there already (or `Vary: *`), with one lookup.
fn add_vary_origin(headers: &mut HeaderMap) {
    match headers.entry(header::VARY) {
        Entry::Occupied(mut e) => {
            let present = e.iter().any(|v| {
                v.as_bytes()
                    .split(|b| *b == b',')
                    .map(trim)
                    .any(|t| t == b"*" || t.eq_ignore_ascii_case(b"origin"))
            });
            if !present {
                e.append(HeaderValue::from_static("Origin"));
            }
        }
        Entry::Vacant(e) => {
            e.insert(HeaderValue::from_static("Origin"));
        }
    }
}

/// CORS answers the upstream gave for an origin the route does not allow: removed, found with
/// one pass over the names rather than a lookup per name.
fn remove_upstream_cors(headers: &mut HeaderMap) {
    let names = [
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
    ];
    if headers.keys().any(|k| names.contains(k)) {
        for name in names {
            headers.remove(name);
        }
    }
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

impl Stage for CorsStage {
    fn name(&self) -> &'static str {
        CORS
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST | Phases::RESPONSE
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return Ok(Flow::Continue).into();
        };
        let allowed = self.allows(origin.as_bytes());
        if req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            // A refused preflight gets no allowance headers at all.
            let answer = self.preflight(allowed, req.headers());
            if answer.is_ok() {
                ctx.cors_origin = Some(origin.clone());
            }
            return answer
                .map(|resp| Flow::respond(resp, "cors_preflight"))
                .into();
        }
        if allowed {
            ctx.cors_origin = Some(origin.clone());
        }
        Ok(Flow::Continue).into()
    }

    fn on_response(&self, resp: &mut Response<Body>, ctx: &mut RequestCtx) {
        // Preflights never reach the upstream, so an OPTIONS answered 204 with
        // `Access-Control-Allow-Methods` is the one `preflight` built, and one this stage
        // refused is a preflight too: both vary on the same request headers, so that a cache
        // never serves the refusal for an allowed preflight or the other way round.
        let preflight = ctx.method == Method::OPTIONS
            && (ctx.stage == Some(CORS)
                || resp.status() == StatusCode::NO_CONTENT
                    && resp
                        .headers()
                        .contains_key(header::ACCESS_CONTROL_ALLOW_METHODS));
        self.decorate(resp.headers_mut(), ctx.cors_origin.as_ref(), preflight);
    }
}

/// FNV-1a for the exact-origin set: the set is fixed at config time, so clients cannot grow
/// collision chains in it, and an unkeyed hash this cheap is safe.
#[derive(Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Builds the `cors` stage of routes with a `cors` table. It comes before the route's other
/// stages, so preflights are answered before anything else costs.
#[derive(Debug, Clone, Copy)]
pub struct CorsStages;

impl StageFactory for CorsStages {
    fn name(&self) -> &'static str {
        "cors"
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        _prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        let Some(cors) = &route.route.cors else {
            return Ok(Vec::new());
        };
        let stage = CorsStage::new(cors).map_err(|m| vec![route.error(None, "cors", m)])?;
        Ok(vec![Box::new(stage)])
    }
}

//! Security headers on every response of a route, errors included: HSTS (on HTTPS only unless
//! forced), `X-Content-Type-Options`, `X-Frame-Options`, `Referrer-Policy`,
//! `Permissions-Policy`, `Content-Security-Policy`, and optionally the removal of headers that
//! reveal the upstream's software (`Server`, `X-Powered-By`, ...). Values are built once when
//! the config is compiled; a response only gets them inserted.

use http::Response;
use http::header::{self, HeaderName, HeaderValue};
use rampart_config::ConfigError;
use rampart_config::model::SecurityHeaders;
use rampart_core::{Body, Phases, RequestCtx, Stage};
use rampart_core::{Prepared, RouteSpec, StageFactory};

/// Headers that name the software behind the route.
static SERVER_HEADERS: [HeaderName; 4] = [
    header::SERVER,
    HeaderName::from_static("x-powered-by"),
    HeaderName::from_static("x-aspnet-version"),
    HeaderName::from_static("x-aspnetmvc-version"),
];

/// Headers the stages and the pipeline may add after this one.
const HEADROOM: usize = 8;

static PERMISSIONS_POLICY: HeaderName = HeaderName::from_static("permissions-policy");

/// The compiled `security_headers` of a route.
#[derive(Debug)]
pub struct SecurityHeadersStage {
    /// `Strict-Transport-Security` and whether to send it over plain HTTP too.
    hsts: Option<(HeaderValue, bool)>,
    /// The other headers, always sent.
    fixed: Vec<(HeaderName, HeaderValue)>,
    hide_server: bool,
    keep_upstream: bool,
}

impl SecurityHeadersStage {
    /// Compiles a route's `security_headers`.
    ///
    /// # Errors
    /// A value that is not a valid header value (validation refuses those first).
    pub fn new(cfg: &SecurityHeaders) -> Result<Self, String> {
        let value = |s: &str| HeaderValue::from_str(s).map_err(|e| format!("{s:?}: {e}"));
        let hsts = match &cfg.hsts {
            Some(h) => {
                let mut v = format!("max-age={}", h.max_age.get().get().as_secs());
                if h.include_subdomains {
                    v.push_str("; includeSubDomains");
                }
                if h.preload {
                    v.push_str("; preload");
                }
                Some((value(&v)?, h.force))
            }
            None => None,
        };
        let mut fixed = Vec::new();
        if cfg.content_type_options {
            fixed.push((
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ));
        }
        if let Some(f) = &cfg.frame_options {
            fixed.push((header::X_FRAME_OPTIONS, value(&f.to_ascii_uppercase())?));
        }
        if let Some(r) = &cfg.referrer_policy {
            fixed.push((header::REFERRER_POLICY, value(r)?));
        }
        if let Some(p) = &cfg.permissions_policy {
            fixed.push((PERMISSIONS_POLICY.clone(), value(p)?));
        }
        if let Some(c) = &cfg.content_security_policy {
            fixed.push((header::CONTENT_SECURITY_POLICY, value(c)?));
        }
        Ok(Self {
            hsts,
            fixed,
            hide_server: cfg.hide_server_headers,
            keep_upstream: cfg.keep_upstream,
        })
    }

    fn put(&self, headers: &mut http::HeaderMap, name: &HeaderName, value: &HeaderValue) {
        if self.keep_upstream && headers.contains_key(name) {
            return;
        }
        headers.insert(name.clone(), value.clone());
    }
}

impl Stage for SecurityHeadersStage {
    fn name(&self) -> &'static str {
        "security_headers"
    }

    fn phases(&self) -> Phases {
        Phases::RESPONSE
    }

    fn on_response(&self, resp: &mut Response<Body>, ctx: &mut RequestCtx) {
        let headers = resp.headers_mut();
        if self.hide_server {
            hide_server_headers(headers);
        }
        // Grow the map once, with room for these headers and for those the later response
        // stages (CORS, header edits) and the pipeline (request ID) add, rather than once per
        // insert that crosses its capacity.
        headers.reserve(self.fixed.len() + usize::from(self.hsts.is_some()) + HEADROOM);
        if let Some((hsts, force)) = &self.hsts
            && (*force || ctx.conn.scheme == "https")
        {
            self.put(headers, &header::STRICT_TRANSPORT_SECURITY, hsts);
        }
        for (name, value) in &self.fixed {
            self.put(headers, name, value);
        }
    }
}

/// Removes [`SERVER_HEADERS`] with one pass over the response's names (a response has a handful
/// of headers; probing the map for each of the four names costs more).
fn hide_server_headers(headers: &mut http::HeaderMap) {
    let mut found = [false; SERVER_HEADERS.len()];
    let mut any = false;
    for name in headers.keys() {
        if let Some(i) = SERVER_HEADERS.iter().position(|s| s == name) {
            found[i] = true;
            any = true;
        }
    }
    if any {
        for (name, _) in SERVER_HEADERS.iter().zip(found).filter(|(_, f)| *f) {
            headers.remove(name);
        }
    }
}

/// Builds the `security_headers` stage of routes with a `security_headers` table. It is a
/// route's last stage, so its response side is the first to run.
#[derive(Debug, Clone, Copy)]
pub struct SecurityHeaderStages;

impl StageFactory for SecurityHeaderStages {
    fn name(&self) -> &'static str {
        "security_headers"
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        _prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        let Some(h) = &route.route.security_headers else {
            return Ok(Vec::new());
        };
        let stage = SecurityHeadersStage::new(h)
            .map_err(|m| vec![route.error(None, "security_headers", m)])?;
        Ok(vec![Box::new(stage)])
    }
}

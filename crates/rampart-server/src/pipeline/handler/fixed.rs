//! Fixed answers: redirects (with placeholders) and configured responses.

use std::fmt::Write as _;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use rampart_config::model::{Redirect, Respond};
use rampart_core::{Body, RequestCtx};

/// A compiled `redirect = { to, status }`.
pub(crate) struct RedirectSpec {
    parts: Vec<Part>,
    status: StatusCode,
}

enum Part {
    Literal(String),
    Scheme,
    Host,
    Path,
    Query,
    RequestUri,
}

impl RedirectSpec {
    /// Parses the `to` template.
    pub(crate) fn new(r: &Redirect) -> Result<Self, String> {
        let status = StatusCode::from_u16(*r.status.get()).map_err(|e| e.to_string())?;
        let mut parts = Vec::new();
        let mut rest = r.to.as_str();
        while let Some(start) = rest.find('{') {
            let end = rest[start..]
                .find('}')
                .map(|e| start + e)
                .ok_or_else(|| format!("unclosed `{{` in {:?}", r.to.get()))?;
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            parts.push(match &rest[start + 1..end] {
                "scheme" => Part::Scheme,
                "host" => Part::Host,
                "path" => Part::Path,
                "query" => Part::Query,
                "request_uri" => Part::RequestUri,
                other => return Err(format!("unknown placeholder {{{other}}}: use {{scheme}}, {{host}}, {{path}}, {{query}} or {{request_uri}}")),
            });
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Self { parts, status })
    }

    pub(crate) fn summary(&self) -> String {
        format!("redirect {} to {}", self.status.as_u16(), self.template())
    }

    fn template(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(s) => s.as_str(),
                Part::Scheme => "{scheme}",
                Part::Host => "{host}",
                Part::Path => "{path}",
                Part::Query => "{query}",
                Part::RequestUri => "{request_uri}",
            })
            .collect()
    }

    /// The redirect for `req`.
    pub(crate) fn respond(&self, req: &Request<Body>, ctx: &RequestCtx) -> Response<Body> {
        let uri = req.uri();
        let host = ctx
            .host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let mut location = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => location.push_str(s),
                Part::Scheme => location.push_str(ctx.conn.scheme),
                Part::Host => location.push_str(host),
                Part::Path => location.push_str(uri.path()),
                Part::Query => {
                    if let Some(q) = uri.query() {
                        let _ = write!(location, "?{q}");
                    }
                }
                Part::RequestUri => {
                    location.push_str(uri.path_and_query().map_or("/", |pq| pq.as_str()));
                }
            }
        }
        let mut resp = Response::new(Body::Empty);
        *resp.status_mut() = self.status;
        // A Host with characters not allowed in a header value cannot get here: hyper refused it.
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        resp
    }
}

/// A compiled `respond = { status, body, content_type, headers }`.
pub(crate) struct RespondSpec {
    status: StatusCode,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl RespondSpec {
    /// Validates status and headers.
    pub(crate) fn new(r: &Respond) -> Result<Self, String> {
        let status = StatusCode::from_u16(*r.status.get()).map_err(|e| e.to_string())?;
        let mut headers = vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&r.content_type).map_err(|e| e.to_string())?,
        )];
        for (name, value) in &r.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("header {name:?}: {e}"))?;
            let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
            headers.push((name, value));
        }
        Ok(Self {
            status,
            body: Bytes::from(r.body.clone()),
            headers,
        })
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "respond {} with {} bytes",
            self.status.as_u16(),
            self.body.len()
        )
    }

    /// The configured response.
    pub(crate) fn respond(&self) -> Response<Body> {
        let mut resp = Response::new(Body::full(self.body.clone()));
        *resp.status_mut() = self.status;
        for (name, value) in &self.headers {
            resp.headers_mut().append(name.clone(), value.clone());
        }
        resp
    }
}

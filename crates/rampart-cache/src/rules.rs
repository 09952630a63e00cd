//! [`Rules`]: a route's cache config, compiled, and what it decides from a request alone: the
//! cache key and whether the request skips the cache.
//!
//! The key of an object is its URL, `scheme://host/path?query` (host lowercased, ignored query
//! parameters left out): purges name objects by it. The route's key headers and cookies
//! select among the variants stored for that URL, as `Vary` does.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName};
use http::{Request, Uri};
use rampart_config::Cidr;
use rampart_core::Body;

use crate::entry::Defaults;

/// Which query parameters the key leaves out.
#[derive(Debug, Clone)]
pub(crate) enum IgnoreQuery {
    /// None: the query is part of the key as written.
    None,
    /// The whole query.
    All,
    /// These parameter names.
    Names(Box<[Box<str>]>),
}

/// A route's cache rules.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) defaults: Defaults,
    pub(crate) max_object_size: u64,
    /// Statuses that may be stored; `None`: every final status but 206 and 304.
    pub(crate) statuses: Option<Box<[u16]>>,
    pub(crate) key_headers: Box<[HeaderName]>,
    pub(crate) key_cookies: Box<[Box<str>]>,
    pub(crate) ignore_query: IgnoreQuery,
    pub(crate) bypass_headers: Box<[HeaderName]>,
    pub(crate) bypass_cookies: Box<[Box<str>]>,
    /// Lowercase, without the dot.
    pub(crate) exclude_extensions: Box<[Box<str>]>,
    pub(crate) exclude_paths: Box<[Box<str>]>,
    /// How long a miss waits for the same object's request in flight; `None`: no collapsing.
    pub(crate) collapse: Option<Duration>,
    /// The name of the header telling how the cache served a request.
    pub(crate) status_header: Option<HeaderName>,
    /// Clients whose `PURGE` is honoured (none: `PURGE` is not the cache's).
    pub(crate) purge_allow: Box<[Cidr]>,
}

impl Rules {
    /// True when `status` may be stored.
    pub(crate) fn storable_status(&self, status: u16) -> bool {
        match &self.statuses {
            Some(list) => list.contains(&status),
            None => (200..600).contains(&status) && status != 206 && status != 304,
        }
    }

    /// True when `req` skips the cache: a bypass header or cookie, an excluded path or
    /// extension.
    pub(crate) fn bypassed(&self, req: &Request<Body>) -> bool {
        let path = req.uri().path();
        if self.exclude_paths.iter().any(|prefix| under(path, prefix)) {
            return true;
        }
        if !self.exclude_extensions.is_empty() {
            let last = path.rsplit('/').next().unwrap_or("");
            if let Some((_, ext)) = last.rsplit_once('.')
                && self
                    .exclude_extensions
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(ext))
            {
                return true;
            }
        }
        let headers = req.headers();
        self.bypass_headers.iter().any(|h| headers.contains_key(h))
            || self
                .bypass_cookies
                .iter()
                .any(|c| cookie(headers, c).is_some())
    }

    /// The primary key of the object at `uri` on `host` over `scheme`.
    pub(crate) fn key(&self, scheme: &str, host: &str, uri: &Uri) -> String {
        let path = uri.path();
        let mut key = String::with_capacity(scheme.len() + host.len() + path.len() + 16);
        key.push_str(scheme);
        key.push_str("://");
        for c in host.chars() {
            key.push(c.to_ascii_lowercase());
        }
        key.push_str(path);
        if let Some(query) = uri.query() {
            match &self.ignore_query {
                IgnoreQuery::All => {}
                IgnoreQuery::None => {
                    key.push('?');
                    key.push_str(query);
                }
                IgnoreQuery::Names(names) => {
                    let mut first = true;
                    for pair in query.split('&') {
                        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
                        if names.iter().any(|n| **n == *name) {
                            continue;
                        }
                        key.push(if first { '?' } else { '&' });
                        key.push_str(pair);
                        first = false;
                    }
                }
            }
        }
        key
    }

    /// The values of the route's key headers and cookies in `headers`, which select a
    /// variant of an object (empty when the route has none).
    pub(crate) fn extra_key(&self, headers: &HeaderMap) -> String {
        let mut out = String::new();
        for name in &self.key_headers {
            out.push_str(name.as_str());
            out.push('=');
            if let Some(v) = crate::entry::combined(headers, name) {
                out.push_str(&v);
            }
            out.push('\n');
        }
        for name in &self.key_cookies {
            out.push_str("cookie:");
            out.push_str(name);
            out.push('=');
            out.push_str(cookie(headers, name).unwrap_or(""));
            out.push('\n');
        }
        out
    }
}

/// True when `path` is `prefix` or below it, on a segment boundary.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'))
}

/// The value of cookie `name` in the request's `Cookie` fields.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n.trim() == name).then(|| v.trim())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            defaults: Defaults::default(),
            max_object_size: 1 << 20,
            statuses: None,
            key_headers: Box::new([HeaderName::from_static("x-tenant")]),
            key_cookies: Box::new(["lang".into()]),
            ignore_query: IgnoreQuery::Names(Box::new(["utm_source".into()])),
            bypass_headers: Box::new([]),
            bypass_cookies: Box::new(["session".into()]),
            exclude_extensions: Box::new(["php".into()]),
            exclude_paths: Box::new(["/admin".into()]),
            collapse: None,
            status_header: None,
            purge_allow: Box::new([]),
        }
    }

    #[test]
    fn the_key_drops_ignored_query_parameters_and_lowercases_the_host() {
        let uri: Uri = "/a?utm_source=x&b=1&utm_source".parse().unwrap();
        assert_eq!(
            rules().key("http", "Example.COM", &uri),
            "http://example.com/a?b=1"
        );
    }

    #[test]
    fn extra_key_holds_header_and_cookie_values() {
        let mut h = HeaderMap::new();
        h.insert("x-tenant", "t1".parse().unwrap());
        h.insert(header::COOKIE, "a=1; lang=fr".parse().unwrap());
        assert_eq!(rules().extra_key(&h), "x-tenant=t1\ncookie:lang=fr\n");
    }

    #[test]
    fn bypass_and_exclusions() {
        let r = rules();
        let req = |uri: &str, cookie: Option<&str>| {
            let mut b = Request::builder().uri(uri);
            if let Some(c) = cookie {
                b = b.header(header::COOKIE, c);
            }
            b.body(Body::Empty).unwrap()
        };
        assert!(r.bypassed(&req("/admin/x", None)));
        assert!(!r.bypassed(&req("/administrator", None)));
        assert!(r.bypassed(&req("/index.PHP", None)));
        assert!(r.bypassed(&req("/a", Some("session=1"))));
        assert!(!r.bypassed(&req("/a", Some("other=1"))));
    }
}

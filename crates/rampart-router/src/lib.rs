//! Rampart's request router: compiles the predicates of `[[routes]]` ([`Matcher`]), indexes them
//! ([`Router`]), picks the route for a request ([`Router::lookup`]) and explains the choice
//! ([`Router::explain`], for `rampart explain`).
//!
//! This crate owns route matching and precedence, nothing else: handlers, rewrites and stages
//! belong to the server. Among Rampart crates it depends only on `rampart-config`; it must not
//! depend on an async runtime or an HTTP stack (no tokio, no hyper) — only on the `http` types.
//!
//! # Matching
//! A route matches when all of its predicates hold: host, path, methods, headers, query (see
//! `docs/routing.md`). Listeners are not a request predicate: the server builds one router per
//! listener from the entries whose [`Matcher::serves_listener`] is true.
//!
//! # Precedence
//! Among matching routes the smallest key wins: (1) higher `priority`; (2) host: exact >
//! wildcard (more labels first) > any; (3) path: exact > template (more literal segments, then
//! fewer params, then plain before catch-all) > prefix (longer first) > regex > none; (4) more
//! predicates (methods 1, each header and query predicate 1); (5) declared earlier.
//!
//! # Cost
//! A lookup hashes the host once or a few times (wildcards walk the host's dot-suffixes), hashes
//! the path once for exact paths and once or twice per segment for prefixes, walks the matchit
//! trees once for templates, and runs only the regexes that could still win. It does not
//! allocate, except: a host longer than 256 bytes with upper-case letters, a template with more
//! than three parameters (matchit), and a query `regex` predicate on a percent-encoded value
//! longer than 512 bytes.

#![forbid(unsafe_code)]

mod explain;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod hash;
mod host;
mod matcher;
mod path;
mod precedence;
mod predicate;
mod router;
mod templates;

#[cfg(test)]
mod tests;

pub use explain::{Explanation, PredicateKind, RouteReport, RouteSummary, Verdict};
pub use matcher::Matcher;
pub use precedence::Rule;
pub use router::Router;

/// The parts of a request the router looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Request method.
    pub method: &'a http::Method,
    /// `Host` header or `:authority`; may include a port, any case, a trailing dot.
    pub host: Option<&'a str>,
    /// Path, already normalized, without the query.
    pub path: &'a str,
    /// Raw query without the `?`.
    pub query: Option<&'a str>,
    /// Request headers.
    pub headers: &'a http::HeaderMap,
}

impl<'a> RequestView<'a> {
    /// The view of `req` as it is: host from the URI authority (without user info and port),
    /// else the `Host` header; path and query from the URI (not normalized: normalizing is the
    /// caller's job).
    #[must_use]
    pub fn from_request<B>(req: &'a http::Request<B>) -> Self {
        let uri = req.uri();
        let host = uri.authority().map(http::uri::Authority::host).or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
        });
        Self {
            method: req.method(),
            host,
            path: uri.path(),
            query: uri.query(),
            headers: req.headers(),
        }
    }
}

/// The route a request goes to.
#[derive(Debug)]
pub struct RouteMatch<'r, T> {
    /// The payload stored with the route.
    pub value: &'r T,
    /// The route's entry index (declaration order).
    pub index: usize,
}

impl<T> Clone for RouteMatch<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for RouteMatch<'_, T> {}

//! [`Matcher`]: the compiled predicates of one route.

use std::ops::Range;

use http::{HeaderName, Method};
use rampart_config::ConfigError;
use rampart_config::model::Route;

use crate::RequestView;
use crate::host::HostPattern;
use crate::path::{PathMatch, Template};
use crate::precedence::{HostSpec, PathSpec, Precedence};
use crate::predicate::{HeaderPred, QueryPred, ValueTest};

/// The compiled predicates of one route: hosts, path, methods, headers, query, priority.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub(crate) name: String,
    pub(crate) name_span: Range<usize>,
    pub(crate) config_path: String,
    pub(crate) priority: i32,
    pub(crate) listeners: Vec<String>,
    /// Normalized and deduplicated; [`HostPattern::Any`] (last) when any host matches, so
    /// never empty.
    pub(crate) hosts: Vec<HostPattern>,
    pub(crate) path: PathMatch,
    pub(crate) methods: Vec<Method>,
    pub(crate) headers: Vec<HeaderPred>,
    pub(crate) query: Vec<QueryPred>,
}

impl Matcher {
    /// Compiles the predicates of `route`; `path` is its config key path such as `routes[3]`,
    /// used in error messages.
    ///
    /// # Errors
    /// Every predicate that cannot be compiled (validation normally catches these first).
    pub fn from_config(route: &Route, path: &str) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut err = |span: Range<usize>, key: String, msg: String| {
            errors.push(ConfigError::new(Some(span), key, msg));
        };

        let mut hosts = Vec::new();
        let mut any_host = route.hosts.is_empty();
        for (i, host) in route.hosts.iter().enumerate() {
            match HostPattern::parse(host) {
                Ok(HostPattern::Any) => any_host = true,
                Ok(p) if !hosts.contains(&p) => hosts.push(p),
                Ok(_) => {}
                Err(msg) => err(host.span(), format!("{path}.hosts[{i}]"), msg),
            }
        }
        if any_host {
            hosts.push(HostPattern::Any);
        }

        let path_match = compile_path(route, path, &mut err);

        let mut methods: Vec<Method> = Vec::new();
        for (i, m) in route.methods.iter().enumerate() {
            match Method::from_bytes(m.as_bytes()) {
                Ok(method) if !methods.contains(&method) => methods.push(method),
                Ok(_) => {}
                Err(_) => err(
                    m.span(),
                    format!("{path}.methods[{i}]"),
                    format!("invalid method {:?}", m.get()),
                ),
            }
        }

        let mut headers = Vec::new();
        for (i, h) in route.headers.iter().enumerate() {
            let key = format!("{path}.headers[{i}]");
            let name = HeaderName::from_bytes(h.name.as_bytes());
            let test = ValueTest::from_config(h.value.as_ref(), h.regex.as_ref(), h.present);
            match (name, test) {
                (Ok(name), Ok(test)) => headers.push(HeaderPred { name, test }),
                (Err(_), _) => err(
                    h.name.span(),
                    format!("{key}.name"),
                    format!("invalid header name {:?}", h.name.get()),
                ),
                (_, Err(msg)) => err(h.name.span(), key, msg),
            }
        }

        let mut query = Vec::new();
        for (i, q) in route.query.iter().enumerate() {
            let key = format!("{path}.query[{i}]");
            match ValueTest::from_config(q.value.as_ref(), q.regex.as_ref(), q.present) {
                Ok(_) if q.name.is_empty() => err(
                    q.name.span(),
                    format!("{key}.name"),
                    "must not be empty".to_owned(),
                ),
                Ok(test) => query.push(QueryPred {
                    name: q.name.get().clone(),
                    test,
                }),
                Err(msg) => err(q.name.span(), key, msg),
            }
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        let mut listeners: Vec<String> = route.listeners.iter().map(|l| l.get().clone()).collect();
        listeners.sort();
        listeners.dedup();
        Ok(Self {
            name: route.name.get().clone(),
            name_span: route.name.span(),
            config_path: path.to_owned(),
            priority: route.priority,
            listeners,
            hosts,
            path: path_match.unwrap_or(PathMatch::Any),
            methods,
            headers,
            query,
        })
    }

    /// The route's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The config key path given to [`Matcher::from_config`], such as `routes[3]`.
    #[must_use]
    pub fn config_path(&self) -> &str {
        &self.config_path
    }

    /// The route's `priority`.
    #[must_use]
    pub const fn priority(&self) -> i32 {
        self.priority
    }

    /// The listeners the route is restricted to, sorted (empty: all listeners).
    #[must_use]
    pub fn listeners(&self) -> &[String] {
        &self.listeners
    }

    /// Whether the route serves requests arriving on listener `name`. Listeners are not a
    /// request predicate of the [`Router`](crate::Router): build one router per listener from
    /// the entries that serve it.
    #[must_use]
    pub fn serves_listener(&self, name: &str) -> bool {
        self.listeners.is_empty() || self.listeners.iter().any(|l| l == name)
    }

    /// Number of predicates counted by precedence rule 4.
    pub(crate) fn predicate_count(&self) -> usize {
        usize::from(!self.methods.is_empty()) + self.headers.len() + self.query.len()
    }

    /// The precedence key when the request's host matched with specificity `host`.
    pub(crate) fn precedence(&self, host: HostSpec, index: usize) -> Precedence {
        Precedence {
            priority: self.priority,
            host,
            path: PathSpec::of(&self.path),
            predicates: self.predicate_count(),
            index,
        }
    }

    /// Method, header and query predicates (host and path are checked by the index).
    #[inline]
    pub(crate) fn rest_holds(&self, req: &RequestView<'_>) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m == req.method))
            && self.headers.iter().all(|h| h.holds(req.headers))
            && self.query.iter().all(|q| q.holds(req.query))
    }

    /// A canonical form of every predicate and the listener set: two matchers with the same
    /// signature take exactly the same requests.
    pub(crate) fn signature(&self) -> String {
        let mut hosts: Vec<String> = self.hosts.iter().map(ToString::to_string).collect();
        hosts.sort();
        let mut methods: Vec<&str> = self.methods.iter().map(Method::as_str).collect();
        methods.sort_unstable();
        let mut headers: Vec<String> = self
            .headers
            .iter()
            .map(|h| format!("{} {}", h.name, h.test.signature()))
            .collect();
        headers.sort();
        headers.dedup();
        let mut query: Vec<String> = self
            .query
            .iter()
            .map(|q| format!("{:?} {}", q.name, q.test.signature()))
            .collect();
        query.sort();
        query.dedup();
        format!(
            "listeners={:?} hosts={hosts:?} path={:?} methods={methods:?} headers={headers:?} query={query:?}",
            self.listeners,
            self.path.signature()
        )
    }
}

fn compile_path(
    route: &Route,
    path: &str,
    err: &mut impl FnMut(Range<usize>, String, String),
) -> Option<PathMatch> {
    let mut found: Vec<(&str, Range<usize>, Result<PathMatch, String>)> = Vec::new();
    if let Some(p) = &route.path {
        let m = rampart_config::syntax::check_path(p).map(|()| PathMatch::Exact(p.get().clone()));
        found.push(("path", p.span(), m));
    }
    if let Some(p) = &route.path_prefix {
        let m = rampart_config::syntax::check_path(p).map(|()| PathMatch::Prefix(p.get().clone()));
        found.push(("path_prefix", p.span(), m));
    }
    if let Some(t) = &route.path_template {
        found.push((
            "path_template",
            t.span(),
            Template::parse(t).map(PathMatch::Template),
        ));
    }
    if let Some(r) = &route.path_regex {
        found.push((
            "path_regex",
            r.span(),
            Ok(PathMatch::Regex(r.regex().clone())),
        ));
    }
    if found.len() > 1 {
        let keys: Vec<&str> = found.iter().map(|(k, _, _)| *k).collect();
        err(
            route.name.span(),
            path.to_owned(),
            format!(
                "a route takes at most one of `path`, `path_prefix`, `path_template`, `path_regex`; found {}",
                keys.join(", ")
            ),
        );
        return None;
    }
    let (key, span, m) = found.pop()?;
    m.map_err(|msg| err(span, format!("{path}.{key}"), msg))
        .ok()
}

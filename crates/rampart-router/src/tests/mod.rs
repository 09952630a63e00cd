//! Router behaviour tests: routes come from real config text (so spans and validation are the
//! real ones), and every lookup is checked against `explain`, which evaluates every route
//! without the index.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use rampart_config::ConfigError;

use crate::{Matcher, RequestView, Router};

/// Config text with one listener and the given routes; each route is a block of `key = value`
/// lines, `echo = true` is added.
pub(super) fn config_text(routes: &[&str]) -> String {
    let mut text = String::from(
        "[[listeners]]\nname = \"main\"\nbind = \"127.0.0.1:8080\"\n\n[[listeners]]\nname = \"admin\"\nbind = \"127.0.0.1:8081\"\n",
    );
    for r in routes {
        text.push_str("\n[[routes]]\n");
        text.push_str(r.trim());
        text.push_str("\necho = true\n");
    }
    text
}

pub(super) fn try_build(routes: &[&str]) -> Result<Router<usize>, Vec<ConfigError>> {
    let config = rampart_config::load_str(&config_text(routes), "test.toml")
        .unwrap_or_else(|d| panic!("{d}"));
    let mut entries = Vec::new();
    for (i, route) in config.raw().routes.iter().enumerate() {
        entries.push((Matcher::from_config(route, &format!("routes[{i}]"))?, i));
    }
    Router::new(entries)
}

pub(super) fn build(routes: &[&str]) -> Router<usize> {
    try_build(routes).unwrap_or_else(|e| panic!("{e:?}"))
}

pub(super) struct Probe {
    method: Method,
    host: Option<String>,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

/// A GET request; `host` "" means no host; `target` is path and optional query.
pub(super) fn req(host: &str, target: &str) -> Probe {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    let host = (!host.is_empty()).then(|| host.to_owned());
    Probe {
        method: Method::GET,
        host,
        path,
        query,
        headers: HeaderMap::new(),
    }
}

impl Probe {
    pub(super) fn method(mut self, m: &str) -> Self {
        self.method = Method::from_bytes(m.as_bytes()).unwrap();
        self
    }

    pub(super) fn header(mut self, name: &str, value: &[u8]) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        self.headers
            .append(name, HeaderValue::from_bytes(value).unwrap());
        self
    }

    pub(super) fn view(&self) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            host: self.host.as_deref(),
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
        }
    }
}

/// The winning route's name; asserts that the index and `explain` agree.
pub(super) fn winner(router: &Router<usize>, probe: &Probe) -> Option<String> {
    let view = probe.view();
    let found = router.lookup(&view);
    let explained = router.explain(&view);
    assert_eq!(
        found.map(|m| m.index),
        explained.winner.as_ref().map(|w| w.index),
        "index and explain disagree for {}:\n{explained}",
        explained.request
    );
    if let Some(m) = found {
        assert_eq!(*m.value, m.index, "payload belongs to its entry");
    }
    found
        .and_then(|m| router.get(m.index))
        .map(|(m, _)| m.name().to_owned())
}

pub(super) fn win(router: &Router<usize>, host: &str, target: &str) -> Option<String> {
    winner(router, &req(host, target))
}

mod explain;
mod generated;
mod matching;
mod precedence;

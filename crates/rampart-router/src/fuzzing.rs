//! Entry point for the router fuzz target in `fuzz/` (cargo feature `fuzzing`, off in the
//! product build; also compiled for this crate's tests, which replay the seed corpus).

use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::{Matcher, RequestView, Router};

/// The routes used when the input brings none: every kind of host, path and predicate.
const DEFAULT_ROUTES: &str = r#"
[[routes]]
name = "root"
path = "/"
echo = true

[[routes]]
name = "api"
hosts = ["api.example.com", "*.api.example.com"]
path_prefix = "/v1"
methods = ["GET", "POST"]
echo = true

[[routes]]
name = "users"
hosts = ["*.example.com"]
path_template = "/users/{id}/posts/{post}"
echo = true

[[routes]]
name = "files"
path_template = "/files/{*rest}"
headers = [{ name = "x-env", value = "prod" }]
echo = true

[[routes]]
name = "regex"
path_regex = "^/r/[0-9]+(/[a-z]+)?$"
query = [{ name = "v", value = "1" }]
echo = true

[[routes]]
name = "any-prefix"
path_prefix = "/"
priority = -1
echo = true

[[routes]]
name = "debug"
hosts = ["x.org"]
path_prefix = "/a/b"
headers = [{ name = "x-debug", present = true }]
query = [{ name = "w", present = false }]
priority = 2
echo = true
"#;

/// A config with one listener and `routes` (TOML `[[routes]]` tables).
fn config_text(routes: &str) -> String {
    format!("[[listeners]]\nname = \"main\"\nbind = \"127.0.0.1:8080\"\n{routes}")
}

/// The router of `routes`, when they load and index.
fn build(routes: &str) -> Option<Router<usize>> {
    let config =
        rampart_config::load_str_with_env(&config_text(routes), "fuzz.toml", &|_| None).ok()?;
    let mut entries = Vec::new();
    for (i, route) in config.raw().routes.iter().enumerate() {
        entries.push((
            Matcher::from_config(route, &format!("routes[{i}]")).ok()?,
            i,
        ));
    }
    Router::new(entries).ok()
}

/// Route lookup: the index's answer is the one `explain` (which evaluates every predicate of
/// every route without the index) gives. Input: optional route tables followed by a line
/// `---`, then the request as lines: method, host (empty: none), target, `name: value`
/// header lines.
pub fn router(data: &[u8]) {
    static DEFAULT: OnceLock<Option<Router<usize>>> = OnceLock::new();
    let text = String::from_utf8_lossy(data);
    let (own, request) = match text.split_once("\n---\n") {
        Some((routes, request)) => (build(routes), request),
        None => (None, text.as_ref()),
    };
    let router = match &own {
        Some(router) => router,
        None => match DEFAULT.get_or_init(|| build(DEFAULT_ROUTES)) {
            Some(router) => router,
            None => panic!("the default routes do not build"),
        },
    };
    let mut lines = request.split('\n');
    let method = Method::from_bytes(lines.next().unwrap_or("GET").as_bytes()).unwrap_or_default();
    let host = lines.next().filter(|h| !h.is_empty());
    let target = lines.next().unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.trim().as_bytes()),
                HeaderValue::from_str(value.trim()),
            )
        {
            headers.append(name, value);
        }
    }
    let view = RequestView {
        method: &method,
        host,
        path,
        query,
        headers: &headers,
    };
    let found = router.lookup(&view);
    let explained = router.explain(&view);
    assert_eq!(
        found.map(|m| m.index),
        explained.winner.as_ref().map(|w| w.index),
        "index and explain disagree:\n{explained}"
    );
    if let Some(m) = found {
        assert_eq!(*m.value, m.index, "payload belongs to its entry");
    }
    let _ = format!("{explained:#}");
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_router_corpus_passes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/router");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            super::router(&std::fs::read(&path).unwrap_or_else(|e| panic!("{e}")));
            seen += 1;
        }
        assert!(seen > 0, "no seeds in {}", dir.display());
    }

    #[test]
    fn the_default_routes_build() {
        assert!(super::build(super::DEFAULT_ROUTES).is_some());
    }
}

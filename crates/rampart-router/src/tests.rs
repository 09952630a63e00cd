//! Router behaviour tests: routes come from real config text (so spans and validation are the
//! real ones), and every lookup is checked against `explain`, which evaluates every route
//! without the index.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use rampart_config::ConfigError;

use crate::{Matcher, RequestView, Router, Rule, Verdict};

/// Config text with one listener and the given routes; each route is a block of `key = value`
/// lines, `echo = true` is added.
fn config_text(routes: &[&str]) -> String {
    let mut text = String::from("[[listeners]]\nname = \"main\"\nbind = \"127.0.0.1:8080\"\n\n[[listeners]]\nname = \"admin\"\nbind = \"127.0.0.1:8081\"\n");
    for r in routes {
        text.push_str("\n[[routes]]\n");
        text.push_str(r.trim());
        text.push_str("\necho = true\n");
    }
    text
}

fn try_build(routes: &[&str]) -> Result<Router<usize>, Vec<ConfigError>> {
    let config = rampart_config::load_str(&config_text(routes), "test.toml").unwrap_or_else(|d| panic!("{d}"));
    let mut entries = Vec::new();
    for (i, route) in config.raw().routes.iter().enumerate() {
        entries.push((Matcher::from_config(route, &format!("routes[{i}]"))?, i));
    }
    Router::new(entries)
}

fn build(routes: &[&str]) -> Router<usize> {
    try_build(routes).unwrap_or_else(|e| panic!("{e:?}"))
}

struct Probe {
    method: Method,
    host: Option<String>,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

/// A GET request; `host` "" means no host; `target` is path and optional query.
fn req(host: &str, target: &str) -> Probe {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    let host = (!host.is_empty()).then(|| host.to_owned());
    Probe { method: Method::GET, host, path, query, headers: HeaderMap::new() }
}

impl Probe {
    fn method(mut self, m: &str) -> Self {
        self.method = Method::from_bytes(m.as_bytes()).unwrap();
        self
    }

    fn header(mut self, name: &str, value: &[u8]) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        self.headers.append(name, HeaderValue::from_bytes(value).unwrap());
        self
    }

    fn view(&self) -> RequestView<'_> {
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
fn winner(router: &Router<usize>, probe: &Probe) -> Option<String> {
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
    found.and_then(|m| router.get(m.index)).map(|(m, _)| m.name().to_owned())
}

fn win(router: &Router<usize>, host: &str, target: &str) -> Option<String> {
    winner(router, &req(host, target))
}

// ---- hosts ---------------------------------------------------------------------------------

#[test]
fn exact_host_ignores_case_port_and_trailing_dot() {
    let r = build(&[r#"name = "api"
hosts = ["API.example.com"]"#]);
    for host in ["api.example.com", "Api.Example.COM", "api.example.com:8443", "api.example.com.", "API.EXAMPLE.COM.:80"] {
        assert_eq!(win(&r, host, "/").as_deref(), Some("api"), "{host}");
    }
    for host in ["example.com", "xapi.example.com", "api.example.co", "api.example.com.evil"] {
        assert_eq!(win(&r, host, "/"), None, "{host}");
    }
}

#[test]
fn wildcard_host_matches_one_or_more_labels_but_not_the_bare_domain() {
    let r = build(&[r#"name = "wild"
hosts = ["*.example.com"]"#]);
    assert_eq!(win(&r, "a.example.com", "/").as_deref(), Some("wild"));
    assert_eq!(win(&r, "a.b.c.EXAMPLE.com:1", "/").as_deref(), Some("wild"));
    assert_eq!(win(&r, "example.com", "/"), None);
    assert_eq!(win(&r, "aexample.com", "/"), None);
    assert_eq!(win(&r, ".example.com", "/"), None);
    assert_eq!(win(&r, "", "/"), None);
}

#[test]
fn star_or_missing_hosts_match_any_host_and_requests_without_host() {
    let r = build(&[
        r#"name = "star"
hosts = ["*"]
path = "/a""#,
        r#"name = "none"
path = "/b""#,
    ]);
    for host in ["x.org", "", "127.0.0.1:9"] {
        assert_eq!(win(&r, host, "/a").as_deref(), Some("star"), "{host:?}");
        assert_eq!(win(&r, host, "/b").as_deref(), Some("none"), "{host:?}");
    }
}

#[test]
fn requests_without_host_match_only_any_host_routes() {
    let r = build(&[
        r#"name = "named"
hosts = ["api.example.com"]
priority = 5"#,
        r#"name = "wild"
hosts = ["*.example.com"]
priority = 5"#,
        r#"name = "fallback""#,
    ]);
    assert_eq!(win(&r, "", "/").as_deref(), Some("fallback"));
    assert_eq!(win(&r, "api.example.com", "/").as_deref(), Some("named"));
}

#[test]
fn exact_host_beats_wildcard_beats_any_host() {
    let r = build(&[
        r#"name = "any""#,
        r#"name = "wild"
hosts = ["*.example.com"]"#,
        r#"name = "exact"
hosts = ["api.example.com"]"#,
    ]);
    assert_eq!(win(&r, "api.example.com", "/").as_deref(), Some("exact"));
    assert_eq!(win(&r, "www.example.com", "/").as_deref(), Some("wild"));
    assert_eq!(win(&r, "other.org", "/").as_deref(), Some("any"));
}

#[test]
fn deeper_wildcard_beats_shallower_wildcard() {
    let r = build(&[
        r#"name = "shallow"
hosts = ["*.example.com"]"#,
        r#"name = "deep"
hosts = ["*.eu.example.com"]"#,
    ]);
    assert_eq!(win(&r, "api.eu.example.com", "/").as_deref(), Some("deep"));
    assert_eq!(win(&r, "eu.example.com", "/").as_deref(), Some("shallow"));
    assert_eq!(win(&r, "api.us.example.com", "/").as_deref(), Some("shallow"));
}

#[test]
fn a_route_ranks_by_its_most_specific_matching_host_pattern() {
    let r = build(&[
        r#"name = "both"
hosts = ["*.example.com", "api.example.com"]"#,
        r#"name = "wild"
hosts = ["*.example.com"]
methods = ["GET"]"#,
    ]);
    // Via its exact pattern `both` beats `wild`; via the wildcard, `wild` has more predicates.
    assert_eq!(win(&r, "api.example.com", "/").as_deref(), Some("both"));
    assert_eq!(win(&r, "www.example.com", "/").as_deref(), Some("wild"));
}

#[test]
fn host_specificity_beats_path_specificity() {
    let r = build(&[
        r#"name = "exact-path"
path = "/login""#,
        r#"name = "host-only"
hosts = ["api.example.com"]"#,
    ]);
    assert_eq!(win(&r, "api.example.com", "/login").as_deref(), Some("host-only"));
    assert_eq!(win(&r, "other.org", "/login").as_deref(), Some("exact-path"));
}

// ---- paths ---------------------------------------------------------------------------------

#[test]
fn exact_path_matches_only_itself() {
    let r = build(&[r#"name = "login"
path = "/login""#]);
    assert_eq!(win(&r, "h", "/login").as_deref(), Some("login"));
    for p in ["/login/", "/login/x", "/logi", "/Login"] {
        assert_eq!(win(&r, "h", p), None, "{p}");
    }
}

#[test]
fn prefix_matches_on_segment_boundaries() {
    let r = build(&[r#"name = "api"
path_prefix = "/api""#]);
    for p in ["/api", "/api/", "/api/x", "/api/x/y"] {
        assert_eq!(win(&r, "h", p).as_deref(), Some("api"), "{p}");
    }
    for p in ["/apix", "/ap", "/", "/x/api"] {
        assert_eq!(win(&r, "h", p), None, "{p}");
    }
}

#[test]
fn prefix_ending_in_slash_matches_itself_and_below_only() {
    let r = build(&[r#"name = "api"
path_prefix = "/api/""#]);
    assert_eq!(win(&r, "h", "/api/").as_deref(), Some("api"));
    assert_eq!(win(&r, "h", "/api/x").as_deref(), Some("api"));
    assert_eq!(win(&r, "h", "/api"), None);
}

#[test]
fn no_path_key_matches_every_path() {
    let r = build(&[r#"name = "all""#]);
    for p in ["/", "/a/b/c", "/%20", "*"] {
        assert_eq!(win(&r, "h", p).as_deref(), Some("all"), "{p}");
    }
}

#[test]
fn template_params_take_one_segment_and_catch_all_matches_an_empty_rest() {
    let r = build(&[
        r#"name = "user"
path_template = "/users/{id}""#,
        r#"name = "files"
path_template = "/files/{*rest}""#,
    ]);
    assert_eq!(win(&r, "h", "/users/42").as_deref(), Some("user"));
    assert_eq!(win(&r, "h", "/users/"), None);
    assert_eq!(win(&r, "h", "/users/42/x"), None);
    for p in ["/files", "/files/", "/files/a", "/files/a/b.txt"] {
        assert_eq!(win(&r, "h", p).as_deref(), Some("files"), "{p}");
    }
    assert_eq!(win(&r, "h", "/filesx"), None);
}

#[test]
fn regex_is_an_unanchored_search_as_written() {
    let r = build(&[
        r#"name = "img"
path_regex = '\.(png|jpg)$'"#,
        r#"name = "anchored"
path_regex = '^/v[0-9]+/'"#,
    ]);
    assert_eq!(win(&r, "h", "/a/b/c.png").as_deref(), Some("img"));
    assert_eq!(win(&r, "h", "/v2/x").as_deref(), Some("anchored"));
    assert_eq!(win(&r, "h", "/x/v2/x"), None);
    assert_eq!(win(&r, "h", "/c.png.txt"), None);
}

#[test]
fn path_kinds_rank_exact_template_prefix_regex_none() {
    let routes = [
        r#"name = "none""#,
        r#"name = "regex"
path_regex = "^/a/""#,
        r#"name = "prefix"
path_prefix = "/a/b""#,
        r#"name = "template"
path_template = "/a/{x}""#,
        r#"name = "exact"
path = "/a/b""#,
    ];
    // Removing the winner each time reveals the next kind in order.
    for n in (1..=routes.len()).rev() {
        let r = build(&routes[..n]);
        let expected = routes[n - 1].lines().next().unwrap().trim_start_matches("name = ").trim_matches('"');
        assert_eq!(win(&r, "h", "/a/b").as_deref(), Some(expected));
    }
}

#[test]
fn longer_prefix_wins_regardless_of_order() {
    let r = build(&[
        r#"name = "deep"
path_prefix = "/api/v1/users""#,
        r#"name = "short"
path_prefix = "/api""#,
        r#"name = "mid"
path_prefix = "/api/v1""#,
    ]);
    assert_eq!(win(&r, "h", "/api/v1/users/7/posts").as_deref(), Some("deep"));
    assert_eq!(win(&r, "h", "/api/v1/orders").as_deref(), Some("mid"));
    assert_eq!(win(&r, "h", "/api/v2").as_deref(), Some("short"));
}

#[test]
fn templates_with_more_literal_segments_win() {
    let r = build(&[
        r#"name = "general"
path_template = "/{a}/{b}/{c}""#,
        r#"name = "specific"
path_template = "/users/{id}/posts""#,
    ]);
    assert_eq!(win(&r, "h", "/users/1/posts").as_deref(), Some("specific"));
    assert_eq!(win(&r, "h", "/users/1/likes").as_deref(), Some("general"));
}

#[test]
fn templates_with_fewer_params_win_on_equal_literals() {
    let r = build(&[
        r#"name = "two"
path_template = "/a/{x}/{y}/{*rest}""#,
        r#"name = "one"
path_template = "/a/{x}/{y}""#,
    ]);
    // "one" has 1 literal and 2 params; "two" 1 literal and 3 params (catch-all included).
    assert_eq!(win(&r, "h", "/a/1/2").as_deref(), Some("one"));
    assert_eq!(win(&r, "h", "/a/1/2/3").as_deref(), Some("two"));
}

#[test]
fn plain_template_beats_catch_all_with_the_same_counts() {
    let r = build(&[
        r#"name = "rest"
path_template = "/a/b/{*rest}""#,
        r#"name = "plain"
path_template = "/a/{x}/c""#,
    ]);
    assert_eq!(win(&r, "h", "/a/b/c").as_deref(), Some("plain"));
    assert_eq!(win(&r, "h", "/a/b/d").as_deref(), Some("rest"));
}

#[test]
fn template_beats_a_longer_prefix() {
    let r = build(&[
        r#"name = "prefix"
path_prefix = "/users/me""#,
        r#"name = "template"
path_template = "/users/{id}""#,
    ]);
    assert_eq!(win(&r, "h", "/users/me").as_deref(), Some("template"));
    assert_eq!(win(&r, "h", "/users/me/x").as_deref(), Some("prefix"));
}

#[test]
fn a_param_and_a_catch_all_at_the_same_position_can_coexist() {
    let r = build(&[
        r#"name = "one"
path_template = "/users/{id}""#,
        r#"name = "rest"
path_template = "/users/{*rest}""#,
    ]);
    assert_eq!(win(&r, "h", "/users/1").as_deref(), Some("one"));
    assert_eq!(win(&r, "h", "/users/1/2").as_deref(), Some("rest"));
    assert_eq!(win(&r, "h", "/users").as_deref(), Some("rest"));
}

#[test]
fn a_more_specific_template_that_fails_its_predicates_falls_back_to_a_general_one() {
    let r = build(&[
        r#"name = "general"
path_template = "/users/{id}""#,
        r#"name = "me-post"
path_template = "/users/me"
methods = ["POST"]"#,
    ]);
    assert_eq!(winner(&r, &req("h", "/users/me").method("POST")).as_deref(), Some("me-post"));
    assert_eq!(win(&r, "h", "/users/me").as_deref(), Some("general"));
}

#[test]
fn a_longer_prefix_that_fails_its_predicates_falls_back_to_a_shorter_one() {
    let r = build(&[
        r#"name = "short"
path_prefix = "/api""#,
        r#"name = "long"
path_prefix = "/api/admin"
headers = [{ name = "x-admin", value = "1" }]"#,
    ]);
    assert_eq!(win(&r, "h", "/api/admin/x").as_deref(), Some("short"));
    assert_eq!(winner(&r, &req("h", "/api/admin/x").header("x-admin", b"1")).as_deref(), Some("long"));
}

// ---- methods, headers, query ----------------------------------------------------------------

#[test]
fn methods_match_any_of_the_list_and_no_list_means_any() {
    let r = build(&[
        r#"name = "write"
methods = ["POST", "PUT"]"#,
        r#"name = "any"
priority = -1"#,
    ]);
    assert_eq!(winner(&r, &req("h", "/").method("PUT")).as_deref(), Some("write"));
    assert_eq!(winner(&r, &req("h", "/").method("POST")).as_deref(), Some("write"));
    assert_eq!(winner(&r, &req("h", "/").method("DELETE")).as_deref(), Some("any"));
    assert_eq!(winner(&r, &req("h", "/").method("BREW")).as_deref(), Some("any"));
}

#[test]
fn header_predicates_value_regex_present_absent() {
    let r = build(&[
        r#"name = "prod"
headers = [{ name = "X-Env", value = "prod" }]
priority = 4"#,
        r#"name = "beta"
headers = [{ name = "x-env", regex = "^beta-[0-9]+$" }]
priority = 3"#,
        r#"name = "traced"
headers = [{ name = "traceparent" }]
priority = 2"#,
        r#"name = "anon"
headers = [{ name = "authorization", present = false }]
priority = 1"#,
        r#"name = "rest""#,
    ]);
    assert_eq!(winner(&r, &req("h", "/").header("x-env", b"prod")).as_deref(), Some("prod"));
    assert_eq!(winner(&r, &req("h", "/").header("x-env", b"beta-12")).as_deref(), Some("beta"));
    assert_eq!(winner(&r, &req("h", "/").header("x-env", b"beta-x").header("traceparent", b"")).as_deref(), Some("traced"));
    assert_eq!(win(&r, "h", "/").as_deref(), Some("anon"));
    assert_eq!(winner(&r, &req("h", "/").header("authorization", b"Bearer x")).as_deref(), Some("rest"));
}

#[test]
fn any_of_multiple_header_values_suffices_and_non_utf8_never_matches_a_regex() {
    let r = build(&[
        r#"name = "tagged"
headers = [{ name = "x-tag", value = "b" }]"#,
        r#"name = "pattern"
headers = [{ name = "x-bin", regex = ".*" }]"#,
    ]);
    assert_eq!(winner(&r, &req("h", "/").header("x-tag", b"a").header("x-tag", b"b")).as_deref(), Some("tagged"));
    assert_eq!(winner(&r, &req("h", "/").header("x-bin", b"\xff")), None);
    assert_eq!(winner(&r, &req("h", "/").header("x-bin", "é".as_bytes())).as_deref(), Some("pattern"));
}

#[test]
fn query_predicates_decode_values_and_treat_bare_params_as_empty() {
    let r = build(&[
        r#"name = "search"
query = [{ name = "q", value = "a b&c" }]
priority = 3"#,
        r#"name = "debug"
query = [{ name = "debug", value = "" }]
priority = 2"#,
        r#"name = "page"
query = [{ name = "page", regex = "^[0-9]+$" }, { name = "draft", present = false }]
priority = 1"#,
        r#"name = "rest""#,
    ]);
    assert_eq!(win(&r, "h", "/?q=a+b%26c").as_deref(), Some("search"));
    assert_eq!(win(&r, "h", "/?q=a%20b%26c&x").as_deref(), Some("search"));
    assert_eq!(win(&r, "h", "/?q=a+b&c").as_deref(), Some("rest"));
    assert_eq!(win(&r, "h", "/?debug").as_deref(), Some("debug"));
    assert_eq!(win(&r, "h", "/?debug=").as_deref(), Some("debug"));
    assert_eq!(win(&r, "h", "/?page=%33%34").as_deref(), Some("page"));
    assert_eq!(win(&r, "h", "/?page=2&draft").as_deref(), Some("rest"));
    assert_eq!(win(&r, "h", "/").as_deref(), Some("rest"));
}

// ---- precedence ------------------------------------------------------------------------------

#[test]
fn priority_overrides_every_specificity() {
    let r = build(&[
        r#"name = "specific"
hosts = ["api.example.com"]
path = "/users/1"
methods = ["GET"]"#,
        r#"name = "broad"
priority = 10"#,
    ]);
    assert_eq!(win(&r, "api.example.com", "/users/1").as_deref(), Some("broad"));
}

#[test]
fn negative_priority_makes_a_fallback() {
    let r = build(&[
        r#"name = "not-found"
priority = -1"#,
        r#"name = "api"
path_prefix = "/api""#,
        r#"name = "x"
path_prefix = "/x""#,
    ]);
    assert_eq!(win(&r, "h", "/api/x").as_deref(), Some("api"));
    assert_eq!(win(&r, "h", "/x").as_deref(), Some("x"));
    assert_eq!(win(&r, "h", "/y").as_deref(), Some("not-found"));
}

#[test]
fn more_predicates_win_on_equal_specificity() {
    let r = build(&[
        r#"name = "plain"
path_prefix = "/api""#,
        r#"name = "get-json"
path_prefix = "/api"
methods = ["GET"]
headers = [{ name = "accept", value = "application/json" }]"#,
        r#"name = "get"
path_prefix = "/api"
methods = ["GET", "HEAD"]"#,
    ]);
    let json = req("h", "/api/x").header("accept", b"application/json");
    assert_eq!(winner(&r, &json).as_deref(), Some("get-json"));
    assert_eq!(win(&r, "h", "/api/x").as_deref(), Some("get"));
    assert_eq!(winner(&r, &req("h", "/api/x").method("POST")).as_deref(), Some("plain"));
}

#[test]
fn declaration_order_breaks_remaining_ties() {
    let r = build(&[
        r#"name = "first"
path_prefix = "/a"
methods = ["GET"]"#,
        r#"name = "second"
path_prefix = "/a"
headers = [{ name = "x", present = false }]"#,
    ]);
    assert_eq!(win(&r, "h", "/a").as_deref(), Some("first"));
    let r = build(&[
        r#"name = "second"
path_prefix = "/a"
headers = [{ name = "x", present = false }]"#,
        r#"name = "first"
path_prefix = "/a"
methods = ["GET"]"#,
    ]);
    assert_eq!(win(&r, "h", "/a").as_deref(), Some("second"));
}

// ---- build errors and listeners ------------------------------------------------------------

#[test]
fn identical_routes_are_an_error_on_the_one_that_can_never_win() {
    let text = config_text(&[
        r#"name = "a"
path_template = "/u/{id}"
methods = ["GET", "POST"]"#,
        r#"name = "b"
path_template = "/u/{user}"
methods = ["POST", "GET"]"#,
    ]);
    let Err(errors) = try_build(&[
        r#"name = "a"
path_template = "/u/{id}"
methods = ["GET", "POST"]"#,
        r#"name = "b"
path_template = "/u/{user}"
methods = ["POST", "GET"]"#,
    ]) else {
        panic!("identical routes accepted");
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "routes[1]");
    assert!(errors[0].message.contains("route \"b\" can never be chosen"), "{}", errors[0].message);
    assert!(errors[0].message.contains("is declared earlier"), "{}", errors[0].message);
    let span = errors[0].span.clone().unwrap();
    assert_eq!(&text[span], "\"b\"");
}

#[test]
fn identical_routes_with_a_higher_priority_later_blame_the_earlier_one() {
    let errors = try_build(&[
        r#"name = "a"
path = "/x""#,
        r#"name = "b"
path = "/x"
priority = 1"#,
    ])
    .err()
    .unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "routes[0]");
    assert!(errors[0].message.contains("has a higher priority"));
}

#[test]
fn routes_on_different_listeners_are_not_duplicates() {
    let r = build(&[
        r#"name = "public"
listeners = ["main"]"#,
        r#"name = "internal"
listeners = ["admin"]"#,
    ]);
    let (public, _) = r.get(0).unwrap();
    let (internal, _) = r.get(1).unwrap();
    assert!(public.serves_listener("main") && !public.serves_listener("admin"));
    assert!(internal.serves_listener("admin") && !internal.serves_listener("main"));
}

#[test]
fn contradictory_route_is_reported_not_panicked_on() {
    // Built without validation, as a fuzzer or a future caller might.
    let route: rampart_config::model::Route = toml::from_str(
        r#"name = "bad"
path = "/a"
path_prefix = "/b"
hosts = ["a:80", "*.x.com"]
methods = ["G ET"]
headers = [{ name = "bad name", value = "x" }, { name = "ok", value = "1", regex = "1" }]
query = [{ name = "", present = true }, { name = "q", value = "x", present = false }]
echo = true"#,
    )
    .unwrap();
    let errors = Matcher::from_config(&route, "routes[7]").err().unwrap();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "routes[7].hosts[0]",
            "routes[7]",
            "routes[7].methods[0]",
            "routes[7].headers[0].name",
            "routes[7].headers[1]",
            "routes[7].query[0].name",
            "routes[7].query[1]"
        ]
    );
    let route: rampart_config::model::Route =
        toml::from_str("name = \"t\"\npath_template = \"/{*a}/b\"\necho = true").unwrap();
    let errors = Matcher::from_config(&route, "routes[0]").err().unwrap();
    assert_eq!(errors[0].path, "routes[0].path_template");
}

#[test]
fn empty_router_matches_nothing() {
    let r: Router<usize> = Router::new(Vec::new()).unwrap();
    assert!(r.is_empty());
    assert_eq!(r.len(), 0);
    assert!(r.lookup(&req("h", "/").view()).is_none());
    assert!(r.explain(&req("h", "/").view()).winner.is_none());
}

#[test]
fn request_view_from_request_prefers_the_authority_and_splits_the_query() {
    let request = http::Request::builder()
        .uri("http://API.example.com:8080/users/1?x=1")
        .header("host", "other.org")
        .body(())
        .unwrap();
    let view = RequestView::from_request(&request);
    assert_eq!(view.host, Some("API.example.com:8080"));
    assert_eq!((view.path, view.query), ("/users/1", Some("x=1")));
    let request = http::Request::builder().uri("/p").header("host", "h.org").body(()).unwrap();
    assert_eq!(RequestView::from_request(&request).host, Some("h.org"));
}

// ---- explain ---------------------------------------------------------------------------------

fn example_router() -> Router<usize> {
    build(&[
        r#"name = "api"
hosts = ["api.example.com"]
path_prefix = "/api""#,
        r#"name = "users"
hosts = ["api.example.com"]
path_template = "/api/users/{id}""#,
        r#"name = "admin"
hosts = ["api.example.com"]
path_prefix = "/api"
methods = ["POST", "DELETE"]"#,
        r#"name = "beta"
hosts = ["api.example.com"]
path_prefix = "/api"
headers = [{ name = "x-env", value = "beta" }]"#,
        r#"name = "docs"
path_prefix = "/docs""#,
        r#"name = "maintenance"
hosts = ["*.example.com"]
priority = 10
query = [{ name = "maintenance", value = "1" }]"#,
        r#"name = "www"
hosts = ["www.example.com"]"#,
    ])
}

#[test]
fn explain_gives_the_first_failing_predicate_or_the_deciding_rule() {
    let r = example_router();
    let probe = req("api.example.com", "/api/users/42").header("x-env", b"dev");
    let e = r.explain(&probe.view());
    assert_eq!(e.winner.as_ref().map(|w| w.name.as_str()), Some("users"));
    let reasons: Vec<(&str, &str)> = e.others.iter().map(|o| (o.route.name.as_str(), o.verdict.reason())).collect();
    assert_eq!(
        reasons,
        [
            ("api", "matched, but a more specific path wins (template beats prefix)"),
            ("admin", "method GET not in [POST, DELETE]"),
            ("beta", "header x-env: expected \"beta\", got \"dev\""),
            ("maintenance", "query maintenance absent"),
            ("docs", "path \"/api/users/42\" does not match prefix \"/docs\""),
            ("www", "host \"api.example.com\" not in [www.example.com]"),
        ]
    );
    let progress: Vec<(usize, usize)> = e.others.iter().map(|o| (o.checks_passed, o.checks)).collect();
    assert_eq!(progress, [(2, 2), (2, 3), (2, 3), (2, 3), (1, 2), (0, 2)]);
}

#[test]
fn explain_names_priority_and_order_rules() {
    let r = example_router();
    let e = r.explain(&req("api.example.com", "/api/x?maintenance=1").view());
    assert_eq!(e.winner.as_ref().map(|w| w.name.as_str()), Some("maintenance"));
    let api = e.others.iter().find(|o| o.route.name == "api").unwrap();
    assert_eq!(
        api.verdict,
        Verdict::Outranked { rule: Rule::Priority, reason: "matched, but route maintenance has higher priority (10 > 0)".into() }
    );
    let r = build(&[
        r#"name = "one"
path = "/x""#,
        r#"name = "two"
path = "/x"
hosts = ["*"]
listeners = ["main"]"#,
    ]);
    let e = r.explain(&req("h", "/x").view());
    assert_eq!(e.others[0].verdict.reason(), "matched, but declared later (route one comes first)");
}

#[test]
fn explain_reports_a_missing_host_and_no_winner() {
    let r = example_router();
    let e = r.explain(&req("", "/nothing").view());
    assert!(e.winner.is_none());
    let www = e.others.iter().find(|o| o.route.name == "www").unwrap();
    assert_eq!(www.verdict.reason(), "no host in the request; route needs one of [www.example.com]");
    assert!(e.to_string().contains("winner:  none (no route matches)"));
}

/// The exact output shown in docs/routing.md.
const EXPLAIN_EXAMPLE: &str = r#"request: GET /api/users/42?page=2 (host api.example.com)
winner:  users (routes[1])
other routes:
  api (routes[0]): matched, but a more specific path wins (template beats prefix)
  admin (routes[2]): method GET not in [POST, DELETE] [2/3 checks passed]
  beta (routes[3]): header x-env: expected "beta", got "dev" [2/3 checks passed]
  maintenance (routes[5]): query maintenance absent [2/3 checks passed]
  docs (routes[4]): path "/api/users/42" does not match prefix "/docs" [1/2 checks passed]
  www (routes[6]): host "api.example.com" not in [www.example.com] [0/2 checks passed]"#;

#[test]
fn explain_display_reads_as_documented() {
    let r = example_router();
    let probe = req("API.example.com:443", "/api/users/42?page=2").header("x-env", b"dev");
    let e = r.explain(&probe.view());
    assert_eq!(e.to_string(), EXPLAIN_EXAMPLE);
    let all = format!("{e:#}");
    assert!(all.contains("\nwinner:  users (routes[1])\n         precedence: priority 0, exact host \"api.example.com\", template \"/api/users/{id}\" (2 literal segments, 1 param), 0 predicates, entry #1\n"), "{all}");
    assert!(all.contains("\n  docs (routes[4]): path \"/api/users/42\" does not match prefix \"/docs\" [1/2 checks passed]\n      precedence: priority 0, any host, prefix \"/docs\" (5 bytes), 0 predicates, entry #4\n"), "{all}");
    assert_eq!(all.lines().count(), EXPLAIN_EXAMPLE.lines().count() + 7);
}

#[test]
fn explanation_serializes_for_machine_output() {
    let r = example_router();
    let e = r.explain(&req("api.example.com", "/api/x?maintenance=1").view());
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["winner"]["name"], "maintenance");
    assert_eq!(json["winner"]["index"], 5);
    let api = json["others"].as_array().unwrap().iter().find(|o| o["name"] == "api").unwrap();
    assert_eq!(api["verdict"], "outranked");
    assert_eq!(api["rule"], "priority");
    assert_eq!(api["config_path"], "routes[0]");
    let docs = json["others"].as_array().unwrap().iter().find(|o| o["name"] == "docs").unwrap();
    assert_eq!(docs["verdict"], "missed");
    assert_eq!(docs["predicate"], "path");
    assert_eq!(docs["checks_passed"], 1);
}

// ---- the index agrees with brute force -------------------------------------------------------

/// xorshift64*: deterministic, dependency-free randomness for generated configs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn random_route(rng: &mut Rng, n: usize) -> String {
    let mut r = format!("name = \"r{n}\"\n");
    if rng.chance(60) {
        let hosts = ["a.example.com", "b.example.com", "*.example.com", "*.eu.example.com", "*", "x.org"];
        let (a, b) = (rng.pick(&hosts), rng.pick(&hosts));
        r.push_str(&if rng.chance(30) { format!("hosts = [\"{a}\", \"{b}\"]\n") } else { format!("hosts = [\"{a}\"]\n") });
    }
    match rng.next() % 5 {
        0 => {}
        1 => r.push_str(&format!("path = \"{}\"\n", rng.pick(&["/", "/a", "/a/b", "/users/me", "/files"]))),
        2 => r.push_str(&format!("path_prefix = \"{}\"\n", rng.pick(&["/", "/a", "/a/", "/a/b", "/users", "/files/"]))),
        3 => {
            let templates = [
                "/users/{id}", "/users/me", "/users/{id}/posts", "/{a}/{b}", "/files/{*r}", "/{*r}",
                "/a/{x}", "/a/{*r}", "/a/b/{*r}", "/{a}", "/users/{id}/{*rest}",
            ];
            r.push_str(&format!("path_template = \"{}\"\n", rng.pick(&templates)));
        }
        _ => r.push_str(&format!("path_regex = '{}'\n", rng.pick(&["^/a", "b$", "/users/[0-9]+", "^/files/"]))),
    }
    if rng.chance(30) {
        r.push_str(rng.pick(&["methods = [\"GET\"]\n", "methods = [\"POST\"]\n", "methods = [\"GET\", \"POST\"]\n"]));
    }
    if rng.chance(25) {
        r.push_str(rng.pick(&[
            "headers = [{ name = \"x-env\", value = \"prod\" }]\n",
            "headers = [{ name = \"x-env\", regex = \"^p\" }]\n",
            "headers = [{ name = \"x-debug\" }]\n",
            "headers = [{ name = \"x-debug\", present = false }]\n",
        ]));
    }
    if rng.chance(20) {
        r.push_str(rng.pick(&[
            "query = [{ name = \"v\", value = \"1\" }]\n",
            "query = [{ name = \"v\" }]\n",
            "query = [{ name = \"v\", present = false }]\n",
        ]));
    }
    if rng.chance(15) {
        r.push_str(rng.pick(&["priority = 1\n", "priority = -1\n", "priority = 2\n"]));
    }
    r.push_str("echo = true\n");
    r
}

#[test]
fn index_lookup_agrees_with_brute_force_on_generated_configs() {
    let hosts = ["a.example.com", "A.EXAMPLE.com:80", "q.eu.example.com", "eu.example.com", "x.org.", "", "example.com"];
    let paths = [
        "/", "/a", "/a/", "/a/b", "/a/b/c", "/users/me", "/users/42", "/users/42/posts", "/files",
        "/files/", "/files/x/y", "/ab", "/x", "/users/42/posts/9",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut routed = 0;
    for round in 0..40 {
        let mut entries = Vec::new();
        let mut signatures = std::collections::HashSet::new();
        for n in 0..(10 + round * 3) {
            let text = random_route(&mut rng, n);
            let route: rampart_config::model::Route = toml::from_str(&text).unwrap();
            let m = Matcher::from_config(&route, &format!("routes[{n}]")).unwrap();
            if signatures.insert(m.signature()) {
                let index = entries.len();
                entries.push((m, index));
            }
        }
        let router = Router::new(entries).unwrap_or_else(|e| panic!("{e:?}"));
        for _ in 0..200 {
            let target = if rng.chance(30) {
                format!("{}?{}", rng.pick(&paths), rng.pick(&["v=1", "v", "v=2&v=1", "w=1"]))
            } else {
                rng.pick(&paths).to_owned()
            };
            let mut probe = req(rng.pick(&hosts), &target).method(rng.pick(&["GET", "POST", "PUT"]));
            if rng.chance(40) {
                probe = probe.header("x-env", rng.pick(&["prod", "dev", "pre"]).as_bytes());
            }
            if rng.chance(30) {
                probe = probe.header("x-debug", b"1");
            }
            routed += usize::from(winner(&router, &probe).is_some());
        }
    }
    // The generated requests must exercise both outcomes for the comparison to mean anything.
    assert!(routed > 2000 && routed < 8000, "{routed} of 8000 requests routed");
}

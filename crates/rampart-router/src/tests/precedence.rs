//! Each precedence rule in isolation, build errors, listeners.

use super::*;
use crate::{Matcher, RequestView, Router};

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
    assert_eq!(
        win(&r, "api.example.com", "/users/1").as_deref(),
        Some("broad")
    );
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
    assert_eq!(
        winner(&r, &req("h", "/api/x").method("POST")).as_deref(),
        Some("plain")
    );
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
    assert!(
        errors[0]
            .message
            .contains("route \"b\" can never be chosen"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[0].message.contains("is declared earlier"),
        "{}",
        errors[0].message
    );
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
        .uri("http://user@API.example.com:8080/users/1?x=1")
        .header("host", "other.org")
        .body(())
        .unwrap();
    let view = RequestView::from_request(&request);
    assert_eq!(view.host, Some("API.example.com"));
    assert_eq!((view.path, view.query), ("/users/1", Some("x=1")));
    let request = http::Request::builder()
        .uri("/p")
        .header("host", "h.org")
        .body(())
        .unwrap();
    assert_eq!(RequestView::from_request(&request).host, Some("h.org"));
}

/// The worked example in docs/routing.md.
#[test]
fn docs_worked_example_holds() {
    let r = build(&[
        r#"name = "fallback"
priority = -1"#,
        r#"name = "api"
hosts = ["*.example.com"]
path_prefix = "/api""#,
        r#"name = "api-v2"
hosts = ["api.example.com"]
path_prefix = "/api/v2""#,
        r#"name = "user"
hosts = ["api.example.com"]
path_template = "/api/v2/users/{id}""#,
        r#"name = "user-writes"
hosts = ["api.example.com"]
path_template = "/api/v2/users/{id}"
methods = ["PUT", "DELETE"]"#,
        r#"name = "maintenance"
priority = 10
query = [{ name = "maintenance", value = "1" }]"#,
    ]);
    let w = |method: &str, host: &str, target: &str| winner(&r, &req(host, target).method(method));
    assert_eq!(
        w("GET", "api.example.com", "/api/v2/users/7").as_deref(),
        Some("user")
    );
    assert_eq!(
        w("PUT", "api.example.com", "/api/v2/users/7").as_deref(),
        Some("user-writes")
    );
    assert_eq!(
        w("GET", "api.example.com", "/api/v2/orders").as_deref(),
        Some("api-v2")
    );
    assert_eq!(
        w("GET", "api.example.com", "/api/v1/orders").as_deref(),
        Some("api")
    );
    assert_eq!(
        w("GET", "eu.example.com", "/api/v2/users/7").as_deref(),
        Some("api")
    );
    assert_eq!(
        w("GET", "api.example.com", "/api/v2/users/7?maintenance=1").as_deref(),
        Some("maintenance")
    );
    assert_eq!(w("GET", "other.org", "/").as_deref(), Some("fallback"));
    let e = r.explain(
        &req("api.example.com", "/api/v2/users/7")
            .method("PUT")
            .view(),
    );
    let reasons: Vec<(&str, &str)> = e
        .others
        .iter()
        .map(|o| (o.route.name.as_str(), o.verdict.reason()))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                "user",
                "matched, but route user-writes has more predicates (1 > 0)"
            ),
            (
                "api-v2",
                "matched, but a more specific path wins (template beats prefix)"
            ),
            (
                "api",
                "matched, but a more specific host wins (exact beats wildcard)"
            ),
            (
                "fallback",
                "matched, but route user-writes has higher priority (0 > -1)"
            ),
            ("maintenance", "query maintenance absent"),
        ]
    );
}

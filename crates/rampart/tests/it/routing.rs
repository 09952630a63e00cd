//! Routing through real requests: every route answers with its own name (`respond`), so each
//! response says which route took the request.

use std::net::SocketAddr;

use rampart_testkit::{RawResponse, TestGateway, raw_request_parsed};
use serde_json::Value;

/// A gateway with one listener `public` and `routes` (TOML `[[routes]]` tables).
fn gateway(routes: &str) -> TestGateway {
    TestGateway::builder(format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n{routes}"
    ))
    .start()
}

/// A `[[routes]]` table answering with its own name, with extra `keys` (TOML lines).
fn named(name: &str, keys: &str) -> String {
    format!("[[routes]]\nname = \"{name}\"\nrespond = {{ body = \"{name}\" }}\n{keys}\n\n")
}

/// Sends `method target` with an optional `Host` and extra header lines (each ending `\r\n`).
async fn request(
    addr: SocketAddr,
    method: &str,
    host: Option<&str>,
    target: &str,
    extra: &str,
) -> RawResponse {
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    let version = if host.is_empty() {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let req = format!("{method} {target} {version}\r\n{host}Connection: close\r\n{extra}\r\n");
    raw_request_parsed(addr, req.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{req:?}: {e}"))
}

/// The name of the route that answered `GET target` on `host` with `extra` headers, or
/// `"404"` when no route matched (checking that it is Rampart's `no_route`).
async fn route_of(gw: &TestGateway, host: &str, target: &str, extra: &str) -> String {
    let resp = request(gw.addr("public"), "GET", Some(host), target, extra).await;
    route_name(&resp, &format!("GET {host}{target} {extra:?}"))
}

fn route_name(resp: &RawResponse, what: &str) -> String {
    match resp.status {
        200 => resp.body_text(),
        404 => {
            assert!(
                resp.body_text().contains("No route matches"),
                "{what}: unexpected 404 body {}",
                resp.body_text()
            );
            "404".to_owned()
        }
        other => panic!("{what}: status {other}: {}", resp.body_text()),
    }
}

/// Asserts each `(host, target, extra headers, expected route)`.
async fn expect_routes(gw: &TestGateway, cases: &[(&str, &str, &str, &str)]) {
    for (host, target, extra, expected) in cases {
        let got = route_of(gw, host, target, extra).await;
        assert_eq!(
            got, *expected,
            "GET {target} on host {host:?} with {extra:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_hosts_beat_wildcards_which_beat_any_host() {
    // Declared from least to most specific: specificity, not order, decides.
    let gw = gateway(
        &[
            named("any", ""),
            named("wildcard", "hosts = [\"*.example.com\"]"),
            named("deep-wildcard", "hosts = [\"*.eu.example.com\"]"),
            named("exact", "hosts = [\"api.example.com\"]"),
        ]
        .concat(),
    );
    expect_routes(
        &gw,
        &[
            ("api.example.com", "/", "", "exact"),
            ("API.Example.COM:8080", "/", "", "exact"),
            ("api.example.com.", "/", "", "exact"),
            ("www.example.com", "/", "", "wildcard"),
            ("a.b.example.com", "/", "", "wildcard"),
            ("shop.eu.example.com", "/", "", "deep-wildcard"),
            ("eu.example.com", "/", "", "wildcard"),
            ("example.com", "/", "", "any"),
            ("notexample.com", "/", "", "any"),
            ("other.org", "/", "", "any"),
        ],
    )
    .await;
    // An HTTP/1.0 request without any host only matches routes that take any host.
    let resp = request(gw.addr("public"), "GET", None, "/", "").await;
    assert_eq!(route_name(&resp, "no host"), "any");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_limited_to_hosts_does_not_take_other_hosts() {
    let gw = gateway(&named(
        "exact",
        "hosts = [\"api.example.com\", \"*.api.example.com\"]",
    ));
    expect_routes(
        &gw,
        &[
            ("api.example.com", "/", "", "exact"),
            ("v2.api.example.com", "/", "", "exact"),
            ("api.example.org", "/", "", "404"),
            ("xapi.example.com", "/", "", "404"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_absolute_form_authority_is_the_host_used_for_routing() {
    let gw = gateway(
        &[
            named("admin", "hosts = [\"admin.example.com\"]"),
            named("public", "hosts = [\"www.example.com\"]"),
        ]
        .concat(),
    );
    // RFC 9112 §3.2.2: with an absolute-form target the authority is the host.
    // A Host header that disagrees with it is refused as a smuggling vector
    // (see smuggling.rs); one that agrees (any case) routes by the authority.
    let resp = request(
        gw.addr("public"),
        "GET",
        Some("ADMIN.example.com"),
        "http://admin.example.com/x",
        "",
    )
    .await;
    assert_eq!(route_name(&resp, "absolute-form"), "admin");
    let resp = request(
        gw.addr("public"),
        "GET",
        Some("www.example.com"),
        "http://admin.example.com/x",
        "",
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.body_text());

    // ... and the handler sees the host it was routed by.
    let gw = gateway("[[routes]]\nname = \"echo\"\nhosts = [\"admin.example.com\"]\necho = true\n");
    let resp = request(
        gw.addr("public"),
        "GET",
        Some("admin.example.com"),
        "http://admin.example.com/x",
        "",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["host"], "admin.example.com");
    assert_eq!(
        echo["headers"]["host"],
        serde_json::json!(["admin.example.com"])
    );
}

#[test]
fn routes_with_identical_predicates_are_refused_at_load() {
    let text = format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n{}{}",
        named("first", "path_prefix = \"/same\""),
        named("second", "path_prefix = \"/same\"")
    );
    let config = rampart_config::load_str(&text, "dup.toml").unwrap();
    let Err(diagnostics) = rampart_server::compile(&config) else {
        panic!("identical routes were accepted")
    };
    let rendered = diagnostics.to_string();
    assert!(
        rendered.contains("routes[1]") && rendered.contains("can never be chosen"),
        "{rendered}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_paths_beat_templates_which_beat_prefixes_which_beat_regexes() {
    let gw = gateway(
        &[
            named(
                "regex",
                "path_regex = '^/(users|img)/[0-9]+(/avatar|\\.png)?$'",
            ),
            named("prefix", "path_prefix = \"/users\""),
            named("longer-prefix", "path_prefix = \"/users/admin/settings\""),
            named("template", "path_template = \"/users/{id}\""),
            named(
                "template-more-literals",
                "path_template = \"/users/{id}/posts\"",
            ),
            named("catch-all", "path_template = \"/files/{*rest}\""),
            named("exact", "path = \"/users/me\""),
            named("below-only", "path_prefix = \"/static/\""),
        ]
        .concat(),
    );
    let h = "example.com";
    expect_routes(
        &gw,
        &[
            (h, "/users/me", "", "exact"),
            (h, "/users/42", "", "template"),
            (h, "/users/42/posts", "", "template-more-literals"),
            (h, "/users", "", "prefix"),
            (h, "/users/42/avatar", "", "prefix"),
            (h, "/users/admin/settings/x", "", "longer-prefix"),
            (h, "/users/admin/settings", "", "longer-prefix"),
            (h, "/img/7.png", "", "regex"),
            (h, "/img/7.gif", "", "404"),
            (h, "/files/a/b/c.txt", "", "catch-all"),
            (h, "/static/app.js", "", "below-only"),
            (h, "/static", "", "404"),
            // Prefixes match on segment boundaries, and an encoded slash is not a separator.
            (h, "/usersx", "", "404"),
            (h, "/users%2F42", "", "404"),
            // The query never takes part in path matching.
            (h, "/users/me?x=/files/a", "", "exact"),
            // Matching happens on the normalized path.
            (h, "/users/./me", "", "exact"),
            (h, "/files/../users/%6de", "", "exact"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_select_routes_and_others_fall_through() {
    let gw = gateway(
        &[
            named("any-method", "path = \"/m\""),
            named("reads", "path = \"/m\"\nmethods = [\"GET\"]"),
            named("writes", "path = \"/m\"\nmethods = [\"POST\", \"PUT\"]"),
        ]
        .concat(),
    );
    let addr = gw.addr("public");
    for (method, expected) in [
        ("GET", "reads"),
        ("POST", "writes"),
        ("PUT", "writes"),
        ("DELETE", "any-method"),
        ("PATCH", "any-method"),
    ] {
        let extra = if method == "GET" {
            ""
        } else {
            "Content-Length: 0\r\n"
        };
        let resp = request(addr, method, Some("h"), "/m", extra).await;
        assert_eq!(route_name(&resp, method), expected, "{method}");
    }
    // `methods` is a plain predicate: lowercase is another method and falls through.
    let resp = request(addr, "post", Some("h"), "/m", "Content-Length: 0\r\n").await;
    assert_eq!(route_name(&resp, "post"), "any-method");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_predicates_present_exact_regex_and_absent() {
    let gw = gateway(
        &[
            named(
                "present",
                "path = \"/h\"\nheaders = [{ name = \"x-present\" }]",
            ),
            named(
                "exact",
                "path = \"/h\"\nheaders = [{ name = \"x-env\", value = \"prod\" }]",
            ),
            named(
                "regex",
                "path = \"/h\"\nheaders = [{ name = \"user-agent\", regex = \"(?i)^curl/\" }]",
            ),
            named(
                "absent",
                "path = \"/h\"\nheaders = [{ name = \"x-debug\", present = false }]",
            ),
            named("fallback", "path = \"/h\""),
        ]
        .concat(),
    );
    // Every request but the one testing absence carries x-debug, so `absent` stays out.
    let d = "x-debug: 1\r\n";
    let h = "example.com";
    expect_routes(
        &gw,
        &[
            (h, "/h", "x-present: anything\r\nx-debug: 1\r\n", "present"),
            (h, "/h", "x-present:\r\nx-debug: 1\r\n", "present"),
            (h, "/h", "x-env: prod\r\nx-debug: 1\r\n", "exact"),
            (h, "/h", "X-ENV: prod\r\nx-debug: 1\r\n", "exact"),
            (
                h,
                "/h",
                "x-env: dev\r\nx-env: prod\r\nx-debug: 1\r\n",
                "exact",
            ),
            (h, "/h", "x-env: Prod\r\nx-debug: 1\r\n", "fallback"),
            (h, "/h", "x-env: production\r\nx-debug: 1\r\n", "fallback"),
            (h, "/h", "User-Agent: CURL/8.5\r\nx-debug: 1\r\n", "regex"),
            (
                h,
                "/h",
                "User-Agent: not-curl/8.5\r\nx-debug: 1\r\n",
                "fallback",
            ),
            (h, "/h", "", "absent"),
            (h, "/h", d, "fallback"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_predicates_present_exact_regex_and_absent_on_decoded_values() {
    let gw = gateway(
        &[
            named(
                "debug",
                "path = \"/q\"\nquery = [{ name = \"debug\", value = \"1\" }]",
            ),
            named(
                "page",
                "path = \"/q\"\nquery = [{ name = \"page\", regex = \"^[0-9]+$\" }]",
            ),
            named("token", "path = \"/q\"\nquery = [{ name = \"token\" }]"),
            named(
                "search",
                "path = \"/q\"\nquery = [{ name = \"q\", value = \"hello world\" }]",
            ),
            named(
                "no-cache-param",
                "path = \"/q\"\nquery = [{ name = \"cache\", present = false }]",
            ),
            named("fallback", "path = \"/q\""),
        ]
        .concat(),
    );
    let h = "example.com";
    expect_routes(
        &gw,
        &[
            (h, "/q?debug=1&cache=1", "", "debug"),
            (h, "/q?debug=%31&cache=1", "", "debug"),
            (h, "/q?%64ebug=1&cache=1", "", "debug"),
            (h, "/q?debug=2&cache=1", "", "fallback"),
            (h, "/q?page=12&cache=1", "", "page"),
            (h, "/q?page=12a&cache=1", "", "fallback"),
            (h, "/q?token&cache=1", "", "token"),
            (h, "/q?token=abc&cache=1", "", "token"),
            (h, "/q?q=hello+world&cache=1", "", "search"),
            (h, "/q?q=hello%20world&cache=1", "", "search"),
            (h, "/q?Debug=1&cache=1", "", "fallback"),
            (h, "/q", "", "no-cache-param"),
            (h, "/q?cache=1", "", "fallback"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_overrides_specificity() {
    let gw = gateway(
        &[
            named(
                "specific",
                "hosts = [\"api.example.com\"]\npath = \"/v1/users\"\nmethods = [\"GET\"]",
            ),
            named(
                "maintenance",
                "priority = 10\nheaders = [{ name = \"x-bypass\", present = false }]",
            ),
            named("fallback", "priority = -1"),
            named("plain", "path_regex = \"^/r\""),
        ]
        .concat(),
    );
    expect_routes(
        &gw,
        &[
            ("api.example.com", "/v1/users", "", "maintenance"),
            (
                "api.example.com",
                "/v1/users",
                "x-bypass: 1\r\n",
                "specific",
            ),
            // A negative priority loses even to the least specific route.
            ("other.org", "/r", "x-bypass: 1\r\n", "plain"),
            ("other.org", "/x", "x-bypass: 1\r\n", "fallback"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_predicates_win_and_declaration_order_breaks_ties() {
    let gw = gateway(
        &[
            named(
                "first",
                "path_prefix = \"/same\"\nheaders = [{ name = \"x-one\" }]",
            ),
            named(
                "second",
                "path_prefix = \"/same\"\nheaders = [{ name = \"x-two\" }]",
            ),
            named(
                "by-header",
                "path_prefix = \"/tie\"\nheaders = [{ name = \"x-a\" }]",
            ),
            named(
                "by-query",
                "path_prefix = \"/tie\"\nquery = [{ name = \"a\" }]",
            ),
            named(
                "fewer",
                "path_prefix = \"/more\"\nheaders = [{ name = \"x-a\" }]",
            ),
            named(
                "more",
                "path_prefix = \"/more\"\nheaders = [{ name = \"x-a\" }, { name = \"x-b\" }]",
            ),
        ]
        .concat(),
    );
    let h = "example.com";
    expect_routes(
        &gw,
        &[
            (h, "/same/x", "x-one: 1\r\nx-two: 1\r\n", "first"),
            (h, "/same/x", "x-two: 1\r\n", "second"),
            (h, "/tie?a=1", "x-a: 1\r\n", "by-header"),
            (h, "/tie?a=1", "", "by-query"),
            (h, "/more", "x-a: 1\r\nx-b: 1\r\n", "more"),
            (h, "/more", "x-a: 1\r\n", "fewer"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_use_their_status_and_placeholders() {
    let gw = gateway(
        r#"
[[routes]]
name = "to-https"
path_prefix = "/secure"
redirect = { to = "https://{host}{request_uri}", status = 301 }

[[routes]]
name = "moved"
path_prefix = "/old"
redirect = { to = "{scheme}://{host}/new{path}{query}" }

[[routes]]
name = "permanent"
path = "/p"
redirect = { to = "https://docs.example.com/p", status = 308 }
"#,
    );
    let addr = gw.addr("public");
    let resp = request(
        addr,
        "GET",
        Some("www.example.com"),
        "/secure/page?x=1&y=2",
        "",
    )
    .await;
    assert_eq!(resp.status, 301);
    assert_eq!(
        resp.header("location"),
        Some("https://www.example.com/secure/page?x=1&y=2")
    );
    assert!(resp.header("x-request-id").is_some());

    let resp = request(addr, "GET", Some("shop.example.com"), "/old/item", "").await;
    assert_eq!(resp.status, 302, "the default status");
    assert_eq!(
        resp.header("location"),
        Some("http://shop.example.com/new/old/item")
    );
    let resp = request(addr, "GET", Some("shop.example.com"), "/old/item?id=7", "").await;
    assert_eq!(
        resp.header("location"),
        Some("http://shop.example.com/new/old/item?id=7")
    );

    let resp = request(addr, "POST", Some("h"), "/p", "Content-Length: 0\r\n").await;
    assert_eq!(resp.status, 308);
    assert_eq!(resp.header("location"), Some("https://docs.example.com/p"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_responses_carry_status_body_content_type_and_headers() {
    let gw = gateway(
        r#"
[[routes]]
name = "maintenance"
respond = { status = 503, body = "Back soon.\n", content_type = "text/plain", headers = { "retry-after" = "600", "cache-control" = "no-store" } }
"#,
    );
    let resp = request(gw.addr("public"), "GET", Some("h"), "/anything", "").await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.body_text(), "Back soon.\n");
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert_eq!(resp.header("retry-after"), Some("600"));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(resp.header("content-length"), Some("11"));
    assert!(resp.header("x-request-id").is_some());

    // HEAD gets the same head, no body.
    let raw = rampart_testkit::raw_request(
        gw.addr("public"),
        b"HEAD /anything HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let resp = RawResponse::parse_for(&raw, true).unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("retry-after"), Some("600"));
    assert!(resp.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_describes_the_request_as_rampart_sees_it() {
    let gw = gateway(
        r#"
[[routes]]
name = "echo"
path_prefix = "/echo"
echo = true
"#,
    );
    let addr = gw.addr("public");
    let body = "hello";
    let extra = format!(
        "X-Custom: one\r\nX-Custom: two\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // `request` ends the head itself; build this one by hand to carry a body.
    let req = format!(
        "POST /echo/./x?a=1&b=two HTTP/1.1\r\nHost: echo.test\r\nConnection: close\r\n{extra}"
    );
    let resp = raw_request_parsed(addr, req.as_bytes()).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/echo/x", "the normalized path");
    assert_eq!(echo["query"], "a=1&b=two");
    assert_eq!(echo["uri"], "/echo/./x?a=1&b=two", "the target as received");
    assert_eq!(echo["protocol"], "HTTP/1.1");
    assert_eq!(echo["host"], "echo.test");
    assert_eq!(
        echo["headers"]["x-custom"],
        serde_json::json!(["one", "two"])
    );
    assert_eq!(echo["client"]["ip"], "127.0.0.1");
    assert!(
        echo["client"]["port"].as_u64().is_some_and(|p| p > 0),
        "{echo}"
    );
    assert_eq!(echo["listener"], "public");
    assert_eq!(echo["route"], "echo");
    assert_eq!(echo["request_id"], resp.header("x-request-id").unwrap());
    let trace = echo["trace_id"].as_str().unwrap();
    assert!(
        trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()),
        "{trace}"
    );
    assert_eq!(echo["body_bytes"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_matching_no_route_gets_404_no_route() {
    let gw = TestGateway::builder(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n[[routes]]\nname = \"only\"\nhosts = [\"a.example.com\"]\npath = \"/only\"\nrespond = { body = \"only\" }\n",
    )
    .access_log()
    .start();
    let addr = gw.addr("public");
    for (host, path) in [("a.example.com", "/other"), ("b.example.com", "/only")] {
        let resp = request(
            addr,
            "GET",
            Some(host),
            path,
            "Accept: application/json\r\n",
        )
        .await;
        assert_eq!(resp.status, 404, "{host}{path}");
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["error"]["code"], "no_route");
    }
    let lines = gw.access_log_json(2);
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(line["reason"], "no_route");
        assert!(line["route"].is_null());
    }
    assert_eq!(route_of(&gw, "a.example.com", "/only", "").await, "only");
}

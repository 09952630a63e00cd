//! CORS through a real gateway: preflights are answered (204) or refused (403) by Rampart and
//! never forwarded; actual requests are forwarded, and only allowed origins get
//! `Access-Control-Allow-Origin`; `Vary` always says the answer depends on `Origin`.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_testkit::{Behavior, RecordingOrigin, ScriptedOrigin, TestGateway};

use crate::support::{access_log_line, request_line, send_within};

/// Bound on every wait in this file.
const WAIT: Duration = Duration::from_secs(10);

fn request(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n{extra}\r\n")
}

fn preflight(path: &str, origin: &str, method: &str, headers: Option<&str>) -> String {
    let mut extra = format!("Origin: {origin}\r\nAccess-Control-Request-Method: {method}\r\n");
    if let Some(h) = headers {
        extra.push_str(&format!("Access-Control-Request-Headers: {h}\r\n"));
    }
    request("OPTIONS", path, &extra)
}

const POLICY: &str = r#"cors = { allow_origins = ["https://app.example.com", "https://*.example.org", "http://localhost:3000"], allow_origin_regex = ['^https://pr-[0-9]+\.preview\.example\.net$'], allow_methods = ["GET", "POST", "PUT"], allow_headers = ["Content-Type", "X-Api-Key"], expose_headers = ["X-Request-ID"], allow_credentials = true, max_age = "10m" }"#;

fn gateway(origin: SocketAddr, route_extra: &str) -> TestGateway {
    TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "api"
targets = ["{origin}"]

[[routes]]
name = "api"
allow_methods = ["GET", "POST", "PUT", "OPTIONS"]
upstream = "api"
{route_extra}
"#
    ))
    .access_log()
    .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_preflights_are_answered_at_the_edge_and_never_forwarded() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), POLICY);
    let addr = gw.addr("public");
    let resp = send_within(
        WAIT,
        addr,
        preflight(
            "/items",
            "https://app.example.com",
            "PUT",
            Some("content-type, x-api-key"),
        ),
    )
    .await;
    assert_eq!(resp.status, 204, "{}", String::from_utf8_lossy(&resp.raw));
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        resp.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        resp.header("access-control-allow-methods"),
        Some("GET, POST, PUT")
    );
    assert_eq!(
        resp.header("access-control-allow-headers"),
        Some("Content-Type, X-Api-Key")
    );
    assert_eq!(resp.header("access-control-max-age"), Some("600"));
    assert_eq!(
        resp.header("vary"),
        Some("Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
    );
    // Wildcard subdomains at any depth, and the regex.
    for o in [
        "https://a.example.org",
        "https://a.b.example.org",
        "https://pr-42.preview.example.net",
    ] {
        let resp = send_within(WAIT, addr, preflight("/items", o, "GET", None)).await;
        assert_eq!(resp.status, 204, "{o}");
        assert_eq!(resp.header("access-control-allow-origin"), Some(o));
    }
    // Only the control request reached the upstream.
    let resp = send_within(WAIT, addr, request("GET", "/control", "")).await;
    assert_eq!(resp.status, 200);
    let seen = origin.wait_for_requests(1, WAIT).await;
    let lines: Vec<String> = seen.iter().map(|r| request_line(r)).collect();
    assert_eq!(lines, ["GET /control HTTP/1.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_preflights_are_refused_with_403_and_never_forwarded() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), POLICY);
    let addr = gw.addr("public");
    for (o, method, headers) in [
        ("https://evil.example.com", "GET", None),
        ("https://example.org", "GET", None),
        ("https://evil-example.org", "GET", None),
        ("https://a.example.org.evil.com", "GET", None),
        ("http://a.example.org", "GET", None),
        ("https://app.example.com:8443", "GET", None),
        ("https://app.example.com.", "GET", None),
        ("null", "GET", None),
        ("https://pr-1.preview.example.net.evil.com", "GET", None),
        ("https://app.example.com", "DELETE", None),
        ("https://app.example.com", "PUT", Some("x-api-key, x-admin")),
    ] {
        let resp = send_within(WAIT, addr, preflight("/items", o, method, headers)).await;
        assert_eq!(resp.status, 403, "{o} {method} {headers:?}");
        assert_eq!(resp.header("access-control-allow-origin"), None, "{o}");
        assert_eq!(resp.header("access-control-allow-methods"), None, "{o}");
        // The same `Vary` as an allowed preflight: a cache keyed on it never serves this
        // refusal for an allowed preflight, or the other way round.
        assert_eq!(
            resp.header("vary"),
            Some("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
            "{o} {method} {headers:?}"
        );
        assert_eq!(access_log_line(&gw, &resp).await["reason"], "cors_rejected");
    }
    let resp = send_within(WAIT, addr, request("GET", "/control", "")).await;
    assert_eq!(resp.status, 200);
    let seen = origin.wait_for_requests(1, WAIT).await;
    let lines: Vec<String> = seen.iter().map(|r| request_line(r)).collect();
    assert_eq!(lines, ["GET /control HTTP/1.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actual_requests_get_cors_headers_only_for_allowed_origins() {
    // The upstream runs its own (too permissive) CORS and varies by encoding.
    let reply = b"HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec();
    let origin = ScriptedOrigin::start(Behavior::Respond(reply))
        .await
        .unwrap();
    let gw = gateway(origin.addr(), POLICY);
    let addr = gw.addr("public");

    let resp = send_within(
        WAIT,
        addr,
        request(
            "POST",
            "/items",
            "Origin: http://localhost:3000\r\nContent-Length: 0\r\n",
        ),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header_all("access-control-allow-origin"),
        ["http://localhost:3000"]
    );
    assert_eq!(
        resp.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        resp.header("access-control-expose-headers"),
        Some("X-Request-ID")
    );
    assert_eq!(resp.header_all("vary"), ["Accept-Encoding", "Origin"]);

    let resp = send_within(
        WAIT,
        addr,
        request("GET", "/items", "Origin: https://evil.example.com\r\n"),
    )
    .await;
    assert_eq!(
        resp.status, 200,
        "a disallowed origin is still forwarded; the browser blocks it"
    );
    assert_eq!(
        resp.header("access-control-allow-origin"),
        None,
        "the upstream's * is removed"
    );
    assert_eq!(resp.header("access-control-allow-credentials"), None);
    assert_eq!(resp.header_all("vary"), ["Accept-Encoding", "Origin"]);

    // No Origin at all: still `Vary: Origin`, so a cache never serves this to a browser.
    let resp = send_within(WAIT, addr, request("GET", "/items", "")).await;
    assert_eq!(resp.header("access-control-allow-origin"), None);
    assert_eq!(resp.header_all("vary"), ["Accept-Encoding", "Origin"]);

    // A non-preflight OPTIONS goes to the upstream like any request.
    assert_eq!(origin.connections(), 3);
    let resp = send_within(
        WAIT,
        addr,
        request("OPTIONS", "/items", "Origin: https://app.example.com\r\n"),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(origin.connections(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_origin_without_credentials_answers_star_and_errors_carry_cors() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        origin.addr(),
        r#"cors = { allow_origins = ["*"], allow_headers = ["*"] }"#,
    );
    let addr = gw.addr("public");
    let resp = send_within(
        WAIT,
        addr,
        preflight("/x", "https://anyone.test", "POST", Some("x-one, x-two")),
    )
    .await;
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        resp.header("access-control-allow-headers"),
        Some("x-one, x-two")
    );
    // A refusal by a later stage (405) still lets the page read the error.
    let resp = send_within(
        WAIT,
        addr,
        request("DELETE", "/x", "Origin: https://anyone.test\r\n"),
    )
    .await;
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    assert_eq!(resp.header("vary"), None);
}

fn config_error(cors: &str) -> String {
    let text = format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n[[routes]]\nname = \"app\"\necho = true\ncors = {cors}\n"
    );
    match rampart_config::load_str(&text, "test.toml") {
        Ok(_) => panic!("config accepted:\n{text}"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn unsafe_or_malformed_cors_policies_are_refused() {
    for (cors, expect) in [
        (
            r#"{ allow_origins = ["*"], allow_credentials = true }"#,
            "credentials cannot be allowed",
        ),
        (
            r#"{ allow_origins = ["*", "https://a.test"] }"#,
            "list no other origins",
        ),
        (
            r#"{ allow_origins = ["https://a.test/"] }"#,
            "routes[0].cors.allow_origins[0]",
        ),
        (r#"{ allow_origins = ["a.test"] }"#, "no scheme"),
        (
            r#"{ allow_origins = ["https://*.*.test"] }"#,
            "invalid host",
        ),
        (
            r#"{ allow_origins = ["https://a.test:99999x"] }"#,
            "invalid port",
        ),
        (r#"{ allow_origin_regex = ["("] }"#, "regular expression"),
        (r#"{}"#, "needs `allow_origins`"),
        (
            r#"{ allow_origins = ["https://a.test"], allow_methods = ["get"] }"#,
            "upper-case",
        ),
        (
            r#"{ allow_origins = ["https://a.test"], allow_headers = ["bad header"] }"#,
            "invalid header name",
        ),
        (
            r#"{ allow_origins = ["https://a.test"], allow_credentials = true, expose_headers = ["*"] }"#,
            "ignore",
        ),
    ] {
        let msg = config_error(cors);
        assert!(msg.contains(expect), "{cors}: {msg}");
    }
}

//! Security headers and request/response header edits, through a real gateway: every response
//! of a route gets them (handler answers and errors alike), upstream headers that reveal
//! internals are removed, and edited requests reach the upstream exactly as configured.

use std::time::Duration;

use rampart_testkit::{
    Behavior, HttpOrigin, RawResponse, RecordingOrigin, ScriptedOrigin, TestGateway,
    free_port_closed, reqwest,
};

use crate::support::{header_values, send_within};

/// Bound on every wait in this file.
const WAIT: Duration = Duration::from_secs(10);

fn request(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n{extra}\r\n")
}

fn get(path: &str) -> String {
    request("GET", path, "")
}

/// An upstream answering every request with headers that reveal its software and set its own
/// frame policy.
async fn chatty_origin() -> ScriptedOrigin {
    let reply = b"HTTP/1.1 200 OK\r\nServer: Apache/2.4.1 (Unix)\r\nX-Powered-By: PHP/8.1\r\nX-AspNet-Version: 4.0\r\nX-Frame-Options: SAMEORIGIN\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec();
    ScriptedOrigin::start(Behavior::Respond(reply))
        .await
        .unwrap()
}

const SECURITY: &str = r#"security_headers = { content_type_options = true, frame_options = "deny", referrer_policy = "strict-origin-when-cross-origin", permissions_policy = "geolocation=(), camera=()", content_security_policy = "default-src 'self'", hide_server_headers = true, hsts = { max_age = "1d", include_subdomains = true } }"#;

fn assert_security_headers(resp: &RawResponse) {
    let raw = String::from_utf8_lossy(&resp.raw);
    assert_eq!(
        resp.header("x-content-type-options"),
        Some("nosniff"),
        "{raw}"
    );
    assert_eq!(resp.header_all("x-frame-options"), ["DENY"], "{raw}");
    assert_eq!(
        resp.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(
        resp.header("permissions-policy"),
        Some("geolocation=(), camera=()")
    );
    assert_eq!(
        resp.header("content-security-policy"),
        Some("default-src 'self'")
    );
    // Plain HTTP: browsers ignore HSTS here and RFC 6797 forbids sending it.
    assert_eq!(resp.header("strict-transport-security"), None, "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_replace_the_upstreams_and_hide_its_software() {
    let origin = chatty_origin().await;
    let gw = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "app"
targets = ["{}"]

[[routes]]
name = "app"
upstream = "app"
{SECURITY}
"#,
        origin.addr()
    ))
    .start();
    let resp = send_within(WAIT, gw.addr("public"), get("/page")).await;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_security_headers(&resp);
    for leaky in ["server", "x-powered-by", "x-aspnet-version"] {
        assert_eq!(resp.header(leaky), None, "{leaky} leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_responses_of_a_route_carry_its_security_headers() {
    let dead = free_port_closed().unwrap();
    let gw = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "dead"
targets = ["{dead}"]
connect_timeout = "1s"

[[routes]]
name = "app"
upstream = "dead"
allow_methods = ["GET"]
max_body_size = 8
{SECURITY}
"#
    ))
    .access_log()
    .start();
    let addr = gw.addr("public");
    // The upstream is down: 502 from the handler.
    let resp = send_within(WAIT, addr, get("/x")).await;
    assert_eq!(resp.status, 502);
    assert_security_headers(&resp);
    // A stage refuses: 405 and 413.
    let resp = send_within(WAIT, addr, request("DELETE", "/x", "")).await;
    assert_eq!(resp.status, 405);
    assert_security_headers(&resp);
    let resp = send_within(WAIT, addr, request("GET", "/x", "Content-Length: 100\r\n")).await;
    assert_eq!(resp.status, 413);
    assert_security_headers(&resp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_sent_over_plain_http_only_when_forced_and_upstream_values_can_be_kept() {
    let origin = chatty_origin().await;
    let gw = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "app"
targets = ["{}"]

[[routes]]
name = "forced"
path_prefix = "/forced"
upstream = "app"
security_headers = {{ hsts = {{ max_age = "365d", include_subdomains = true, preload = true, force = true }} }}

[[routes]]
name = "keep"
path_prefix = "/keep"
upstream = "app"
security_headers = {{ frame_options = "DENY", content_type_options = true, keep_upstream = true }}
"#,
        origin.addr()
    ))
    .start();
    let addr = gw.addr("public");
    let resp = send_within(WAIT, addr, get("/forced")).await;
    assert_eq!(
        resp.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains; preload")
    );
    // Not asked to hide them: the upstream's Server stays.
    assert_eq!(resp.header("server"), Some("Apache/2.4.1 (Unix)"));

    let resp = send_within(WAIT, addr, get("/keep")).await;
    assert_eq!(resp.header_all("x-frame-options"), ["SAMEORIGIN"]);
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_header_edits_reach_the_upstream_exactly() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "app"
targets = ["{}"]

[[routes]]
name = "app"
upstream = "app"
request_headers = {{ remove = ["x-internal-user", "Cookie"], set = {{ "x-env" = "prod" }}, add = {{ "x-tag" = "edge" }} }}
"#,
        origin.addr()
    ))
    .start();
    // A client trying to pass itself off as an internal user, and to pick the environment.
    let resp = send_within(WAIT,
        gw.addr("public"),
        request(
            "GET",
            "/a",
            "X-Internal-User: admin\r\nX-Internal-User: root\r\nCookie: s=1\r\nX-Env: dev\r\nX-Tag: client\r\n",
        ),
    )
    .await;
    assert_eq!(resp.status, 200);
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(requests.len(), 1);
    let raw = &requests[0];
    assert!(header_values(raw, "x-internal-user").is_empty());
    assert!(header_values(raw, "cookie").is_empty());
    assert_eq!(header_values(raw, "x-env"), ["prod"]);
    assert_eq!(header_values(raw, "x-tag"), ["client", "edge"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_header_edits_apply_to_answers_and_errors() {
    let origin = chatty_origin().await;
    let gw = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "app"
targets = ["{}"]

[[routes]]
name = "app"
upstream = "app"
allow_methods = ["GET"]
security_headers = {{ hide_server_headers = true }}
response_headers = {{ remove = ["x-frame-options"], set = {{ "cache-control" = "no-store", "server" = "edge" }}, add = {{ "x-served-by" = "rampart" }} }}
"#,
        origin.addr()
    ))
    .start();
    let addr = gw.addr("public");
    let resp = send_within(WAIT, addr, get("/a")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-frame-options"), None);
    assert_eq!(resp.header_all("cache-control"), ["no-store"]);
    assert_eq!(resp.header("x-served-by"), Some("rampart"));
    // The explicit edit has the last word over `hide_server_headers`.
    assert_eq!(resp.header_all("server"), ["edge"]);
    assert_eq!(resp.header("x-powered-by"), None);

    let resp = send_within(WAIT, addr, request("PUT", "/a", "Content-Length: 0\r\n")).await;
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("x-served-by"), Some("rampart"));
}

fn config_error(route_extra: &str) -> String {
    let text = format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[routes]]
name = "app"
echo = true
{route_extra}
"#
    );
    match rampart_config::load_str(&text, "test.toml") {
        Ok(_) => panic!("config accepted:\n{text}"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn edits_of_framing_headers_and_bad_values_are_refused_with_their_key() {
    for (extra, expect) in [
        (
            r#"request_headers = { set = { "content-length" = "5" } }"#,
            "routes[0].request_headers.set.content-length",
        ),
        (
            r#"request_headers = { add = { "Transfer-Encoding" = "chunked" } }"#,
            "cannot be edited",
        ),
        (r#"request_headers = { remove = ["host"] }"#, "rewrite.host"),
        (
            r#"response_headers = { set = { "connection" = "close" } }"#,
            "cannot be edited",
        ),
        (
            r#"response_headers = { set = { "bad name" = "x" } }"#,
            "invalid header name",
        ),
        (
            "response_headers = { set = { \"x-a\" = \"line\\nbreak\" } }",
            "control characters",
        ),
        (
            r#"security_headers = { frame_options = "ALLOW-FROM https://x" }"#,
            "routes[0].security_headers.frame_options",
        ),
        (
            r#"security_headers = { referrer_policy = "sometimes" }"#,
            "unknown policy",
        ),
        (
            r#"security_headers = { hsts = { max_age = "1d", preload = true } }"#,
            "preload",
        ),
        (
            r#"security_headers = { content_security_policy = "" }"#,
            "non-empty",
        ),
    ] {
        let msg = config_error(extra);
        assert!(msg.contains(expect), "{extra}: {msg}");
    }
}

/// The `Via` values an `HttpOrigin` JSON echo received.
fn echoed_via(echo: &serde_json::Value) -> Vec<String> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case("via"))
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn via_names_the_protocol_version_each_message_was_received_with() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = TestGateway::builder(format!(
        "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\n\n[[upstreams]]\nname = \"app\"\n\
         targets = [\"{}\"]\n\n[[routes]]\nname = \"all\"\nupstream = \"app\"\n",
        origin.addr()
    ))
    .start();
    // The forwarded request names the client's version; the response the upstream's (1.1).
    for (version, received) in [("HTTP/1.0", "1.0"), ("HTTP/1.1", "1.1")] {
        let request =
            format!("GET /via {version}\r\nHost: example.test\r\nConnection: close\r\n\r\n");
        let resp = send_within(WAIT, gw.addr("web"), request.as_bytes()).await;
        assert_eq!(resp.status, 200, "{}", resp.body_text());
        assert_eq!(resp.header_all("via"), vec!["1.1 rampart"], "{version}");
        let echo: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(echoed_via(&echo), vec![format!("{received} rampart")]);
    }
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2.get(gw.url("web", "/via")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let via: Vec<_> = resp.headers().get_all("via").iter().cloned().collect();
    assert_eq!(
        via,
        vec!["1.1 rampart"],
        "received from the HTTP/1.1 upstream"
    );
    let echo: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(echoed_via(&echo), vec!["2 rampart"], "received over HTTP/2");
}

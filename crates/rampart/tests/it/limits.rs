//! Limits, malformed input, error responses and observability basics, through a real gateway:
//! every refused request gets the right status, is never forwarded, and leaves a reason in the
//! access log.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_testkit::{
    RawConnection, RawResponse, RecordingOrigin, TestGateway, free_port_closed, raw_request,
    raw_request_parsed,
};
use serde_json::Value;

use crate::support::{header_values, request_line};

/// Bound on every wait in this file.
const WAIT: Duration = Duration::from_secs(10);

/// A gateway config with `prelude` (top-level sections such as `[limits]`) in front of one
/// listener `public` and one catch-all route `all` forwarding to `origin`.
fn config(prelude: &str, origin: SocketAddr) -> String {
    format!(
        r#"{prelude}

[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "origin"
targets = ["{origin}"]

[[routes]]
name = "all"
upstream = "origin"
"#
    )
}

async fn start(prelude: &str) -> (TestGateway, RecordingOrigin) {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = TestGateway::builder(config(prelude, origin.addr()))
        .access_log()
        .start();
    (gw, origin)
}

/// Sends raw bytes on a fresh connection and parses the one response.
async fn send(addr: SocketAddr, bytes: impl AsRef<[u8]>) -> RawResponse {
    let bytes = bytes.as_ref();
    raw_request_parsed(addr, bytes)
        .await
        .unwrap_or_else(|e| panic!("no response to {:?}: {e}", String::from_utf8_lossy(bytes)))
}

/// A GET with a `Host` and the given extra header lines (each ending in `\r\n`).
fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n{extra}\r\n")
}

/// Sends a valid request to `/control` and asserts that it, and only it, reached the origin:
/// whatever was refused before was not forwarded.
async fn assert_only_control_forwarded(gw: &TestGateway, origin: &RecordingOrigin) {
    let resp = send(gw.addr("public"), get("/control", "")).await;
    assert_eq!(
        resp.status,
        200,
        "control request failed: {}",
        resp.body_text()
    );
    let requests = origin.wait_for_requests(1, WAIT).await;
    let lines: Vec<String> = requests.iter().map(|r| request_line(r)).collect();
    assert_eq!(
        lines,
        ["GET /control HTTP/1.1"],
        "the origin saw more than the control request"
    );
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn request_id(resp: &RawResponse) -> String {
    resp.header("x-request-id")
        .unwrap_or_else(|| {
            panic!(
                "no X-Request-ID in {:?}",
                String::from_utf8_lossy(&resp.raw)
            )
        })
        .to_owned()
}

/// The access log line with `request_id`, waiting (bounded) for the writer thread to write it.
async fn log_line(gw: &TestGateway, request_id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let lines = gw.access_log_json(0);
        if let Some(line) = lines.iter().find(|l| l["request_id"] == request_id) {
            return line.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no access log line for {request_id} in {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Size limits
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_longer_than_max_uri_length_gets_414_and_is_not_forwarded() {
    let (gw, origin) = start("[limits]\nmax_uri_length = 64").await;
    let addr = gw.addr("public");

    let too_long = format!("/{}", "a".repeat(64));
    let resp = send(addr, get(&too_long, "")).await;
    assert_eq!(resp.status, 414, "{}", resp.body_text());
    assert!(is_hex_id(&request_id(&resp)));

    // The query counts too.
    let resp = send(addr, get(&format!("/q?{}", "b".repeat(80)), "")).await;
    assert_eq!(resp.status, 414);

    let line = log_line(&gw, &request_id(&resp)).await;
    assert_eq!(line["reason"], "uri_too_long");
    assert_eq!(line["status"], 414);
    assert_only_control_forwarded(&gw, &origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_of_exactly_max_uri_length_is_accepted() {
    let (gw, origin) = start("[limits]\nmax_uri_length = 64").await;
    let exactly = format!("/{}", "a".repeat(63));
    let resp = send(gw.addr("public"), get(&exactly, "")).await;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(
        request_line(&requests[0]),
        format!("GET {exactly} HTTP/1.1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_header_fields_than_max_header_count_get_431() {
    let (gw, origin) = start("[limits]\nmax_header_count = 10").await;
    let addr = gw.addr("public");
    // Host and Connection plus 8 more: exactly 10 is fine.
    let fields = |n: usize| {
        (0..n)
            .map(|i| format!("X-Field-{i}: v\r\n"))
            .collect::<String>()
    };
    let resp = send(addr, get("/ten", &fields(8))).await;
    assert_eq!(resp.status, 200, "{}", resp.body_text());

    // 11 fields: refused by Rampart with its own error body and log line.
    let resp = send(addr, get("/eleven", &fields(9))).await;
    assert_eq!(resp.status, 431, "{}", resp.body_text());
    let id = request_id(&resp);
    let line = log_line(&gw, &id).await;
    assert_eq!(line["reason"], "headers_too_large");
    assert_eq!(line["status"], 431);

    // Far beyond the limit (past the HTTP parser's own headroom): still 431.
    let resp = send(addr, get("/many", &fields(200))).await;
    assert_eq!(resp.status, 431);

    let requests = origin.wait_for_requests(1, WAIT).await;
    let lines: Vec<String> = requests.iter().map(|r| request_line(r)).collect();
    assert_eq!(lines, ["GET /ten HTTP/1.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_larger_than_max_header_size_get_431() {
    let (gw, origin) = start("[limits]\nmax_header_size = \"1KiB\"").await;
    let addr = gw.addr("public");

    let resp = send(
        addr,
        get("/big", &format!("X-Big: {}\r\n", "x".repeat(1500))),
    )
    .await;
    assert_eq!(resp.status, 431, "{}", resp.body_text());
    let line = log_line(&gw, &request_id(&resp)).await;
    assert_eq!(line["reason"], "headers_too_large");

    // Many small headers adding up past the limit.
    let many: String = (0..40)
        .map(|i| format!("X-Part-{i}: {}\r\n", "y".repeat(30)))
        .collect();
    let resp = send(addr, get("/sum", &many)).await;
    assert_eq!(resp.status, 431);

    // Grossly oversized: the HTTP parser refuses it before Rampart sees it, still 431.
    let resp = send(
        addr,
        get("/huge", &format!("X-Huge: {}\r\n", "z".repeat(64 * 1024))),
    )
    .await;
    assert_eq!(resp.status, 431);

    assert_only_control_forwarded(&gw, &origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_max_body_size_gets_413_without_being_forwarded() {
    let (gw, origin) = start("[limits]\nmax_body_size = \"1KiB\"").await;
    let addr = gw.addr("public");

    let body = "b".repeat(2000);
    let req = format!(
        "POST /upload HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let resp = send(addr, &req).await;
    assert_eq!(resp.status, 413, "{}", resp.body_text());
    let line = log_line(&gw, &request_id(&resp)).await;
    assert_eq!(line["reason"], "body_too_large");

    // With `Expect: 100-continue` the client is told 413 at once, never to send the body.
    let head = "POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Length: 2000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n";
    let raw = raw_request(addr, head.as_bytes()).await.unwrap();
    let resp = RawResponse::parse(&raw).unwrap();
    assert_eq!(resp.status, 413);
    assert!(
        raw.starts_with(b"HTTP/1.1 413"),
        "sent 100 Continue first: {}",
        String::from_utf8_lossy(&raw)
    );

    // A body within the limit goes through.
    let ok = "POST /small HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(send(addr, ok).await.status, 200);
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(requests.len(), 1);
    assert!(requests[0].ends_with(b"\r\n\r\nhello"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_max_body_size_gets_413_and_no_complete_request_is_forwarded() {
    let (gw, origin) = start("[limits]\nmax_body_size = \"1KiB\"").await;
    let chunk = "c".repeat(1000);
    let req = format!(
        "POST /stream HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n{chunk}\r\n3e8\r\n{chunk}\r\n0\r\n\r\n"
    );
    let resp = send(gw.addr("public"), &req).await;
    assert_eq!(resp.status, 413, "{}", resp.body_text());
    // The origin may have seen the start of the request, but never a complete one: a truncated
    // body must not be presented upstream as if it were the whole request.
    let requests = origin
        .wait_for_requests(1, Duration::from_millis(500))
        .await;
    for r in &requests {
        assert!(
            !r.ends_with(b"0\r\n\r\n"),
            "a truncated body was forwarded as complete: {}",
            String::from_utf8_lossy(r)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_max_body_size_overrides_the_global_limit() {
    let origin = RecordingOrigin::start().await.unwrap();
    let cfg = format!(
        r#"
[limits]
max_body_size = "1KiB"

[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "origin"
targets = ["{}"]

[[routes]]
name = "uploads"
path_prefix = "/uploads"
upstream = "origin"
max_body_size = "4KiB"

[[routes]]
name = "tiny"
path_prefix = "/tiny"
upstream = "origin"
max_body_size = "16B"
"#,
        origin.addr()
    );
    let gw = TestGateway::builder(cfg).start();
    let addr = gw.addr("public");
    let post = |path: &str, len: usize| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n{}",
            "p".repeat(len)
        )
    };
    assert_eq!(
        send(addr, post("/uploads/a", 3000)).await.status,
        200,
        "raised limit"
    );
    assert_eq!(
        send(addr, post("/uploads/b", 5000)).await.status,
        413,
        "over the raised limit"
    );
    assert_eq!(
        send(addr, post("/tiny/c", 17)).await.status,
        413,
        "lowered limit"
    );
    assert_eq!(
        send(addr, post("/tiny/d", 16)).await.status,
        200,
        "exactly the lowered limit"
    );

    let requests = origin.wait_for_requests(2, WAIT).await;
    let lines: Vec<String> = requests.iter().map(|r| request_line(r)).collect();
    assert_eq!(lines, ["POST /uploads/a HTTP/1.1", "POST /tiny/d HTTP/1.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_methods_refuses_others_with_405_and_an_allow_header() {
    let origin = RecordingOrigin::start().await.unwrap();
    let cfg = config("", origin.addr()).replace(
        "name = \"all\"\n",
        "name = \"all\"\nallow_methods = [\"GET\", \"POST\"]\n",
    );
    let gw = TestGateway::builder(cfg).access_log().start();
    let addr = gw.addr("public");

    for method in ["DELETE", "PUT", "PATCH"] {
        let resp = send(
            addr,
            format!(
                "{method} /r HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(resp.status, 405, "{method}");
        let allow: Vec<String> = resp
            .header("allow")
            .expect("Allow header")
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        for m in ["GET", "HEAD", "POST"] {
            assert!(
                allow.iter().any(|a| a == m),
                "{m} missing from Allow {allow:?}"
            );
        }
        assert!(
            !allow.iter().any(|a| a == method),
            "{method} listed in Allow {allow:?}"
        );
        let line = log_line(&gw, &request_id(&resp)).await;
        assert_eq!(line["reason"], "method_not_allowed");
    }

    // GET allows HEAD.
    let resp = raw_request_parsed(
        addr,
        b"HEAD /h HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(send(addr, get("/g", "")).await.status, 200);

    let requests = origin.wait_for_requests(2, WAIT).await;
    let lines: Vec<String> = requests.iter().map(|r| request_line(r)).collect();
    assert_eq!(lines, ["HEAD /h HTTP/1.1", "GET /g HTTP/1.1"]);
}

// ---------------------------------------------------------------------------------------------
// Client timeouts
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_arriving_too_slowly_gets_408_and_the_connection_closes() {
    let (gw, origin) = start("[timeouts]\nheader_read = \"500ms\"").await;
    let mut conn = RawConnection::connect_timeout(gw.addr("public"), WAIT)
        .await
        .unwrap();
    conn.send(b"GET /sl").await.unwrap();
    // No more bytes: the header timer fires after 500ms; the read is bounded by WAIT.
    let resp = conn.read_response().await.unwrap();
    assert_eq!(resp.status, 408, "{}", String::from_utf8_lossy(&resp.raw));
    let id = request_id(&resp);
    assert!(is_hex_id(&id), "{id}");
    assert!(resp.body_text().contains(&id), "{}", resp.body_text());
    assert!(
        conn.is_closed().await,
        "the connection stayed open after 408"
    );

    let line = log_line(&gw, &id).await;
    assert_eq!(line["reason"], "header_read_timeout");
    assert_eq!(line["status"], 408);
    assert_only_control_forwarded(&gw, &origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_head_on_a_keep_alive_connection_gets_408() {
    let (gw, origin) = start("[timeouts]\nheader_read = \"500ms\"\nkeepalive = \"30s\"").await;
    let mut conn = RawConnection::connect_timeout(gw.addr("public"), WAIT)
        .await
        .unwrap();
    conn.send(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(conn.read_response().await.unwrap().status, 200);
    conn.send(b"GET /second HTTP/1.1\r\nHo").await.unwrap();
    let resp = conn.read_response().await.unwrap();
    assert_eq!(resp.status, 408);
    assert!(is_hex_id(&request_id(&resp)));
    assert!(conn.is_closed().await);
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(request_line(&requests[0]), "GET /first HTTP/1.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_quietly_after_the_keepalive_timeout() {
    let (gw, origin) = start("[timeouts]\nkeepalive = \"500ms\"\nheader_read = \"30s\"").await;
    let mut conn = RawConnection::connect_timeout(gw.addr("public"), WAIT)
        .await
        .unwrap();
    conn.send(b"GET /once HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let resp = conn.read_response().await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("connection"),
        None,
        "the response should have kept the connection alive"
    );
    // is_closed() is false if any byte arrives: the close must be silent (no 408).
    assert!(
        conn.is_closed().await,
        "the idle connection was not closed quietly"
    );
    assert_eq!(origin.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sends_a_byte_is_closed_quietly() {
    let (gw, origin) = start("[timeouts]\nheader_read = \"500ms\"").await;
    let mut conn = RawConnection::connect_timeout(gw.addr("public"), WAIT)
        .await
        .unwrap();
    assert!(
        conn.is_closed().await,
        "the silent connection was not closed quietly"
    );
    assert!(origin.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Malformed requests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_and_are_never_forwarded() {
    let (gw, origin) = start("").await;
    let addr = gw.addr("public");
    let cases: &[(&str, &[u8])] = &[
        ("garbage request line", b"GARBAGE\r\n\r\n"),
        ("request line without version", b"GET /\r\nHost: a\r\n\r\n"),
        (
            "invalid header name",
            b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
        ),
        (
            "header name with colon only",
            b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n",
        ),
        (
            "missing Host on HTTP/1.1",
            b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
        ),
        (
            "two Host headers",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ),
        (
            "two identical Host headers",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        ),
        (
            "bad percent-encoding",
            b"GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "truncated percent-encoding",
            b"GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "encoded NUL in the path",
            b"GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        ("/.. above the root", b"GET /.. HTTP/1.1\r\nHost: a\r\n\r\n"),
        (
            "climbing above the root",
            b"GET /a/../../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "encoded dots above the root",
            b"GET /%2e%2e/etc HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "NUL in a header value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n",
        ),
        (
            "obsolete line folding",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n",
        ),
        (
            "conflicting Content-Length",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        ),
        (
            "invalid Content-Length",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        ),
    ];
    for (what, bytes) in cases {
        let raw = raw_request(addr, bytes)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let resp = RawResponse::parse(&raw).unwrap_or_else(|e| panic!("{what}: no response ({e})"));
        assert_eq!(
            resp.status,
            400,
            "{what}: {}",
            String::from_utf8_lossy(&raw)
        );
    }
    assert_only_control_forwarded(&gw, &origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_encoding_other_than_final_chunked_gets_400() {
    let (gw, origin) = start("").await;
    let req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc";
    let resp = send(gw.addr("public"), req).await;
    assert_eq!(
        resp.status,
        400,
        "RFC 9112 §6.3: {}",
        String::from_utf8_lossy(&resp.raw)
    );
    assert_only_control_forwarded(&gw, &origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_chunked_is_refused_or_forwarded_without_the_length() {
    let (gw, origin) = start("").await;
    // A smuggling attempt: the Content-Length disagrees with the chunked body.
    let req = b"POST /smuggle HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let resp = send(gw.addr("public"), req).await;
    if resp.status == 400 {
        assert_only_control_forwarded(&gw, &origin).await;
        return;
    }
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.raw));
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(requests.len(), 1);
    let forwarded = &requests[0];
    let text = String::from_utf8_lossy(forwarded);
    assert!(
        header_values(forwarded, "content-length").is_empty(),
        "Content-Length forwarded with a chunked body: {text}"
    );
    assert!(
        text.contains("hello"),
        "the body was not forwarded whole: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_request_without_host_is_accepted_and_forwarded_with_a_host() {
    let (gw, origin) = start("").await;
    let resp = send(gw.addr("public"), b"GET /old HTTP/1.0\r\n\r\n").await;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(resp.body_text(), "ok");
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(request_line(&requests[0]), "GET /old HTTP/1.1");
    // Rampart speaks HTTP/1.1 upstream, where Host is mandatory (RFC 9112 §3.2).
    let hosts = header_values(&requests[0], "host");
    assert_eq!(
        hosts.len(),
        1,
        "upstream request must carry exactly one Host: {}",
        String::from_utf8_lossy(&requests[0])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_are_resolved_before_forwarding() {
    let (gw, origin) = start("").await;
    let resp = send(gw.addr("public"), get("/a/./b/../c/%2e%2e/d%7e", "")).await;
    assert_eq!(resp.status, 200);
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(request_line(&requests[0]), "GET /a/d~ HTTP/1.1");
}

// ---------------------------------------------------------------------------------------------
// Error responses
// ---------------------------------------------------------------------------------------------

/// A gateway with one route on `/known` only: everything else is 404 `no_route`.
fn no_catch_all() -> TestGateway {
    TestGateway::builder(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[routes]]
name = "known"
path = "/known"
respond = { body = "known" }
"#,
    )
    .access_log()
    .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_are_json_for_api_clients() {
    let gw = no_catch_all();
    let resp = send(
        gw.addr("public"),
        get("/missing", "Accept: application/json\r\n"),
    )
    .await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&resp.body).expect("JSON error body");
    let err = &body["error"];
    assert_eq!(err["status"], 404);
    assert_eq!(err["code"], "no_route");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(err["request_id"], request_id(&resp).as_str());

    // A JSON suffix type and a weighted list preferring JSON.
    for accept in [
        "application/problem+json",
        "text/html;q=0.5, application/json",
    ] {
        let resp = send(
            gw.addr("public"),
            get("/missing", &format!("Accept: {accept}\r\n")),
        )
        .await;
        assert_eq!(
            resp.header("content-type"),
            Some("application/json"),
            "{accept}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_are_html_for_browsers() {
    let gw = no_catch_all();
    let accept = "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n";
    let resp = send(gw.addr("public"), get("/missing", accept)).await;
    assert_eq!(resp.status, 404);
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let body = resp.body_text();
    assert!(body.contains("<html") && body.contains("404"), "{body}");
    assert!(body.contains(&request_id(&resp)), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_are_plain_text_otherwise() {
    let gw = no_catch_all();
    for extra in [
        "",
        "Accept: */*\r\n",
        "Accept: image/png\r\n",
        "Accept: application/json;q=0\r\n",
    ] {
        let resp = send(gw.addr("public"), get("/missing", extra)).await;
        assert_eq!(resp.status, 404);
        assert!(
            resp.header("content-type")
                .unwrap()
                .starts_with("text/plain"),
            "{extra:?}"
        );
        let body = resp.body_text();
        assert!(body.starts_with("404 "), "{body}");
        assert!(body.contains(&request_id(&resp)), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_never_reveal_the_upstream_address() {
    let closed = free_port_closed().unwrap();
    let gw = TestGateway::builder(config("", closed))
        .access_log()
        .start();
    let port = closed.port().to_string();
    for accept in ["", "Accept: application/json\r\n", "Accept: text/html\r\n"] {
        let resp = send(gw.addr("public"), get("/x", accept)).await;
        // 502 for the refused connect; 503 once outlier detection ejected the lone target
        // after the earlier refusals (which one depends on how fast the probes ran).
        assert!(
            matches!(resp.status, 502 | 503),
            "{accept:?}: {}",
            resp.status
        );
        let head_and_body = String::from_utf8_lossy(&resp.raw);
        assert!(
            !head_and_body.contains(&port),
            "port {port} leaked: {head_and_body}"
        );
        assert!(
            !head_and_body.contains("refused"),
            "detail leaked: {head_and_body}"
        );
        assert!(
            !head_and_body.contains("connect "),
            "detail leaked: {head_and_body}"
        );
        if accept.contains("json") {
            let body: Value = serde_json::from_slice(&resp.body).unwrap();
            assert_eq!(body["error"]["code"], "upstream_connect_failed");
        }
    }
    // ... while the access log keeps the detail for operators.
    let lines = gw.access_log_json(3);
    assert_eq!(lines[0]["reason"], "upstream_connect_failed");
    assert_eq!(lines[0]["upstream"], "origin");
}

// ---------------------------------------------------------------------------------------------
// Request IDs and trace context
// ---------------------------------------------------------------------------------------------

async fn start_two_listeners() -> (TestGateway, RecordingOrigin) {
    let origin = RecordingOrigin::start().await.unwrap();
    let cfg = format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[listeners]]
name = "trusted"
bind = "127.0.0.1:0"
trust_request_id = true

[[upstreams]]
name = "origin"
targets = ["{}"]

[[routes]]
name = "all"
upstream = "origin"
"#,
        origin.addr()
    );
    (TestGateway::builder(cfg).access_log().start(), origin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_is_generated_when_absent_and_sent_upstream() {
    let (gw, origin) = start_two_listeners().await;
    let resp = send(gw.addr("public"), get("/id", "")).await;
    let id = request_id(&resp);
    assert!(is_hex_id(&id), "{id}");
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(
        header_values(&requests[0], "x-request-id"),
        std::slice::from_ref(&id)
    );
    let other = request_id(&send(gw.addr("public"), get("/id2", "")).await);
    assert_ne!(id, other, "request IDs must differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_request_id_is_replaced_on_an_untrusted_listener() {
    let (gw, origin) = start_two_listeners().await;
    let resp = send(
        gw.addr("public"),
        get("/id", "X-Request-ID: client-chosen-42\r\n"),
    )
    .await;
    let id = request_id(&resp);
    assert_ne!(id, "client-chosen-42");
    assert!(is_hex_id(&id), "{id}");
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(header_values(&requests[0], "x-request-id"), [id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_request_id_is_kept_on_a_trusting_listener() {
    let (gw, origin) = start_two_listeners().await;
    let resp = send(
        gw.addr("trusted"),
        get("/id", "X-Request-ID: lb-assigned-42\r\n"),
    )
    .await;
    assert_eq!(request_id(&resp), "lb-assigned-42");
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(
        header_values(&requests[0], "x-request-id"),
        ["lb-assigned-42"]
    );
    let line = log_line(&gw, "lb-assigned-42").await;
    assert_eq!(line["listener"], "trusted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_client_request_id_is_replaced_even_when_trusted() {
    let (gw, origin) = start_two_listeners().await;
    for bad in ["has spaces in it", "quote\"inside", &"x".repeat(129)] {
        let resp = send(
            gw.addr("trusted"),
            get("/id", &format!("X-Request-ID: {bad}\r\n")),
        )
        .await;
        let id = request_id(&resp);
        assert!(is_hex_id(&id), "{bad:?} was not replaced: {id}");
    }
    let requests = origin.wait_for_requests(3, WAIT).await;
    for r in &requests {
        let ids = header_values(r, "x-request-id");
        assert!(ids.len() == 1 && is_hex_id(&ids[0]), "{ids:?}");
    }
}

/// Splits a traceparent into (version, trace id, parent id, flags), checking its shape.
fn traceparent_parts(v: &str) -> (String, String, String, String) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    assert!(
        hex(parts[0], 2) && hex(parts[1], 32) && hex(parts[2], 16) && hex(parts[3], 2),
        "{v}"
    );
    assert_ne!(parts[1], "0".repeat(32), "{v}");
    assert_ne!(parts[2], "0".repeat(16), "{v}");
    (
        parts[0].to_owned(),
        parts[1].to_owned(),
        parts[2].to_owned(),
        parts[3].to_owned(),
    )
}

async fn upstream_traceparent(
    gw: &TestGateway,
    origin: &RecordingOrigin,
    extra: &str,
    n: usize,
) -> (String, String) {
    let resp = send(gw.addr("public"), get("/trace", extra)).await;
    assert_eq!(resp.status, 200);
    let requests = origin.wait_for_requests(n, WAIT).await;
    let values = header_values(&requests[n - 1], "traceparent");
    assert_eq!(
        values.len(),
        1,
        "exactly one traceparent upstream: {values:?}"
    );
    (values[0].clone(), request_id(&resp))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_traceparent_keeps_its_trace_id_with_a_new_parent_id() {
    let (gw, origin) = start("").await;
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (sent, id) =
        upstream_traceparent(&gw, &origin, &format!("traceparent: {incoming}\r\n"), 1).await;
    let (version, trace, parent, flags) = traceparent_parts(&sent);
    assert_eq!(version, "00");
    assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(
        parent, "00f067aa0ba902b7",
        "the parent id must be Rampart's own span"
    );
    assert_eq!(flags, "01", "the sampled flag is kept");
    assert_eq!(log_line(&gw, &id).await["trace_id"], trace);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_traceparent_starts_a_new_trace() {
    let (gw, origin) = start("").await;
    let bad = [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "garbage",
    ];
    for (i, b) in bad.iter().enumerate() {
        let (sent, _) =
            upstream_traceparent(&gw, &origin, &format!("traceparent: {b}\r\n"), i + 1).await;
        let (version, trace, _, _) = traceparent_parts(&sent);
        assert_eq!(version, "00", "{b}");
        assert_ne!(
            trace, "4bf92f3577b34da6a3ce929d0e0e4736",
            "{b} was continued"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_trace_is_started_when_there_is_no_traceparent() {
    let (gw, origin) = start("").await;
    let (first, id) = upstream_traceparent(&gw, &origin, "", 1).await;
    let (_, trace, _, _) = traceparent_parts(&first);
    let (second, _) = upstream_traceparent(&gw, &origin, "", 2).await;
    assert_ne!(
        traceparent_parts(&second).1,
        trace,
        "two requests share a trace id"
    );
    assert_eq!(log_line(&gw, &id).await["trace_id"], trace);
}

// ---------------------------------------------------------------------------------------------
// Access log
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_describe_proxied_requests() {
    let (gw, _origin) = start("").await;
    let resp = send(
        gw.addr("public"),
        get("/logged?x=1", "User-Agent: limits-test\r\n"),
    )
    .await;
    assert_eq!(resp.status, 200);
    let id = request_id(&resp);
    let line = log_line(&gw, &id).await;
    assert_eq!(line["route"], "all");
    assert_eq!(line["upstream"], "origin");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes_sent"], 2, "the origin answers `ok`");
    assert!(
        line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{line}"
    );
    assert!(
        line["upstream_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{line}"
    );
    assert_eq!(line["client_ip"], "127.0.0.1");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["uri"], "/logged?x=1");
    assert_eq!(line["listener"], "public");
    assert_eq!(line["user_agent"], "limits-test");
    assert_eq!(line["completed"], true);
    assert!(line["reason"].is_null(), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_carry_the_reject_reason() {
    let gw = no_catch_all();
    let addr = gw.addr("public");
    let resp = send(addr, get("/nowhere", "")).await;
    assert_eq!(resp.status, 404);
    let line = log_line(&gw, &request_id(&resp)).await;
    assert_eq!(line["reason"], "no_route");
    assert_eq!(line["status"], 404);
    assert!(line["route"].is_null(), "{line}");
    assert!(line["upstream"].is_null(), "{line}");
    assert!(line["bytes_sent"].as_u64().is_some_and(|n| n > 0), "{line}");

    // A request the HTTP parser refuses still gets a line with a reason.
    let resp = send(addr, b"GARBAGE\r\n\r\n").await;
    assert_eq!(resp.status, 400);
    let lines = gw.access_log_json(2);
    assert!(
        lines
            .iter()
            .any(|l| l["status"] == 400 && l["reason"] == "bad_request"),
        "no bad_request line in {lines:#?}"
    );
}

//! End-to-end proxying: a real Rampart between real clients and real origin servers.
//!
//! Every test starts its own gateway (listeners on `127.0.0.1:0`) and origins, bounds every
//! wait with a timeout, and asserts behaviour, never timing.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_testkit::reqwest;
use rampart_testkit::{
    Behavior, HttpOrigin, RawConnection, RecordingOrigin, ScriptedOrigin, TestGateway,
    free_port_closed, raw_request_parsed,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{WAIT, client, within};

/// Config for one upstream called `origin` with these targets and extra keys.
fn upstream(name: &str, targets: &[SocketAddr], extra: &str) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[[upstreams]]\nname = \"{name}\"\ntargets = [{}]\n{extra}\n",
        targets.join(", ")
    )
}

/// Config for listener `name` on `127.0.0.1:0` with extra keys.
fn listener(name: &str, extra: &str) -> String {
    format!("[[listeners]]\nname = \"{name}\"\nbind = \"127.0.0.1:0\"\n{extra}\n")
}

/// One listener, one upstream `origin` (with `upstream_extra` keys) and one route to it.
fn one_route_config(origin: SocketAddr, upstream_extra: &str) -> String {
    format!(
        "{}{}[[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        listener("public", ""),
        upstream("origin", &[origin], upstream_extra)
    )
}

/// A gateway with one listener `public` and one catch-all route to `origin`.
fn simple_gateway(origin: SocketAddr) -> TestGateway {
    TestGateway::builder(one_route_config(origin, ""))
        .access_log()
        .start()
}

/// Values of header `name` in an `HttpOrigin` JSON echo.
fn echoed(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

/// The single value of header `name` in an echo (panics if absent or repeated).
fn echoed_one(echo: &Value, name: &str) -> String {
    let values = echoed(echo, name);
    assert_eq!(values.len(), 1, "{name}: {values:?} in {echo}");
    values.into_iter().next().unwrap()
}

/// Sends `GET {path}` with `extra` header lines over a raw connection and parses the JSON echo.
async fn raw_echo(addr: SocketAddr, path: &str, extra: &str) -> Value {
    let request = format!("GET {path} HTTP/1.1\r\nHost: app.example\r\n{extra}\r\n");
    let resp = within(raw_request_parsed(addr, request.as_bytes()))
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    serde_json::from_slice(&resp.body).unwrap()
}

/// The request head of a recorded request, lowercased.
fn head_of(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
    text.split("\r\n\r\n").next().unwrap().to_owned()
}

/// The access log line with this request id.
fn log_line(gw: &TestGateway, request_id: &str, min_lines: usize) -> Value {
    let lines = gw.access_log_json(min_lines);
    lines
        .into_iter()
        .find(|l| l["request_id"] == request_id)
        .unwrap_or_else(|| panic!("no access log line for {request_id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_is_proxied_end_to_end_with_method_path_query_body_and_request_id() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = simple_gateway(origin.addr());

    let resp = within(
        client()
            .post(gw.url("public", "/things/42?a=1&b=two%20words"))
            .header("x-custom", "kept")
            .header("content-type", "text/plain")
            .body("hello, origin")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!request_id.is_empty());
    let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();

    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/things/42?a=1&b=two%20words");
    assert_eq!(echo["body_len"], "hello, origin".len());
    assert_eq!(echoed_one(&echo, "x-custom"), "kept");
    assert_eq!(echoed_one(&echo, "content-type"), "text/plain");
    assert_eq!(
        echoed_one(&echo, "x-request-id"),
        request_id,
        "the upstream gets the same id"
    );
    assert!(echoed_one(&echo, "traceparent").starts_with("00-"));

    // The upstream's status and body come back as they are.
    let resp = within(client().get(gw.url("public", "/status/418")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 418);
    let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
    assert_eq!(echo["uri"], "/status/418");
    let resp = within(client().get(gw.url("public", "/status/204")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(within(resp.bytes()).await.unwrap().is_empty());

    let line = log_line(&gw, &request_id, 3);
    assert_eq!(line["status"], 200);
    assert_eq!(line["method"], "POST");
    assert_eq!(line["route"], "all");
    assert_eq!(line["upstream"], "origin");
    assert_eq!(line["upstream_target"], origin.addr().to_string());
    assert_eq!(line["completed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_request_ids_are_replaced_unless_the_listener_trusts_them() {
    let origin = HttpOrigin::start().await.unwrap();
    let config = format!(
        "{}{}{}[[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        listener("edge", ""),
        listener("trusted", "trust_request_id = true"),
        upstream("origin", &[origin.addr()], "")
    );
    let gw = TestGateway::builder(config).start();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let sent = format!("X-Request-ID: client-chosen-id\r\ntraceparent: {traceparent}\r\n");

    let request = format!("GET / HTTP/1.1\r\nHost: app.example\r\n{sent}\r\n");
    let resp = within(raw_request_parsed(gw.addr("edge"), request.as_bytes()))
        .await
        .unwrap();
    let id = resp.header("x-request-id").unwrap().to_owned();
    assert_ne!(
        id, "client-chosen-id",
        "an untrusted client picked its request id"
    );
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echoed_one(&echo, "x-request-id"), id);
    // The trace continues: same trace id and flags, Rampart's own span as the parent.
    let upstream_tp = echoed_one(&echo, "traceparent");
    assert_eq!(&upstream_tp[..36], &traceparent[..36], "{upstream_tp}");
    assert_ne!(&upstream_tp[36..52], &traceparent[36..52], "{upstream_tp}");
    assert!(upstream_tp.ends_with("-01"), "{upstream_tp}");

    let resp = within(raw_request_parsed(gw.addr("trusted"), request.as_bytes()))
        .await
        .unwrap();
    assert_eq!(resp.header("x-request-id"), Some("client-chosen-id"));
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echoed_one(&echo, "x-request-id"), "client-chosen-id");

    // Even a trusted listener refuses ids that are unsafe in logs and headers.
    let request = "GET / HTTP/1.1\r\nHost: app.example\r\nX-Request-ID: \"quoted\"\r\n\r\n";
    let resp = within(raw_request_parsed(gw.addr("trusted"), request.as_bytes()))
        .await
        .unwrap();
    assert_ne!(resp.header("x-request-id"), Some("\"quoted\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_without_bodies_leave_the_upstream_connection_reusable() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = simple_gateway(origin.addr());
    let client = client();
    let resp = within(client.head(gw.url("public", "/bytes/1000")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "1000");
    assert!(within(resp.bytes()).await.unwrap().is_empty());
    for code in [204, 304, 200] {
        let resp = within(
            client
                .get(gw.url("public", &format!("/status/{code}")))
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), code);
        within(resp.bytes()).await.unwrap();
    }
    let resp = within(client.get(gw.url("public", "/bytes/1000")).send())
        .await
        .unwrap();
    assert_eq!(within(resp.bytes()).await.unwrap().len(), 1000);
    assert_eq!(origin.requests(), 5);
    assert_eq!(origin.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_and_the_body_forwarded() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = simple_gateway(origin.addr());
    let mut stream = within(tokio::net::TcpStream::connect(gw.addr("public")))
        .await
        .unwrap();
    let head = "POST /upload HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\
        Expect: 100-continue\r\n\r\n";
    within(stream.write_all(head.as_bytes())).await.unwrap();
    // The client waits for the interim answer before sending the body.
    let mut buf = Vec::new();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        assert_ne!(
            within(stream.read_buf(&mut buf)).await.unwrap(),
            0,
            "closed"
        );
    }
    let interim = String::from_utf8_lossy(&buf).into_owned();
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "{interim}"
    );
    assert!(
        interim.ends_with("\r\n\r\n"),
        "only the interim response: {interim}"
    );
    within(stream.write_all(b"hello")).await.unwrap();
    let mut rest = Vec::new();
    let resp = loop {
        assert_ne!(
            within(stream.read_buf(&mut rest)).await.unwrap(),
            0,
            "closed"
        );
        if let Ok(resp) = rampart_testkit::RawResponse::parse(&rest)
            && resp.header("content-length") == Some(resp.body.len().to_string().as_str())
        {
            break resp;
        }
    };
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["body_len"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_upstream_closed_is_replaced_transparently() {
    // Every connection answers one keep-alive response and then closes (FIN).
    let reply =
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok".to_vec();
    let origin = ScriptedOrigin::start(Behavior::Respond(reply))
        .await
        .unwrap();
    let gw = simple_gateway(origin.addr());
    let client = client();
    for i in 0..8 {
        let resp = within(client.post(gw.url("public", "/x")).body("payload").send())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        assert_eq!(within(resp.text()).await.unwrap(), "ok");
        // Let the origin's FIN reach the pooled connection: this test is about a connection
        // known to be closed when it is taken from the pool. (A FIN still in flight when a
        // non-idempotent request with a streamed body is written is the keep-alive race every
        // proxy answers with 502; idempotent bodiless requests are re-sent on a new one.)
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(origin.connections(), 8);
    let lines = gw.access_log_json(8);
    assert!(lines.iter().all(|l| l["status"] == 200), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_removed_from_the_forwarded_request() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = simple_gateway(origin.addr());

    let request = "GET /hop HTTP/1.1\r\nHost: app.example\r\n\
        Connection: keep-alive, X-Secret-Hop, X-Other-Hop\r\n\
        Keep-Alive: timeout=5\r\n\
        X-Secret-Hop: one\r\n\
        X-Other-Hop: two\r\n\
        Proxy-Connection: keep-alive\r\n\
        TE: gzip\r\n\
        Upgrade: something\r\n\
        X-End-To-End: stays\r\n\r\n";
    let resp = within(raw_request_parsed(gw.addr("public"), request.as_bytes()))
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());

    let recorded = within(origin.wait_for_requests(1, WAIT)).await;
    assert_eq!(recorded.len(), 1);
    let head = head_of(&recorded[0]);
    assert!(head.starts_with("get /hop http/1.1\r\n"), "{head}");
    for gone in [
        "keep-alive:",
        "x-secret-hop:",
        "x-other-hop:",
        "proxy-connection:",
        "te:",
        "upgrade:",
    ] {
        assert!(
            !head.contains(&format!("\r\n{gone}")),
            "{gone} reached the upstream:\n{head}"
        );
    }
    for line in head.lines().filter(|l| l.starts_with("connection:")) {
        assert!(
            !line.contains("hop"),
            "Connection still names hop headers: {line}"
        );
    }
    assert!(head.contains("\r\nx-end-to-end: stays"), "{head}");

    // `Connection` is a list: tokens on a second field line count as much as on the first.
    let request = "GET /hop2 HTTP/1.1\r\nHost: app.example\r\n\
        Connection: keep-alive\r\n\
        Connection: X-Second-Line-Hop\r\n\
        X-Second-Line-Hop: secret\r\n\r\n";
    let resp = within(raw_request_parsed(gw.addr("public"), request.as_bytes()))
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let recorded = within(origin.wait_for_requests(2, WAIT)).await;
    let head = head_of(&recorded[1]);
    assert!(head.starts_with("get /hop2 "), "{head}");
    assert!(
        !head.contains("x-second-line-hop"),
        "a header named in Connection leaked:\n{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_removed_from_the_response() {
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\
        Connection: close, X-Internal-Hop\r\n\
        X-Internal-Hop: secret\r\n\
        Keep-Alive: timeout=5\r\n\
        Proxy-Authenticate: Basic realm=\"inner\"\r\n\
        Proxy-Connection: keep-alive\r\n\
        Upgrade: h2c\r\n\
        Connection: X-Second-Hop\r\n\
        X-Second-Hop: also-secret\r\n\
        X-End-To-End: kept\r\n\r\nok"
        .to_vec();
    let origin = ScriptedOrigin::start(Behavior::Respond(reply))
        .await
        .unwrap();
    let gw = simple_gateway(origin.addr());

    let resp = within(raw_request_parsed(
        gw.addr("public"),
        b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n",
    ))
    .await
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(resp.body_text(), "ok");
    for gone in [
        "x-internal-hop",
        "x-second-hop",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(
            resp.header(gone).is_none(),
            "{gone} reached the client: {:?}",
            resp.headers
        );
    }
    for value in resp.header_all("connection") {
        assert!(
            !value.to_ascii_lowercase().contains("x-internal-hop"),
            "{value}"
        );
    }
    assert_eq!(resp.header("x-end-to-end"), Some("kept"));
}

/// Client-sent forwarding headers, on a raw request.
const CLIENT_FORWARDING: &str = "X-Forwarded-For: 203.0.113.7\r\n\
    X-Forwarded-Proto: https\r\n\
    X-Forwarded-Host: lb.example\r\n\
    Forwarded: for=203.0.113.7;proto=https\r\n";

/// A gateway with listeners `append`, `rewrite` and `drop` (all with `forwarded = true`).
fn forwarding_gateway(origin: &HttpOrigin) -> TestGateway {
    let config = format!(
        "{}{}{}{}[[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        listener("append", "x_forwarded = \"append\"\nforwarded = true"),
        listener("rewrite", "x_forwarded = \"rewrite\"\nforwarded = true"),
        listener("drop", "x_forwarded = \"drop\"\nforwarded = true"),
        upstream("origin", &[origin.addr()], "")
    );
    TestGateway::builder(config).start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_append_keeps_the_client_chain_and_adds_this_hop() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = forwarding_gateway(&origin);
    let echo = raw_echo(gw.addr("append"), "/", CLIENT_FORWARDING).await;
    assert_eq!(
        echoed_one(&echo, "x-forwarded-for"),
        "203.0.113.7, 127.0.0.1"
    );
    // The trusted hop in front saw the original scheme and host: they are kept.
    assert_eq!(echoed_one(&echo, "x-forwarded-proto"), "https");
    assert_eq!(echoed_one(&echo, "x-forwarded-host"), "lb.example");
    assert_eq!(
        echoed_one(&echo, "forwarded"),
        "for=203.0.113.7;proto=https, for=127.0.0.1;proto=http;host=\"app.example\""
    );

    // Without client values, append sends this hop's.
    let echo = raw_echo(gw.addr("append"), "/", "").await;
    assert_eq!(echoed_one(&echo, "x-forwarded-for"), "127.0.0.1");
    assert_eq!(echoed_one(&echo, "x-forwarded-proto"), "http");
    assert_eq!(echoed_one(&echo, "x-forwarded-host"), "app.example");
    assert_eq!(
        echoed_one(&echo, "forwarded"),
        "for=127.0.0.1;proto=http;host=\"app.example\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_rewrite_discards_client_values_and_sends_only_this_hop() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = forwarding_gateway(&origin);
    let echo = raw_echo(gw.addr("rewrite"), "/", CLIENT_FORWARDING).await;
    assert_eq!(echoed_one(&echo, "x-forwarded-for"), "127.0.0.1");
    assert_eq!(echoed_one(&echo, "x-forwarded-proto"), "http");
    assert_eq!(echoed_one(&echo, "x-forwarded-host"), "app.example");
    assert_eq!(
        echoed_one(&echo, "forwarded"),
        "for=127.0.0.1;proto=http;host=\"app.example\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_drop_sends_no_forwarding_headers_at_all() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = forwarding_gateway(&origin);
    let echo = raw_echo(gw.addr("drop"), "/", CLIENT_FORWARDING).await;
    for name in [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
    ] {
        assert!(
            echoed(&echo, name).is_empty(),
            "{name} sent under drop: {echo}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_header_is_only_sent_when_enabled() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = simple_gateway(origin.addr());
    let echo = raw_echo(gw.addr("public"), "/", "Forwarded: for=203.0.113.7\r\n").await;
    assert!(echoed(&echo, "forwarded").is_empty(), "{echo}");
    assert_eq!(
        echoed_one(&echo, "x-forwarded-for"),
        "127.0.0.1",
        "rewrite is the default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn via_is_added_to_the_request_and_the_response() {
    let origin = HttpOrigin::start().await.unwrap();
    let config = format!(
        "[server]\nworkers = 1\ndrain_timeout = \"5s\"\nname = \"edge-1\"\n\n{}{}\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        listener("public", ""),
        upstream("origin", &[origin.addr()], "")
    );
    let gw = TestGateway::builder(config).start();
    let resp = within(raw_request_parsed(
        gw.addr("public"),
        b"GET / HTTP/1.1\r\nHost: app.example\r\nVia: 1.1 first-hop\r\n\r\n",
    ))
    .await
    .unwrap();
    assert_eq!(resp.status, 200);
    let vias = resp.header_all("via").join(", ");
    assert_eq!(vias, "1.1 edge-1", "response Via");
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(
        echoed(&echo, "via").join(", "),
        "1.1 first-hop, 1.1 edge-1",
        "request Via"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn via_can_be_turned_off() {
    let origin = HttpOrigin::start().await.unwrap();
    let config = format!(
        "[server]\nworkers = 1\ndrain_timeout = \"5s\"\nvia = false\n\n{}{}\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        listener("public", ""),
        upstream("origin", &[origin.addr()], "")
    );
    let gw = TestGateway::builder(config).start();
    let resp = within(raw_request_parsed(
        gw.addr("public"),
        b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n",
    ))
    .await
    .unwrap();
    assert!(resp.header("via").is_none());
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert!(echoed(&echo, "via").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_is_passed_through_by_default_and_replaced_by_rewrite_host() {
    let origin = HttpOrigin::start().await.unwrap();
    let config = format!(
        "{}{}[[routes]]\nname = \"internal\"\npath_prefix = \"/internal\"\nupstream = \"origin\"\n\
         rewrite = {{ host = \"backend.internal:8443\" }}\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        listener("public", ""),
        upstream("origin", &[origin.addr()], "")
    );
    let gw = TestGateway::builder(config).start();

    let echo = raw_echo(gw.addr("public"), "/x", "").await;
    assert_eq!(echoed_one(&echo, "host"), "app.example");

    let echo = raw_echo(gw.addr("public"), "/internal/x", "").await;
    assert_eq!(echoed_one(&echo, "host"), "backend.internal:8443");
    assert_eq!(
        echoed_one(&echo, "x-forwarded-host"),
        "app.example",
        "the client's host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_rewrites_strip_replace_and_regex_keep_the_query_string() {
    let origin = HttpOrigin::start().await.unwrap();
    let config = format!(
        "{}{}\
         [[routes]]\nname = \"strip\"\npath_prefix = \"/api\"\nupstream = \"origin\"\n\
         rewrite = {{ strip_prefix = \"/api\" }}\n\n\
         [[routes]]\nname = \"replace\"\npath_prefix = \"/v1\"\nupstream = \"origin\"\n\
         rewrite = {{ replace_prefix = {{ from = \"/v1\", to = \"/v2/beta\" }} }}\n\n\
         [[routes]]\nname = \"regex\"\npath_regex = \"^/users/[0-9]+/profile$\"\nupstream = \"origin\"\n\
         rewrite = {{ path_regex = {{ pattern = \"^/users/(?P<id>[0-9]+)/profile$\", replace = \"/profiles/$${{id}}/view\" }} }}\n\n\
         [[routes]]\nname = \"numbered\"\npath_prefix = \"/old\"\nupstream = \"origin\"\n\
         rewrite = {{ path_regex = {{ pattern = \"^/old/([a-z]+)/([a-z]+)\", replace = \"/new/$2/$1\" }} }}\n",
        listener("public", ""),
        upstream("origin", &[origin.addr()], "")
    );
    let gw = TestGateway::builder(config).start();
    let cases = [
        ("/api/users/7?x=1&y=%20z", "/users/7?x=1&y=%20z"),
        ("/api", "/"),
        ("/api?only=query", "/?only=query"),
        ("/v1/items?q=a&q=b", "/v2/beta/items?q=a&q=b"),
        ("/users/42/profile?tab=posts", "/profiles/42/view?tab=posts"),
        ("/old/abc/def?k=v", "/new/def/abc?k=v"),
    ];
    for (sent, expected) in cases {
        let echo = raw_echo(gw.addr("public"), sent, "").await;
        assert_eq!(echo["uri"], expected, "{sent}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_are_resolved_before_routing_and_climbing_above_root_is_refused() {
    let admin = HttpOrigin::start().await.unwrap();
    let api = HttpOrigin::start().await.unwrap();
    let fallback = RecordingOrigin::start().await.unwrap();
    let config = format!(
        "{}{}{}{}\
         [[routes]]\nname = \"admin\"\npath_prefix = \"/admin\"\nupstream = \"admin\"\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"api\"\n\n\
         [[routes]]\nname = \"fallback\"\nupstream = \"fallback\"\n",
        listener("public", ""),
        upstream("admin", &[admin.addr()], ""),
        upstream("api", &[api.addr()], ""),
        upstream("fallback", &[fallback.addr()], "")
    );
    let gw = TestGateway::builder(config).access_log().start();
    let addr = gw.addr("public");

    for (path, normalized) in [
        ("/api/../admin", "/admin"),
        ("/api/%2e%2e/admin", "/admin"),
        ("/api/./../admin/./", "/admin/"),
        ("/api/../admin?keep=1&b=%2F", "/admin?keep=1&b=%2F"),
    ] {
        let echo = raw_echo(addr, path, "").await;
        assert_eq!(echo["uri"], normalized, "{path}");
    }
    assert_eq!(api.requests(), 0, "the /api route never saw them");
    assert_eq!(admin.requests(), 4);

    for path in ["/..", "/../admin", "/api/../../etc/passwd", "/%2e%2e/x"] {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: app.example\r\nAccept: application/json\r\n\r\n");
        let resp = within(raw_request_parsed(addr, request.as_bytes()))
            .await
            .unwrap();
        assert_eq!(resp.status, 400, "{path}: {}", resp.body_text());
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["error"]["code"], "bad_request");
    }
    assert_eq!(admin.requests(), 4);
    assert_eq!(api.requests(), 0);
    assert_eq!(
        fallback.connections(),
        0,
        "a refused path reaches no upstream"
    );
    let lines = gw.access_log_json(8);
    let refused: Vec<&Value> = lines.iter().filter(|l| l["status"] == 400).collect();
    assert_eq!(refused.len(), 4, "{lines:?}");
    assert!(
        refused
            .iter()
            .all(|l| l["reason"] == "bad_request" && l["upstream"].is_null())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_reuse_one_pooled_http1_upstream_connection() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = simple_gateway(origin.addr());
    let addr = gw.addr("public");
    for i in 0..20 {
        // A fresh client connection each time: only the upstream side is pooled.
        let echo = raw_echo(addr, &format!("/seq/{i}"), "").await;
        assert_eq!(
            echo["connection"], 1,
            "request {i} used upstream connection {}",
            echo["connection"]
        );
    }
    // Bodies in both directions, through one keep-alive client connection too.
    let client = client();
    for i in 0..10 {
        let resp = within(
            client
                .post(gw.url("public", "/post"))
                .body(vec![b'x'; 1000 + i])
                .send(),
        )
        .await
        .unwrap();
        let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
        assert_eq!(echo["body_len"], 1000 + i);
        assert_eq!(echo["connection"], 1);
    }
    assert_eq!(origin.connections(), 1);
    assert_eq!(origin.requests(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_upstream_connection_idle_longer_than_idle_timeout_is_not_reused() {
    let origin = HttpOrigin::start().await.unwrap();
    let config = one_route_config(origin.addr(), "idle_timeout = \"200ms\"");
    let gw = TestGateway::builder(config).start();
    let addr = gw.addr("public");
    // Back to back: the second request reuses the first one's connection.
    assert_eq!(raw_echo(addr, "/first", "").await["connection"], 1);
    assert_eq!(raw_echo(addr, "/second", "").await["connection"], 1);
    // Idle for well over `idle_timeout`: that connection has expired and a new one is opened.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(raw_echo(addr, "/third", "").await["connection"], 2);
    assert_eq!(origin.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_its_keep_alive_connection_never_fails_a_request() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = simple_gateway(origin.addr());
    let client = client();
    for i in 0..10 {
        // `/close` answers with `Connection: close`: the next request needs a new connection.
        let path = if i % 2 == 0 { "/close" } else { "/after-close" };
        let resp = within(client.get(gw.url("public", path)).send())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "request {i} to {path}");
        assert!(
            resp.headers()
                .get("connection")
                .is_none_or(|c| c != "close"),
            "hop-by-hop"
        );
        let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
        assert_eq!(echo["uri"], path);
    }
    assert_eq!(origin.requests(), 10);
    // The first `/close` ends connection 1; each later connection carries one request and
    // then the `/close` that ends it; the last carries the final request.
    assert_eq!(origin.connections(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upstream_serves_requests_over_http2() {
    let origin = HttpOrigin::h2c().await.unwrap();
    let gw = simple_gateway_h2c(origin.addr());
    let client = client();
    for i in 0..5 {
        let resp = within(
            client
                .post(gw.url("public", &format!("/h2/{i}?q={i}")))
                .body("abc")
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.version(),
            reqwest::Version::HTTP_11,
            "the client side stays HTTP/1.1"
        );
        let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
        assert_eq!(echo["version"], "HTTP/2.0");
        assert_eq!(echo["method"], "POST");
        assert_eq!(
            echo["uri"],
            format!("http://{}/h2/{i}?q={i}", gw.addr("public"))
        );
        assert_eq!(echo["body_len"], 3);
        assert_eq!(echo["connection"], 1);
    }
    let resp = within(client.get(gw.url("public", "/status/503")).send())
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        503,
        "upstream statuses come back over h2c too"
    );
    assert_eq!(
        resp.headers()["via"],
        "2 rampart",
        "received from the upstream over HTTP/2"
    );

    // HTTP/2 on both sides.
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = within(h2.get(gw.url("public", "/both/h2")).send())
        .await
        .unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.version()),
        (200, reqwest::Version::HTTP_2)
    );
    let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(echoed_one(&echo, "via"), "2 rampart");
    assert_eq!(origin.connections(), 1);
}

fn simple_gateway_h2c(origin: SocketAddr) -> TestGateway {
    TestGateway::builder(one_route_config(origin, "protocol = \"h2c\"")).start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_h2c_upstream_connection() {
    let origin = HttpOrigin::h2c().await.unwrap();
    let gw = simple_gateway_h2c(origin.addr());
    // Many client connections at once against a cold gateway: one upstream connection.
    let mut tasks = Vec::new();
    for i in 0..32 {
        let url = gw.url("public", &format!("/delay/100?i={i}"));
        tasks.push(tokio::spawn(async move {
            let resp = client().get(url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let echo: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
            echo["connection"].as_u64().unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(within(task).await.unwrap(), 1);
    }
    assert_eq!(origin.requests(), 32);
    assert_eq!(
        origin.connections(),
        1,
        "concurrent requests opened extra h2c connections"
    );
}

/// The HTTP/2 client preface followed by an empty SETTINGS frame.
const H2_OPENING: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// Sends `parts` on a new connection to `to`, pausing between them; returns the first bytes
/// of the answer (empty if the connection closed without one).
async fn first_answer(to: SocketAddr, parts: &[&[u8]]) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(to).await.unwrap();
    for part in parts {
        stream.write_all(part).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut answer = vec![0u8; 64];
    let n = within(stream.read(&mut answer)).await.unwrap_or(0);
    answer.truncate(n);
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http2_preface_is_recognised_when_split_and_refused_where_http2_is_off() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = TestGateway::builder(format!(
        "{}{}",
        listener("off", "http2 = false"),
        one_route_config(origin.addr(), "")
    ))
    .start();
    // Split inside the preface: the server still answers with its SETTINGS frame (type 4 on
    // stream 0), so it took the connection for HTTP/2.
    let (a, b) = H2_OPENING.split_at(10);
    let answer = first_answer(gw.addr("public"), &[a, b]).await;
    assert!(answer.len() >= 9, "no HTTP/2 frame: {answer:?}");
    assert_eq!(answer[3], 4, "first frame is SETTINGS: {answer:?}");
    assert_eq!(&answer[5..9], &[0, 0, 0, 0], "on stream 0: {answer:?}");

    // With `http2 = false` the preface is an HTTP/1.1 request hyper refuses: no HTTP/2 frame
    // comes back, and nothing reaches the origin.
    let answer = first_answer(gw.addr("off"), &[H2_OPENING]).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
        "an HTTP/1.1-only listener answered the preface with {answer:?}"
    );
    assert_eq!(origin.requests(), 0);
    let resp = within(client().get(gw.url("off", "/h1")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_clients_and_http1_clients_share_a_port() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = simple_gateway(origin.addr());

    let h2 = reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = within(
        h2.post(gw.url("public", "/over/h2?x=1"))
            .body("ping")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert!(resp.headers().contains_key("x-request-id"));
    let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
    assert_eq!(
        echo["version"], "HTTP/1.1",
        "proxied to the HTTP/1.1 upstream"
    );
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/over/h2?x=1", "origin-form target upstream");
    assert_eq!(echo["body_len"], 4);
    assert_eq!(
        echoed_one(&echo, "host"),
        gw.addr("public").to_string(),
        ":authority becomes Host"
    );
    assert_eq!(echoed_one(&echo, "via"), "2 rampart");

    // Several concurrent streams on the client's one HTTP/2 connection.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let h2 = h2.clone();
        let url = gw.url("public", &format!("/stream/{i}"));
        tasks.push(tokio::spawn(async move {
            h2.get(url).send().await.unwrap().status()
        }));
    }
    for task in tasks {
        assert_eq!(within(task).await.unwrap(), 200);
    }

    let resp = within(client().get(gw.url("public", "/over/h1")).send())
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
    assert_eq!(echo["uri"], "/over/h1");
    assert_eq!(echoed_one(&echo, "via"), "1.1 rampart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_alternates_between_two_targets() {
    let a = HttpOrigin::start().await.unwrap();
    let b = HttpOrigin::start().await.unwrap();
    let config = format!(
        "{}{}[[routes]]\nname = \"all\"\nupstream = \"pair\"\n",
        listener("public", ""),
        upstream("pair", &[a.addr(), b.addr()], "balance = \"round_robin\"")
    );
    let gw = TestGateway::builder(config).start();
    let client = client();
    for _ in 0..10 {
        let resp = within(client.get(gw.url("public", "/rr")).send())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!((a.requests(), b.requests()), (5, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_failure_is_retried_once_on_the_other_target() {
    let dead = free_port_closed().unwrap();
    let live = HttpOrigin::start().await.unwrap();
    let config = format!(
        "{}{}[[routes]]\nname = \"all\"\nupstream = \"pair\"\n",
        listener("public", ""),
        upstream("pair", &[dead, live.addr()], "")
    );
    let gw = TestGateway::builder(config).access_log().start();
    let client = client();
    for i in 0..10 {
        let resp = within(
            client
                .post(gw.url("public", &format!("/retry/{i}")))
                .body("data")
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
        assert_eq!(echo["body_len"], 4, "the body survives the retry");
    }
    assert_eq!(live.requests(), 10);
    let lines = gw.access_log_json(10);
    assert_eq!(lines.len(), 10);
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == 200 && l["upstream_target"] == live.addr().to_string())
    );
    let retried = lines.iter().filter(|l| l["retries"] == 1).count();
    assert!(retried >= 1, "no request was retried: {lines:?}");
    assert!(lines.iter().all(|l| l["retries"] == 0 || l["retries"] == 1));
}

/// Sends `GET path` asking for a JSON error and checks status, body code and request id, and
/// the access log line; returns the log line.
async fn expect_upstream_error(
    gw: &TestGateway,
    path: &str,
    status: u16,
    code: &str,
    route: &str,
    logged_so_far: usize,
) -> Value {
    let resp = within(
        client()
            .get(gw.url("public", path))
            .header("accept", "application/json")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), status, "{path}");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
    assert_eq!(body["error"]["status"], status);
    let line = log_line(gw, &request_id, logged_so_far + 1);
    assert_eq!(body["error"]["code"], code, "{line}");
    assert_eq!(body["error"]["request_id"], request_id.as_str());
    assert_eq!(line["status"], status);
    assert_eq!(line["reason"], code);
    assert_eq!(line["route"], route);
    assert_eq!(
        line["upstream"], route,
        "upstreams are named like their routes here"
    );
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_map_to_502_and_504_with_a_reason_in_the_log() {
    let refused = free_port_closed().unwrap();
    let reset = ScriptedOrigin::start(Behavior::Reset).await.unwrap();
    let garbage = ScriptedOrigin::start(Behavior::Garbage).await.unwrap();
    let hang = ScriptedOrigin::start(Behavior::Hang).await.unwrap();
    let mut config = listener("public", "");
    for (name, addr) in [
        ("refused", refused),
        ("reset", reset.addr()),
        ("garbage", garbage.addr()),
    ] {
        config.push_str(&upstream(name, &[addr], ""));
    }
    config.push_str(&upstream(
        "hang",
        &[hang.addr()],
        "request_timeout = \"300ms\"",
    ));
    config.push_str(&upstream("patient", &[hang.addr()], ""));
    for name in ["refused", "reset", "garbage", "hang"] {
        config.push_str(&format!(
            "[[routes]]\nname = \"{name}\"\npath_prefix = \"/{name}\"\nupstream = \"{name}\"\n\n"
        ));
    }
    // The upstream would wait 60 s; the route's own timeout is shorter and wins.
    config.push_str(
        "[[routes]]\nname = \"patient\"\npath_prefix = \"/patient\"\nupstream = \"patient\"\n\
         timeout = \"300ms\"\n\n",
    );
    let gw = TestGateway::builder(config).access_log().start();

    let line = expect_upstream_error(
        &gw,
        "/refused",
        502,
        "upstream_connect_failed",
        "refused",
        0,
    )
    .await;
    assert_eq!(line["upstream_target"], refused.to_string());
    // The reset can land before the kernel reports the connect as complete (then it is a
    // failed connect) or after (a reset exchange): a 502 either way, with one of those reasons.
    let resp = within(client().get(gw.url("public", "/reset")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let line = log_line(&gw, &request_id, 2);
    assert!(
        line["reason"] == "upstream_reset" || line["reason"] == "upstream_connect_failed",
        "{line}"
    );
    assert_eq!(
        (&line["status"], &line["route"], &line["upstream"]),
        (&502.into(), &"reset".into(), &"reset".into())
    );
    expect_upstream_error(&gw, "/garbage", 502, "upstream_bad_response", "garbage", 2).await;
    expect_upstream_error(&gw, "/hang", 504, "upstream_timeout", "hang", 3).await;
    expect_upstream_error(&gw, "/patient", 504, "upstream_timeout", "patient", 4).await;
    assert!(reset.connections() >= 1 && garbage.connections() >= 1 && hang.connections() >= 1);

    // The error text never leaks internal detail (addresses, error chains).
    let resp = within(client().get(gw.url("public", "/refused")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let text = within(resp.text()).await.unwrap();
    assert!(text.starts_with("502 Bad Gateway"), "{text}");
    assert!(!text.contains(&refused.port().to_string()), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_loopback_listener_serves_requests() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        println!("note: no IPv6 loopback on this machine; skipping the IPv6 listener test");
        return;
    }
    let origin = HttpOrigin::start().await.unwrap();
    let config = format!(
        "[[listeners]]\nname = \"v6\"\nbind = \"[::1]:0\"\nforwarded = true\n\n{}\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        upstream("origin", &[origin.addr()], "")
    );
    let gw = TestGateway::builder(config).start();
    let addr = gw.addr("v6");
    assert!(addr.is_ipv6() && addr.port() != 0, "{addr}");
    let resp = within(client().get(gw.url("v6", "/six?x=1")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
    assert_eq!(echo["uri"], "/six?x=1");
    assert_eq!(echoed_one(&echo, "x-forwarded-for"), "::1");
    assert_eq!(
        echoed_one(&echo, "forwarded"),
        format!("for=\"[::1]\";proto=http;host=\"{addr}\"")
    );

    // An IPv6 literal target, served by a minimal origin on [::1].
    let v6_origin = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let v6_addr = v6_origin.local_addr().unwrap();
    let served = tokio::spawn(async move {
        let (mut stream, _) = v6_origin.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            assert_ne!(stream.read_buf(&mut head).await.unwrap(), 0);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nv6")
            .await
            .unwrap();
        String::from_utf8_lossy(&head).into_owned()
    });
    let config = format!(
        "{}{}[[routes]]\nname = \"all\"\nupstream = \"v6\"\n",
        listener("public", ""),
        upstream("v6", &[v6_addr], "")
    );
    let gw = TestGateway::builder(config).start();
    let resp = within(client().get(gw.url("public", "/to-v6")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(within(resp.text()).await.unwrap(), "v6");
    let head = within(served).await.unwrap();
    assert!(head.starts_with("GET /to-v6 HTTP/1.1\r\n"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_can_be_restricted_to_some_listeners() {
    let origin = HttpOrigin::start().await.unwrap();
    let config = format!(
        "{}{}{}\
         [[routes]]\nname = \"admin\"\nlisteners = [\"internal\"]\npath_prefix = \"/admin\"\n\
         upstream = \"origin\"\n\n\
         [[routes]]\nname = \"hello-public\"\nlisteners = [\"public\"]\npath = \"/hello\"\n\
         respond = {{ status = 200, body = \"public\" }}\n\n\
         [[routes]]\nname = \"hello-internal\"\nlisteners = [\"internal\"]\npath = \"/hello\"\n\
         respond = {{ status = 200, body = \"internal\" }}\n\n\
         [[routes]]\nname = \"everywhere\"\npath = \"/both\"\nrespond = {{ status = 200, body = \"both\" }}\n",
        listener("public", ""),
        listener("internal", ""),
        upstream("origin", &[origin.addr()], "")
    );
    let gw = TestGateway::builder(config).access_log().start();
    let client = client();
    let get = |listener: &str, path: &str| {
        let req = client.get(gw.url(listener, path));
        async move {
            let resp = within(req.send()).await.unwrap();
            (resp.status().as_u16(), within(resp.text()).await.unwrap())
        }
    };
    assert_ne!(gw.addr("public"), gw.addr("internal"));
    assert_eq!(get("public", "/hello").await, (200, "public".to_owned()));
    assert_eq!(
        get("internal", "/hello").await,
        (200, "internal".to_owned())
    );
    assert_eq!(get("public", "/both").await.0, 200);
    assert_eq!(get("internal", "/both").await.0, 200);
    assert_eq!(get("public", "/admin/x").await.0, 404);
    assert_eq!(
        origin.requests(),
        0,
        "the public listener never reaches the admin upstream"
    );
    assert_eq!(get("internal", "/admin/x").await.0, 200);
    assert_eq!(origin.requests(), 1);

    let lines = gw.access_log_json(6);
    assert_eq!(lines.len(), 6);
    let listeners: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["listener"].as_str().unwrap(),
                l["route"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert!(
        listeners.contains(&("public", "hello-public")),
        "{listeners:?}"
    );
    assert!(
        listeners.contains(&("internal", "hello-internal")),
        "{listeners:?}"
    );
    assert!(listeners.contains(&("public", "-")), "{listeners:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_request_cancelled_by_the_client_is_logged_and_frees_the_connection() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let origin = HttpOrigin::start().await.unwrap();
    let config = format!(
        "[timeouts]\nkeepalive = \"500ms\"\n\n{}",
        one_route_config(origin.addr(), "")
    );
    let gw = TestGateway::builder(config).access_log().start();
    let stream = within(tokio::net::TcpStream::connect(gw.addr("public")))
        .await
        .unwrap();
    let (mut sender, conn) = within(hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(stream),
    ))
    .await
    .unwrap();
    let conn = tokio::spawn(conn);

    let request = http::Request::get(gw.url("public", "/delay/3000"))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let pending = tokio::spawn(sender.send_request(request));
    within(async {
        while origin.requests() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // Dropping the response future resets the stream (RST_STREAM CANCEL).
    pending.abort();

    let lines = gw.access_log_json(1);
    assert_eq!(
        lines.len(),
        1,
        "no access log line for the cancelled request"
    );
    assert_eq!(lines[0]["completed"], false, "{}", lines[0]);
    assert_eq!(lines[0]["status"], 499, "logged as closed by the client");
    assert_eq!(lines[0]["route"], "all");
    // With nothing in flight the connection is idle: the keep-alive timeout closes it.
    within(conn).await.unwrap().unwrap();
}

/// How a test client leaves.
#[derive(Clone, Copy)]
enum Leave {
    /// Close normally (FIN).
    Close,
    /// Reset the connection (RST).
    Reset,
}

/// Sends `parts` on one HTTP/1 connection (50 ms apart) for a request the origin answers after
/// 3 s, leaves the way `leave` says once the request reached the origin, and returns the
/// request's access log line.
async fn log_of_request_left_by(parts: &[&[u8]], leave: Leave) -> Value {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = simple_gateway(origin.addr());
    let mut conn = within(RawConnection::connect(gw.addr("public")))
        .await
        .unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        within(conn.send(part)).await.unwrap();
    }
    within(async {
        while origin.requests() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    match leave {
        Leave::Close => drop(conn),
        Leave::Reset => conn.reset().unwrap(),
    }
    let mut lines = gw.access_log_json(1);
    assert_eq!(
        lines.len(),
        1,
        "no access log line for the abandoned request"
    );
    lines.remove(0)
}

/// [`log_of_request_left_by`], checking the line says the client closed the request (499,
/// not completed).
async fn log_of_request_abandoned_by(parts: &[&[u8]], leave: Leave) -> Value {
    let line = log_of_request_left_by(parts, leave).await;
    assert_eq!(
        (&line["status"], &line["completed"]),
        (&499.into(), &false.into()),
        "{line}"
    );
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_client_closing_inside_its_body_is_logged() {
    // A client that ends its side after a whole request has only half-closed and is answered
    // (see `half_close`); one that ends it inside the body cut the request short.
    let line = log_of_request_left_by(
        &[
            b"POST /delay/3000 HTTP/1.1\r\nHost: app.example\r\nContent-Length: 10\r\n\r\n",
            b"hello",
        ],
        Leave::Close,
    )
    .await;
    assert_eq!(
        (&line["status"], &line["reason"]),
        (&400.into(), &"client_body_error".into()),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_client_resetting_mid_request_is_logged() {
    let line = log_of_request_abandoned_by(
        &[b"GET /delay/3000 HTTP/1.1\r\nHost: app.example\r\n\r\n"],
        Leave::Reset,
    )
    .await;
    assert_eq!(line["uri"], "/delay/3000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_client_resetting_after_sending_its_body_is_logged() {
    // The body arrives after the head: the client is watched again once it has been read.
    log_of_request_abandoned_by(
        &[
            b"POST /delay/3000 HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\n",
            b"hello",
        ],
        Leave::Reset,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests_and_refuses_new_connections() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = simple_gateway(origin.addr());
    let addr = gw.addr("public");
    let slow = tokio::spawn(async move {
        let mut conn = RawConnection::connect(addr).await.unwrap();
        conn.send(b"GET /delay/1500 HTTP/1.1\r\nHost: app.example\r\n\r\n")
            .await
            .unwrap();
        conn.read_response().await
    });
    within(async {
        while origin.requests() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    let shutdown = tokio::task::spawn_blocking(move || gw.shutdown());
    // The listening sockets close as soon as shutdown starts: new connections are refused.
    within(async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    let resp = within(slow)
        .await
        .unwrap()
        .expect("the in-flight request was cut off");
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["uri"], "/delay/1500");
    within(shutdown).await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

//! Header handling: hop-by-hop removal both ways, `X-Forwarded-*` modes, `Forwarded` and `Via`.

use rampart_testkit::{
    Behavior, HttpOrigin, RecordingOrigin, ScriptedOrigin, TestGateway, raw_request_parsed,
};
use serde_json::Value;

use super::{echoed, echoed_one, listener, raw_echo, simple_gateway, upstream};
use crate::support::{WAIT, within};

/// The request head of a recorded request, lowercased.
fn head_of(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
    text.split("\r\n\r\n").next().unwrap().to_owned()
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

/// Each hop-by-hop header alone in an upstream's response (so no other one marks the response
/// for removal) still never reaches the client; end-to-end headers of the same response do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hop_by_hop_header_alone_is_removed_from_the_response() {
    let cases: [(&str, &str); 6] = [
        ("te", "TE: gzip\r\n"),
        ("upgrade", "Upgrade: h2c\r\n"),
        ("proxy-connection", "Proxy-Connection: keep-alive\r\n"),
        (
            "proxy-authenticate",
            "Proxy-Authenticate: Basic realm=\"inner\"\r\n",
        ),
        (
            "x-named-hop",
            "Connection: X-Named-Hop\r\nX-Named-Hop: secret\r\n",
        ),
        ("keep-alive", "Keep-Alive: timeout=5\r\n"),
    ];
    let script = cases
        .iter()
        .map(|(_, fields)| {
            Behavior::Respond(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{fields}X-End-To-End: kept\r\n\r\nok"
                )
                .into_bytes(),
            )
        })
        .collect();
    let origin = ScriptedOrigin::with_script(script).await.unwrap();
    let gw = simple_gateway(origin.addr());
    for (gone, _) in cases {
        let resp = within(raw_request_parsed(
            gw.addr("public"),
            b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n",
        ))
        .await
        .unwrap();
        assert_eq!(resp.status, 200, "{gone}: {}", resp.body_text());
        assert!(
            resp.header(gone).is_none(),
            "{gone} reached the client: {:?}",
            resp.headers
        );
        assert_eq!(resp.header("x-end-to-end"), Some("kept"), "{gone}");
    }
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

//! HTTP/2: h2c upstreams and their shared connection, and the client preface on listeners.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_testkit::{HttpOrigin, TestGateway, reqwest};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{echoed_one, listener, one_route_config, simple_gateway};
use crate::support::{WAIT, client, within};

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

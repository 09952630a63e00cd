//! Upstream connection reuse: pooled HTTP/1 connections reused, replaced and idled out.

use std::time::Duration;

use rampart_testkit::{Behavior, HttpOrigin, ScriptedOrigin, TestGateway};
use serde_json::Value;

use super::{one_route_config, raw_echo, simple_gateway};
use crate::support::{client, within};

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

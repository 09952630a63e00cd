//! QUIC paths and admission: a client that moves to another port keeps its connection (and
//! the identity it opened with); `retry = "always"` validates addresses with Retry; the
//! per-IP connection cap counts QUIC connections.

use std::time::{Duration, Instant};

use rampart_testkit::{HttpOrigin, TestPki};

use super::client::{H3Client, WAIT, client_crypto, endpoint};
use super::gateway;

/// Waits (bounded) until the gateway's metrics contain `line`.
async fn metric_appears(gw: &rampart_testkit::TestGateway, line: &str) {
    let deadline = Instant::now() + WAIT;
    while !gw.handle().metrics_text().contains(line) {
        assert!(Instant::now() < deadline, "metric {line:?} never appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_client_that_changes_its_port_keeps_its_connection_and_its_first_identity() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let gw = gateway(&pki, origin.addr(), "", "");
    let mut client = H3Client::connect(gw.addr("h3"), &pki, "h3.test").await;
    let before = client.conn.local_ip();
    assert_eq!(client.get("h3.test", "/before-move").await.status(), 200);
    let old_port = client.endpoint.local_addr().unwrap().port();
    client
        .endpoint
        .rebind(std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .unwrap();
    assert_ne!(client.endpoint.local_addr().unwrap().port(), old_port);
    let answer = client.get("h3.test", "/after-move").await;
    assert_eq!(answer.status(), 200, "the migrated connection is served");
    assert_eq!(client.conn.local_ip(), before);
    client.close().await;
    metric_appears(&gw, "rampart_quic_migrations_total 1").await;
    // Both requests are logged with the address the connection was opened from.
    let lines = gw.access_log_json(2);
    let peers: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["uri"].as_str().is_some_and(|u| u.contains("-move")))
        .map(|l| &l["client_ip"])
        .collect();
    assert_eq!(peers.len(), 2, "{lines:?}");
    assert_eq!(peers[0], peers[1]);
}

#[tokio::test]
async fn retry_always_validates_addresses_and_the_per_ip_cap_counts_quic_connections() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let gw = gateway(
        &pki,
        origin.addr(),
        "retry = \"always\"",
        "\n[limits]\nmax_connections_per_ip = 1\n",
    );
    let addr = gw.addr("h3");
    let mut first = H3Client::connect(addr, &pki, "h3.test").await;
    assert_eq!(first.get("h3.test", "/one").await.status(), 200);
    metric_appears(&gw, "rampart_quic_retries_total 1").await;
    let refused = H3Client::connect_with(endpoint(client_crypto(&pki)), addr, "h3.test").await;
    let Err(why) = refused else {
        panic!("a second connection from the same IP was accepted");
    };
    assert!(why.contains("refused"), "{why}");
    metric_appears(&gw, "rampart_quic_handshakes_total{result=\"refused\"} 1").await;
    first.close().await;
    // Once the first connection is gone, its place is free again (bounded retries).
    let deadline = Instant::now() + WAIT;
    let mut again = loop {
        match H3Client::connect_with(endpoint(client_crypto(&pki)), addr, "h3.test").await {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "never served again: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(again.get("h3.test", "/two").await.status(), 200);
    again.close().await;
}

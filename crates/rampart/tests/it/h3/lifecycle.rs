//! HTTP/3 across config changes: a reload keeps open QUIC connections and their requests;
//! `rampart check` refuses HTTP/3 without TLS, pointing at the key.

use rampart_testkit::{HttpOrigin, TestPki};

use super::client::{H3Client, WAIT, request};
use super::gateway;
use crate::support::TempDir;

#[tokio::test]
async fn a_reload_keeps_open_connections_and_in_flight_requests() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let gw = gateway(&pki, origin.addr(), "", "");
    let mut client = H3Client::connect(gw.addr("h3"), &pki, "h3.test").await;
    assert_eq!(client.get("h3.test", "/before").await.status(), 200);
    let mut slow = client
        .send
        .send_request(request("GET", "h3.test", "/delay/700"))
        .await
        .unwrap();
    slow.finish().await.unwrap();
    let cert = pki.server("h3", &["h3.test"]);
    let next = format!(
        "[[listeners]]\nname = \"h3\"\nbind = \"127.0.0.1:0\"\n[listeners.http3]\nmax_concurrent_streams = 50\n\
         [listeners.tls]\n[[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"renamed\"\nupstream = \"origin\"\n",
        cert.cert,
        cert.key,
        origin.addr()
    );
    let report = gw.handle().reload_str(&next).unwrap();
    assert!(report.listeners_added.is_empty(), "{report:?}");
    let head = slow.recv_response().await.unwrap();
    assert_eq!(head.status(), 200, "the in-flight request finished");
    assert_eq!(client.get("h3.test", "/after").await.status(), 200);
    client.close().await;
    let lines = gw.access_log_json(3);
    let after = lines
        .iter()
        .find(|l| l["uri"].as_str().is_some_and(|u| u.ends_with("/after")))
        .unwrap();
    assert_eq!(
        after["route"], "renamed",
        "the same connection runs on the new config"
    );
}

#[test]
fn check_refuses_http3_without_tls_at_the_key() {
    let dir = TempDir::new("h3");
    let path = dir.file(
        "h3.toml",
        "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\n\n[listeners.http3]\nalt_svc = true\n\n[[routes]]\nname = \"r\"\necho = true\n",
    );
    let out = crate::cli::run_cli(&["check", "-c", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("needs `[listeners.tls]`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("h3.toml:5:") || out.stderr.contains("h3.toml:6:"),
        "points at the http3 table's key: {}",
        out.stderr
    );
}

/// The gateway's config (listener `h3` kept on its port) with or without `[listeners.http3]`.
fn config(pki: &TestPki, origin: std::net::SocketAddr, h3: bool) -> String {
    let cert = pki.server("h3", &["h3.test"]);
    let http3 = if h3 { "[listeners.http3]\n" } else { "" };
    format!(
        "[[listeners]]\nname = \"h3\"\nbind = \"127.0.0.1:0\"\n{http3}\
         [listeners.tls]\n[[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        cert.cert, cert.key
    )
}

#[tokio::test]
async fn a_reload_turns_http3_off_gracefully_and_on_again_on_the_same_port() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let gw = gateway(&pki, origin.addr(), "", "");
    let addr = gw.addr("h3");
    let mut client = H3Client::connect(addr, &pki, "h3.test").await;
    assert_eq!(client.get("h3.test", "/on").await.status(), 200);
    gw.handle()
        .reload_str(&config(&pki, origin.addr(), false))
        .unwrap();
    // GOAWAY, then the idle connection closes without error.
    client.assert_closed_with(0x100, "H3_NO_ERROR", "").await;
    // The port is free once the old endpoint's connections finished closing (bounded).
    let deadline = std::time::Instant::now() + WAIT;
    while let Err(e) = gw.handle().reload_str(&config(&pki, origin.addr(), true)) {
        assert!(e.contains("UDP"), "{e}");
        assert!(std::time::Instant::now() < deadline, "{e}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut again = H3Client::connect(addr, &pki, "h3.test").await;
    assert_eq!(again.get("h3.test", "/on-again").await.status(), 200);
    again.close().await;
}

//! TLS from Rampart to upstreams: verification against a configured CA, SNI, HTTP/2 by ALPN,
//! client certificates, connection reuse, and clear failures (502 `upstream_tls_failed`).

use std::sync::Arc;

use rampart_testkit::certs::TestPki;
use rampart_testkit::{HttpOrigin, TestGateway};
use serde_json::Value;

use crate::support::client;

/// A gateway with one route to `origin` over TLS, `tls` being the `[upstreams.tls]` body.
fn gateway(origin: std::net::SocketAddr, protocol: &str, tls: &str) -> TestGateway {
    TestGateway::builder(format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"secure\"\ntargets = [\"{origin}\"]\nprotocol = \"{protocol}\"\n\
         [upstreams.tls]\n{tls}\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"secure\"\n"
    ))
    .access_log()
    .start()
}

async fn get(gw: &TestGateway, path: &str) -> (u16, String) {
    let resp = client().get(gw.url("public", path)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_over_tls_is_verified_against_the_configured_ca_and_reused() {
    let pki = TestPki::new();
    let server = pki.server("origin", &["origin.test", "127.0.0.1"]);
    let origin = HttpOrigin::tls(Arc::new(pki.server_config(&server, &[b"http/1.1"], false)))
        .await
        .unwrap();
    let gw = gateway(origin.addr(), "http1", &format!("ca = {:?}", pki.ca_path));
    for i in 0..5 {
        let (status, body) = get(&gw, &format!("/hello/{i}")).await;
        assert_eq!(status, 200, "{body}");
        let echo: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(echo["uri"], format!("/hello/{i}"));
        assert_eq!(echo["version"], "HTTP/1.1");
    }
    assert_eq!(
        origin.connections(),
        1,
        "one TLS connection carried every request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_is_negotiated_by_alpn() {
    let pki = TestPki::new();
    let server = pki.server("origin", &["127.0.0.1"]);
    let origin = HttpOrigin::tls(Arc::new(pki.server_config(&server, &[b"h2"], false)))
        .await
        .unwrap();
    let gw = gateway(origin.addr(), "h2", &format!("ca = {:?}", pki.ca_path));
    let (status, body) = get(&gw, "/grpc-like").await;
    assert_eq!(status, 200, "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["version"], "HTTP/2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_upstream_certificate_is_a_502_with_a_reason() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let server = pki.server("origin", &["127.0.0.1"]);
    let origin = HttpOrigin::tls(Arc::new(pki.server_config(&server, &[b"http/1.1"], false)))
        .await
        .unwrap();
    let gw = gateway(origin.addr(), "http1", &format!("ca = {:?}", other.ca_path));
    let (status, body) = get(&gw, "/").await;
    assert_eq!(status, 502, "{body}");
    let log = gw.access_log_json(1);
    assert_eq!(log[0]["reason"], "upstream_tls_failed", "{log:?}");
    assert!(
        !body.contains(&origin.addr().port().to_string()),
        "no internal detail: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sni_name_can_be_set_for_ip_targets() {
    let pki = TestPki::new();
    let server = pki.server("origin", &["origin.internal"]);
    let origin = HttpOrigin::tls(Arc::new(pki.server_config(&server, &[b"http/1.1"], false)))
        .await
        .unwrap();
    let without = gateway(origin.addr(), "http1", &format!("ca = {:?}", pki.ca_path));
    assert_eq!(
        get(&without, "/").await.0,
        502,
        "the certificate does not cover the IP"
    );
    let with = gateway(
        origin.addr(),
        "http1",
        &format!("ca = {:?}\nserver_name = \"origin.internal\"", pki.ca_path),
    );
    assert_eq!(get(&with, "/").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_presented_when_configured() {
    let pki = TestPki::new();
    let server = pki.server("origin", &["127.0.0.1"]);
    let (client_cert, _) = pki.client("gateway", "rampart-gateway", &[]);
    let origin = HttpOrigin::tls(Arc::new(pki.server_config(&server, &[b"http/1.1"], true)))
        .await
        .unwrap();
    let without = gateway(origin.addr(), "http1", &format!("ca = {:?}", pki.ca_path));
    assert_eq!(
        get(&without, "/").await.0,
        502,
        "the origin requires a client certificate"
    );
    let log = without.access_log_json(1);
    assert_eq!(
        log[0]["reason"], "upstream_tls_failed",
        "a refused handshake is a TLS failure, not a reset: {log:?}"
    );
    assert!(
        log[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("CertificateRequired")),
        "{log:?}"
    );
    let with = gateway(
        origin.addr(),
        "http1",
        &format!(
            "ca = {:?}\nclient_cert = {:?}\nclient_key = {:?}",
            pki.ca_path, client_cert.cert, client_cert.key
        ),
    );
    let (status, body) = get(&with, "/mtls").await;
    assert_eq!(status, 200, "{body}");
}

#[test]
fn h2_without_tls_and_h2c_with_tls_are_config_errors() {
    let h2 = "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n[[upstreams]]\nname = \"u\"\ntargets = [\"127.0.0.1:1\"]\nprotocol = \"h2\"\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n";
    let err = rampart_config::load_str(h2, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"h2\" is HTTP/2 over TLS"), "{err}");
    let h2c = h2.replace(
        "protocol = \"h2\"",
        "protocol = \"h2c\"\n[upstreams.tls]\ninsecure_skip_verify = true",
    );
    let err = rampart_config::load_str(&h2c, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("use \"h2\""), "{err}");
}

//! Client certificates: mTLS forwarding the verified certificate (and stripping spoofed
//! headers), and a route's `client_cert = { required = true }` answering 403 without one.

use std::sync::Arc;
use std::time::Duration;

use rampart_testkit::{HttpOrigin, TestGateway, TestPki};

use super::{get, https, status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_can_require_any_verified_client_certificate() {
    let pki = TestPki::new();
    let server = pki.server("s", &["s.test"]);
    let (alice, _) = pki.client("alice", "alice", &[]);
    let (bob, _) = pki.client("bob", "bob", &[]);
    let origin = HttpOrigin::start().await.unwrap();
    let gw = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "https"
bind = "127.0.0.1:0"
[listeners.tls]
client_auth = "optional"
client_ca = {ca:?}
[[listeners.tls.certificates]]
cert = {cert:?}
key = {key:?}

[[upstreams]]
name = "origin"
targets = ["{origin}"]

[[routes]]
name = "members"
path_prefix = "/members"
upstream = "origin"
client_cert = {{ required = true }}

[[routes]]
name = "public"
upstream = "origin"
"#,
        ca = pki.ca_path,
        cert = server.cert,
        key = server.key,
        origin = origin.addr(),
    ))
    .start();
    let addr = gw.addr("https");
    let alice = Arc::new(pki.client_config_with_cert(&[], &alice));
    let bob = Arc::new(pki.client_config_with_cert(&[], &bob));
    let anonymous = Arc::new(pki.client_config(&[]));
    tokio::task::spawn_blocking(move || {
        for who in [&alice, &bob] {
            let (resp, _) = https(addr, who, "s.test", &get("s.test", "/members/1")).unwrap();
            assert_eq!(status(&resp), 200, "{resp}");
        }
        let (resp, _) = https(addr, &anonymous, "s.test", &get("s.test", "/members/1")).unwrap();
        assert_eq!(status(&resp), 403, "{resp}");
        let (resp, _) = https(addr, &anonymous, "s.test", &get("s.test", "/open")).unwrap();
        assert_eq!(status(&resp), 200, "{resp}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_forwards_the_verified_certificate_and_strips_spoofed_headers() {
    let pki = TestPki::new();
    let server = pki.server("s", &["s.test"]);
    let (alice, _) = pki.client("alice", "alice", &["alice.test"]);
    let (mallory, mallory_serial) = pki.client("mallory", "mallory", &[]);
    let crl = pki.crl("revoked.crl", &[mallory_serial]);
    let origin = HttpOrigin::start().await.unwrap();
    let alice_fp = aws_lc_rs_sha256(alice.der.as_ref());
    let gw = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "https"
bind = "127.0.0.1:0"
[listeners.tls]
client_auth = "required"
client_ca = {ca:?}
client_crl = [{crl:?}]
[[listeners.tls.certificates]]
cert = {:?}
key = {:?}

[[upstreams]]
name = "origin"
targets = ["{origin}"]

[[routes]]
name = "alice-only"
path_prefix = "/alice"
upstream = "origin"
client_cert = {{ fingerprints = ["{alice_fp}"] }}

[[routes]]
name = "subject"
path_prefix = "/subject"
upstream = "origin"
client_cert = {{ subjects = ["CN=nobody, O=Rampart Tests"] }}

[[routes]]
name = "any"
upstream = "origin"
"#,
        server.cert,
        server.key,
        ca = pki.ca_path,
        origin = origin.addr(),
    ))
    .start();
    let addr = gw.addr("https");
    let alice_cfg = Arc::new(pki.client_config_with_cert(&[], &alice));
    let no_cert = Arc::new(pki.client_config(&[]));
    let mallory_cfg = Arc::new(pki.client_config_with_cert(&[], &mallory));
    tokio::task::spawn_blocking(move || {
        let spoof = "GET /x HTTP/1.1\r\nhost: s.test\r\nx-client-cert-sha256: forged\r\nx-client-cert-subject: CN=admin\r\nconnection: close\r\n\r\n";
        let (resp, _) = https(addr, &alice_cfg, "s.test", spoof).unwrap();
        assert_eq!(status(&resp), 200, "{resp}");
        assert!(resp.contains(&alice_fp), "{resp}");
        assert!(!resp.contains("forged") && !resp.contains("CN=admin"), "{resp}");
        assert!(resp.contains("CN=alice"), "{resp}");
        assert!(resp.contains("DNS:alice.test"), "{resp}");
        let (resp, _) = https(addr, &alice_cfg, "s.test", &get("s.test", "/alice/1")).unwrap();
        assert_eq!(status(&resp), 200, "{resp}");
        let (resp, _) = https(addr, &alice_cfg, "s.test", &get("s.test", "/subject")).unwrap();
        assert_eq!(status(&resp), 403, "{resp}");
        // No certificate, or a revoked one: the handshake fails (TLS 1.3 reports it on read),
        // and the client is told why by the server's alert.
        for (cfg, alert) in [(&no_cert, "CertificateRequired"), (&mallory_cfg, "CertificateRevoked")] {
            match https(addr, cfg, "s.test", &get("s.test", "/x")) {
                Ok((resp, _)) => panic!("served without a valid certificate: {resp}"),
                Err(e) => assert!(e.to_string().contains(&format!("received fatal alert: {alert}")), "{e}"),
            }
        }
    })
    .await
    .unwrap();
    // The client sees the alert before the server's task has counted the failure: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.tls_stats().failures_for("client_certificate") < 2
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        gw.tls_stats().failures_for("client_certificate") >= 2,
        "{:?}",
        gw.tls_stats()
    );
}

fn aws_lc_rs_sha256(der: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut hasher_out = String::new();
    let digest = rustls::crypto::aws_lc_rs::default_provider()
        .cipher_suites
        .iter()
        .find(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        .map(|s| s.tls13().unwrap().common.hash_provider.hash(der))
        .unwrap();
    for b in digest.as_ref() {
        let _ = write!(hasher_out, "{b:02x}");
    }
    hasher_out
}

//! TLS handshakes: versions, ALPN, SNI, default cert, key types, fail-closed files, metrics.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rampart_testkit::{TestGateway, TestPki};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use super::{a_test_echo_gateway, compile_errors, echo_gateway, get, https, leaf_dns, status};

#[test]
fn terminates_tls13_and_tls12_with_alpn_and_sni() {
    let pki = TestPki::new();
    let gw = echo_gateway(&pki, "");
    let addr = gw.addr("https");
    let config = Arc::new(pki.client_config(&[b"http/1.1"]));
    let (resp, conn) = https(addr, &config, "a.test", &get("a.test", "/x")).unwrap();
    assert_eq!(status(&resp), 200, "{resp}");
    assert!(
        resp.contains("\"scheme\":\"https\"") || resp.contains("https"),
        "{resp}"
    );
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert!(leaf_dns(&conn).contains("a.test"));

    // SNI picks the certificate: exact name, then a one-label wildcard.
    let (_, conn) = https(addr, &config, "b.test", &get("b.test", "/")).unwrap();
    assert!(leaf_dns(&conn).contains("b.test"));
    let (resp, conn) = https(addr, &config, "x.wild.test", &get("x.wild.test", "/")).unwrap();
    assert_eq!(status(&resp), 200);
    assert!(leaf_dns(&conn).contains("wild.test"));

    // No certificate for this name and no default: the handshake fails.
    assert!(https(addr, &config, "nope.test", &get("nope.test", "/")).is_err());

    // TLS 1.2 (ECDHE + AEAD) is served by default.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der()).unwrap();
    let tls12 = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let (resp, conn) = https(addr, &Arc::new(tls12), "a.test", &get("a.test", "/")).unwrap();
    assert_eq!(status(&resp), 200);
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );

    let stats = gw.tls_stats();
    assert!(stats.handshakes() >= 4, "{stats:?}");
    assert!(stats.failures_for("no_certificate") >= 1, "{stats:?}");
    assert_eq!(stats.certificate_expiry.len(), 2, "{stats:?}");
}

#[test]
fn a_default_certificate_serves_unknown_names_and_h2_is_negotiated() {
    let pki = TestPki::new();
    let c = pki.server("c", &["c.test", "other.test"]);
    let gw = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "https"
bind = "127.0.0.1:0"
[[listeners.tls.certificates]]
cert = {:?}
key = {:?}
names = ["c.test"]
default = true
[[routes]]
name = "echo"
echo = true
"#,
        c.cert, c.key
    ))
    .start();
    let config = Arc::new(pki.client_config(&[b"h2", b"http/1.1"]));
    let tcp = TcpStream::connect(gw.addr("https")).unwrap();
    let mut conn =
        ClientConnection::new(config, ServerName::try_from("other.test").unwrap()).unwrap();
    let mut tcp = tcp;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
}

#[test]
fn every_key_type_is_served() {
    use rampart_testkit::KeyKind;
    for kind in [
        KeyKind::EcdsaP256,
        KeyKind::EcdsaP384,
        KeyKind::Ed25519,
        KeyKind::Rsa,
    ] {
        let pki = TestPki::new();
        let c = pki.server_with("k", &["k.test"], kind);
        let gw = TestGateway::builder(format!(
            "[[listeners]]\nname = \"https\"\nbind = \"127.0.0.1:0\"\n[[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n[[routes]]\nname = \"echo\"\necho = true\n",
            c.cert, c.key
        ))
        .start();
        let config = Arc::new(pki.client_config(&[]));
        let (resp, _) = https(gw.addr("https"), &config, "k.test", &get("k.test", "/")).unwrap();
        assert_eq!(status(&resp), 200, "{kind:?}");
    }
}

#[test]
fn broken_files_fail_closed_with_the_file_named() {
    let pki = TestPki::new();
    let good = pki.server("good", &["g.test"]);
    let expired = pki.expired("old", &["g.test"]);
    let wrong = pki.wrong_key("wrong", &["g.test"]);
    let listener = |cert: &str, key: &str, extra: &str| {
        format!(
            "[[listeners]]\nname = \"https\"\nbind = \"127.0.0.1:0\"\n[listeners.tls]\n{extra}\n[[listeners.tls.certificates]]\ncert = {cert:?}\nkey = {key:?}\n[[routes]]\nname = \"echo\"\necho = true\n"
        )
    };
    assert_eq!(compile_errors(&listener(&good.cert, &good.key, "")), "");
    let e = compile_errors(&listener("/missing/cert.pem", &good.key, ""));
    assert!(
        e.contains("certificate file \"/missing/cert.pem\": cannot read"),
        "{e}"
    );
    assert!(e.contains("tls.toml:"), "{e}");
    let e = compile_errors(&listener(&expired.cert, &expired.key, ""));
    assert!(e.contains("expired on"), "{e}");
    assert!(e.contains(&expired.cert), "{e}");
    let e = compile_errors(&listener(&wrong.cert, &wrong.key, ""));
    assert!(e.contains("does not match the certificate"), "{e}");
    // A misspelled CA path never yields a listener that accepts any client.
    let e = compile_errors(&listener(
        &good.cert,
        &good.key,
        "client_auth = \"required\"\nclient_ca = \"/missing/ca.pem\"",
    ));
    assert!(
        e.contains("CA file \"/missing/ca.pem\": cannot read"),
        "{e}"
    );
    let e = compile_errors(&listener(
        &good.cert,
        &good.key,
        "client_auth = \"required\"",
    ));
    assert!(e.contains("`client_ca`"), "{e}");
    let e = compile_errors(&listener(
        &good.cert,
        &good.key,
        &format!("client_ca = {:?}", pki.ca_path),
    ));
    assert!(e.contains("client_auth"), "{e}");
    // A key file that is not PEM at all.
    std::fs::write(pki.path("junk.key"), "not a key").unwrap();
    let e = compile_errors(&listener(&good.cert, &pki.path("junk.key"), ""));
    assert!(e.contains("junk.key"), "{e}");
}

#[test]
fn handshakes_are_exported_by_version_cipher_and_alpn() {
    let pki = TestPki::new();
    let gw = a_test_echo_gateway(&pki, "[admin]\nlisten = \"127.0.0.1:0\"\n", "");
    let mut config = pki.client_config(&[]);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (resp, _) = https(
        gw.addr("https"),
        &Arc::new(config),
        "a.test",
        &get("a.test", "/"),
    )
    .unwrap();
    assert_eq!(status(&resp), 200, "{resp}");
    let url = gw.admin_url("/metrics");
    let admin = url.trim_start_matches("http://").split('/').next().unwrap();
    let mut stream = TcpStream::connect(admin).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("rampart_tls_handshakes_total{"))
        .unwrap_or_else(|| panic!("no handshake series in {text}"));
    assert!(
        line.starts_with("rampart_tls_handshakes_total{version=\"TLSv1_3\",cipher=\"TLS13_")
            && line.ends_with(",alpn=\"http/1.1\"} 1"),
        "{line}"
    );
}

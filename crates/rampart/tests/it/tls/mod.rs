//! TLS termination end to end: real rustls clients against a real gateway with rcgen-made
//! certificates (SNI, ALPN, key types, fail-closed compile errors, mTLS with CRL and route
//! requirements, resumption, 0-RTT with 425, reload, strict SNI, HSTS, redirect, passthrough).

mod alpn;
mod client_cert;
mod mixed;
mod ocsp;
mod proxy_tlv;
mod records;
mod reload;
mod resumption;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rampart_testkit::{HttpOrigin, TestGateway, TestPki, WsOrigin};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// One HTTP/1.1 request over a fresh TLS connection; returns the response text and the
/// finished client connection.
fn https(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    sni: &str,
    request: &str,
) -> std::io::Result<(String, ClientConnection)> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from(sni.to_owned()).map_err(std::io::Error::other)?;
    let conn = ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    stream.write_all(request.as_bytes())?;
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok((String::from_utf8_lossy(&out).into_owned(), stream.conn))
}

fn get(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n")
}

fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    resp.split("\r\n\r\n").next()?.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn echo_gateway(pki: &TestPki, tls_extra: &str) -> TestGateway {
    let a = pki.server("a", &["a.test", "*.wild.test"]);
    let b = pki.server("b", &["b.test"]);
    TestGateway::builder(format!(
        r#"
[[listeners]]
name = "https"
bind = "127.0.0.1:0"
[listeners.tls]
{tls_extra}
[[listeners.tls.certificates]]
cert = {:?}
key = {:?}
[[listeners.tls.certificates]]
cert = {:?}
key = {:?}

[[routes]]
name = "echo"
echo = true
"#,
        a.cert, a.key, b.cert, b.key
    ))
    .start()
}

/// A gateway with one TLS listener `https` serving a certificate for `a.test` and an echo
/// route; `top` goes before the listener, `listener_keys` into it.
fn a_test_echo_gateway(pki: &TestPki, top: &str, listener_keys: &str) -> TestGateway {
    let a = pki.server("a", &["a.test"]);
    TestGateway::builder(format!(
        r#"{top}
[[listeners]]
name = "https"
bind = "127.0.0.1:0"
{listener_keys}
[listeners.tls]
[[listeners.tls.certificates]]
cert = {:?}
key = {:?}

[[routes]]
name = "echo"
echo = true
"#,
        a.cert, a.key
    ))
    .start()
}

fn leaf_dns(conn: &ClientConnection) -> String {
    let der = conn.peer_certificates().unwrap()[0].to_vec();
    String::from_utf8_lossy(&der).into_owned()
}

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

fn compile_errors(config: &str) -> String {
    let config = rampart_config::load_str(config, "tls.toml").map_err(|d| d.to_string());
    match config.and_then(|c| {
        rampart_server::compile(&c)
            .map(|_| ())
            .map_err(|d| d.to_string())
    }) {
        Ok(()) => String::new(),
        Err(e) => e,
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

#[test]
fn sessions_resume_and_early_data_gets_425_unless_safe() {
    let pki = TestPki::new();
    let gw = echo_gateway(&pki, "early_data = true");
    let addr = gw.addr("https");
    let mut config = pki.client_config(&[b"http/1.1"]);
    config.enable_early_data = true;
    let config = Arc::new(config);
    // A full handshake stores a ticket.
    let (resp, conn) = https(addr, &config, "a.test", &get("a.test", "/first")).unwrap();
    assert_eq!(status(&resp), 200);
    assert_eq!(conn.handshake_kind(), Some(rustls::HandshakeKind::Full));

    // Early data: a GET is served before the handshake completes and carries Early-Data: 1.
    let (resp, conn) = early(addr, &config, &get("a.test", "/early"));
    assert!(conn.is_early_data_accepted(), "early data was not accepted");
    assert_eq!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
    assert_eq!(status(&resp), 200, "{resp}");
    assert!(resp.contains("early-data"), "{resp}");

    // A POST in early data is refused with 425 Too Early.
    let post =
        "POST /early HTTP/1.1\r\nhost: a.test\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let (resp, conn) = early(addr, &config, post);
    assert!(conn.is_early_data_accepted());
    assert_eq!(status(&resp), 425, "{resp}");

    let stats = gw.tls_stats();
    assert!(stats.resumptions >= 2, "{stats:?}");
    assert!(stats.early_data_accepted >= 2, "{stats:?}");
    assert_eq!(stats.early_data_rejected, 1, "{stats:?}");
}

/// Sends `request` as TLS 1.3 early data on a resumed session.
fn early(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    request: &str,
) -> (String, ClientConnection) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut conn =
        ClientConnection::new(config.clone(), ServerName::try_from("a.test").unwrap()).unwrap();
    let mut early = conn
        .early_data()
        .expect("a resumable session with early data");
    early.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut stream = StreamOwned::new(conn, &mut tcp);
    let _ = stream.read_to_end(&mut out);
    let conn = stream.conn;
    (String::from_utf8_lossy(&out).into_owned(), conn)
}

#[test]
fn strict_sni_hsts_and_the_https_redirect() {
    let pki = TestPki::new();
    let gw = echo_gateway(
        &pki,
        "strict_sni = true\nhsts = { max_age = \"365d\", include_subdomains = true }",
    );
    let addr = gw.addr("https");
    let config = Arc::new(pki.client_config(&[]));
    let (resp, _) = https(addr, &config, "a.test", &get("a.test", "/")).unwrap();
    assert_eq!(status(&resp), 200, "{resp}");
    assert_eq!(
        header(&resp, "strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    // The connection was made for a.test: b.test (another certificate) is misdirected.
    let (resp, _) = https(addr, &config, "a.test", &get("b.test", "/")).unwrap();
    assert_eq!(status(&resp), 421, "{resp}");

    let redirect = TestGateway::builder(
        "[[listeners]]\nname = \"http\"\nbind = \"127.0.0.1:0\"\nredirect_https = { port = 8443 }\n[[routes]]\nname = \"echo\"\necho = true\n",
    )
    .start();
    let mut tcp = TcpStream::connect(redirect.addr("http")).unwrap();
    tcp.write_all(get("www.example.com:8080", "/a/b?c=d").as_bytes())
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).unwrap();
    assert_eq!(status(&out), 308, "{out}");
    assert_eq!(
        header(&out, "location"),
        Some("https://www.example.com:8443/a/b?c=d")
    );
}

#[test]
fn a_slow_head_over_tls_gets_its_408() {
    // The 408 is written into TLS and must leave the write buffer before the connection ends.
    let pki = TestPki::new();
    let gw = a_test_echo_gateway(&pki, "[timeouts]\nheader_read = \"300ms\"\n", "");
    let config = Arc::new(pki.client_config(&[b"http/1.1"]));
    let (resp, _) = https(
        gw.addr("https"),
        &config,
        "a.test",
        "GET /slow HTTP/1.1\r\nhost: a.test\r\n",
    )
    .unwrap();
    assert_eq!(status(&resp), 408, "{resp}");
    assert!(header(&resp, "x-request-id").is_some(), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_tls_round_trips_through_the_tunnel() {
    // The 101 is written while the connection's loop batches its writes; the tunnel that
    // follows writes through the same stream once the loop has let go of it.
    use futures_util::{SinkExt, StreamExt};
    use rampart_testkit::tokio_tungstenite::client_async;
    use rampart_testkit::tokio_tungstenite::tungstenite::Message;
    let wait = Duration::from_secs(10);
    let pki = TestPki::new();
    let origin = WsOrigin::start().await.unwrap();
    let a = pki.server("a", &["a.test"]);
    let gw = TestGateway::builder(format!(
        "[[listeners]]\nname = \"https\"\nbind = \"127.0.0.1:0\"\n[listeners.tls]\n\
         [[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\n\
         [[upstreams]]\nname = \"ws\"\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"ws\"\nupstream = \"ws\"\n",
        a.cert,
        a.key,
        origin.addr()
    ))
    .start();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(pki.client_config(&[b"http/1.1"])));
    let tcp = tokio::net::TcpStream::connect(gw.addr("https"))
        .await
        .unwrap();
    let name = ServerName::try_from("a.test").unwrap();
    let tls = tokio::time::timeout(wait, connector.connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    let (mut ws, resp) = tokio::time::timeout(wait, client_async("wss://a.test/chat", tls))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        let text = format!("message {i} over TLS");
        tokio::time::timeout(wait, ws.send(Message::text(text.clone())))
            .await
            .unwrap()
            .unwrap();
        let reply = tokio::time::timeout(wait, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(reply, Message::text(text));
    }
    assert_eq!(origin.upgrades(), 1);
}

#[test]
fn reload_swaps_certificates_and_keeps_the_old_one_when_the_new_is_broken() {
    let pki = TestPki::new();
    let first = pki.server("live", &["r.test"]);
    let gw = TestGateway::builder(format!(
        "[[listeners]]\nname = \"https\"\nbind = \"127.0.0.1:0\"\n[[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n[[routes]]\nname = \"echo\"\necho = true\n",
        first.cert, first.key
    ))
    .start();
    let addr = gw.addr("https");
    // Resumed handshakes carry no certificate: make every handshake a full one.
    let mut config = pki.client_config(&[]);
    config.resumption = rustls::client::Resumption::disabled();
    let config = Arc::new(config);
    let serve = || {
        https(addr, &config, "r.test", &get("r.test", "/"))
            .unwrap()
            .1
    };
    let before = serve().peer_certificates().unwrap()[0].clone();
    // An established connection is not affected by the reload.
    let mut kept = TcpStream::connect(addr).unwrap();
    let mut kept_conn =
        ClientConnection::new(config.clone(), ServerName::try_from("r.test").unwrap()).unwrap();
    while kept_conn.is_handshaking() {
        kept_conn.complete_io(&mut kept).unwrap();
    }

    // A new certificate written over the old files is picked up.
    let second = pki.server("next", &["r.test"]);
    std::fs::copy(&second.key, &first.key).unwrap();
    std::fs::copy(&second.cert, &first.cert).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = serve().peer_certificates().unwrap()[0].clone();
        if now != before {
            assert_eq!(now, second.der);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "certificate was not reloaded: {:?}",
            gw.tls_stats()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gw.tls_stats().reloads >= 1);

    // A broken file keeps the current certificate and counts a failure.
    std::fs::write(&first.cert, "garbage").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.tls_stats().reload_failures == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "broken file was not noticed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(serve().peer_certificates().unwrap()[0], second.der);

    let mut stream = StreamOwned::new(kept_conn, kept);
    stream
        .write_all(get("r.test", "/still").as_bytes())
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    assert_eq!(status(&String::from_utf8_lossy(&out)), 200);
}

#[test]
fn passthrough_forwards_raw_tls_by_sni() {
    let pki = TestPki::new();
    // The backend terminates TLS itself: another gateway with a TLS listener.
    let backend = echo_gateway(&pki, "");
    let front = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "pass"
bind = "127.0.0.1:0"
[listeners.passthrough]
sni = {{ "a.test" = "backend", "*.wild.test" = "backend" }}

[[upstreams]]
name = "backend"
targets = ["{}"]

[[routes]]
name = "unused"
listeners = []
echo = true
"#,
        backend.addr("https")
    ))
    .start();
    let addr = front.addr("pass");
    let config = Arc::new(pki.client_config(&[]));
    let (resp, conn) = https(addr, &config, "a.test", &get("a.test", "/through")).unwrap();
    assert_eq!(status(&resp), 200, "{resp}");
    assert!(leaf_dns(&conn).contains("a.test"));
    let (resp, _) = https(addr, &config, "y.wild.test", &get("y.wild.test", "/")).unwrap();
    assert_eq!(status(&resp), 200);
    // Unknown names and non-TLS bytes are closed.
    assert!(https(addr, &config, "b.test", &get("b.test", "/")).is_err());
    let mut plain = TcpStream::connect(addr).unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = plain.read_to_end(&mut out);
    assert!(out.is_empty());
    let stats = front.tls_stats();
    assert_eq!(stats.passthrough_connections, 2, "{stats:?}");
    assert_eq!(stats.passthrough_rejected, 2, "{stats:?}");
}

#[test]
fn passthrough_opens_with_a_proxy_header_when_the_upstream_asks() {
    let pki = TestPki::new();
    // The backend terminates TLS and takes PROXY headers from 127.0.0.1.
    let backend = a_test_echo_gateway(&pki, "", "proxy_protocol = { from = [\"127.0.0.1/32\"] }");
    let front = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "pass"
bind = "127.0.0.1:0"
[listeners.passthrough]
sni = {{ "a.test" = "backend" }}

[[upstreams]]
name = "backend"
targets = ["{}"]
proxy_protocol = "v2"

[[routes]]
name = "unused"
listeners = []
echo = true
"#,
        backend.addr("https")
    ))
    .start();
    let tcp = TcpStream::connect(front.addr("pass")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let client_port = tcp.local_addr().unwrap().port();
    let config = Arc::new(pki.client_config(&[]));
    let name = ServerName::try_from("a.test".to_owned()).unwrap();
    let conn = ClientConnection::new(config, name).unwrap();
    let mut stream = StreamOwned::new(conn, tcp);
    stream.write_all(get("a.test", "/who").as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let resp = String::from_utf8_lossy(&out);
    assert_eq!(status(&resp), 200, "{resp}");
    let body = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
    let echo: serde_json::Value = serde_json::from_str(body).unwrap();
    // The backend sees the client's own port, not the port of the passthrough's connection.
    assert_eq!(echo["client"]["port"], u64::from(client_port), "{echo}");
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

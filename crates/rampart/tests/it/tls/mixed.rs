//! One TLS port that passes some SNI names through raw and terminates the rest in-process:
//! the passed-through client verifies the origin's own certificate, the terminated one is
//! answered by Rampart with the client's real address, and an unknown name without a default
//! certificate fails its handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart_testkit::{HttpOrigin, TestGateway, TestPki};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use serde_json::Value;

use super::{get, status};

/// The address the client connects from: not the gateway's, so a loop-back hop would show.
const CLIENT_IP: &str = "127.0.0.2";

/// A blocking connection to `addr` from [`CLIENT_IP`].
async fn connect_from(addr: SocketAddr) -> std::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{CLIENT_IP}:0").parse().unwrap())
        .unwrap();
    let stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(addr))
        .await
        .unwrap()
        .unwrap();
    let tcp = stream.into_std().unwrap();
    tcp.set_nonblocking(false).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp
}

/// One request over TLS on `tcp`; the response text and the client connection.
fn request_on(
    tcp: std::net::TcpStream,
    config: Arc<ClientConfig>,
    sni: &'static str,
) -> std::io::Result<(String, ClientConnection)> {
    use std::io::{Read, Write};
    let name = rustls::pki_types::ServerName::try_from(sni).map_err(std::io::Error::other)?;
    let conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    stream.write_all(get(sni, "/mixed").as_bytes())?;
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok((String::from_utf8_lossy(&out).into_owned(), stream.conn))
}

fn body_json(resp: &str) -> Value {
    let body = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {resp}"))
}

fn echoed_header(echo: &Value, name: &str) -> Option<String> {
    echo["headers"]
        .as_array()?
        .iter()
        .find_map(|h| (h[0] == name).then(|| h[1].as_str().unwrap_or_default().to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_passes_legacy_through_and_terminates_the_rest() {
    // The legacy origin terminates TLS itself, with a certificate from a CA of its own.
    let legacy_pki = TestPki::new();
    let legacy_cert = legacy_pki.server("legacy", &["legacy.test"]);
    let legacy = HttpOrigin::tls(Arc::new(legacy_pki.server_config(
        &legacy_cert,
        &[b"http/1.1"],
        false,
    )))
    .await
    .unwrap();
    let app = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let cert = pki.server("front", &["a.test"]);
    let gw = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "https"
bind = "127.0.0.1:0"
[listeners.passthrough]
sni = {{ "legacy.test" = "legacy" }}
[listeners.tls]
[[listeners.tls.certificates]]
cert = {:?}
key = {:?}

[[upstreams]]
name = "legacy"
targets = ["{}"]

[[upstreams]]
name = "app"
targets = ["{}"]

[[routes]]
name = "app"
upstream = "app"
"#,
        cert.cert,
        cert.key,
        legacy.addr(),
        app.addr()
    ))
    .access_log()
    .start();
    let addr = gw.addr("https");
    let trusts_legacy = Arc::new(legacy_pki.client_config(&[b"http/1.1"]));
    let trusts_front = Arc::new(pki.client_config(&[b"http/1.1"]));
    let tcp = [
        connect_from(addr).await,
        connect_from(addr).await,
        connect_from(addr).await,
    ];
    let result = tokio::task::spawn_blocking(move || {
        let [legacy, front, unknown] = tcp;
        (
            request_on(legacy, trusts_legacy, "legacy.test"),
            request_on(front, Arc::clone(&trusts_front), "a.test"),
            request_on(unknown, trusts_front, "unknown.test"),
        )
    })
    .await
    .unwrap();

    // Passed through: the handshake was with the origin, verified against the origin's CA.
    let (resp, conn) = result.0.unwrap();
    assert_eq!(status(&resp), 200, "{resp}");
    assert_eq!(conn.peer_certificates().unwrap()[0], legacy_cert.der);
    assert_eq!(legacy.requests(), 1);
    let echo = body_json(&resp);
    assert!(
        echo["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{echo}"
    );
    assert!(
        echoed_header(&echo, "x-forwarded-for").is_none(),
        "raw bytes, not proxied: {echo}"
    );

    // Terminated here: Rampart's certificate, and the upstream learns the client's address.
    let (resp, conn) = result.1.unwrap();
    assert_eq!(status(&resp), 200, "{resp}");
    assert_eq!(conn.peer_certificates().unwrap()[0], cert.der);
    let echo = body_json(&resp);
    assert_eq!(
        echoed_header(&echo, "x-forwarded-for").as_deref(),
        Some(CLIENT_IP),
        "{echo}"
    );
    let logged = gw.access_log_json(1);
    assert_eq!(logged[0]["client_ip"], CLIENT_IP, "{logged:?}");
    assert_eq!(logged[0]["listener"], "https");

    // Neither passed through nor served by a certificate, and no default: the handshake fails.
    assert!(result.2.is_err(), "{:?}", result.2.map(|r| r.0));
    super::reload::wait_until("the failed handshake to be counted", || {
        gw.tls_stats().failures_for("no_certificate") >= 1
    });
    assert_eq!(gw.tls_stats().passthrough_connections, 1);
}

#[test]
fn a_name_passed_through_and_in_a_certificates_own_dns_names_is_refused() {
    let pki = TestPki::new();
    let cert = pki.server("both", &["a.test", "legacy.test"]);
    let errors = super::compile_errors(&format!(
        "[[listeners]]\nname = \"https\"\nbind = \"127.0.0.1:0\"\n[listeners.passthrough]\n\
         sni = {{ \"legacy.test\" = \"legacy\" }}\n[listeners.tls]\n[[listeners.tls.certificates]]\n\
         cert = {:?}\nkey = {:?}\n\n[[upstreams]]\nname = \"legacy\"\ntargets = [\"127.0.0.1:9\"]\n\n\
         [[routes]]\nname = \"echo\"\necho = true\n",
        cert.cert, cert.key
    ));
    assert!(
        errors.contains("listeners[0].passthrough.sni.\"legacy.test\"")
            && errors.contains("also served by a certificate"),
        "{errors}"
    );
}

#[test]
fn bytes_that_are_not_tls_fail_the_handshake_on_a_mixed_listener() {
    use std::io::{Read, Write};
    let pki = TestPki::new();
    let cert = pki.server("plain", &["a.test"]);
    let gw = TestGateway::builder(format!(
        "[[listeners]]\nname = \"https\"\nbind = \"127.0.0.1:0\"\n[listeners.passthrough]\n\
         sni = {{ \"legacy.test\" = \"legacy\" }}\n[listeners.tls]\n[[listeners.tls.certificates]]\n\
         cert = {:?}\nkey = {:?}\n\n[[upstreams]]\nname = \"legacy\"\ntargets = [\"127.0.0.1:9\"]\n\n\
         [[routes]]\nname = \"echo\"\necho = true\n",
        cert.cert, cert.key
    ))
    .start();
    let mut plain = std::net::TcpStream::connect(gw.addr("https")).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nhost: a.test\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = plain.read_to_end(&mut out);
    assert!(!out.starts_with(b"HTTP/"), "{out:?}");
    super::reload::wait_until("the failed handshake to be counted", || {
        gw.tls_stats().failures_for("protocol") >= 1
    });
    assert_eq!(gw.tls_stats().passthrough_connections, 0);
}

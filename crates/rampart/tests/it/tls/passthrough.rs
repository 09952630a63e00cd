//! TLS passthrough: raw TLS forwarded by SNI, optionally behind a PROXY protocol header.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rampart_testkit::{TestGateway, TestPki};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

use super::{a_test_echo_gateway, echo_gateway, get, https, leaf_dns, status};

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

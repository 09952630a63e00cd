//! ALPN decides the protocol of a TLS connection (RFC 9113 §3.3, §3.4): after `h2`, bytes that
//! are not the HTTP/2 preface are a connection error (SETTINGS, GOAWAY with PROTOCOL_ERROR,
//! close), never an HTTP/1.1 answer; after `http/1.1` the connection is HTTP/1.1. On cleartext,
//! the preface selects h2c and anything else stays HTTP/1.1.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rampart_testkit::{TestGateway, TestPki};
use rustls::ClientConnection;
use rustls::pki_types::ServerName;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_SETTINGS: u8 = 0x4;
const FRAME_GOAWAY: u8 = 0x7;
const PROTOCOL_ERROR: u32 = 0x1;

fn gateway(pki: &TestPki) -> TestGateway {
    let cert = pki.server("alpn", &["alpn.test"]);
    TestGateway::builder(format!(
        r#"
[[listeners]]
name = "https"
bind = "127.0.0.1:0"
[[listeners.tls.certificates]]
cert = {:?}
key = {:?}
default = true

[[listeners]]
name = "plain"
bind = "127.0.0.1:0"

[[routes]]
name = "echo"
echo = true
"#,
        cert.cert, cert.key
    ))
    .access_log()
    .start()
}

/// Sends `bytes` over a TLS connection offering only `alpn`, then reads what the server sends
/// until it closes the connection (failing after 5 s of silence).
fn tls_exchange(gw: &TestGateway, pki: &TestPki, alpn: &[u8], bytes: &[u8]) -> Vec<u8> {
    let config = Arc::new(pki.client_config(&[alpn]));
    let mut tcp = TcpStream::connect(gw.addr("https")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let name = ServerName::try_from("alpn.test").unwrap();
    let mut tls = ClientConnection::new(config, name).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).unwrap();
    }
    assert_eq!(tls.alpn_protocol(), Some(alpn));
    let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
    stream.write_all(bytes).unwrap();
    stream.flush().unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!("the server did not close the connection; got {out:?}")
            }
            Err(e) => panic!("read: {e}; got {out:?}"),
        }
    }
    out
}

/// The frames in `bytes`, as (type, stream, payload).
fn frames(mut bytes: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        let kind = bytes[3];
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
        let payload = bytes[9..9 + len].to_vec();
        out.push((kind, stream, payload));
        bytes = &bytes[9 + len..];
    }
    assert!(bytes.is_empty(), "trailing bytes: {bytes:?}");
    out
}

#[test]
fn alpn_h2_without_the_preface_is_a_protocol_error_not_an_http1_answer() {
    let pki = TestPki::new();
    let gw = gateway(&pki);
    let out = tls_exchange(
        &gw,
        &pki,
        b"h2",
        b"GET / HTTP/1.1\r\nHost: alpn.test\r\n\r\n",
    );
    assert!(
        !out.starts_with(b"HTTP/1.1"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let frames = frames(&out);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(
        (frames[0].0, frames[0].1),
        (FRAME_SETTINGS, 0),
        "{frames:?}"
    );
    let (kind, stream, payload) = &frames[1];
    assert_eq!((*kind, *stream), (FRAME_GOAWAY, 0), "{frames:?}");
    assert_eq!(payload.len(), 8);
    assert_eq!(
        u32::from_be_bytes(payload[0..4].try_into().unwrap()),
        0,
        "last stream"
    );
    let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
    assert_eq!(code, PROTOCOL_ERROR);
    // Nothing reached the pipeline: no request, so no access log line.
    assert!(gw.access_log_lines(0).is_empty());
}

#[test]
fn alpn_h2_with_the_preface_is_served_as_http2() {
    let pki = TestPki::new();
    let gw = gateway(&pki);
    let mut hello = PREFACE.to_vec();
    hello.extend([0, 0, 0, FRAME_SETTINGS, 0, 0, 0, 0, 0]);
    // GOAWAY from the client ends the exchange once the server has answered its SETTINGS.
    hello.extend([0, 0, 8, FRAME_GOAWAY, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let out = tls_exchange(&gw, &pki, b"h2", &hello);
    let frames = frames(&out);
    assert_eq!(
        frames.first().map(|f| f.0),
        Some(FRAME_SETTINGS),
        "{frames:?}"
    );
    // The server may say goodbye in turn, but never with an error.
    for (_, _, payload) in frames.iter().filter(|f| f.0 == FRAME_GOAWAY) {
        assert_eq!(payload.get(4..8), Some(&[0, 0, 0, 0][..]), "{frames:?}");
    }
}

#[test]
fn alpn_http1_is_http1_even_for_preface_bytes() {
    let pki = TestPki::new();
    let gw = gateway(&pki);
    let ok = tls_exchange(
        &gw,
        &pki,
        b"http/1.1",
        b"GET /x HTTP/1.1\r\nHost: alpn.test\r\nConnection: close\r\n\r\n",
    );
    assert!(
        ok.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&ok)
    );
    let mut preface = PREFACE.to_vec();
    preface.extend([0, 0, 0, FRAME_SETTINGS, 0, 0, 0, 0, 0]);
    // hyper's HTTP/1.1 parser refuses the preface as a request line and closes: no HTTP/2
    // SETTINGS frame comes back, and the refusal is logged with its reason.
    let refused = tls_exchange(&gw, &pki, b"http/1.1", &preface);
    assert!(
        refused.is_empty() || refused.starts_with(b"HTTP/1.1 "),
        "{refused:?}"
    );
    let lines = gw.access_log_json(2);
    let refusal = lines
        .iter()
        .find(|l| l["method"] == "-")
        .unwrap_or_else(|| panic!("no refusal logged: {lines:?}"));
    assert_eq!(refusal["reason"], "bad_request");
    assert!(
        refusal["detail"]
            .as_str()
            .unwrap()
            .contains("HTTP2 preface"),
        "{refusal}"
    );
}

#[test]
fn cleartext_bytes_that_are_not_the_preface_stay_http1() {
    let pki = TestPki::new();
    let gw = gateway(&pki);
    let exchange = |bytes: &[u8]| {
        let mut tcp = TcpStream::connect(gw.addr("plain")).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.write_all(bytes).unwrap();
        let mut out = Vec::new();
        let _ = tcp.read_to_end(&mut out);
        out
    };
    let garbage = exchange(b"PRX * HTTP/2.0\r\n\r\n");
    assert!(
        garbage.starts_with(b"HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&garbage)
    );
    let mut hello = PREFACE.to_vec();
    hello.extend([0, 0, 0, FRAME_SETTINGS, 0, 0, 0, 0, 0]);
    hello.extend([0, 0, 8, FRAME_GOAWAY, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let h2c = exchange(&hello);
    assert_eq!(h2c.get(3), Some(&FRAME_SETTINGS), "{h2c:?}");
}

//! TLS termination end to end: real rustls clients against a real gateway with rcgen-made
//! certificates (SNI, ALPN, key types, fail-closed compile errors, mTLS with CRL and route
//! requirements, resumption, 0-RTT with 425, reload, strict SNI, HSTS, redirect, passthrough).

mod alpn;
mod client_cert;
mod handshake;
mod mixed;
mod ocsp;
mod passthrough;
mod proxy_tlv;
mod records;
mod reload;
mod resumption;
mod serving;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rampart_testkit::{TestGateway, TestPki};
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

//! Clients that end their sending side (`shutdown(SHUT_WR)`, or TLS `close_notify`) right
//! after a request: RFC 9112 §9.6 lets them, and they get their answer before the connection
//! closes. A client that ends its side inside a head or a body cut its request short, and that
//! request is not answered as if it were whole.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rampart_testkit::{HttpOrigin, RawConnection, TestGateway, TestPki};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use serde_json::Value;

use crate::support::within;

/// A gateway with a fixed answer on `/fixed` and everything else proxied to `origin`, on a
/// plain listener `public`, and (with `pki`) a TLS listener `https` for `a.test`.
fn gateway(origin: SocketAddr, pki: Option<&TestPki>) -> TestGateway {
    let tls = pki.map_or_else(String::new, |pki| {
        let a = pki.server("a", &["a.test"]);
        format!(
            "[[listeners]]\nname = \"https\"\nbind = \"127.0.0.1:0\"\n[listeners.tls]\n\
             [[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\n",
            a.cert, a.key
        )
    });
    TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

{tls}
[[upstreams]]
name = "origin"
targets = ["{origin}"]

[[routes]]
name = "fixed"
path_prefix = "/fixed"
respond = {{ status = 200, body = "fixed answer" }}

[[routes]]
name = "all"
upstream = "origin"
"#
    ))
    .access_log()
    .start()
}

/// Sends `request` on a fresh connection, ends the sending side, and returns the answer and
/// whether the gateway then closed the connection.
async fn half_closed_request(to: SocketAddr, request: &[u8]) -> (Vec<u8>, bool) {
    let mut conn = within(RawConnection::connect(to)).await.unwrap();
    within(conn.send(request)).await.unwrap();
    within(conn.shutdown_write()).await.unwrap();
    let answer = within(conn.read_response_bytes(false)).await.unwrap();
    let closed = within(conn.is_closed()).await;
    (answer, closed)
}

fn status_of(raw: &[u8]) -> u16 {
    rampart_testkit::RawResponse::parse(raw).map_or(0, |r| r.status)
}

/// The one access log line of `gw` for `uri`.
fn log_line(gw: &TestGateway, uri: &str, lines: usize) -> Value {
    let all = gw.access_log_json(lines);
    all.into_iter()
        .find(|l| l["uri"] == uri)
        .unwrap_or_else(|| panic!("no access log line for {uri}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ending_its_side_after_a_request_gets_its_answer_then_the_close() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), None);
    let to = gw.addr("public");
    let cases: [(&str, &[u8]); 4] = [
        (
            "/fixed/keepalive",
            b"GET /fixed/keepalive HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "/fixed/close",
            b"GET /fixed/close HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ),
        // The origin answers after the client ended its side.
        ("/delay/300", b"GET /delay/300 HTTP/1.1\r\nHost: a\r\n\r\n"),
        (
            "/post",
            b"POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        ),
    ];
    for (uri, request) in cases {
        let (answer, closed) = half_closed_request(to, request).await;
        assert_eq!(
            status_of(&answer),
            200,
            "{uri}: {}",
            String::from_utf8_lossy(&answer)
        );
        assert!(closed, "{uri}: the connection stays open after the answer");
    }
    for (i, (uri, _)) in cases.iter().enumerate() {
        let line = log_line(&gw, uri, i + 1);
        assert_eq!(
            (&line["status"], &line["completed"]),
            (&200.into(), &true.into()),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_before_the_end_of_the_stream_are_all_answered() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), None);
    let mut conn = within(RawConnection::connect(gw.addr("public")))
        .await
        .unwrap();
    within(conn.send(
        b"GET /delay/100 HTTP/1.1\r\nHost: a\r\n\r\nGET /fixed/second HTTP/1.1\r\nHost: a\r\n\r\n",
    ))
    .await
    .unwrap();
    within(conn.shutdown_write()).await.unwrap();
    let first = within(conn.read_response()).await.unwrap();
    let second = within(conn.read_response()).await.unwrap();
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(second.body_text(), "fixed answer");
    assert!(within(conn.is_closed()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ending_its_side_inside_a_body_or_head_is_not_answered_as_whole() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), None);
    let to = gw.addr("public");
    // Five bytes of a ten-byte body.
    let (answer, closed) = half_closed_request(
        to,
        b"POST /cut-body HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello",
    )
    .await;
    assert!(closed);
    assert_ne!(
        status_of(&answer),
        200,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let line = log_line(&gw, "/cut-body", 1);
    let status = line["status"].as_u64().unwrap();
    assert!(status == 400 || status == 499, "{line}");
    // Half a head.
    let (answer, closed) = half_closed_request(to, b"GET /cut-head HTTP/1.1\r\nHost:").await;
    assert!(closed);
    assert_ne!(
        status_of(&answer),
        200,
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// One HTTP/1.1 request over TLS, then, a moment later, `close_notify` and the TCP write side
/// closed; returns what the gateway sent until it closed.
fn tls_half_closed_request(addr: SocketAddr, pki: &TestPki, request: &str) -> String {
    let config = Arc::new(pki.client_config(&[b"http/1.1"]));
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = ServerName::try_from("a.test").unwrap();
    let conn = ClientConnection::new(config, name).unwrap();
    let mut stream = StreamOwned::new(conn, tcp);
    stream.write_all(request.as_bytes()).unwrap();
    stream.flush().unwrap();
    // The `close_notify` comes after the gateway had time to answer (and, on `Connection:
    // close`, to close): it must still find a socket that reads it rather than one that resets.
    std::thread::sleep(Duration::from_millis(100));
    stream.conn.send_close_notify();
    stream.flush().unwrap();
    stream.sock.shutdown(Shutdown::Write).unwrap();
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => panic!("reading the answer: {e} after {out:?}"),
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_tls_client_sending_close_notify_after_its_request_gets_its_answer() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = runtime.block_on(HttpOrigin::start()).unwrap();
    let pki = TestPki::new();
    let gw = gateway(origin.addr(), Some(&pki));
    let addr = gw.addr("https");
    for (uri, extra) in [
        ("/fixed/keepalive", ""),
        ("/fixed/close", "connection: close\r\n"),
        ("/delay/300", ""),
    ] {
        let answer = tls_half_closed_request(
            addr,
            &pki,
            &format!("GET {uri} HTTP/1.1\r\nhost: a.test\r\n{extra}\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 200 "), "{uri}: {answer:?}");
    }
    for (i, uri) in ["/fixed/keepalive", "/fixed/close", "/delay/300"]
        .iter()
        .enumerate()
    {
        let line = log_line(&gw, uri, i + 1);
        assert_eq!(
            (&line["status"], &line["completed"]),
            (&200.into(), &true.into()),
            "{line}"
        );
    }
}

#[test]
fn an_answer_that_closes_the_connection_ends_with_a_close_not_a_reset() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = runtime.block_on(HttpOrigin::start()).unwrap();
    let gw = gateway(origin.addr(), None);
    let mut tcp = std::net::TcpStream::connect(gw.addr("public")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A body the fixed answer never reads: most of it is still unread when the gateway closes.
    let body = vec![b'x'; 8_000_000];
    let mut writer = tcp.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let head = format!(
            "POST /fixed HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        writer.write_all(head.as_bytes())?;
        writer.write_all(&body)
    });
    let mut out = Vec::new();
    let ended = tcp.read_to_end(&mut out);
    let answer = String::from_utf8_lossy(&out);
    assert!(
        ended.is_ok(),
        "the connection was reset: {ended:?} after {answer:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
    assert!(answer.ends_with("fixed answer"), "{answer:?}");
    // The gateway reads and drops the rest of the body before it closes (for a while): a
    // close with unread bytes would reset the connection, and a reset can destroy an answer
    // the client has not read yet.
    let sent = sender.join().unwrap();
    assert!(sent.is_ok(), "the gateway reset the connection: {sent:?}");
}

//! PROXY protocol on listeners: accepted (v1 and v2, with TLVs) only from the configured load
//! balancers, required from them, never parsed from anyone else. The load balancer connects
//! from 127.0.0.1; other clients from 127.0.0.2.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_core::proxy_protocol::{encode_v1, encode_v2};
use rampart_testkit::{RawResponse, RecordingOrigin, TestGateway};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Bound on every wait in this file.
const WAIT: Duration = Duration::from_secs(10);

const LB: &str = "127.0.0.1";
const OTHER: &str = "127.0.0.2";

fn gateway(origin: SocketAddr) -> TestGateway {
    let config = format!(
        "[timeouts]\nheader_read = \"2s\"\n\n\
         [[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\nproxy_protocol = {{ from = [\"127.0.0.1/32\"] }}\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n\n\
         [[routes]]\nname = \"echo\"\npath_prefix = \"/echo\"\necho = true\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n"
    );
    TestGateway::builder(config).access_log().start()
}

async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = tokio::time::timeout(WAIT, socket.connect(to))
        .await
        .unwrap()
        .unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Everything the server sends until it closes.
async fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("server did not close");
    raw
}

/// Sends `preamble` then `request` from `from`, and returns what came back.
async fn exchange(from: &str, to: SocketAddr, preamble: &[u8], request: &str) -> Vec<u8> {
    let mut stream = connect_from(from, to).await;
    let mut bytes = preamble.to_vec();
    bytes.extend_from_slice(request.as_bytes());
    let _ = stream.write_all(&bytes).await;
    read_all(&mut stream).await
}

const ECHO: &str = "GET /echo HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n";
const FORWARD: &str = "GET /fwd HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n";

fn echo_client(raw: &[u8]) -> (String, u64) {
    let resp = RawResponse::parse(raw)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(raw)));
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    (
        echo["client"]["ip"].as_str().unwrap().to_owned(),
        echo["client"]["port"].as_u64().unwrap(),
    )
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Waits (bounded) for an access log line with `reason`.
fn logged_reason(gw: &TestGateway, reason: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(line) = gw
            .access_log_json(1)
            .into_iter()
            .find(|l| l["reason"] == reason)
        {
            return line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {reason} line in {:?}",
            gw.access_log_lines(0)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_header_from_the_load_balancer_names_the_client() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(origin.addr());
    let to = gw.addr("public");
    let v1 = encode_v1(addr("203.0.113.9:41000"), to);
    let raw = exchange(LB, to, v1.as_bytes(), ECHO).await;
    assert_eq!(echo_client(&raw), ("203.0.113.9".to_owned(), 41_000));
    let v1 = encode_v1(addr("[2001:db8::9]:5"), addr("[2001:db8::1]:443"));
    let raw = exchange(LB, to, v1.as_bytes(), FORWARD).await;
    assert_eq!(RawResponse::parse(&raw).unwrap().status, 200);
    let requests = origin.wait_for_requests(1, WAIT).await;
    let text = String::from_utf8_lossy(&requests[0]).into_owned();
    assert!(
        text.contains("\r\nx-forwarded-for: 2001:db8::9\r\n"),
        "{text}"
    );
    assert!(
        !text.contains("PROXY"),
        "the header is not forwarded: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_header_with_tlvs_and_a_checksum_names_the_client_and_local_keeps_the_socket() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(origin.addr());
    let to = gw.addr("public");
    let tlvs: &[(u8, &[u8])] = &[(0x02, b"app.example"), (0xEA, &[7; 40])];
    let v2 = encode_v2(Some((addr("198.51.100.4:999"), to)), tlvs, true).unwrap();
    let raw = exchange(LB, to, &v2, ECHO).await;
    assert_eq!(echo_client(&raw).0, "198.51.100.4");
    // LOCAL (a health check): the connection's own address stands.
    let local = encode_v2(None, &[], false).unwrap();
    let raw = exchange(LB, to, &local, ECHO).await;
    assert_eq!(echo_client(&raw).0, LB);
    // v1 UNKNOWN likewise.
    let raw = exchange(LB, to, b"PROXY UNKNOWN\r\n", ECHO).await;
    assert_eq!(echo_client(&raw).0, LB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_split_across_segments_is_read_exactly() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(origin.addr());
    let to = gw.addr("public");
    for header in [
        encode_v1(addr("192.0.2.77:1234"), to).into_bytes(),
        encode_v2(Some((addr("192.0.2.77:1234"), to)), &[(0xE0, b"abc")], true).unwrap(),
    ] {
        let mut stream = connect_from(LB, to).await;
        for piece in header.chunks(5) {
            stream.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        stream.write_all(ECHO.as_bytes()).await.unwrap();
        let raw = read_all(&mut stream).await;
        assert_eq!(echo_client(&raw).0, "192.0.2.77");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_header_from_the_load_balancer_closes_the_connection_and_is_logged() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(origin.addr());
    let raw = exchange(LB, gw.addr("public"), b"", FORWARD).await;
    assert!(
        raw.is_empty(),
        "no answer expected: {:?}",
        String::from_utf8_lossy(&raw)
    );
    let line = logged_reason(&gw, "proxy_protocol_missing");
    assert_eq!(line["client_ip"], LB);
    // Nothing was sent: no status to log.
    assert_eq!(
        (&line["status"], &line["completed"]),
        (&0.into(), &false.into())
    );
    assert!(
        line["detail"]
            .as_str()
            .unwrap()
            .contains("no PROXY protocol header"),
        "{line}"
    );
    assert!(origin.requests().is_empty());
    assert_eq!(origin.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_headers_from_the_load_balancer_are_refused_with_a_reason() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(origin.addr());
    let to = gw.addr("public");
    let mut bad_crc = encode_v2(Some((addr("192.0.2.1:1"), to)), &[], true).unwrap();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    let mut too_long = encode_v2(
        Some((addr("192.0.2.1:1"), to)),
        &[(0xE0, &[0; 5000])],
        false,
    )
    .unwrap();
    too_long.truncate(64);
    let mut bad_family = encode_v2(Some((addr("192.0.2.1:1"), to)), &[], false).unwrap();
    bad_family[13] = 0x12; // UDP over IPv4
    let mut v1_long = b"PROXY UNKNOWN ".to_vec();
    v1_long.resize(200, b'x');
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad checksum", bad_crc),
        ("oversize v2", too_long),
        ("datagram family", bad_family),
        ("oversize v1", v1_long),
        (
            "bad v1 address",
            b"PROXY TCP4 300.1.1.1 10.0.0.1 1 2\r\n".to_vec(),
        ),
        (
            "v1 without CRLF",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 1 2\n".to_vec(),
        ),
    ];
    for (what, header) in &cases {
        let raw = exchange(LB, to, header, FORWARD).await;
        assert!(
            raw.is_empty(),
            "{what}: {:?}",
            String::from_utf8_lossy(&raw)
        );
    }
    let deadline = std::time::Instant::now() + WAIT;
    let lines = loop {
        let lines: Vec<Value> = gw
            .access_log_json(cases.len())
            .into_iter()
            .filter(|l| l["reason"] == "proxy_protocol_invalid")
            .collect();
        if lines.len() >= cases.len() || std::time::Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(lines.len(), cases.len(), "{lines:?}");
    assert!(lines.iter().all(|l| l["status"] == 0), "{lines:?}");
    let details: Vec<&str> = lines
        .iter()
        .map(|l| l["detail"].as_str().unwrap())
        .collect();
    for code in [
        "v2_bad_checksum",
        "v2_too_long",
        "v2_bad_family",
        "v1_too_long",
        "v1_malformed",
    ] {
        assert!(
            details.iter().any(|d| d.contains(code)),
            "{code} not in {details:?}"
        );
    }
    assert_eq!(origin.connections(), 0, "nothing reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_that_never_completes_is_cut_off_by_the_header_timeout() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(origin.addr());
    let mut stream = connect_from(LB, gw.addr("public")).await;
    stream.write_all(b"PROXY TCP4 192.0.2.1 ").await.unwrap();
    let raw = read_all(&mut stream).await;
    assert!(raw.is_empty());
    let line = logged_reason(&gw, "proxy_protocol_missing");
    assert!(
        line["detail"].as_str().unwrap().contains("timeout"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_peers_are_never_asked_for_a_header_and_cannot_send_one() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(origin.addr());
    let to = gw.addr("public");
    let raw = exchange(OTHER, to, b"", ECHO).await;
    assert_eq!(echo_client(&raw).0, OTHER);
    // A PROXY header from a peer not in `from` is just bad HTTP: it names no one.
    let v1 = encode_v1(addr("203.0.113.9:1"), to);
    let raw = exchange(OTHER, to, v1.as_bytes(), FORWARD).await;
    let resp = RawResponse::parse(&raw).unwrap();
    assert_eq!(resp.status, 400, "{}", resp.body_text());
    assert!(origin.requests().is_empty());
    assert!(
        gw.access_log_json(1)
            .iter()
            .all(|l| l["client_ip"] != "203.0.113.9"),
        "the spoofed address appears nowhere"
    );
}

/// A raw origin that records each connection's bytes up to the end of its first request head,
/// answers it and closes.
async fn raw_origin() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut chunk = [0u8; 4096];
                // The v2 signature itself holds a CRLFCRLF: look past it.
                while !seen
                    .get(12..)
                    .is_some_and(|rest| rest.windows(4).any(|w| w == b"\r\n\r\n"))
                {
                    match tokio::time::timeout(WAIT, stream.read(&mut chunk)).await {
                        Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let _ = tx.send(seen);
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                // Keep the connection open: only the proxy decides not to reuse it.
                let _ = tokio::time::timeout(WAIT, stream.read(&mut chunk)).await;
            });
        }
    });
    (addr, rx)
}

fn sender(origin: SocketAddr, version: &str) -> TestGateway {
    TestGateway::builder(format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{origin}\"]\nproxy_protocol = \"{version}\"\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n"
    ))
    .start()
}

/// Sends two requests on one keep-alive connection from `OTHER`; returns the client address.
async fn two_requests(to: SocketAddr) -> (SocketAddr, Vec<u8>) {
    let mut stream = connect_from(OTHER, to).await;
    let client = stream.local_addr().unwrap();
    let keep = "GET /fwd HTTP/1.1\r\nHost: app.example\r\n\r\n";
    stream.write_all(keep.as_bytes()).await.unwrap();
    let mut first = vec![0u8; 1024];
    let n = tokio::time::timeout(WAIT, stream.read(&mut first))
        .await
        .unwrap()
        .unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &first[..n]);
    stream.write_all(FORWARD.as_bytes()).await.unwrap();
    (client, read_all(&mut stream).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_upstream_gets_the_client_line_first_on_a_connection_of_its_own() {
    let (origin, mut seen) = raw_origin().await;
    let gw = sender(origin, "v1");
    let to = gw.addr("public");
    let (client, last) = two_requests(to).await;
    assert_eq!(RawResponse::parse(&last).unwrap().status, 200);
    let line = format!(
        "PROXY TCP4 127.0.0.2 127.0.0.1 {} {}\r\nGET /fwd HTTP/1.1\r\n",
        client.port(),
        to.port()
    );
    for i in 0..2 {
        let bytes = tokio::time::timeout(WAIT, seen.recv())
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with(&line), "connection {i}: {text}");
        assert_eq!(text.matches("PROXY").count(), 1, "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_upstream_learns_the_client_address_port_and_host() {
    // The receiving side is another Rampart that takes PROXY headers from 127.0.0.1.
    let origin = RecordingOrigin::start().await.unwrap();
    let back = gateway(origin.addr());
    let front = sender(back.addr("public"), "v2");
    let mut stream = connect_from(OTHER, front.addr("public")).await;
    let client = stream.local_addr().unwrap();
    stream.write_all(ECHO.as_bytes()).await.unwrap();
    let raw = read_all(&mut stream).await;
    assert_eq!(
        echo_client(&raw),
        ("127.0.0.2".to_owned(), u64::from(client.port()))
    );

    // And the v2 header carries the host and the request ID as TLVs.
    let (origin, mut seen) = raw_origin().await;
    let gw = sender(origin, "v2");
    let resp = exchange(OTHER, gw.addr("public"), b"", FORWARD).await;
    assert_eq!(RawResponse::parse(&resp).unwrap().status, 200);
    let bytes = tokio::time::timeout(WAIT, seen.recv())
        .await
        .unwrap()
        .unwrap();
    let rampart_core::proxy_protocol::Parsed::Complete { header, len } =
        rampart_core::proxy_protocol::parse(&bytes).unwrap()
    else {
        panic!("incomplete header: {bytes:?}");
    };
    assert_eq!(header.source().unwrap().ip().to_string(), "127.0.0.2");
    let authority = header.tlvs().find(|t| t.kind == 0x02).unwrap();
    assert_eq!(authority.value, b"app.example");
    let id = header.tlvs().find(|t| t.kind == 0x05).unwrap();
    let request = String::from_utf8_lossy(&bytes[len..]).to_ascii_lowercase();
    let id = String::from_utf8_lossy(id.value).to_ascii_lowercase();
    assert!(
        request.contains(&format!("x-request-id: {id}\r\n")),
        "{id} / {request}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_that_sent_nothing_has_no_status_in_the_combined_log() {
    let origin = RecordingOrigin::start().await.unwrap();
    let dir = crate::support::TempDir::new("pp-combined");
    let log = dir.0.join("access.log");
    let config = format!(
        "[access_log]\nenabled = true\nformat = \"combined\"\npath = {:?}\n\n\
         [timeouts]\nheader_read = \"2s\"\n\n\
         [[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\nproxy_protocol = {{ from = [\"127.0.0.1/32\"] }}\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        log.display().to_string(),
        origin.addr()
    );
    let gw = TestGateway::builder(config).start();
    let raw = exchange(
        LB,
        gw.addr("public"),
        b"PROXY TCP4 300.1.1.1 10.0.0.1 1 2\r\n",
        FORWARD,
    )
    .await;
    assert!(raw.is_empty(), "{:?}", String::from_utf8_lossy(&raw));
    let deadline = std::time::Instant::now() + WAIT;
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("reason=proxy_protocol_invalid"))
        {
            break line.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(line.contains("\"- / HTTP/1.1\" - 0 "), "{line:?}");
    assert!(line.ends_with(" aborted"), "{line}");
}

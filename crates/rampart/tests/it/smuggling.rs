//! Request-smuggling defences, one raw-bytes test per rule: the exact bytes a client sends,
//! the response it gets (400 and a closed connection), and the exact bytes that reached a
//! recording origin (nothing, for a refused request). Cases that limits.rs already sends
//! (obs-fold in a plain header, NUL in a value, two Content-Length lines, `Transfer-Encoding:
//! gzip`) are not repeated here.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_testkit::{RawConnection, RawResponse, RecordingOrigin, TestGateway};

/// Bound on every wait in this file.
const WAIT: Duration = Duration::from_secs(10);

async fn start() -> (TestGateway, RecordingOrigin) {
    let origin = RecordingOrigin::start().await.unwrap();
    let config = format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        origin.addr()
    );
    (TestGateway::builder(config).access_log().start(), origin)
}

/// Sends `bytes` on a fresh connection; returns the response and whether the server then
/// closed the connection.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> (RawResponse, bool) {
    let mut conn = RawConnection::connect(addr).await.unwrap();
    let _ = conn.send(bytes).await;
    let resp = conn
        .read_response()
        .await
        .unwrap_or_else(|e| panic!("no response to {:?}: {e}", String::from_utf8_lossy(bytes)));
    let closed = conn.is_closed().await;
    (resp, closed)
}

/// Asserts `resp` is a 400 after which the connection was closed.
fn assert_400_and_closed(resp: &RawResponse, closed: bool, what: &str) {
    assert_eq!(
        resp.status,
        400,
        "{what:?}: {}",
        String::from_utf8_lossy(&resp.raw)
    );
    assert!(
        closed,
        "{what:?}: the connection stayed open after the refusal"
    );
}

/// Asserts the request is refused with 400 + `reason`, the connection is closed, and nothing
/// reached the origin; then that a clean request still goes through alone.
async fn assert_refused(bytes: &[u8], reason: &str) {
    let (gw, origin) = start().await;
    let what = String::from_utf8_lossy(bytes).into_owned();
    let (resp, closed) = exchange(gw.addr("public"), bytes).await;
    assert_400_and_closed(&resp, closed, &what);
    if !reason.is_empty() {
        let id = resp.header("x-request-id").unwrap().to_owned();
        let lines = gw.access_log_json(1);
        let line = lines.iter().find(|l| l["request_id"] == id.as_str());
        let got = line.map_or_else(
            || lines.iter().map(|l| l["reason"].to_string()).collect(),
            |l| l["reason"].to_string(),
        );
        assert!(got.contains(reason), "{what:?}: reason {got} in {lines:?}");
    }
    assert_only_control_forwarded(&gw, &origin, &what).await;
}

/// A clean request after the refused one must be the only thing the origin ever saw.
async fn assert_only_control_forwarded(gw: &TestGateway, origin: &RecordingOrigin, what: &str) {
    let (resp, _) = exchange(
        gw.addr("public"),
        b"GET /control HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 200, "control: {}", resp.body_text());
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(
        requests.len(),
        1,
        "{what:?}: the origin received {requests:?}"
    );
    assert!(
        requests[0].starts_with(b"GET /control HTTP/1.1\r\n"),
        "{what:?}"
    );
}

/// The recorded request with the per-request random values (request ID, trace parent)
/// replaced by fixed markers, so it can be compared byte for byte.
fn masked(raw: &[u8]) -> String {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    text.split("\r\n")
        .map(|line| match line.split_once(": ") {
            Some(("x-request-id", _)) => "x-request-id: <id>".to_owned(),
            Some(("traceparent", _)) => "traceparent: <trace>".to_owned(),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_together_with_transfer_encoding_is_refused() {
    assert_refused(
        b"POST /smuggle HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
        "ambiguous_framing",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differing_content_lengths_in_one_field_are_refused() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 5\r\n\r\nabcde",
        "",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encodings_other_than_a_single_final_chunked_are_refused() {
    for te in [
        "chunked, gzip",
        "gzip, chunked",
        "chunked, chunked",
        "identity",
        "xchunked",
    ] {
        let req = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n");
        assert_refused(req.as_bytes(), "").await;
    }
    // The same coding on two lines.
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encoding_in_http_1_0_is_refused() {
    assert_refused(
        b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_chunk_sizes_are_refused_before_anything_is_forwarded() {
    for body in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "fffffffffffffffff5\r\nhello\r\n0\r\n\r\n",
        "5 5\r\nhello\r\n0\r\n\r\n",
        "5\r\nhelloXX0\r\n\r\n",
        "5\r\nhello\r\nzz\r\n\r\n",
    ] {
        let req = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        assert_refused(req.as_bytes(), "").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_chunk_extensions_are_refused() {
    for body in [
        "5;a\nb\r\nhello\r\n0\r\n\r\n",
        "5;a\rb\r\nhello\r\n0\r\n\r\n",
    ] {
        let req = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        assert_refused(req.as_bytes(), "").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_fold_with_a_tab_and_on_framing_headers_is_refused() {
    assert_refused(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\tcontinued\r\n\r\n",
        "",
    )
    .await;
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        "",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_cr_and_control_characters_in_fields_are_refused() {
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x7fb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-\0A: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-\x01A: b\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
    ];
    for case in cases {
        assert_refused(case, "").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whitespace_before_the_colon_is_refused() {
    assert_refused(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", "").await;
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc",
        "",
    )
    .await;
    assert_refused(b"GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_methods_are_refused() {
    for method in ["G@T", "GET;", "GE T", "\"GET\"", "GET\t"] {
        let req = format!("{method} / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_refused(req.as_bytes(), "").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_target_whose_authority_differs_from_host_is_refused() {
    assert_refused(
        b"GET http://internal.example/admin HTTP/1.1\r\nHost: public.example\r\n\r\n",
        "host_mismatch",
    )
    .await;
    assert_refused(
        b"GET http://public.example:8080/ HTTP/1.1\r\nHost: public.example\r\n\r\n",
        "host_mismatch",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_target_agreeing_with_host_is_forwarded_in_origin_form() {
    let (gw, origin) = start().await;
    let (resp, _) = exchange(
        gw.addr("public"),
        b"GET http://Public.Example:80/x?q=1 HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert!(
        requests[0].starts_with(b"GET /x?q=1 HTTP/1.1\r\n"),
        "{}",
        masked(&requests[0])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_one_host_or_an_invalid_host_is_refused() {
    assert_refused(
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        "bad_request",
    )
    .await;
    assert_refused(
        b"GET / HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n",
        "invalid_header",
    )
    .await;
    assert_refused(
        b"GET / HTTP/1.1\r\nHost: a.example/evil\r\n\r\n",
        "invalid_header",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_lf_line_endings_are_refused() {
    // httparse takes a lone LF as a line end; a front proxy may not. Rampart's head scan sees
    // it and refuses the request.
    assert_refused(b"GET /lf HTTP/1.1\nHost: a\nX-A: 1\n\n", "invalid_header").await;
    assert_refused(
        b"GET /lf HTTP/1.1\r\nHost: a\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_lf_in_a_later_request_on_a_keep_alive_connection_is_refused() {
    // The head scan starts over for every request, including one that follows an answered
    // request on the same connection.
    let (gw, origin) = start().await;
    let mut conn = RawConnection::connect(gw.addr("public")).await.unwrap();
    conn.send(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(conn.read_response().await.unwrap().status, 200);
    assert_eq!(origin.wait_for_requests(1, WAIT).await.len(), 1);
    conn.send(b"GET /second HTTP/1.1\nHost: a\nX-A: 1\n\n")
        .await
        .unwrap();
    let resp = conn.read_response().await.unwrap();
    assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(&resp.raw));
    assert!(conn.is_closed().await, "the connection stayed open");
    let requests = origin.requests();
    assert_eq!(requests.len(), 1, "the origin received {requests:?}");
    assert!(requests[0].starts_with(b"GET /first HTTP/1.1\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_pipelined_requests_with_bodies_are_answered_in_order_and_forwarded_intact() {
    // The control for the scan below: bodies that look like heads or blank lines are skipped
    // by their framing, and no clean request is refused.
    let (gw, origin) = start().await;
    let mut conn = RawConnection::connect(gw.addr("public")).await.unwrap();
    let pipeline: [&[u8]; 4] = [
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello\r\n\r\nXY",
        b"POST /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nGET \r\n0\r\n\r\n",
        b"GET /four HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    conn.send(&pipeline.concat()).await.unwrap();
    for _ in 0..4 {
        let resp = conn.read_response().await.unwrap();
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.raw));
    }
    let requests = origin.wait_for_requests(4, WAIT).await;
    let starts: Vec<String> = requests
        .iter()
        .map(|r| String::from_utf8_lossy(&r[..r.len().min(11)]).into_owned())
        .collect();
    assert_eq!(
        starts,
        ["GET /one HT", "POST /two H", "POST /three", "GET /four H"]
    );
    assert!(
        requests[1].ends_with(b"\r\n\r\nhello\r\n\r\nXY"),
        "{}",
        masked(&requests[1])
    );
    assert!(
        masked(&requests[2]).contains("GET "),
        "{}",
        masked(&requests[2])
    );
}

/// Sends `first` and a pipelined second request in one write: the first is answered 200, the
/// second refused with 400 and the connection closed, and only the first reached the origin.
async fn assert_pipelined_second_refused(first: &[u8], second: &[u8]) {
    let (gw, origin) = start().await;
    let mut conn = RawConnection::connect(gw.addr("public")).await.unwrap();
    conn.send(&[first, second].concat()).await.unwrap();
    let what = String::from_utf8_lossy(second).into_owned();
    assert_eq!(conn.read_response().await.unwrap().status, 200, "{what:?}");
    let resp = conn.read_response().await.unwrap();
    assert_400_and_closed(&resp, conn.is_closed().await, &what);
    let requests = origin.requests();
    assert_eq!(
        requests.len(),
        1,
        "{what:?}: the origin received {requests:?}"
    );
    assert!(
        requests[0].starts_with(b"GET /first HTTP/1.1\r\n")
            || requests[0].starts_with(b"POST /first HTTP/1.1\r\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smuggling_head_pipelined_in_the_same_packet_is_refused() {
    // The head scan follows the byte stream through every head and body the read holds, so a
    // request pipelined behind another one is checked as if it came alone.
    let seconds: [&[u8]; 3] = [
        b"GET /second HTTP/1.1\nHost: a\nX-A: 1\n\n",
        b"POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /second HTTP/1.1\r\nHost: a\r\nX-A: 1\n\r\n",
    ];
    let firsts: [&[u8]; 4] = [
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n",
        // An upgrade the origin does not accept: the connection stays HTTP.
        b"GET /first HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nGET /x \n\n",
        b"POST /first HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\n\n\nx\r\n0\r\nT: 1\r\n\r\n",
    ];
    for first in firsts {
        for second in seconds {
            assert_pipelined_second_refused(first, second).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upgrades_are_never_forwarded() {
    let (gw, origin) = start().await;
    let (resp, _) = exchange(
        gw.addr("public"),
        b"GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 200, "answered as plain HTTP/1.1, not 101");
    let requests = origin.wait_for_requests(1, WAIT).await;
    let text = masked(&requests[0]).to_ascii_lowercase();
    for gone in ["upgrade", "http2-settings", "connection: upgrade"] {
        assert!(!text.contains(gone), "{gone} forwarded: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_re_serialised_canonically_upstream() {
    let (gw, origin) = start().await;
    let addr = gw.addr("public");
    let (resp, _) = exchange(
        addr,
        b"POST /canon?a=1 HTTP/1.1\r\nhOsT:   example.test  \r\nX-Custom:\tvalue with  spaces\t\r\nContent-Length: 000\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 200);
    let (resp, _) = exchange(
        addr,
        b"POST /chunked HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: Chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 200);
    let requests = origin.wait_for_requests(2, WAIT).await;
    assert_eq!(
        masked(&requests[0]),
        "POST /canon?a=1 HTTP/1.1\r\n\
         host: example.test\r\n\
         x-custom: value with  spaces\r\n\
         x-forwarded-for: 127.0.0.1\r\n\
         x-forwarded-proto: http\r\n\
         x-forwarded-host: example.test\r\n\
         via: 1.1 rampart\r\n\
         x-request-id: <id>\r\n\
         traceparent: <trace>\r\n\
         content-length: 0\r\n\r\n"
    );
    let chunked = masked(&requests[1]);
    assert!(
        chunked.starts_with("POST /chunked HTTP/1.1\r\nhost: example.test\r\n"),
        "{chunked}"
    );
    assert!(
        chunked.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{chunked}"
    );
    assert!(
        !chunked.contains("ext=1"),
        "chunk extensions are not forwarded: {chunked}"
    );
    assert!(
        chunked.contains("abc") && chunked.contains("de"),
        "{chunked}"
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 → HTTP/1.1 downgrade, with hand-made frames (a real client library would refuse to
// send most of these).
// ---------------------------------------------------------------------------------------------

/// A header field as raw name and value bytes.
type Field<'a> = (&'a [u8], &'a [u8]);

/// A named HTTP/2 case: header fields and an optional body.
type H2Case<'a> = (&'a str, &'a [Field<'a>], Option<&'a [u8]>);

/// How the server answered stream 1.
#[derive(Debug, PartialEq, Eq)]
enum H2Outcome {
    /// A response with this status.
    Status(u16),
    /// The stream was reset.
    Reset,
    /// The connection was closed with GOAWAY (or just closed).
    GoAway,
}

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK "literal header field never indexed, new name", without Huffman coding.
fn hpack_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x10);
    out.push(u8::try_from(name.len()).unwrap());
    out.extend_from_slice(name);
    out.push(u8::try_from(value.len()).unwrap());
    out.extend_from_slice(value);
}

/// Sends one HTTP/2 request (GET, or POST with `body`) with `extra` header fields after the
/// pseudo-headers, and reports what came back for it.
async fn h2_request(addr: SocketAddr, extra: &[Field<'_>], body: Option<&[u8]>) -> H2Outcome {
    let mut block = vec![if body.is_some() { 0x83 } else { 0x82 }, 0x86, 0x84];
    // :authority (static index 1), literal without indexing.
    block.extend_from_slice(&[0x01, 9]);
    block.extend_from_slice(b"a.example");
    for (name, value) in extra {
        hpack_literal(&mut block, name, value);
    }
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend(h2_frame(0x4, 0, 0, &[]));
    let end_stream = if body.is_some() { 0 } else { 0x1 };
    bytes.extend(h2_frame(0x1, 0x4 | end_stream, 1, &block));
    if let Some(body) = body {
        bytes.extend(h2_frame(0x0, 0x1, 1, body));
    }
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut conn, &bytes)
        .await
        .unwrap();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        while buf.len() >= 9 {
            let len = usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let (kind, stream) = (
                buf[3],
                u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff,
            );
            let payload: Vec<u8> = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            match (kind, stream) {
                (0x1, 1) => {
                    // :status from the static table (0x88 = 200 ... 0x8e = 500) or a literal.
                    let status = match payload.first() {
                        Some(0x88) => 200,
                        Some(0x8c) => 400,
                        Some(0x8d) => 404,
                        Some(b) if b & 0xf0 == 0x40 || b & 0xf0 == 0x00 => {
                            std::str::from_utf8(&payload[2..5])
                                .unwrap()
                                .parse()
                                .unwrap()
                        }
                        other => panic!("unexpected status encoding {other:?}"),
                    };
                    return H2Outcome::Status(status);
                }
                (0x3, 1) => return H2Outcome::Reset,
                (0x7, 0) => return H2Outcome::GoAway,
                _ => {}
            }
        }
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout_at(
            deadline,
            tokio::io::AsyncReadExt::read(&mut conn, &mut chunk),
        )
        .await
        .expect("no answer to the HTTP/2 request");
        match read {
            Ok(0) | Err(_) => return H2Outcome::GoAway,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_that_would_change_meaning_when_downgraded_are_refused() {
    let (gw, origin) = start().await;
    let addr = gw.addr("public");
    assert_eq!(
        h2_request(addr, &[(b"x-ok", b"1")], None).await,
        H2Outcome::Status(200),
        "control"
    );
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(
        masked(&requests[0]),
        "GET / HTTP/1.1\r\nx-ok: 1\r\nhost: a.example\r\nx-forwarded-for: 127.0.0.1\r\n\
         x-forwarded-proto: http\r\nx-forwarded-host: a.example\r\nvia: 2 rampart\r\n\
         x-request-id: <id>\r\ntraceparent: <trace>\r\n\r\n"
    );
    let cases: &[H2Case] = &[
        ("connection", &[(b"connection", b"keep-alive")], None),
        ("keep-alive", &[(b"keep-alive", b"timeout=5")], None),
        (
            "proxy-connection",
            &[(b"proxy-connection", b"keep-alive")],
            None,
        ),
        (
            "transfer-encoding",
            &[(b"transfer-encoding", b"chunked")],
            Some(b"0\r\n\r\n"),
        ),
        ("upgrade", &[(b"upgrade", b"h2c")], None),
        ("te other than trailers", &[(b"te", b"gzip")], None),
        ("unknown pseudo-header", &[(b":smuggle", b"x")], None),
        ("uppercase name", &[(b"X-Upper", b"x")], None),
        ("CR LF in a value", &[(b"x-a", b"a\r\nx-b: b")], None),
        ("NUL in a value", &[(b"x-a", b"a\0b")], None),
        (
            "content-length too large",
            &[(b"content-length", b"10")],
            Some(b"hello"),
        ),
        (
            "content-length too small",
            &[(b"content-length", b"2")],
            Some(b"hello"),
        ),
        (
            "two hosts",
            &[(b"host", b"a.example"), (b"host", b"b.example")],
            None,
        ),
        (
            "host differs from :authority",
            &[(b"host", b"b.example")],
            None,
        ),
    ];
    for (what, headers, body) in cases {
        let outcome = h2_request(addr, headers, *body).await;
        assert_ne!(outcome, H2Outcome::Status(200), "{what} was served");
        if let H2Outcome::Status(s) = outcome {
            assert_eq!(s, 400, "{what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(origin.requests().len(), 1, "{what} reached the origin");
    }
}

//! Response compression through a real gateway and a real origin whose responses are shaped by
//! the query string: each algorithm round-trips with its headers (`Content-Encoding`, `Vary`,
//! weak `ETag`, no `Content-Length`), `Accept-Encoding` q-values and the server's order
//! decide, responses that must stay as they are (encoded, `no-transform`, ranges, `HEAD`,
//! 204/304, small, other types, event streams) do, an 8 KiB `Accept-Encoding` is fine, and a
//! streaming response reaches the client while the origin waits. Config refusals are in
//! [`config`].

mod config;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use rampart_testkit::{RawResponse, TestGateway, raw_request_parsed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// Bound on every wait in this area.
const WAIT: Duration = Duration::from_secs(20);

/// Text that compresses well: numbered lines.
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut n = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!("line {n}: the response body of a test, {}\n", n % 97).as_bytes(),
        );
        n += 1;
    }
    out.truncate(len);
    out
}

/// Decodes `body` sent with `Content-Encoding: coding`.
pub(crate) fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli_decompressor::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::stream::decode_all(body).unwrap(),
        other => panic!("unexpected coding {other:?}"),
    }
    out
}

/// An origin whose response follows the query: `len` bytes of text, `type`, `status`, and
/// `ce`, `cc`, `etag`, `range` header values; `/stream` sends one event, waits for `go`, then
/// sends a second.
struct ShapingOrigin {
    addr: SocketAddr,
    go: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ShapingOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| {
            v.replace("%20", " ")
                .replace("%22", "\"")
                .replace("%2F", "/")
        })
    })
}

type OriginBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;

fn shaped(
    req: &http::Request<hyper::body::Incoming>,
    go: &Arc<Notify>,
) -> http::Response<OriginBody> {
    let query = req.uri().query().unwrap_or("");
    if req.uri().path() == "/stream" {
        let go = Arc::clone(go);
        let events = futures_util::stream::unfold(0u8, move |step| {
            let go = Arc::clone(&go);
            async move {
                match step {
                    0 => Some((Ok(Frame::data(Bytes::from_static(b"data: first\n\n"))), 1)),
                    1 => {
                        go.notified().await;
                        Some((Ok(Frame::data(Bytes::from_static(b"data: second\n\n"))), 2))
                    }
                    _ => None,
                }
            }
        });
        let mut resp = http::Response::new(BodyExt::boxed_unsync(StreamBody::new(events)));
        let ty = query_value(query, "type").unwrap_or_else(|| "application/x-ndjson".into());
        resp.headers_mut()
            .insert("content-type", ty.parse().unwrap());
        return resp;
    }
    let len: usize = query_value(query, "len")
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let status: u16 = query_value(query, "status")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let body = if matches!(status, 204 | 304) || req.method() == http::Method::HEAD {
        Vec::new()
    } else {
        text(len)
    };
    let mut resp = http::Response::new(BodyExt::boxed_unsync(http_body_util::Full::new(
        Bytes::from(body),
    )));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
    let headers = resp.headers_mut();
    headers.insert(
        "content-type",
        query_value(query, "type")
            .unwrap_or_else(|| "text/html; charset=utf-8".into())
            .parse()
            .unwrap(),
    );
    if !matches!(status, 204 | 304) {
        headers.insert("content-length", len.into());
    }
    for (param, header) in [
        ("ce", "content-encoding"),
        ("cc", "cache-control"),
        ("etag", "etag"),
        ("range", "content-range"),
    ] {
        if let Some(v) = query_value(query, param) {
            headers.insert(header, v.parse().unwrap());
        }
    }
    resp
}

impl ShapingOrigin {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let go = Arc::new(Notify::new());
        let shared = Arc::clone(&go);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let go = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let resp = shaped(&req, &go);
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, go, task }
    }
}

fn gateway(origin: SocketAddr, compress: &str) -> TestGateway {
    TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "origin"
targets = ["{origin}"]

[[routes]]
name = "plain"
path_prefix = "/plain"
upstream = "origin"
rewrite = {{ strip_prefix = "/plain" }}

[[routes]]
name = "compressed"
path_prefix = "/"
upstream = "origin"
compress = {compress}
"#
    ))
    .start()
}

/// `GET path` (or another method) with extra header lines, over a fresh connection.
async fn get(addr: SocketAddr, method: &str, path: &str, headers: &str) -> RawResponse {
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n");
    let head = method == "HEAD";
    tokio::time::timeout(WAIT, async {
        let raw = rampart_testkit::raw_request(addr, request.as_bytes())
            .await
            .unwrap();
        RawResponse::parse_for(&raw, head).unwrap()
    })
    .await
    .expect("an answer in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_round_trips_with_its_headers_fixed() {
    let origin = ShapingOrigin::start().await;
    let gw = gateway(origin.addr, "true");
    let addr = gw.addr("public");
    let expected = text(200_000);
    for (accept, coding) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, deflate, br, zstd", "zstd"),
        ("gzip;q=1.0, br;q=0.5, zstd;q=0.1", "gzip"),
        ("zstd;q=0, *", "br"),
    ] {
        let resp = get(
            addr,
            "GET",
            "/page?len=200000&etag=%22v1%22",
            &format!("Accept-Encoding: {accept}\r\n"),
        )
        .await;
        assert_eq!(resp.status, 200, "{accept}");
        assert_eq!(resp.header("content-encoding"), Some(coding), "{accept}");
        assert_eq!(resp.header("vary"), Some("accept-encoding"), "{accept}");
        assert_eq!(resp.header("etag"), Some("W/\"v1\""), "{accept}");
        assert_eq!(resp.header("content-length"), None, "{accept}");
        assert!(
            resp.body.len() < expected.len() / 4,
            "{accept}: {} bytes",
            resp.body.len()
        );
        assert_eq!(decode(coding, &resp.body), expected, "{accept}");
    }
    // Through reqwest too (it does not decode on its own: the bytes are what Rampart sent).
    let resp = crate::support::client()
        .get(gw.url("public", "/page?len=50000"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-encoding"], "br");
    assert_eq!(decode("br", &resp.bytes().await.unwrap()), text(50_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_that_must_stay_as_they_are_do() {
    let origin = ShapingOrigin::start().await;
    let gw = gateway(origin.addr, "true");
    let addr = gw.addr("public");
    let ae = "Accept-Encoding: gzip, br, zstd\r\n";
    // (path, method, request headers, Vary expected)
    let cases = [
        ("/x?ce=gzip", "GET", ae, false),
        ("/x?cc=public,%20no-transform", "GET", ae, false),
        ("/x?type=image/png", "GET", ae, false),
        ("/x?len=100", "GET", ae, false),
        ("/x?status=206&range=bytes%200-4095/9999", "GET", ae, false),
        ("/x?status=204", "GET", ae, false),
        ("/x?status=304", "GET", ae, false),
        ("/x", "HEAD", ae, true),
        ("/x", "GET", "", true),
        ("/x", "GET", "Accept-Encoding: identity\r\n", true),
        (
            "/x",
            "GET",
            "Accept-Encoding: gzip;q=0, br;q=0, zstd;q=0\r\n",
            true,
        ),
        ("/x", "GET", "Accept-Encoding: deflate, compress\r\n", true),
        ("/x", "GET", "Accept-Encoding: gzip;q=nonsense\r\n", true),
        ("/stream?type=text/event-stream", "GET", ae, false),
    ];
    for (path, method, headers, vary) in cases {
        if path.contains("event-stream") {
            // Lets the origin send its second event (a stored permit) and end.
            origin.go.notify_one();
        }
        let resp = get(addr, method, path, headers).await;
        let what = format!("{method} {path} [{}]", headers.trim());
        if path.contains("ce=gzip") {
            assert_eq!(resp.header("content-encoding"), Some("gzip"), "{what}");
        } else {
            assert_eq!(resp.header("content-encoding"), None, "{what}");
        }
        assert_eq!(resp.header("vary").is_some(), vary, "{what}");
        if path.contains("event-stream") {
            assert_eq!(resp.body, b"data: first\n\ndata: second\n\n", "{what}");
            continue;
        }
        if method == "GET" && resp.status == 200 {
            let len = if path.contains("len=100") { 100 } else { 4096 };
            assert_eq!(resp.body, text(len), "{what}");
        }
    }
    // A route without `compress` is not touched at all.
    let resp = get(addr, "GET", "/plain/x", ae).await;
    assert_eq!(resp.header("content-encoding"), None);
    assert_eq!(resp.header("vary"), None);
    assert_eq!(resp.header("content-length"), Some("4096"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_encoding_of_8_kib_and_garbage_ones_are_handled() {
    let origin = ShapingOrigin::start().await;
    let gw = gateway(origin.addr, "true");
    let addr = gw.addr("public");
    let mut long = "x-made-up-coding;q=0.001, ".repeat(320);
    long.push_str("br;q=0.9");
    assert!(long.len() >= 8 * 1024);
    let resp = get(addr, "GET", "/x", &format!("Accept-Encoding: {long}\r\n")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-encoding"), Some("br"));
    assert_eq!(decode("br", &resp.body), text(4096));
    for garbage in [";;;;", "q=1", "*;q=", ",,,,", "gzip;q=1;q=0;;", "\u{7f}"] {
        let resp = get(
            addr,
            "GET",
            "/x",
            &format!("Accept-Encoding: {garbage}\r\n"),
        )
        .await;
        assert!(
            resp.status == 200 || resp.status == 400,
            "{garbage:?}: {}",
            resp.status
        );
        if resp.status == 200 && resp.header("content-encoding").is_none() {
            assert_eq!(resp.body, text(4096), "{garbage:?}");
        }
    }
}

/// Reads the chunked body of a response on `stream` until `want` is in its decoded bytes.
async fn read_until_decoded(
    stream: &mut tokio::net::TcpStream,
    coding: &str,
    want: &[u8],
) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded: the read times out, and the loop ends when the text shows or the stream ends.
    for _ in 0..1000 {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("data in time")
            .unwrap();
        assert!(n > 0, "stream ended before {want:?} arrived");
        raw.extend_from_slice(&buf[..n]);
        let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let mut body = Vec::new();
        let mut rest = &raw[head_end + 4..];
        while let Some(line) = rest.windows(2).position(|w| w == b"\r\n") {
            let Ok(size) = usize::from_str_radix(std::str::from_utf8(&rest[..line]).unwrap(), 16)
            else {
                break;
            };
            if rest.len() < line + 2 + size + 2 {
                break;
            }
            body.extend_from_slice(&rest[line + 2..line + 2 + size]);
            rest = &rest[line + 2 + size + 2..];
        }
        let seen = partial_decode(coding, &body);
        if seen.windows(want.len()).any(|w| w == want) {
            return raw;
        }
    }
    panic!("{want:?} never arrived");
}

/// What a streaming decoder yields from the bytes so far.
fn partial_decode(coding: &str, body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match coding {
        "gzip" => {
            let mut d = flate2::write::GzDecoder::new(Vec::new());
            let _ = d.write_all(body);
            let _ = d.flush();
            d.get_ref().clone()
        }
        "br" => {
            let mut d = brotli_decompressor::DecompressorWriter::new(Vec::new(), 4096);
            let _ = d.write_all(body);
            let _ = d.flush();
            d.get_ref().clone()
        }
        _ => {
            let mut d = zstd::stream::write::Decoder::new(Vec::new()).unwrap();
            let _ = d.write_all(body);
            let _ = d.flush();
            d.get_ref().clone()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_response_reaches_the_client_while_the_origin_waits() {
    let origin = ShapingOrigin::start().await;
    let gw = gateway(
        origin.addr,
        r#"{ types = ["application/x-ndjson"], min_size = 0 }"#,
    );
    let addr = gw.addr("public");
    for coding in ["gzip", "br", "zstd"] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /stream HTTP/1.1\r\nHost: t\r\nAccept-Encoding: {coding}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        // The first event arrives, decodable, while the origin holds the rest back.
        read_until_decoded(&mut stream, coding, b"data: first\n\n").await;
        origin.go.notify_one();
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
            .await
            .expect("end in time")
            .unwrap();
    }
    // And the whole stream decodes once it has ended.
    origin.go.notify_one();
    let resp = get(addr, "GET", "/stream", "Accept-Encoding: gzip\r\n").await;
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    assert_eq!(
        decode("gzip", &resp.body),
        b"data: first\n\ndata: second\n\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_decodes_what_rampart_compresses() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("curl is not installed: skipped");
        return;
    }
    let origin = ShapingOrigin::start().await;
    let gw = gateway(origin.addr, "true");
    let url = gw.url("public", "/page?len=100000");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "20", "--compressed", "-D", "-", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text_out = out.stdout;
    let split = text_out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&text_out[..split]).to_ascii_lowercase();
    assert!(head.contains("content-encoding:"), "{head}");
    assert_eq!(&text_out[split..], text(100_000).as_slice());
}

/// A raw `GET /x` with `Accept-Encoding` for the config tests' gateways.
pub(crate) async fn fetch_encoded(addr: SocketAddr, path: &str, accept: &str) -> RawResponse {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nAccept-Encoding: {accept}\r\nConnection: close\r\n\r\n"
    );
    tokio::time::timeout(WAIT, raw_request_parsed(addr, request.as_bytes()))
        .await
        .expect("an answer in time")
        .unwrap()
}

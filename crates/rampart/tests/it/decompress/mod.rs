//! Request-body decompression through a real gateway and a recording origin: each coding
//! reaches the origin decompressed, with `Content-Encoding` removed and `Content-Length` exact
//! (or chunked for a body longer than the read-ahead); corrupt streams get 400, unknown or
//! stacked codings 415, before the origin sees anything; a cap crossed after forwarding began
//! leaves the origin with an incomplete request; and a route without `decompress` forwards
//! compressed bodies untouched. Bombs and memory are in [`bombs`].

mod bombs;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use rampart_testkit::{RawResponse, RecordingOrigin, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{access_log_line, header_values};

/// Bound on every wait in this area.
const WAIT: Duration = Duration::from_secs(20);

const SAMPLE: &[u8] = include_bytes!("../../../../rampart-filters/src/testdata/sample.json");
const SAMPLE_BR: &[u8] = include_bytes!("../../../../rampart-filters/src/testdata/sample.json.br");
const SAMPLE_ZST: &[u8] =
    include_bytes!("../../../../rampart-filters/src/testdata/sample.json.zst");

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `len` bytes that do not compress (a xorshift stream).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

/// Text that compresses about 4:1 (numbered lines).
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut n = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!("line {n} of a request body, {}\n", n * 7919 % 1013).as_bytes(),
        );
        n += 1;
    }
    out.truncate(len);
    out
}

fn gateway(origin: SocketAddr, route_extra: &str) -> TestGateway {
    TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "api"
targets = ["{origin}"]

[[routes]]
name = "plain"
path_prefix = "/plain"
upstream = "api"

[[routes]]
name = "inflating"
path_prefix = "/inflate"
upstream = "api"
{route_extra}
"#
    ))
    .access_log()
    .start()
}

/// Posts `body` with `Content-Encoding: coding` (none when empty) and `Connection: close`,
/// writing while reading, so an early answer is read even if Rampart stops reading the body.
async fn post(addr: SocketAddr, path: &str, coding: &str, body: Vec<u8>) -> RawResponse {
    let encoding = if coding.is_empty() {
        String::new()
    } else {
        format!("Content-Encoding: {coding}\r\n")
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\nContent-Type: application/json\r\n{encoding}Content-Length: {}\r\n\r\n",
        body.len()
    );
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        if write.write_all(head.as_bytes()).await.is_ok() {
            let _ = write.write_all(&body).await;
        }
        // Keep the write side open until the answer is read.
        write
    });
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, read.read_to_end(&mut raw))
        .await
        .expect("an answer in bounded time")
        .ok();
    writer.abort();
    RawResponse::parse(&raw).unwrap_or_else(|e| {
        panic!(
            "no parsable answer ({e}): {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// The body of a recorded request, de-chunked when it is chunked.
fn recorded_body(raw: &[u8]) -> Vec<u8> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &raw[split..];
    if !header_values(raw, "transfer-encoding").contains(&"chunked".to_owned()) {
        return body.to_vec();
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_coding_reaches_the_origin_decompressed_with_its_headers_fixed() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), "decompress = true");
    let addr = gw.addr("public");
    let long = text(300 * 1024);
    let cases: [(&str, Vec<u8>, &[u8]); 6] = [
        ("gzip", gzip(SAMPLE), SAMPLE),
        ("x-gzip", gzip(SAMPLE), SAMPLE),
        ("deflate", zlib(SAMPLE), SAMPLE),
        ("br", SAMPLE_BR.to_vec(), SAMPLE),
        ("zstd", SAMPLE_ZST.to_vec(), SAMPLE),
        ("gzip", gzip(&long), &long),
    ];
    for (i, (coding, body, expected)) in cases.iter().enumerate() {
        let resp = post(addr, "/inflate/items", coding, body.clone()).await;
        assert_eq!(resp.status, 200, "{coding}");
        let seen = origin.wait_for_requests(i + 1, WAIT).await;
        let raw = &seen[i];
        assert_eq!(
            header_values(raw, "content-encoding"),
            Vec::<String>::new(),
            "{coding}"
        );
        assert_eq!(recorded_body(raw), *expected, "{coding}");
        if expected.len() < 64 * 1024 {
            // Decompressed whole before forwarding: the exact length.
            assert_eq!(
                header_values(raw, "content-length"),
                [expected.len().to_string()],
                "{coding}"
            );
            assert!(
                header_values(raw, "transfer-encoding").is_empty(),
                "{coding}"
            );
        } else {
            // Longer than the read-ahead: streamed, chunked.
            assert!(header_values(raw, "content-length").is_empty(), "{coding}");
            assert_eq!(header_values(raw, "transfer-encoding"), ["chunked"]);
        }
        assert_eq!(header_values(raw, "content-type"), ["application/json"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_unknown_and_stacked_codings_are_refused_before_the_origin() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), "decompress = true");
    let addr = gw.addr("public");
    let gz = gzip(SAMPLE);
    let cases: [(&str, Vec<u8>, u16, &str); 5] = [
        (
            "gzip",
            b"this is not gzip".to_vec(),
            400,
            "bad_content_encoding",
        ),
        (
            "gzip",
            gz[..gz.len() / 2].to_vec(),
            400,
            "bad_content_encoding",
        ),
        ("compress", gz.clone(), 415, "unsupported_content_encoding"),
        ("gzip, br", gz.clone(), 415, "unsupported_content_encoding"),
        ("gzip, gzip", gzip(&gz), 415, "unsupported_content_encoding"),
    ];
    for (coding, body, status, reason) in cases {
        let resp = post(addr, "/inflate/items", coding, body).await;
        assert_eq!(resp.status, status, "{coding}");
        assert_eq!(
            access_log_line(&gw, &resp).await["reason"],
            reason,
            "{coding}"
        );
    }
    assert!(origin.requests().is_empty());
    assert_eq!(origin.connections(), 0, "nothing was forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_a_gzip_body_passes_untouched() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), "decompress = false");
    let addr = gw.addr("public");
    let gz = gzip(SAMPLE);
    // The route without the key, then the one with `decompress = false`.
    for (i, path) in ["/plain/items", "/inflate/items"].into_iter().enumerate() {
        let resp = post(addr, path, "gzip", gz.clone()).await;
        assert_eq!(resp.status, 200, "{path}");
        let seen = origin.wait_for_requests(i + 1, WAIT).await;
        let raw = &seen[i];
        assert_eq!(header_values(raw, "content-encoding"), ["gzip"], "{path}");
        assert_eq!(header_values(raw, "content-length"), [gz.len().to_string()]);
        assert_eq!(recorded_body(raw), gz, "{path}");
    }
    // An unknown coding is not Rampart's business on such a route either.
    let resp = post(addr, "/plain/items", "compress", b"whatever".to_vec()).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_crossed_after_forwarding_began_leaves_the_origin_an_incomplete_request() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), r#"decompress = { max_size = "256KiB" }"#);
    let addr = gw.addr("public");
    // Noise does not compress: the read-ahead (64 KiB of it) stays under the cap, so the
    // request is forwarded, and the cap is crossed while it streams.
    let body = gzip(&noise(1024 * 1024));
    let resp = post(addr, "/inflate/upload", "gzip", body).await;
    assert_eq!(resp.status, 413);
    assert_eq!(
        access_log_line(&gw, &resp).await["reason"],
        "decompression_limit"
    );
    assert!(
        origin.bytes_received() > 64 * 1024,
        "forwarding had begun: {} bytes",
        origin.bytes_received()
    );
    assert!(
        origin.bytes_received() < 512 * 1024,
        "stopped at the cap: {} bytes",
        origin.bytes_received()
    );
    // The origin never saw a complete request: the body was cut, never ended.
    assert!(origin.requests().is_empty());
}

#[test]
fn bad_caps_are_config_errors() {
    for (value, key) in [
        ("{ max_ratio = 0 }", "decompress.max_ratio"),
        ("{ max_size = 0 }", "decompress.max_size"),
        ("{ max_sise = \"1MiB\" }", "max_sise"),
        ("\"gzip\"", "decompress"),
    ] {
        let text = format!(
            "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n[[routes]]\nname = \"r\"\nrespond = {{ body = \"x\" }}\ndecompress = {value}\n"
        );
        let err = match rampart_config::load_str(&text, "test.toml") {
            Ok(_) => panic!("config accepted:\n{text}"),
            Err(d) => d.to_string(),
        };
        assert!(err.contains(key), "{value}: {err}");
    }
}

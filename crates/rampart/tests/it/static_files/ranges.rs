//! Range requests on static files: single (206), suffix, several (`multipart/byteranges`),
//! unsatisfiable (416), `If-Range`, and a 10 GiB sparse file, read at its end and streamed
//! from its start in bounded memory.

use super::{gateway, send, site};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_suffix_multi_and_unsatisfiable_ranges() {
    let site = site();
    let root = site.0.join("www");
    let digits: String = (0..1000)
        .map(|i| char::from(b'0' + (i % 10) as u8))
        .collect();
    std::fs::write(root.join("digits.txt"), &digits).unwrap();
    let gw = gateway(&root, "");
    let addr = gw.addr("public");
    let resp = send(addr, "GET", "/digits.txt", "Range: bytes=10-19\r\n").await;
    assert_eq!(resp.status, 206);
    assert_eq!(resp.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(resp.header("content-length"), Some("10"));
    assert_eq!(resp.body_text(), &digits[10..20]);
    let resp = send(addr, "GET", "/digits.txt", "Range: bytes=-5\r\n").await;
    assert_eq!(resp.header("content-range"), Some("bytes 995-999/1000"));
    assert_eq!(resp.body_text(), &digits[995..]);
    let resp = send(addr, "GET", "/digits.txt", "Range: bytes=990-\r\n").await;
    assert_eq!(resp.body_text(), &digits[990..]);
    // Several ranges: multipart/byteranges with each part's headers, and an exact length.
    let resp = send(addr, "GET", "/digits.txt", "Range: bytes=0-2, 100-104\r\n").await;
    assert_eq!(resp.status, 206);
    let ty = resp.header("content-type").unwrap().to_owned();
    let boundary = ty.strip_prefix("multipart/byteranges; boundary=").unwrap();
    assert_eq!(
        resp.header("content-length"),
        Some(&*resp.body.len().to_string())
    );
    let body = resp.body_text();
    assert!(body.contains(&format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-2/1000\r\n\r\n012\r\n")), "{body}");
    assert!(
        body.contains("Content-Range: bytes 100-104/1000\r\n\r\n01234\r\n"),
        "{body}"
    );
    assert!(body.ends_with(&format!("--{boundary}--\r\n")), "{body}");
    // Overlapping ranges are merged into one.
    let resp = send(addr, "GET", "/digits.txt", "Range: bytes=0-9,5-14\r\n").await;
    assert_eq!(resp.header("content-range"), Some("bytes 0-14/1000"));
    // Nothing satisfiable: 416 with the length.
    let resp = send(addr, "GET", "/digits.txt", "Range: bytes=1000-2000\r\n").await;
    assert_eq!(resp.status, 416);
    assert_eq!(resp.header("content-range"), Some("bytes */1000"));
    // Not a byte range, or an If-Range for another version: the whole file.
    for headers in [
        "Range: lines=1-2\r\n",
        "Range: bytes=5-1\r\n",
        "Range: bytes=0-1\r\nIf-Range: \"old\"\r\n",
    ] {
        let resp = send(addr, "GET", "/digits.txt", headers).await;
        assert_eq!(resp.status, 200, "{headers}");
        assert_eq!(resp.body_text(), digits, "{headers}");
    }
    let tag = send(addr, "GET", "/digits.txt", "")
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let resp = send(
        addr,
        "GET",
        "/digits.txt",
        &format!("Range: bytes=0-1\r\nIf-Range: {tag}\r\n"),
    )
    .await;
    assert_eq!(resp.status, 206);
    // HEAD ignores the range.
    let resp = send(addr, "HEAD", "/digits.txt", "Range: bytes=0-1\r\n").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("1000"));
}

/// This process's resident memory, in KiB (the gateway runs in it).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_gib_sparse_file_is_ranged_and_streamed_in_bounded_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let site = site();
    let root = site.0.join("www");
    let size: u64 = 10 << 30;
    let file = std::fs::File::create(root.join("huge.bin")).unwrap();
    file.set_len(size).unwrap();
    drop(file);
    let gw = gateway(&root, "");
    let addr = gw.addr("public");
    let resp = send(addr, "HEAD", "/huge.bin", "").await;
    assert_eq!(resp.header("content-length"), Some(&*size.to_string()));
    let start = size - 300;
    let resp = send(
        addr,
        "GET",
        "/huge.bin",
        &format!("Range: bytes={start}-{}\r\n", size - 1),
    )
    .await;
    assert_eq!(resp.status, 206);
    assert_eq!(
        resp.header("content-range"),
        Some(&*format!("bytes {start}-{}/{size}", size - 1))
    );
    assert_eq!(resp.body, vec![0u8; 300]);
    let resp = send(addr, "GET", "/huge.bin", "Range: bytes=0-0,-1\r\n").await;
    assert_eq!(resp.status, 206);
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("multipart/byteranges")
    );
    // The whole file from its start: read 96 MiB of it, then hang up. Memory stays bounded
    // (the file is sent in 64 KiB reads, never buffered).
    let before = rss_kib();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got: u64 = 0;
    while got < 96 << 20 {
        let n = tokio::time::timeout(super::WAIT, stream.read(&mut buf))
            .await
            .expect("data in time")
            .unwrap();
        assert!(n > 0, "the response ended after {got} bytes");
        got += n as u64;
    }
    let grown = rss_kib().saturating_sub(before);
    drop(stream);
    assert!(
        grown < 48 * 1024,
        "resident memory grew by {grown} KiB while streaming 96 MiB"
    );
}

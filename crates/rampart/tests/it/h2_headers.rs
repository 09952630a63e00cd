//! HTTP/2 request header blocks over the configured limits: answered 431 on the stream, as
//! HTTP/1.1 is, never refused as safe to retry (REFUSED_STREAM); the connection goes on
//! serving. Only a block too large to keep decoding ends the connection.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_testkit::TestGateway;

use crate::support::within;

fn gateway() -> TestGateway {
    TestGateway::builder(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[routes]]\nname = \"fixed\"\nrespond = { status = 200, body = \"ok\" }\n",
    )
    .access_log()
    .start()
}

async fn h2_client(gw: &TestGateway) -> SendRequest<Empty<Bytes>> {
    let stream = within(tokio::net::TcpStream::connect(gw.addr("public")))
        .await
        .unwrap();
    let (sender, conn) = within(
        hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .max_header_list_size(1 << 20)
            .handshake(TokioIo::new(stream)),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    sender
}

/// What one request with `headers` got: a status, or the error text (a reset stream, a
/// closed connection).
async fn send_with(
    sender: &mut SendRequest<Empty<Bytes>>,
    headers: &[(String, String)],
) -> Result<u16, String> {
    let mut req = http::Request::get("http://app.example/x");
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let req = req.body(Empty::new()).unwrap();
    within(sender.ready()).await.map_err(|e| format!("{e:?}"))?;
    let resp = within(sender.send_request(req))
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let _ = within(resp.into_body().collect()).await;
    Ok(status)
}

/// One header of `size` bytes of value.
fn big(size: usize) -> Vec<(String, String)> {
    vec![("x-big".to_owned(), "a".repeat(size))]
}

/// `count` small distinct headers.
fn many(count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("x-h{i}"), format!("value-{i}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_header_blocks_get_431_on_the_stream_and_the_connection_serves_on() {
    let gw = gateway();
    let mut sender = h2_client(&gw).await;
    for (what, headers) in [
        ("40 KB", big(40 * 1024)),
        ("70 KB", big(70 * 1024)),
        ("200 small headers", many(200)),
        ("1500 small headers", many(1500)),
    ] {
        assert_eq!(send_with(&mut sender, &headers).await, Ok(431), "{what}");
        // The same connection still serves.
        assert_eq!(send_with(&mut sender, &[]).await, Ok(200), "after {what}");
    }
    // Each refusal is Rampart's, with its log line and reason.
    let lines = gw.access_log_json(8);
    let refused: Vec<_> = lines.iter().filter(|l| l["status"] == 431).collect();
    assert_eq!(refused.len(), 4, "{lines:#?}");
    assert!(
        refused.iter().all(|l| l["protocol"] == "HTTP/2.0"
            && l["reason"].as_str().unwrap_or("").starts_with("header")),
        "{refused:#?}"
    );
    // Past what is decoded for Rampart's checks, the stream still gets 431 (from the HTTP/2
    // layer) while the block can be decoded, and the connection serves on.
    assert_eq!(send_with(&mut sender, &many(5000)).await, Ok(431));
    assert_eq!(send_with(&mut sender, &[]).await, Ok(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_block_too_large_to_decode_ends_the_connection_without_refused_stream() {
    let gw = gateway();
    let mut sender = h2_client(&gw).await;
    let got = send_with(&mut sender, &big(300 * 1024)).await;
    match &got {
        Ok(status) => assert_eq!(*status, 431, "{got:?}"),
        Err(e) => assert!(
            !e.contains("REFUSED_STREAM")
                && (e.contains("COMPRESSION_ERROR")
                    || e.contains("ENHANCE_YOUR_CALM")
                    || e.contains("GoAway")),
            "{e}"
        ),
    }
    // A new connection is served.
    let mut next = h2_client(&gw).await;
    assert_eq!(send_with(&mut next, &[]).await, Ok(200));
}

/// An HTTP/2 frame header: length, type, flags, stream.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[test]
fn a_connection_error_goaway_reaches_a_client_that_is_still_sending() {
    use std::io::{Read, Write};
    let gw = gateway();
    let mut tcp = std::net::TcpStream::connect(gw.addr("public")).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    tcp.set_write_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut opening = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    opening.extend(frame(4, 0, 0, &[]));
    // HEADERS whose block is not HPACK (index 0): a connection error.
    opening.extend(frame(1, 0x4 | 0x1, 1, &[0x80]));
    tcp.write_all(&opening).unwrap();
    // The client goes on sending (frames already in flight when the error is found): 256 KiB
    // of PINGs, which a gateway that closed at once would answer with a reset.
    let pings: Vec<u8> = (0..4096).flat_map(|_| frame(6, 0, 0, &[0; 8])).collect();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let sent = tcp.write_all(&pings[..pings.len() / 2]).and_then(|()| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        tcp.write_all(&pings[pings.len() / 2..])
    });
    let shut = tcp.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    let read = tcp.read_to_end(&mut got);
    assert!(
        sent.is_ok() && shut.is_ok() && read.is_ok(),
        "sent {sent:?}, shutdown {shut:?}, read {read:?}"
    );
    // The frames received include the GOAWAY, with an error code.
    let mut rest = &got[..];
    let mut goaway = None;
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        if rest[3] == 7 && len >= 8 && rest.len() >= 9 + len {
            goaway = Some(u32::from_be_bytes(rest[13..17].try_into().unwrap()));
        }
        rest = &rest[(9 + len).min(rest.len())..];
    }
    assert!(goaway.is_some_and(|code| code != 0), "{got:?}");
}

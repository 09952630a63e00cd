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

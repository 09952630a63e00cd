//! HTTP/3 limits and bad input: each case checks what the client got and what reached the
//! upstream (nothing, where the request was refused).

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use rampart_testkit::{HttpOrigin, TestPki};

use super::client::{H3Client, WAIT, request};
use super::gateway;

#[tokio::test]
async fn oversized_headers_get_rampart_431_and_reach_no_upstream() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let gw = gateway(&pki, origin.addr(), "", "");
    let mut client = H3Client::connect(gw.addr("h3"), &pki, "h3.test").await;
    let mut req = request("GET", "h3.test", "/big");
    req.headers_mut()
        .insert("x-big", "b".repeat(40 * 1024).parse().unwrap());
    let answer = client.request(req, b"").await;
    assert_eq!(answer.status(), 431);
    // The connection serves on.
    assert_eq!(client.get("h3.test", "/after").await.status(), 200);
    assert_eq!(
        origin.requests(),
        1,
        "only the request after reached the upstream"
    );
    client.close().await;
}

#[tokio::test]
async fn connect_is_refused_and_reaches_no_upstream() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let gw = gateway(&pki, origin.addr(), "", "");
    let mut client = H3Client::connect(gw.addr("h3"), &pki, "h3.test").await;
    let req = http::Request::builder()
        .method("CONNECT")
        .uri("h3.test:443")
        .body(())
        .unwrap();
    let answer = client.request(req, b"").await;
    assert_eq!(answer.status(), 405);
    assert_eq!(origin.requests(), 0);
    client.close().await;
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_refused_before_the_upstream() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let gw = gateway(&pki, origin.addr(), "", "");
    let mut client = H3Client::connect(gw.addr("h3"), &pki, "h3.test").await;
    let mut req = request("POST", "h3.test", "/short");
    req.headers_mut()
        .insert("content-length", "100".parse().unwrap());
    let answer = tokio::time::timeout(WAIT, client.exchange(req, b"only-this", None))
        .await
        .unwrap();
    match answer {
        Ok(answer) => assert_eq!(answer.status(), 400),
        // The stream may be stopped before the client reads the answer.
        Err(e) => assert!(e.contains("H3_MESSAGE_ERROR") || e.contains("stop"), "{e}"),
    }
    assert_eq!(origin.requests(), 0);
    let mut trailers = HeaderMap::new();
    trailers.insert("x-sum", "1".parse().unwrap());
    let answer = client
        .exchange(
            request("POST", "h3.test", "/trailers"),
            b"body",
            Some(trailers),
        )
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "a body with trailers is served");
    client.close().await;
}

#[tokio::test]
async fn a_first_frame_that_is_not_headers_closes_the_connection_with_frame_unexpected() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let gw = gateway(&pki, origin.addr(), "", "");
    let client = H3Client::connect(gw.addr("h3"), &pki, "h3.test").await;
    let (mut send, _recv) = client.conn.open_bi().await.unwrap();
    // A DATA frame (type 0, length 3) where HEADERS must come first.
    send.write_all(&[0x00, 0x03, b'a', b'b', b'c'])
        .await
        .unwrap();
    send.finish().unwrap();
    client
        .assert_closed_with(0x105, "H3_FRAME_UNEXPECTED", "")
        .await;
    assert_eq!(origin.requests(), 0);
}

#[tokio::test]
async fn a_client_resetting_streams_in_a_loop_is_cut_off_and_others_are_served() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let gw = gateway(&pki, origin.addr(), "max_reset_streams = 10", "");
    let addr = gw.addr("h3");
    let mut flood = H3Client::connect(addr, &pki, "h3.test").await;
    let mut opened = 0;
    for _ in 0..500 {
        let Ok(mut stream) = flood
            .send
            .send_request(request("GET", "h3.test", "/delay/200"))
            .await
        else {
            break;
        };
        opened += 1;
        stream.stop_sending(h3::error::Code::H3_REQUEST_CANCELLED);
        stream.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
        if flood.conn.close_reason().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    flood
        .assert_closed_with(
            0x107,
            "H3_EXCESSIVE_LOAD",
            &format!(" after {opened} streams"),
        )
        .await;
    assert!(opened < 500, "the flood was never cut off");
    assert!(origin.requests() < 500);
    let mut other = H3Client::connect(addr, &pki, "h3.test").await;
    assert_eq!(other.get("h3.test", "/fine").await.status(), 200);
    other.close().await;
    assert!(
        gw.handle()
            .metrics_text()
            .contains("rampart_quic_reset_floods_total 1")
    );
    let _ = Bytes::new();
}

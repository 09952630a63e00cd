//! HTTP/2 connections when the gateway drains (shutdown, and so the old process of an
//! upgrade): GOAWAY, every stream already begun answered, then the connection closes by
//! itself; the client's next request goes to a new connection.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_testkit::{HttpOrigin, TestGateway};

use crate::support::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_finishes_every_begun_stream_then_closes_the_connection() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = TestGateway::builder(format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        origin.addr()
    ))
    .start();
    let addr = gw.addr("public");
    let stream = within(tokio::net::TcpStream::connect(addr)).await.unwrap();
    let (sender, conn) = within(hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(stream),
    ))
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let mut in_flight = Vec::new();
    for i in 0..3 {
        let mut sender = sender.clone();
        let req = http::Request::get(format!("http://app.example/delay/1000?n={i}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        in_flight.push(tokio::spawn(async move {
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            resp.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        }));
    }
    within(async {
        while origin.requests() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    let shutdown = tokio::task::spawn_blocking(move || gw.shutdown());
    for (i, request) in in_flight.into_iter().enumerate() {
        let status = within(request).await.unwrap();
        assert_eq!(
            status.map(|s| s.as_u16()).map_err(|e| e.to_string()),
            Ok(200),
            "stream {i} was cut off by the drain"
        );
    }
    // With its streams answered, the connection ends cleanly (GOAWAY, then close).
    within(conn)
        .await
        .unwrap()
        .expect("the connection ended with an error");
    within(shutdown).await.unwrap();
}

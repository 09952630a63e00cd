//! The streams of one HTTP/2 connection run inside the connection's task: a stream waiting on
//! its upstream holds up none of the others, and large bodies go both ways under flow control.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_testkit::{HttpOrigin, TestGateway};

use crate::support::within;

fn gateway(origin: &HttpOrigin) -> TestGateway {
    TestGateway::builder(format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        origin.addr()
    ))
    .start()
}

async fn h2_client<B>(gw: &TestGateway) -> SendRequest<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = within(tokio::net::TcpStream::connect(gw.addr("public")))
        .await
        .unwrap();
    let (sender, conn) = within(hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(stream),
    ))
    .await
    .unwrap();
    tokio::spawn(conn);
    sender
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_holds_up_no_other_stream_of_its_connection() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = gateway(&origin);
    let sender = h2_client::<Empty<Bytes>>(&gw).await;

    // The origin holds this one for a minute (longer than the test waits for anything).
    let mut slow_sender = sender.clone();
    let slow = tokio::spawn(async move {
        let req = http::Request::get("http://app.example/delay/60000")
            .body(Empty::new())
            .unwrap();
        slow_sender.send_request(req).await.map(|r| r.status())
    });
    within(async {
        while origin.requests() < 1 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;

    let mut fast = Vec::new();
    for i in 0..20 {
        let mut sender = sender.clone();
        fast.push(tokio::spawn(async move {
            let req = http::Request::get(format!("http://app.example/fast?n={i}"))
                .body(Empty::new())
                .unwrap();
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            resp.into_body().collect().await?;
            Ok::<_, hyper::Error>(status.as_u16())
        }));
    }
    for (i, request) in fast.into_iter().enumerate() {
        let status = within(request).await.unwrap().map_err(|e| e.to_string());
        assert_eq!(status, Ok(200), "stream {i} beside the slow one");
    }
    assert!(
        !slow.is_finished(),
        "the slow stream is still waiting on its origin"
    );
    slow.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_and_a_large_download_complete_together_on_one_connection() {
    const SIZE: usize = 8 << 20;
    let origin = HttpOrigin::start().await.unwrap();
    let gw = gateway(&origin);
    let sender = h2_client::<Full<Bytes>>(&gw).await;

    let mut up_sender = sender.clone();
    let upload = tokio::spawn(async move {
        let req = http::Request::post("http://app.example/sink")
            .body(Full::new(Bytes::from(vec![b'u'; SIZE])))
            .unwrap();
        let resp = up_sender.send_request(req).await?;
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>(String::from_utf8_lossy(&body).into_owned())
    });
    let mut down_sender = sender.clone();
    let download = tokio::spawn(async move {
        let req = http::Request::get(format!("http://app.example/bytes/{SIZE}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = down_sender.send_request(req).await?;
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>(body.len())
    });

    let received = within(upload).await.unwrap().unwrap();
    assert!(
        received.contains(&format!("\"received\":{SIZE}")),
        "the origin got the whole upload: {received}"
    );
    assert_eq!(within(download).await.unwrap().unwrap(), SIZE);
}

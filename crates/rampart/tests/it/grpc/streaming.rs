//! Streaming calls: server, client and bidi streams, cancellation, flow control, body limit.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::stream;
use tokio::sync::mpsc;
use tonic::{Code, Request};

use super::{GrpcOrigin, Msg, WAIT, client, codec, gateway, msg, path, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streams_reach_the_client_while_the_origin_still_streams() {
    let origin = GrpcOrigin::start().await;
    let gw = gateway(origin.addr, "");
    let mut client = client(gw.addr("public"));
    within(client.ready()).await.unwrap();
    let resp = within(client.server_streaming(Request::new(msg("", 3)), path("Gated"), codec()))
        .await
        .unwrap();
    let mut stream = resp.into_inner();
    for i in 0..3u32 {
        let got = within(stream.message()).await.unwrap().unwrap();
        assert_eq!(got, msg("part", i));
        assert_eq!(
            origin.state.sent.load(Ordering::SeqCst),
            usize::try_from(i).unwrap() + 1,
            "message {i} arrived before the origin was allowed to produce the next"
        );
        // Only now may the origin produce the next message.
        if i < 2 {
            origin.gate.send(()).unwrap();
        }
    }
    assert_eq!(within(stream.message()).await.unwrap(), None);
    let trailers = within(stream.trailers()).await.unwrap();
    assert!(trailers.is_some(), "grpc-status arrives in trailers");
    assert!(!origin.state.cancelled.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_is_cancelled_at_the_origin() {
    let origin = GrpcOrigin::start().await;
    let gw = gateway(origin.addr, "");
    let mut client = client(gw.addr("public"));
    within(client.ready()).await.unwrap();
    let resp = within(client.server_streaming(Request::new(msg("", 100)), path("Gated"), codec()))
        .await
        .unwrap();
    let mut stream = resp.into_inner();
    assert_eq!(
        within(stream.message()).await.unwrap(),
        Some(msg("part", 0))
    );
    // The client gives up: its RST_STREAM must reach the origin through Rampart, which drops
    // the stream it was producing.
    drop(stream);
    wait_for(|| origin.state.cancelled.load(Ordering::SeqCst).then_some(())).await;
    assert_eq!(origin.state.sent.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streams_reach_the_origin_whole() {
    let origin = GrpcOrigin::start().await;
    let gw = gateway(origin.addr, "");
    let mut client = client(gw.addr("public"));
    within(client.ready()).await.unwrap();
    let parts: Vec<Msg> = (0..50).map(|i| msg(&format!("p{i}"), i)).collect();
    let expected: Vec<String> = parts.iter().map(|m| m.text.clone()).collect();
    let resp =
        within(client.client_streaming(Request::new(stream::iter(parts)), path("Sum"), codec()))
            .await
            .unwrap();
    assert_eq!(resp.into_inner(), msg(&expected.join("+"), 50));
    assert_eq!(*origin.state.sums.lock().unwrap(), [Ok(50)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_stream_through_flow_control() {
    let origin = GrpcOrigin::start().await;
    let gw = gateway(origin.addr, "");
    let mut client = client(gw.addr("public"));
    within(client.ready()).await.unwrap();
    // 3 x 1 MiB: far past HTTP/2's 64 KiB default windows on both hops (the reply stays under
    // tonic's 4 MiB decoding limit).
    let big = "x".repeat(1 << 20);
    let parts: Vec<Msg> = (0..3).map(|i| msg(&big, i)).collect();
    let resp =
        within(client.client_streaming(Request::new(stream::iter(parts)), path("Sum"), codec()))
            .await
            .unwrap();
    let reply = resp.into_inner();
    assert_eq!((reply.seq, reply.text.len()), (3, 3 * (1 << 20) + 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stream_over_the_body_limit_gets_resource_exhausted() {
    let origin = GrpcOrigin::start().await;
    let gw = gateway(origin.addr, "max_body_size = \"4KiB\"");
    let mut client = client(gw.addr("public"));
    within(client.ready()).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel::<Msg>();
    let outgoing = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let call = within(client.client_streaming(Request::new(outgoing), path("Sum"), codec()));
    let feed = async {
        // One small message the origin is seen to receive, then 10 of ~600 bytes: the limit
        // is crossed mid-stream, before the origin answers.
        tx.send(msg("first", 0)).unwrap();
        wait_for(|| (origin.state.sum_messages.load(Ordering::SeqCst) == 1).then_some(())).await;
        for i in 1..=10 {
            let _ = tx.send(msg(&"y".repeat(600), i));
        }
        drop(tx);
    };
    let (status, ()) = tokio::join!(call, feed);
    let status = status.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.message(), "The request body is too large.");
    // The origin saw the stream broken (or was cancelled), never a clean, truncated end it
    // could answer.
    let outcome = wait_for(|| origin.state.sums.lock().unwrap().first().copied()).await;
    assert!(
        outcome.is_err(),
        "the origin summed a truncated stream: {outcome:?}"
    );
    let log = gw.access_log_json(1);
    assert_eq!(log[0]["reason"], "body_too_large", "{log:?}");
}

/// Polls `probe` (every 10 ms, for at most [`WAIT`]) until it yields a value.
async fn wait_for<T>(mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..(WAIT.as_millis() / 10) {
        if let Some(v) = probe() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within {WAIT:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidirectional_streams_interleave_through_the_gateway() {
    let origin = GrpcOrigin::start().await;
    let gw = gateway(origin.addr, "");
    let mut client = client(gw.addr("public"));
    within(client.ready()).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel::<Msg>();
    let outgoing = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let resp = within(client.streaming(Request::new(outgoing), path("Chat"), codec()))
        .await
        .unwrap();
    let mut replies = resp.into_inner();
    // Ping-pong: each reply must arrive before the next message is even sent, so neither
    // direction may be buffered until its end.
    for i in 0..5 {
        tx.send(msg(&format!("m{i}"), i)).unwrap();
        let reply = within(replies.message()).await.unwrap().unwrap();
        assert_eq!(reply, msg(&format!("re: m{i}"), i));
    }
    drop(tx);
    assert_eq!(within(replies.message()).await.unwrap(), None);
}

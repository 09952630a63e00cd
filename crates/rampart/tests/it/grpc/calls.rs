//! Unary calls: metadata both ways, trailers (errors and after messages) and `grpc-timeout`.

use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::{Code, Request};

use super::{GrpcOrigin, client, codec, gateway, msg, path, unary, within};

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_pass_through_with_metadata_both_ways() {
    let origin = GrpcOrigin::start().await;
    let gw = gateway(origin.addr, "");
    let mut client = client(gw.addr("public"));
    for i in 0..3 {
        let mut req = Request::new(msg("hello", i));
        req.metadata_mut()
            .insert("x-client", MetadataValue::from_static("tonic"));
        let resp = unary(&mut client, "Unary", req).await.unwrap();
        assert_eq!(resp.metadata().get("x-origin").unwrap(), "unary");
        assert!(resp.metadata().get("x-request-id").is_some());
        assert_eq!(resp.into_inner(), msg("echo: hello", i));
    }
    let seen = origin.last_request("/test.Echo/Unary");
    assert_eq!(seen["content-type"], "application/grpc");
    assert_eq!(
        seen["te"], "trailers",
        "gRPC servers may insist on TE: trailers"
    );
    assert_eq!(seen["x-client"], "tonic");
    assert_eq!(origin.calls(), 3);
    let log = gw.access_log_json(3);
    assert!(log.iter().all(|l| l["status"] == 200), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_only_errors_keep_code_message_and_metadata() {
    let origin = GrpcOrigin::start().await;
    let gw = gateway(origin.addr, "");
    let mut client = client(gw.addr("public"));
    let status = unary(&mut client, "Unary", Request::new(msg("missing", 0)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "no such thing: missing");
    assert_eq!(status.metadata().get("x-detail").unwrap(), "gone");
    let blob = status.metadata().get_bin("x-blob-bin").unwrap();
    assert_eq!(blob.to_bytes().unwrap().as_ref(), [0, 1, 2, 255]);
    assert_eq!(origin.calls(), 1, "the origin's status, not Rampart's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_after_messages_keep_status_and_metadata() {
    let origin = GrpcOrigin::start().await;
    let gw = gateway(origin.addr, "");
    let mut client = client(gw.addr("public"));

    // Success: custom trailing metadata next to grpc-status 0.
    within(client.ready()).await.unwrap();
    let resp =
        within(client.server_streaming(Request::new(msg("ok", 0)), path("Trailing"), codec()))
            .await
            .unwrap();
    let mut stream = resp.into_inner();
    assert_eq!(within(stream.message()).await.unwrap(), Some(msg("a", 0)));
    assert_eq!(within(stream.message()).await.unwrap(), Some(msg("b", 1)));
    assert_eq!(within(stream.message()).await.unwrap(), None);
    let trailers = within(stream.trailers()).await.unwrap().unwrap();
    assert_eq!(trailers.get("x-checksum").unwrap(), "c0ffee");
    let blob = trailers.get_bin("x-blob-bin").unwrap().to_bytes().unwrap();
    assert_eq!(blob.as_ref(), [9, 0, 255]);

    // Failure after two messages: the status comes in the trailers.
    within(client.ready()).await.unwrap();
    let resp =
        within(client.server_streaming(Request::new(msg("fail", 0)), path("Trailing"), codec()))
            .await
            .unwrap();
    let mut stream = resp.into_inner();
    assert_eq!(within(stream.message()).await.unwrap(), Some(msg("a", 0)));
    assert_eq!(within(stream.message()).await.unwrap(), Some(msg("b", 1)));
    let status = within(stream.message()).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "ran out after two");
    assert_eq!(status.metadata().get("x-checksum").unwrap(), "c0ffee");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_timeout_reaches_the_origin() {
    let origin = GrpcOrigin::start().await;
    let gw = gateway(origin.addr, "");
    let mut client = client(gw.addr("public"));
    let mut req = Request::new(msg("deadline", 0));
    req.set_timeout(Duration::from_millis(1500));
    unary(&mut client, "Unary", req).await.unwrap();
    let seen = origin.last_request("/test.Echo/Unary");
    let timeout = seen["grpc-timeout"].to_str().unwrap();
    // tonic writes the deadline in its own unit; any spelling of 1.5 s is right.
    let expected = ["1500m", "1500000u", "1500000000n", "2S"];
    assert!(expected.contains(&timeout), "grpc-timeout {timeout:?}");
}

//! gRPC-shaped failures Rampart answers itself (origin down, timeouts, no route): HTTP 200 with
//! the status in the headers, `grpc_status` in the access log and the metrics, and the caller's
//! `grpc-timeout` capping the wait.

use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rampart_testkit::{TestGateway, free_port_closed};
use std::time::Duration;
use tonic::{Code, Request};

use super::{GrpcOrigin, client, codec, gateway, msg, path, unary, within};

/// The failure Rampart answers a gRPC call with, checked as a gRPC client sees it and as raw
/// HTTP/2: HTTP 200, `application/grpc`, the status in the headers, no body.
async fn assert_rampart_grpc_failure(gw: &TestGateway, method: &str, code: Code, message: &str) {
    let mut client = client(gw.addr("public"));
    let status = unary(&mut client, method, Request::new(msg("x", 0)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message);
    assert!(
        status.metadata().get("x-request-id").is_some(),
        "{status:?}"
    );

    let http = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(gw.url("public", &format!("/test.Echo/{method}")))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(&[
            0, 0, 0, 0, 0,
        ])))
        .unwrap();
    let resp = within(http.request(req)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["grpc-status"], (code as i32).to_string());
    assert!(headers.contains_key("x-request-id"));
    let body = within(resp.into_body().collect()).await.unwrap();
    assert!(body.to_bytes().is_empty(), "trailers-only: no body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_is_down_gives_unavailable() {
    let down = free_port_closed().unwrap();
    let gw = gateway(down, "");
    assert_rampart_grpc_failure(
        &gw,
        "Unary",
        Code::Unavailable,
        "The upstream service failed to answer.",
    )
    .await;
    let log = gw.access_log_json(2);
    assert!(
        log.iter().all(|l| l["status"] == 200
            && l["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("upstream_") || r == "no_upstream_target")),
        "the log keeps the reason: {log:?}"
    );
    assert!(
        log.iter().all(|l| l["grpc_status"] == 14),
        "the log says what the call got: {log:?}"
    );
    let metrics = gw.handle().metrics_text();
    assert!(
        metrics.contains("rampart_grpc_responses_total{route=\"grpc\",grpc_status=\"14\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_grpc_timeout_caps_the_wait_with_deadline_exceeded() {
    let origin = GrpcOrigin::start().await;
    // The route would wait 30 s; the caller's deadline is 300 ms.
    let gw = gateway(origin.addr, "timeout = \"30s\"");
    let mut caller = client(gw.addr("public"));
    let mut req = Request::new(msg("x", 0));
    req.set_timeout(Duration::from_millis(300));
    within(caller.ready()).await.unwrap();
    let status = within(caller.unary(req, path("Stall"), codec()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let log = gw.access_log_json(1);
    assert_eq!(log[0]["status"], 200, "{log:?}");
    assert_eq!(log[0]["grpc_status"], 4, "{log:?}");
    assert_eq!(log[0]["reason"], "upstream_timeout", "{log:?}");
    // An HTTP answer has no gRPC status in the log.
    let mut ok = client(gw.addr("public"));
    unary(&mut ok, "Unary", Request::new(msg("hi", 1)))
        .await
        .unwrap();
    let log = gw.access_log_json(2);
    assert!(log[1]["grpc_status"].is_null(), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_stalls_gives_deadline_exceeded() {
    let origin = GrpcOrigin::start().await;
    let gw = gateway(origin.addr, "timeout = \"300ms\"");
    assert_rampart_grpc_failure(
        &gw,
        "Stall",
        Code::DeadlineExceeded,
        "The upstream service did not answer in time.",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_no_route_serves_gives_unimplemented() {
    let origin = GrpcOrigin::start().await;
    let gw = gateway(origin.addr, "path_prefix = \"/other.Service/\"");
    assert_rampart_grpc_failure(
        &gw,
        "Unary",
        Code::Unimplemented,
        "No route matches this request.",
    )
    .await;
    assert_eq!(origin.calls(), 0, "nothing reached the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_grpc_requests_still_get_http_errors() {
    let down = free_port_closed().unwrap();
    let gw = gateway(down, "");
    let http = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    for ct in ["application/json", "application/grpc-web"] {
        let req = http::Request::post(gw.url("public", "/test.Echo/Unary"))
            .header("content-type", ct)
            .header("accept", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
            .unwrap();
        let resp = within(http.request(req)).await.unwrap();
        assert_eq!(resp.status(), 502, "{ct}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert!(!resp.headers().contains_key("grpc-status"));
    }
}

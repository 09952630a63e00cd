//! Requests over HTTP/3: the same pipeline, upstream and access log as the other protocols,
//! streamed bodies both ways, Alt-Svc on the TCP side only.

use std::time::Duration;

use bytes::Bytes;
use rampart_testkit::{HttpOrigin, TestPki};

use super::client::{H3Client, request};
use super::gateway;

#[tokio::test]
async fn a_get_goes_through_the_pipeline_to_the_upstream_and_is_logged_as_http3() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let gw = gateway(&pki, origin.addr(), "", "");
    let addr = gw.addr("h3");
    let mut client = H3Client::connect(addr, &pki, "h3.test").await;
    let answer = client.get("h3.test", "/hello?x=1").await;
    assert_eq!(answer.status(), 200);
    let echo = answer.json();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["uri"], "/hello?x=1");
    assert!(answer.header("x-request-id").is_some());
    assert_eq!(answer.header("alt-svc"), None, "an HTTP/3 answer repeats no Alt-Svc");
    client.close().await;
    let line = gw
        .access_log_json(1)
        .into_iter()
        .find(|l| l["uri"] == "/hello?x=1")
        .unwrap();
    assert_eq!(line["protocol"], "HTTP/3.0");
    assert_eq!(line["status"], 200);
    assert_eq!(line["route"], "all");
}

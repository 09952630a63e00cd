//! Requests over HTTP/3: the same pipeline, upstream and access log as the other protocols,
//! streamed bodies both ways, Alt-Svc on the TCP side only.

use std::time::Duration;

use rampart_testkit::{Behavior, HttpOrigin, ScriptedOrigin, TestPki, reqwest};

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
    assert_eq!(
        answer.header("alt-svc"),
        None,
        "an HTTP/3 answer repeats no Alt-Svc"
    );
    let metrics = gw.handle().metrics_text();
    assert!(
        metrics.contains("rampart_connections_active{listener=\"h3\",protocol=\"h3\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("rampart_quic_handshakes_total{result=\"ok\"} 1"));
    client.close().await;
    let lines = gw.access_log_json(1);
    let line = lines
        .iter()
        .find(|l| l["uri"].as_str().is_some_and(|u| u.ends_with("/hello?x=1")))
        .unwrap_or_else(|| panic!("no log line for the request: {lines:?}"));
    assert_eq!(line["protocol"], "HTTP/3.0");
    assert_eq!(line["status"], 200);
    assert_eq!(line["route"], "all");
    // Counted before it was logged.
    let metrics = gw.handle().metrics_text();
    assert!(
        metrics.contains("rampart_listener_requests_total{listener=\"h3\",http_version=\"3\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rampart_listener_requests_total{listener=\"h3\",http_version=\"1.1\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_post_body_and_a_large_response_stream_both_ways() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let gw = gateway(&pki, origin.addr(), "", "");
    let mut client = H3Client::connect(gw.addr("h3"), &pki, "h3.test").await;
    let upload = vec![b'u'; 3 << 20];
    let answer = client
        .request(request("POST", "h3.test", "/upload"), &upload)
        .await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json()["body_len"], upload.len());
    let answer = client.get("h3.test", "/bytes/4000000").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.body.len(), 4_000_000);
    let answer = client
        .request(request("HEAD", "h3.test", "/bytes/1000"), b"")
        .await;
    assert_eq!(answer.status(), 200);
    assert!(answer.body.is_empty());
    client.close().await;
}

#[tokio::test]
async fn response_trailers_from_the_upstream_reach_the_client() {
    let origin = ScriptedOrigin::start(Behavior::Respond(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: abc\r\n\r\n".to_vec(),
    ))
    .await
    .unwrap();
    let pki = TestPki::new();
    let gw = gateway(&pki, origin.addr(), "", "");
    let mut client = H3Client::connect(gw.addr("h3"), &pki, "h3.test").await;
    let answer = client.get("h3.test", "/t").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(&answer.body[..], b"hello");
    let trailers = answer.trailers.expect("trailers");
    assert_eq!(trailers.get("x-checksum").unwrap(), "abc");
    client.close().await;
}

#[tokio::test]
async fn the_tcp_side_advertises_http3_and_can_be_told_not_to() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    for (extra, expected) in [
        ("alt_svc_max_age = \"1h\"", true),
        ("alt_svc = false", false),
    ] {
        let gw = gateway(&pki, origin.addr(), extra, "");
        let addr = gw.addr("h3");
        let ca = std::fs::read(pki.path("ca.pem")).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .resolve("h3.test", addr)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let resp = client
            .get(format!("https://h3.test:{}/", addr.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        let alt = resp
            .headers()
            .get("alt-svc")
            .map(|v| v.to_str().unwrap().to_owned());
        if expected {
            assert_eq!(alt, Some(format!("h3=\":{}\"; ma=3600", addr.port())));
        } else {
            assert_eq!(alt, None);
        }
        drop(resp.bytes().await.unwrap());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let line = "rampart_listener_requests_total{listener=\"h3\",http_version=\"2\"} 1";
        while !gw.handle().metrics_text().contains(line) {
            assert!(
                std::time::Instant::now() < deadline,
                "{line} never appeared"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn aioquic_an_independent_client_is_served() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let gw = gateway(&pki, origin.addr(), "", "");
    let addr = gw.addr("h3");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/h3/aioquic_client.py");
    for (method, body) in [("GET", ""), ("POST", "from-aioquic")] {
        let ca = pki.path("ca.pem");
        let port = addr.port().to_string();
        let args: Vec<String> = [
            script,
            "127.0.0.1",
            &port,
            "h3.test",
            &ca,
            method,
            "/aio",
            body,
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        // The script gives up after 20 s itself.
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3").args(&args).output()
        })
        .await
        .unwrap()
        .expect("python3 with aioquic (scripts/test installs it)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "aioquic client failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with("status 200\n"), "{text}");
        let json = text.split("\n\n").nth(1).unwrap();
        let echo: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(echo["method"], method);
        assert_eq!(echo["body_len"], body.len());
    }
}

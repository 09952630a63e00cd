//! Requests reach the origin intact: ids, 100-continue, host/path rewrites, IPv6, route scoping.

use rampart_testkit::{HttpOrigin, RecordingOrigin, TestGateway, raw_request_parsed};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{echoed_one, listener, log_line, raw_echo, simple_gateway, upstream};
use crate::support::{client, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_is_proxied_end_to_end_with_method_path_query_body_and_request_id() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = simple_gateway(origin.addr());

    let resp = within(
        client()
            .post(gw.url("public", "/things/42?a=1&b=two%20words"))
            .header("x-custom", "kept")
            .header("content-type", "text/plain")
            .body("hello, origin")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!request_id.is_empty());
    let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();

    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/things/42?a=1&b=two%20words");
    assert_eq!(echo["body_len"], "hello, origin".len());
    assert_eq!(echoed_one(&echo, "x-custom"), "kept");
    assert_eq!(echoed_one(&echo, "content-type"), "text/plain");
    assert_eq!(
        echoed_one(&echo, "x-request-id"),
        request_id,
        "the upstream gets the same id"
    );
    assert!(echoed_one(&echo, "traceparent").starts_with("00-"));

    // The upstream's status and body come back as they are.
    let resp = within(client().get(gw.url("public", "/status/418")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 418);
    let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
    assert_eq!(echo["uri"], "/status/418");
    let resp = within(client().get(gw.url("public", "/status/204")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(within(resp.bytes()).await.unwrap().is_empty());

    let line = log_line(&gw, &request_id, 3);
    assert_eq!(line["status"], 200);
    assert_eq!(line["method"], "POST");
    assert_eq!(line["route"], "all");
    assert_eq!(line["upstream"], "origin");
    assert_eq!(line["upstream_target"], origin.addr().to_string());
    assert_eq!(line["completed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_request_ids_are_replaced_unless_the_listener_trusts_them() {
    let origin = HttpOrigin::start().await.unwrap();
    let config = format!(
        "{}{}{}[[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        listener("edge", ""),
        listener("trusted", "trust_request_id = true"),
        upstream("origin", &[origin.addr()], "")
    );
    let gw = TestGateway::builder(config).start();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let sent = format!("X-Request-ID: client-chosen-id\r\ntraceparent: {traceparent}\r\n");

    let request = format!("GET / HTTP/1.1\r\nHost: app.example\r\n{sent}\r\n");
    let resp = within(raw_request_parsed(gw.addr("edge"), request.as_bytes()))
        .await
        .unwrap();
    let id = resp.header("x-request-id").unwrap().to_owned();
    assert_ne!(
        id, "client-chosen-id",
        "an untrusted client picked its request id"
    );
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echoed_one(&echo, "x-request-id"), id);
    // The trace continues: same trace id and flags, Rampart's own span as the parent.
    let upstream_tp = echoed_one(&echo, "traceparent");
    assert_eq!(&upstream_tp[..36], &traceparent[..36], "{upstream_tp}");
    assert_ne!(&upstream_tp[36..52], &traceparent[36..52], "{upstream_tp}");
    assert!(upstream_tp.ends_with("-01"), "{upstream_tp}");

    let resp = within(raw_request_parsed(gw.addr("trusted"), request.as_bytes()))
        .await
        .unwrap();
    assert_eq!(resp.header("x-request-id"), Some("client-chosen-id"));
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echoed_one(&echo, "x-request-id"), "client-chosen-id");

    // Even a trusted listener refuses ids that are unsafe in logs and headers.
    let request = "GET / HTTP/1.1\r\nHost: app.example\r\nX-Request-ID: \"quoted\"\r\n\r\n";
    let resp = within(raw_request_parsed(gw.addr("trusted"), request.as_bytes()))
        .await
        .unwrap();
    assert_ne!(resp.header("x-request-id"), Some("\"quoted\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_and_the_body_forwarded() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = simple_gateway(origin.addr());
    let mut stream = within(tokio::net::TcpStream::connect(gw.addr("public")))
        .await
        .unwrap();
    let head = "POST /upload HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\
        Expect: 100-continue\r\n\r\n";
    within(stream.write_all(head.as_bytes())).await.unwrap();
    // The client waits for the interim answer before sending the body.
    let mut buf = Vec::new();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        assert_ne!(
            within(stream.read_buf(&mut buf)).await.unwrap(),
            0,
            "closed"
        );
    }
    let interim = String::from_utf8_lossy(&buf).into_owned();
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "{interim}"
    );
    assert!(
        interim.ends_with("\r\n\r\n"),
        "only the interim response: {interim}"
    );
    within(stream.write_all(b"hello")).await.unwrap();
    let mut rest = Vec::new();
    let resp = loop {
        assert_ne!(
            within(stream.read_buf(&mut rest)).await.unwrap(),
            0,
            "closed"
        );
        if let Ok(resp) = rampart_testkit::RawResponse::parse(&rest)
            && resp.header("content-length") == Some(resp.body.len().to_string().as_str())
        {
            break resp;
        }
    };
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["body_len"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_is_passed_through_by_default_and_replaced_by_rewrite_host() {
    let origin = HttpOrigin::start().await.unwrap();
    let config = format!(
        "{}{}[[routes]]\nname = \"internal\"\npath_prefix = \"/internal\"\nupstream = \"origin\"\n\
         rewrite = {{ host = \"backend.internal:8443\" }}\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        listener("public", ""),
        upstream("origin", &[origin.addr()], "")
    );
    let gw = TestGateway::builder(config).start();

    let echo = raw_echo(gw.addr("public"), "/x", "").await;
    assert_eq!(echoed_one(&echo, "host"), "app.example");

    let echo = raw_echo(gw.addr("public"), "/internal/x", "").await;
    assert_eq!(echoed_one(&echo, "host"), "backend.internal:8443");
    assert_eq!(
        echoed_one(&echo, "x-forwarded-host"),
        "app.example",
        "the client's host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_rewrites_strip_replace_and_regex_keep_the_query_string() {
    let origin = HttpOrigin::start().await.unwrap();
    let config = format!(
        "{}{}\
         [[routes]]\nname = \"strip\"\npath_prefix = \"/api\"\nupstream = \"origin\"\n\
         rewrite = {{ strip_prefix = \"/api\" }}\n\n\
         [[routes]]\nname = \"replace\"\npath_prefix = \"/v1\"\nupstream = \"origin\"\n\
         rewrite = {{ replace_prefix = {{ from = \"/v1\", to = \"/v2/beta\" }} }}\n\n\
         [[routes]]\nname = \"regex\"\npath_regex = \"^/users/[0-9]+/profile$\"\nupstream = \"origin\"\n\
         rewrite = {{ path_regex = {{ pattern = \"^/users/(?P<id>[0-9]+)/profile$\", replace = \"/profiles/$${{id}}/view\" }} }}\n\n\
         [[routes]]\nname = \"numbered\"\npath_prefix = \"/old\"\nupstream = \"origin\"\n\
         rewrite = {{ path_regex = {{ pattern = \"^/old/([a-z]+)/([a-z]+)\", replace = \"/new/$2/$1\" }} }}\n",
        listener("public", ""),
        upstream("origin", &[origin.addr()], "")
    );
    let gw = TestGateway::builder(config).start();
    let cases = [
        ("/api/users/7?x=1&y=%20z", "/users/7?x=1&y=%20z"),
        ("/api", "/"),
        ("/api?only=query", "/?only=query"),
        ("/v1/items?q=a&q=b", "/v2/beta/items?q=a&q=b"),
        ("/users/42/profile?tab=posts", "/profiles/42/view?tab=posts"),
        ("/old/abc/def?k=v", "/new/def/abc?k=v"),
    ];
    for (sent, expected) in cases {
        let echo = raw_echo(gw.addr("public"), sent, "").await;
        assert_eq!(echo["uri"], expected, "{sent}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_are_resolved_before_routing_and_climbing_above_root_is_refused() {
    let admin = HttpOrigin::start().await.unwrap();
    let api = HttpOrigin::start().await.unwrap();
    let fallback = RecordingOrigin::start().await.unwrap();
    let config = format!(
        "{}{}{}{}\
         [[routes]]\nname = \"admin\"\npath_prefix = \"/admin\"\nupstream = \"admin\"\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"api\"\n\n\
         [[routes]]\nname = \"fallback\"\nupstream = \"fallback\"\n",
        listener("public", ""),
        upstream("admin", &[admin.addr()], ""),
        upstream("api", &[api.addr()], ""),
        upstream("fallback", &[fallback.addr()], "")
    );
    let gw = TestGateway::builder(config).access_log().start();
    let addr = gw.addr("public");

    for (path, normalized) in [
        ("/api/../admin", "/admin"),
        ("/api/%2e%2e/admin", "/admin"),
        ("/api/./../admin/./", "/admin/"),
        ("/api/../admin?keep=1&b=%2F", "/admin?keep=1&b=%2F"),
    ] {
        let echo = raw_echo(addr, path, "").await;
        assert_eq!(echo["uri"], normalized, "{path}");
    }
    assert_eq!(api.requests(), 0, "the /api route never saw them");
    assert_eq!(admin.requests(), 4);

    for path in ["/..", "/../admin", "/api/../../etc/passwd", "/%2e%2e/x"] {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: app.example\r\nAccept: application/json\r\n\r\n");
        let resp = within(raw_request_parsed(addr, request.as_bytes()))
            .await
            .unwrap();
        assert_eq!(resp.status, 400, "{path}: {}", resp.body_text());
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["error"]["code"], "bad_request");
    }
    assert_eq!(admin.requests(), 4);
    assert_eq!(api.requests(), 0);
    assert_eq!(
        fallback.connections(),
        0,
        "a refused path reaches no upstream"
    );
    let lines = gw.access_log_json(8);
    let refused: Vec<&Value> = lines.iter().filter(|l| l["status"] == 400).collect();
    assert_eq!(refused.len(), 4, "{lines:?}");
    assert!(
        refused
            .iter()
            .all(|l| l["reason"] == "bad_request" && l["upstream"].is_null())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_alternates_between_two_targets() {
    let a = HttpOrigin::start().await.unwrap();
    let b = HttpOrigin::start().await.unwrap();
    let config = format!(
        "{}{}[[routes]]\nname = \"all\"\nupstream = \"pair\"\n",
        listener("public", ""),
        upstream("pair", &[a.addr(), b.addr()], "balance = \"round_robin\"")
    );
    let gw = TestGateway::builder(config).start();
    let client = client();
    for _ in 0..10 {
        let resp = within(client.get(gw.url("public", "/rr")).send())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!((a.requests(), b.requests()), (5, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_loopback_listener_serves_requests() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        println!("note: no IPv6 loopback on this machine; skipping the IPv6 listener test");
        return;
    }
    let origin = HttpOrigin::start().await.unwrap();
    let config = format!(
        "[[listeners]]\nname = \"v6\"\nbind = \"[::1]:0\"\nforwarded = true\n\n{}\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        upstream("origin", &[origin.addr()], "")
    );
    let gw = TestGateway::builder(config).start();
    let addr = gw.addr("v6");
    assert!(addr.is_ipv6() && addr.port() != 0, "{addr}");
    let resp = within(client().get(gw.url("v6", "/six?x=1")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
    assert_eq!(echo["uri"], "/six?x=1");
    assert_eq!(echoed_one(&echo, "x-forwarded-for"), "::1");
    assert_eq!(
        echoed_one(&echo, "forwarded"),
        format!("for=\"[::1]\";proto=http;host=\"{addr}\"")
    );

    // An IPv6 literal target, served by a minimal origin on [::1].
    let v6_origin = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let v6_addr = v6_origin.local_addr().unwrap();
    let served = tokio::spawn(async move {
        let (mut stream, _) = v6_origin.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            assert_ne!(stream.read_buf(&mut head).await.unwrap(), 0);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nv6")
            .await
            .unwrap();
        String::from_utf8_lossy(&head).into_owned()
    });
    let config = format!(
        "{}{}[[routes]]\nname = \"all\"\nupstream = \"v6\"\n",
        listener("public", ""),
        upstream("v6", &[v6_addr], "")
    );
    let gw = TestGateway::builder(config).start();
    let resp = within(client().get(gw.url("public", "/to-v6")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(within(resp.text()).await.unwrap(), "v6");
    let head = within(served).await.unwrap();
    assert!(head.starts_with("GET /to-v6 HTTP/1.1\r\n"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_can_be_restricted_to_some_listeners() {
    let origin = HttpOrigin::start().await.unwrap();
    let config = format!(
        "{}{}{}\
         [[routes]]\nname = \"admin\"\nlisteners = [\"internal\"]\npath_prefix = \"/admin\"\n\
         upstream = \"origin\"\n\n\
         [[routes]]\nname = \"hello-public\"\nlisteners = [\"public\"]\npath = \"/hello\"\n\
         respond = {{ status = 200, body = \"public\" }}\n\n\
         [[routes]]\nname = \"hello-internal\"\nlisteners = [\"internal\"]\npath = \"/hello\"\n\
         respond = {{ status = 200, body = \"internal\" }}\n\n\
         [[routes]]\nname = \"everywhere\"\npath = \"/both\"\nrespond = {{ status = 200, body = \"both\" }}\n",
        listener("public", ""),
        listener("internal", ""),
        upstream("origin", &[origin.addr()], "")
    );
    let gw = TestGateway::builder(config).access_log().start();
    let client = client();
    let get = |listener: &str, path: &str| {
        let req = client.get(gw.url(listener, path));
        async move {
            let resp = within(req.send()).await.unwrap();
            (resp.status().as_u16(), within(resp.text()).await.unwrap())
        }
    };
    assert_ne!(gw.addr("public"), gw.addr("internal"));
    assert_eq!(get("public", "/hello").await, (200, "public".to_owned()));
    assert_eq!(
        get("internal", "/hello").await,
        (200, "internal".to_owned())
    );
    assert_eq!(get("public", "/both").await.0, 200);
    assert_eq!(get("internal", "/both").await.0, 200);
    assert_eq!(get("public", "/admin/x").await.0, 404);
    assert_eq!(
        origin.requests(),
        0,
        "the public listener never reaches the admin upstream"
    );
    assert_eq!(get("internal", "/admin/x").await.0, 200);
    assert_eq!(origin.requests(), 1);

    let lines = gw.access_log_json(6);
    assert_eq!(lines.len(), 6);
    let listeners: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["listener"].as_str().unwrap(),
                l["route"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert!(
        listeners.contains(&("public", "hello-public")),
        "{listeners:?}"
    );
    assert!(
        listeners.contains(&("internal", "hello-internal")),
        "{listeners:?}"
    );
    assert!(listeners.contains(&("public", "-")), "{listeners:?}");
}

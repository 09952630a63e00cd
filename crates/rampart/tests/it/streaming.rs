//! Streaming through the proxy: server-sent events, very large bodies in both directions,
//! WebSocket tunnels, and body limits on streamed uploads.
//!
//! Every wait is bounded; nothing asserts on wall-clock durations.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rampart_testkit::reqwest;
use rampart_testkit::tokio_tungstenite::connect_async;
use rampart_testkit::tokio_tungstenite::tungstenite::{self, Message};
use rampart_testkit::{
    Behavior, HttpOrigin, RawConnection, RecordingOrigin, ScriptedOrigin, TestGateway, WsOrigin,
};
use serde_json::Value;

use crate::support::{WAIT, client, client_with_timeout, within};

/// Bound on moving a gibibyte through a debug build.
const BIG_WAIT: Duration = Duration::from_secs(600);

/// One gibibyte.
const GIB: u64 = 1 << 30;

/// Most the test process's peak RSS may grow while a gibibyte streams through it.
const MAX_RSS_GROWTH: u64 = 256 << 20;

/// The two gibibyte tests run one at a time, so each measures only its own memory peak.
static BIG: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A gateway with listener `public`, one upstream `origin` and a catch-all route to it.
fn gateway(
    origin: SocketAddr,
    sections: &str,
    upstream_extra: &str,
    route_extra: &str,
) -> TestGateway {
    let config = format!(
        "{sections}\n[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n{upstream_extra}\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n{route_extra}\n"
    );
    TestGateway::builder(config).access_log().start()
}

/// Resets the test process's peak RSS to its current RSS (Linux `clear_refs` 5), so a peak left
/// by earlier tests cannot hide this one's; best effort.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The test process's peak resident set size (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_reach_the_client_as_they_are_sent() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), "", "", "");
    let resp = within(
        client()
            .get(gw.url("public", "/sse?events=5&interval_ms=300"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["cache-control"], "no-cache");

    // Each chunk with the time it arrived.
    let mut chunks: Vec<(Instant, Bytes)> = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = within(stream.next()).await {
        chunks.push((Instant::now(), chunk.unwrap()));
    }
    let text: String = chunks
        .iter()
        .map(|(_, c)| String::from_utf8_lossy(c).into_owned())
        .collect();
    let expected: String = (0..5).map(|i| format!("data: event {i}\n\n")).collect();
    assert_eq!(text, expected);

    let arrival = |event: &str| {
        chunks
            .iter()
            .find(|(_, c)| String::from_utf8_lossy(c).contains(event))
            .map(|(t, _)| *t)
            .unwrap()
    };
    let first = &chunks[0].1;
    assert!(
        String::from_utf8_lossy(first).contains("event 0")
            && !String::from_utf8_lossy(first).contains("event 4"),
        "the first read already held the last event: the stream was buffered"
    );
    assert!(
        chunks.len() >= 2,
        "everything arrived in one read: {chunks:?}"
    );
    assert!(
        arrival("event 0") < arrival("event 4"),
        "the first event came only at the end"
    );
    assert!(arrival("event 3") < arrival("event 4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_and_close_delimited_upstream_bodies_arrive_whole() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), "", "", "");
    let resp = within(client().get(gw.url("public", "/chunked?chunks=50")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let expected: String = (0..50).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(within(resp.text()).await.unwrap(), expected);

    // An HTTP/1.0-style body that ends when the upstream closes the connection.
    let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end".to_vec();
    let closing = ScriptedOrigin::start(Behavior::Respond(raw)).await.unwrap();
    let gw2 = gateway(closing.addr(), "", "", "");
    for _ in 0..3 {
        let resp = within(client().get(gw2.url("public", "/")).send())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(within(resp.text()).await.unwrap(), "until the end");
    }
    assert_eq!(
        closing.connections(),
        3,
        "a close-delimited connection is never reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_the_upstream_ignores_gets_its_ordinary_response() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), "", "", "");
    let mut conn = within(RawConnection::connect(gw.addr("public")))
        .await
        .unwrap();
    let upgrade = "GET /not-a-socket HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\n\
        Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    within(conn.send(upgrade.as_bytes())).await.unwrap();
    let resp = within(conn.read_response()).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["uri"], "/not-a-socket");
    let header = |name: &str| {
        echo["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p[0] == name)
            .map(|p| p[1].as_str().unwrap().to_ascii_lowercase())
    };
    assert_eq!(
        header("upgrade").as_deref(),
        Some("websocket"),
        "the upgrade was offered upstream"
    );
    assert_eq!(header("connection").as_deref(), Some("upgrade"));
    // No tunnel: the connection still speaks HTTP.
    within(conn.send(b"GET /next HTTP/1.1\r\nHost: app.example\r\n\r\n"))
        .await
        .unwrap();
    let resp = within(conn.read_response()).await.unwrap();
    assert_eq!(resp.status, 200);
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["uri"], "/next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_outlives_the_upstream_request_timeout() {
    // `request_timeout` bounds the wait for the response head, not the body.
    let origin = HttpOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), "", "request_timeout = \"200ms\"", "");
    let resp = within(
        client()
            .get(gw.url("public", "/sse?events=3&interval_ms=500"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let body = within(resp.text()).await.unwrap();
    assert_eq!(body, "data: event 0\n\ndata: event 1\n\ndata: event 2\n\n");
    let log = gw.access_log_json(1);
    assert_eq!(log[0]["completed"], true, "{}", log[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_download_is_logged_and_its_upstream_connection_not_reused() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), "", "", "");
    let client = client();
    let resp = within(client.get(gw.url("public", "/bytes/104857600")).send())
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let first = within(stream.next()).await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(stream);

    // The half-read upstream connection must not serve the next request: it would answer with
    // the rest of the old body.
    let resp = within(client.get(gw.url("public", "/after")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
    assert_eq!(echo["uri"], "/after");
    assert_eq!(echo["connection"], 2);

    let log = gw.access_log_json(2);
    let abandoned = log.iter().find(|l| l["uri"] == "/bytes/104857600").unwrap();
    assert_eq!(abandoned["completed"], false, "{abandoned}");
    assert_eq!(abandoned["status"], 200);
    assert!(abandoned["bytes_sent"].as_u64().unwrap() < 104_857_600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_upload_streams_through_without_buffering() {
    let _one_at_a_time = BIG.lock().await;
    let origin = HttpOrigin::start().await.unwrap();
    let gw = gateway(
        origin.addr(),
        "",
        "request_timeout = \"10m\"",
        "max_body_size = \"2GiB\"",
    );
    reset_peak_rss();
    let before = peak_rss();
    let started = Instant::now();

    let chunk = Bytes::from(vec![b'u'; 256 * 1024]);
    let count = GIB / chunk.len() as u64;
    let body =
        futures_util::stream::iter((0..count).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let resp = tokio::time::timeout(
        BIG_WAIT,
        client_with_timeout(BIG_WAIT)
            .post(gw.url("public", "/sink"))
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    )
    .await
    .expect("upload timed out")
    .unwrap();
    assert_eq!(resp.status(), 200);
    let reply: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
    assert_eq!(reply["received"], GIB, "the origin got every byte");

    let growth = peak_rss().saturating_sub(before);
    println!(
        "1 GiB upload: {:?}, peak RSS growth {} MiB",
        started.elapsed(),
        growth >> 20
    );
    assert!(
        growth < MAX_RSS_GROWTH,
        "peak RSS grew by {} MiB",
        growth >> 20
    );
    let log = gw.access_log_json(1);
    assert_eq!(log[0]["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_download_streams_through_without_buffering() {
    let _one_at_a_time = BIG.lock().await;
    let origin = HttpOrigin::start().await.unwrap();
    let gw = gateway(origin.addr(), "", "request_timeout = \"10m\"", "");
    reset_peak_rss();
    let before = peak_rss();
    let started = Instant::now();

    let download = async {
        let resp = client_with_timeout(BIG_WAIT)
            .get(gw.url("public", &format!("/bytes/{GIB}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-length"], GIB.to_string().as_str());
        let mut stream = resp.bytes_stream();
        let mut received = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            // The origin's pattern: a..z repeated, restarting every 64 KiB.
            let offset = received % (64 * 1024);
            let expected = b'a' + u8::try_from(offset % 26).unwrap();
            assert_eq!(
                chunk.first(),
                Some(&expected),
                "corrupt byte at offset {received}"
            );
            received += chunk.len() as u64;
        }
        received
    };
    let received = tokio::time::timeout(BIG_WAIT, download)
        .await
        .expect("download timed out");
    assert_eq!(received, GIB);

    let growth = peak_rss().saturating_sub(before);
    println!(
        "1 GiB download: {:?}, peak RSS growth {} MiB",
        started.elapsed(),
        growth >> 20
    );
    assert!(
        growth < MAX_RSS_GROWTH,
        "peak RSS grew by {} MiB",
        growth >> 20
    );
    let log = gw.access_log_json(1);
    assert_eq!(log[0]["bytes_sent"], GIB);
    assert_eq!(log[0]["completed"], true);
}

/// A gateway in front of a WebSocket origin, plus a fixed `/plain` route.
fn ws_gateway(origin: &WsOrigin, sections: &str) -> TestGateway {
    let config = format!(
        "{sections}\n[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"ws\"\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"plain\"\npath = \"/plain\"\nrespond = {{ status = 200, body = \"plain\" }}\n\n\
         [[routes]]\nname = \"ws\"\nupstream = \"ws\"\n",
        origin.addr()
    );
    TestGateway::builder(config).access_log().start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_text_and_binary_messages_round_trip_through_the_tunnel() {
    let origin = WsOrigin::with_path_check().await.unwrap();
    let gw = ws_gateway(&origin, "");
    let (mut ws, resp) = within(connect_async(format!("ws://{}/ws", gw.addr("public"))))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().contains_key("x-request-id"));

    within(ws.send(Message::text("hello through rampart")))
        .await
        .unwrap();
    let reply = within(ws.next()).await.unwrap().unwrap();
    assert_eq!(reply, Message::text("hello through rampart"));

    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    within(ws.send(Message::binary(binary.clone())))
        .await
        .unwrap();
    let reply = within(ws.next()).await.unwrap().unwrap();
    assert_eq!(reply, Message::binary(binary));

    for i in 0..20 {
        within(ws.send(Message::text(format!("msg {i}"))))
            .await
            .unwrap();
    }
    for i in 0..20 {
        let reply = within(ws.next()).await.unwrap().unwrap();
        assert_eq!(reply, Message::text(format!("msg {i}")));
    }

    within(ws.close(None)).await.unwrap();
    // The close handshake completes and the stream ends.
    while let Some(msg) = within(ws.next()).await {
        match msg {
            Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => {}
            other => panic!("unexpected after close: {other:?}"),
        }
    }
    assert_eq!(origin.upgrades(), 1);
    assert_eq!(origin.messages(), 22);
    // The line is written when the tunnel closes: once the client's socket is gone too.
    drop(ws);
    let log = gw.access_log_json(1);
    assert_eq!(log[0]["status"], 101);
    assert_eq!(log[0]["route"], "ws");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_refused_by_the_upstream_creates_no_tunnel() {
    let origin = WsOrigin::with_path_check().await.unwrap();
    let gw = ws_gateway(&origin, "");
    let addr = gw.addr("public");

    match within(connect_async(format!("ws://{addr}/wrong"))).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 404),
        other => panic!("expected an HTTP 404, got {other:?}"),
    }

    // On a raw connection: the 404 comes back as an ordinary response, and the connection
    // stays plain HTTP (a tunnel would carry the next request to the WebSocket origin).
    let mut conn = within(RawConnection::connect(addr)).await.unwrap();
    let upgrade = "GET /wrong HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\n\
        Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    within(conn.send(upgrade.as_bytes())).await.unwrap();
    let resp = within(conn.read_response()).await.unwrap();
    assert_eq!(resp.status, 404);
    assert!(resp.header("upgrade").is_none());
    within(conn.send(b"GET /plain HTTP/1.1\r\nHost: app.example\r\n\r\n"))
        .await
        .unwrap();
    let resp = within(conn.read_response()).await.unwrap();
    assert_eq!((resp.status, resp.body_text().as_str()), (200, "plain"));

    assert_eq!(origin.upgrades(), 0);
    assert_eq!(origin.messages(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_websocket_tunnel_is_closed_by_rampart() {
    let origin = WsOrigin::start().await.unwrap();
    let gw = ws_gateway(&origin, "[timeouts]\ntunnel_idle = \"500ms\"\n");
    let (mut ws, _) = within(connect_async(format!("ws://{}/chat", gw.addr("public"))))
        .await
        .unwrap();
    within(ws.send(Message::text("still here"))).await.unwrap();
    assert_eq!(
        within(ws.next()).await.unwrap().unwrap(),
        Message::text("still here")
    );

    // Now stay silent: the origin would keep the socket for minutes, Rampart closes it.
    loop {
        match within(ws.next()).await {
            None | Some(Err(_)) => break,
            Some(Ok(Message::Close(_))) => {}
            Some(Ok(other)) => panic!("unexpected message {other:?}"),
        }
    }
    assert_eq!(origin.upgrades(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_tunnel_outlives_the_header_and_keep_alive_timeouts() {
    // Once upgraded, the connection is the tunnel's: only `tunnel_idle` applies to it, not the
    // HTTP timers of the connection it came from.
    let origin = WsOrigin::start().await.unwrap();
    let gw = ws_gateway(
        &origin,
        "[timeouts]\nheader_read = \"300ms\"\nkeepalive = \"300ms\"\ntunnel_idle = \"30s\"\n",
    );
    let (mut ws, _) = within(connect_async(format!("ws://{}/chat", gw.addr("public"))))
        .await
        .unwrap();
    // Silent first (past `keepalive`), then after each message (past `header_read`).
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let text = format!("message {i} after a silence");
        within(ws.send(Message::text(text.clone()))).await.unwrap();
        assert_eq!(
            within(ws.next()).await.unwrap().unwrap(),
            Message::text(text)
        );
    }
    assert_eq!(origin.upgrades(), 1);
}

/// A gateway whose `/small` route allows 1 KiB bodies, in front of a recording origin.
fn small_body_gateway(origin: &RecordingOrigin) -> TestGateway {
    let config = format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"small\"\npath_prefix = \"/small\"\nmax_body_size = \"1KiB\"\nupstream = \"origin\"\n",
        origin.addr()
    );
    TestGateway::builder(config).access_log().start()
}

/// `POST {path}` with a chunked body of `size` bytes in one chunk.
fn chunked_post(path: &str, size: usize) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: app.example\r\nAccept: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{size:x}\r\n"
    )
    .into_bytes();
    req.extend(std::iter::repeat_n(b'b', size));
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_gets_413_and_no_complete_request_upstream() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = small_body_gateway(&origin);
    let addr = gw.addr("public");

    // Within the limit: forwarded.
    let mut conn = within(RawConnection::connect(addr)).await.unwrap();
    within(conn.send(&chunked_post("/small/ok", 512)))
        .await
        .unwrap();
    let resp = within(conn.read_response()).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let recorded = within(origin.wait_for_requests(1, WAIT)).await;
    assert_eq!(recorded.len(), 1);

    // Over it: refused while streaming.
    let mut conn = within(RawConnection::connect(addr)).await.unwrap();
    within(conn.send(&chunked_post("/small/big", 4096)))
        .await
        .unwrap();
    let resp = within(conn.read_response()).await.unwrap();
    assert_eq!(resp.status, 413, "{}", resp.body_text());
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["error"]["code"], "body_too_large");
    assert_eq!(
        body["error"]["request_id"],
        resp.header("x-request-id").unwrap()
    );

    let log = gw.access_log_json(2);
    let line = log
        .iter()
        .find(|l| l["status"] == 413)
        .expect("no 413 in the access log");
    assert_eq!(line["reason"], "body_too_large");
    assert_eq!(line["route"], "small");
    assert_eq!(
        origin.requests().len(),
        1,
        "the oversized request never completed upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_length_over_the_limit_gets_413_before_the_body_and_nothing_upstream() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = small_body_gateway(&origin);
    let mut conn = within(RawConnection::connect(gw.addr("public")))
        .await
        .unwrap();
    // Only the head: the answer must not wait for a body Rampart will refuse anyway.
    let head = "POST /small/upload HTTP/1.1\r\nHost: app.example\r\nContent-Length: 4096\r\n\r\n";
    within(conn.send(head.as_bytes())).await.unwrap();
    let resp = within(conn.read_response()).await.unwrap();
    assert_eq!(resp.status, 413, "{}", resp.body_text());
    assert!(resp.header("x-request-id").is_some());

    let log = gw.access_log_json(1);
    assert_eq!(log[0]["status"], 413);
    assert_eq!(log[0]["reason"], "body_too_large");
    assert_eq!(origin.connections(), 0, "nothing reached the upstream");
    assert_eq!(origin.bytes_received(), 0);
}

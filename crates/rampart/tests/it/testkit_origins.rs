//! The test kit's origins, exercised directly with real clients (reqwest, raw TCP,
//! tokio-tungstenite).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rampart_testkit::http_client::RawConnection;
use rampart_testkit::reqwest::{self, StatusCode};
use rampart_testkit::tokio_tungstenite::tungstenite::{self, Message};
use rampart_testkit::{
    Behavior, HttpOrigin, RecordingOrigin, ScriptedOrigin, WsOrigin, free_port_closed, raw_request,
    raw_request_parsed, tokio_tungstenite,
};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(T)
        .build()
        .unwrap()
}

fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(T)
        .build()
        .unwrap()
}

async fn json(resp: reqwest::Response) -> Value {
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

fn header_values<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_origin_echoes_and_counts_keep_alive() {
    let origin = HttpOrigin::start().await.unwrap();
    assert!(origin.addr().ip().is_loopback());
    let client = client();

    let resp = client
        .post(origin.url("/anything?x=1"))
        .header("x-multi", "a")
        .header("x-multi", "b")
        .body(vec![7u8; 1234])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let echo = json(resp).await;
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/anything?x=1");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["body_len"], 1234);
    assert_eq!(header_values(&echo, "x-multi"), ["a", "b"]);
    assert!(echo["peer"].as_str().unwrap().starts_with("127.0.0.1:"));

    let echo = json(client.get(origin.url("/headers")).send().await.unwrap()).await;
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["body_len"], 0);
    assert_eq!(header_values(&echo, "host"), [origin.addr().to_string()]);

    assert_eq!(origin.requests(), 2);

    // Requests on one kept-alive connection count as one connection. (A raw connection, not
    // reqwest: its pool may open a second connection when it reuses one a moment too early.)
    let before = origin.connections();
    let mut conn = RawConnection::connect(origin.addr()).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        conn.send(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let resp = conn.read_response().await.unwrap();
        assert_eq!(resp.status, 200);
        let echo: Value = serde_json::from_str(&resp.body_text()).unwrap();
        seen.push(echo["connection"].as_u64().unwrap());
    }
    assert_eq!(origin.requests(), 4);
    assert_eq!(origin.connections(), before + 1);
    assert_eq!(seen, [before + 1, before + 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_origin_status_delay_close_routes() {
    let origin = HttpOrigin::start().await.unwrap();
    let client = client();

    for code in [201u16, 404, 503] {
        let resp = client
            .get(origin.url(&format!("/status/{code}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), code);
    }
    let resp = client.get(origin.url("/status/204")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = client.get(origin.url("/status/abc")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let resp = client.get(origin.url("/delay/50")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(json(resp).await["uri"], "/delay/50");

    // `/close` closes the connection after answering.
    let mut conn = RawConnection::connect(origin.addr()).await.unwrap();
    conn.send(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let resp = conn.read_response().await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(conn.is_closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_origin_streams_bytes_and_sinks() {
    let origin = HttpOrigin::start().await.unwrap();
    let client = client();

    let n: usize = 1_000_003;
    let resp = client
        .get(origin.url(&format!("/bytes/{n}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.content_length(), Some(n as u64));
    let mut stream = resp.bytes_stream();
    let mut total = 0usize;
    let mut chunks = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.iter().all(u8::is_ascii_lowercase));
        total += chunk.len();
        chunks += 1;
    }
    assert_eq!(total, n);
    assert!(chunks > 1);

    let body = vec![1u8; 3 * 1024 * 1024 + 5];
    let resp = client
        .post(origin.url("/sink"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(resp).await,
        serde_json::json!({ "received": 3 * 1024 * 1024 + 5 })
    );

    // A chunked upload is counted too.
    let resp = raw_request_parsed(
        origin.addr(),
        b"POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(resp.body_text(), r#"{"received":5}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_origin_sse_events_arrive_before_stream_ends() {
    let origin = HttpOrigin::start().await.unwrap();
    let resp = client()
        .get(origin.url("/sse?events=4&interval_ms=100"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = resp.bytes_stream();
    let mut received = Vec::new();
    // Each event is a separate chunk written ~100 ms apart: we observe them one by one.
    let mut chunks_seen = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        received.extend_from_slice(&chunk);
        chunks_seen.push(String::from_utf8(chunk.to_vec()).unwrap());
    }
    let text = String::from_utf8(received).unwrap();
    assert_eq!(
        text,
        "data: event 0\n\ndata: event 1\n\ndata: event 2\n\ndata: event 3\n\n"
    );
    assert!(
        chunks_seen.len() >= 2,
        "events were not streamed: {chunks_seen:?}"
    );
    assert_eq!(chunks_seen[0], "data: event 0\n\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_origin_chunked_is_chunked_on_the_wire() {
    let origin = HttpOrigin::start().await.unwrap();
    let resp = raw_request_parsed(
        origin.addr(),
        b"GET /chunked?chunks=3 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(resp.header("content-length"), None);
    assert_eq!(resp.body_text(), "chunk 0\nchunk 1\nchunk 2\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_origin_serves_http2_prior_knowledge() {
    let origin = HttpOrigin::h2c().await.unwrap();
    let h2 = h2_client();
    for _ in 0..3 {
        let resp = h2
            .post(origin.url("/echo"))
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        let echo = json(resp).await;
        assert_eq!(echo["version"], "HTTP/2.0");
        assert_eq!(echo["body_len"], 5);
    }
    let resp = h2.get(origin.url("/status/418")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 418);
    assert_eq!(origin.requests(), 4);
    assert_eq!(origin.connections(), 1);

    // HTTP/1.1 is not spoken.
    let http1 = client().get(origin.url("/")).send().await;
    assert!(http1.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_stops_when_dropped() {
    let origin = HttpOrigin::start().await.unwrap();
    let addr = origin.addr();
    drop(origin);
    let refused = tokio::time::timeout(T, async {
        loop {
            if TcpStream::connect(addr).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "listener still accepting after drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_origin_echoes_text_and_binary() {
    let origin = WsOrigin::start().await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::connect_async(origin.url("/anything"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 101);

    ws.send(Message::text("hello")).await.unwrap();
    let reply = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply, Message::text("hello"));

    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let reply = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply, Message::binary(vec![0u8, 1, 2, 255]));

    ws.close(None).await.unwrap();
    // The server answers the close; the stream then ends.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(T, ws.next()).await {}

    assert_eq!(origin.connections(), 1);
    assert_eq!(origin.upgrades(), 1);
    assert_eq!(origin.messages(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_origin_path_check_refuses_other_paths() {
    let origin = WsOrigin::with_path_check().await.unwrap();
    let err = tokio_tungstenite::connect_async(origin.url("/other"))
        .await
        .unwrap_err();
    match err {
        tungstenite::Error::Http(resp) => assert_eq!(resp.status().as_u16(), 404),
        other => panic!("expected an HTTP 404, got {other:?}"),
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(origin.url("/ws"))
        .await
        .unwrap();
    ws.send(Message::text("x")).await.unwrap();
    let reply = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply, Message::text("x"));
    assert_eq!(origin.connections(), 2);
    assert_eq!(origin.upgrades(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_origin_records_exact_bytes() {
    let origin = RecordingOrigin::start().await.unwrap();
    assert!(origin.requests().is_empty());

    let first = b"GET /a HTTP/1.1\r\nHost: x\r\nX-Odd:  spaced \r\n\r\n".to_vec();
    let second = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    let third = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: 1\r\n\r\n".to_vec();

    // One connection, the second and third pipelined in one write.
    let mut conn = RawConnection::connect(origin.addr()).await.unwrap();
    conn.send(&first).await.unwrap();
    let resp = conn.read_response().await.unwrap();
    assert_eq!(
        resp.raw,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
    );
    conn.send(&[second.clone(), third.clone()].concat())
        .await
        .unwrap();
    assert_eq!(conn.read_response().await.unwrap().body_text(), "ok");
    assert_eq!(conn.read_response().await.unwrap().body_text(), "ok");

    // HEAD gets no body.
    let head = raw_request(
        origin.addr(),
        b"HEAD /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(head.ends_with(b"\r\n\r\n"));

    let requests = origin.wait_for_requests(4, T).await;
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[0], first);
    assert_eq!(requests[1], second);
    assert_eq!(requests[2], third);
    assert!(requests[3].starts_with(b"HEAD /h "));
    assert_eq!(origin.connections(), 2);

    // It also works with a regular client.
    let resp = client()
        .get(origin.url("/via-reqwest"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "ok");
    assert!(origin.requests()[4].starts_with(b"GET /via-reqwest HTTP/1.1\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_origin_rejects_bad_framing() {
    let origin = RecordingOrigin::start().await.unwrap();
    let resp = raw_request_parsed(
        origin.addr(),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\nab",
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(origin.requests().len(), 1);
    assert_eq!(origin.bytes_received(), origin.requests()[0].len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_reset_gives_client_an_error() {
    let origin = ScriptedOrigin::start(Behavior::Reset).await.unwrap();
    let result = client().get(origin.url("/")).send().await;
    assert!(result.is_err());
    assert!(origin.connections() >= 1);

    // Raw: connect or the read sees a reset (or EOF), never a response.
    if let Ok(mut stream) = TcpStream::connect(origin.addr()).await {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(T, stream.read_to_end(&mut buf))
            .await
            .unwrap();
        assert!(read.is_err() || buf.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_garbage_is_not_http() {
    let origin = ScriptedOrigin::start(Behavior::Garbage).await.unwrap();
    let raw = raw_request(origin.addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(raw, b"not http\r\n\r\n");
    let err = client().get(origin.url("/")).send().await.unwrap_err();
    assert!(!err.is_timeout());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_hang_times_out() {
    let origin = ScriptedOrigin::start(Behavior::Hang).await.unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client.get(origin.url("/")).send().await.unwrap_err();
    assert!(err.is_timeout());
    let err = rampart_testkit::http_client::raw_request_timeout(
        origin.addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(origin.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_respond_and_script_sequence() {
    let origin = ScriptedOrigin::with_script(vec![
        Behavior::Reset,
        Behavior::Respond(b"HTTP/1.1 202 Accepted\r\nContent-Length: 3\r\n\r\nyes".to_vec()),
    ])
    .await
    .unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let first = raw_request(origin.addr(), request).await;
    assert!(first.map_or(true, |bytes| bytes.is_empty()));
    for _ in 0..2 {
        let resp = raw_request_parsed(origin.addr(), request).await.unwrap();
        assert_eq!((resp.status, resp.body_text().as_str()), (202, "yes"));
    }
    let resp = client().get(origin.url("/")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    assert_eq!(resp.text().await.unwrap(), "yes");
    assert_eq!(origin.connections(), 4);

    // A truncated response is a client-visible error.
    let short = ScriptedOrigin::start(Behavior::Respond(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec(),
    ))
    .await
    .unwrap();
    let resp = client().get(short.url("/")).send().await.unwrap();
    assert!(resp.bytes().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_port_is_refused() {
    let addr = free_port_closed().unwrap();
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let err = client()
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect());
}

//! The access log as a reader parses it: combined lines of every kind of request match one
//! fixed pattern (each field always there, `-` when empty) and name the upstream and its
//! target apart; a WebSocket's line, written when its tunnel closes, counts the bytes relayed
//! both ways.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rampart_testkit::tokio_tungstenite::connect_async;
use rampart_testkit::tokio_tungstenite::tungstenite::Message;
use rampart_testkit::{HttpOrigin, TestGateway, WsOrigin, reqwest};

use crate::support::{TempDir, within};

const WAIT: Duration = Duration::from_secs(15);

/// The lines of the log at `path` once it has at least `n` (bounded wait).
async fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(log: &Path, format: &str, origin: &str, ws: &str, dead: &str) -> String {
    format!(
        "[access_log]\nenabled = true\nformat = \"{format}\"\npath = {:?}\n\n\
         [[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"api\"\ntargets = [\"{origin}\"]\n\n\
         [[upstreams]]\nname = \"chat\"\ntargets = [\"{ws}\"]\n\n\
         [[upstreams]]\nname = \"gone\"\ntargets = [\"{dead}\"]\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"api\"\n\n\
         [[routes]]\nname = \"chat\"\npath = \"/chat\"\nupstream = \"chat\"\n\n\
         [[routes]]\nname = \"broken\"\npath = \"/broken\"\nupstream = \"gone\"\n\n\
         [[routes]]\nname = \"fixed\"\npath = \"/fixed\"\nrespond = {{ status = 200, body = \"ok\" }}\n",
        log.display().to_string()
    )
}

/// A port nobody listens on any more.
fn dead_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

/// The combined format, as documented in docs/configuration.md.
const COMBINED: &str = concat!(
    r#"^(?P<client>\S+) - - \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}|-) (?P<bytes>\d+) "#,
    r#""(?P<referer>[^"]*)" "(?P<agent>[^"]*)" rid=(?P<rid>\S+) route=(?P<route>\S+) "#,
    r#"upstream=(?P<upstream>\S+) target=(?P<target>\S+) rt=(?P<rt>[0-9.]+) urt=(?P<urt>[0-9.]+|-) "#,
    r#"country=(?P<country>\S+) reason=(?P<reason>\S+)(?: grpc_status=(?P<grpc_status>\d+))?(?P<aborted> aborted)?$"#,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_lines_of_every_kind_match_one_fixed_pattern() {
    let dir = TempDir::new("access");
    let log = dir.0.join("access.log");
    let origin = HttpOrigin::start().await.unwrap();
    let ws = WsOrigin::start().await.unwrap();
    let gw = TestGateway::builder(config(
        &log,
        "combined",
        &origin.addr().to_string(),
        &ws.addr().to_string(),
        &dead_port(),
    ))
    .start();
    let client = reqwest::Client::new();
    let status = |path: &str| {
        let req = client.get(gw.url("web", path));
        async move { within(req.send()).await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/api/x").await, 200);
    assert_eq!(status("/fixed").await, 200);
    assert_eq!(status("/nowhere").await, 404);
    assert_eq!(status("/broken").await, 502);
    let lines = wait_for_lines(&log, 4).await;
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let pattern = regex::Regex::new(COMBINED).unwrap();
    let parsed: Vec<_> = lines
        .iter()
        .map(|l| {
            pattern
                .captures(l)
                .unwrap_or_else(|| panic!("does not parse: {l}"))
        })
        .collect();
    let field = |i: usize, name: &str| parsed[i][name].to_owned();
    // Proxied: the upstream's name and the target it went to, apart.
    assert_eq!(field(0, "route"), "api");
    assert_eq!(field(0, "upstream"), "api");
    assert_eq!(field(0, "target"), origin.addr().to_string());
    assert_ne!(field(0, "urt"), "-");
    assert_eq!(field(0, "reason"), "-");
    // Answered by the route itself: no upstream, no upstream time.
    assert_eq!(
        (field(1, "route"), field(1, "upstream"), field(1, "target")),
        ("fixed".into(), "-".into(), "-".into())
    );
    assert_eq!(field(1, "urt"), "-");
    // No route.
    assert_eq!(field(2, "status"), "404");
    assert_eq!(field(2, "reason"), "no_route");
    // A refused connect: the upstream and the target tried, and why.
    assert_eq!(field(3, "status"), "502");
    assert_eq!(field(3, "upstream"), "gone");
    assert_ne!(field(3, "target"), "-");
    assert_eq!(field(3, "reason"), "upstream_connect_failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_line_counts_the_bytes_relayed_both_ways() {
    let dir = TempDir::new("access");
    let log = dir.0.join("access.log");
    let ws = WsOrigin::start().await.unwrap();
    let gw = TestGateway::builder(config(
        &log,
        "json",
        &dead_port(),
        &ws.addr().to_string(),
        &dead_port(),
    ))
    .start();
    let (mut chat, _) = within(connect_async(format!("ws://{}/chat", gw.addr("web"))))
        .await
        .unwrap();
    let message = "x".repeat(1000);
    for _ in 0..3 {
        within(chat.send(Message::text(message.clone())))
            .await
            .unwrap();
        let echoed = within(chat.next()).await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().len(), 1000);
    }
    within(chat.close(None)).await.unwrap();
    // Drain until the close handshake ends the stream.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, chat.next()).await {}
    // The tunnel closes once both sides closed their connections.
    drop(chat);
    let lines = wait_for_lines(&log, 1).await;
    assert_eq!(
        lines.len(),
        1,
        "one line, written when the tunnel closed: {lines:#?}"
    );
    let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line["status"], 101, "{line}");
    assert_eq!(line["route"], "chat");
    // Three 1000-byte messages each way plus framing (the client's frames are masked).
    let sent = line["bytes_sent"].as_u64().unwrap();
    let received = line["bytes_received"].as_u64().unwrap();
    assert!((3000..3200).contains(&sent), "bytes to the client: {line}");
    assert!(
        (3000..3200).contains(&received),
        "bytes from the client: {line}"
    );
    assert!(received > sent, "masked client frames are larger: {line}");
}

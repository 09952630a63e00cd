//! The audit log: the startup configuration as a `config_change` line, security refusals as
//! one `security_decision` line per reason and interval plus a counted `security_summary`,
//! nothing per request, nothing for refusals that are not security decisions, and nothing in
//! the access log.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rampart_testkit::{RecordingOrigin, TestGateway, reqwest};
use serde_json::Value;

use crate::support::TempDir;

const WAIT: Duration = Duration::from_secs(15);

fn lines(path: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Waits (bounded) until the audit log holds a line matching `pred`.
async fn wait_for(path: &PathBuf, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = lines(path);
        if all.iter().any(&pred) || Instant::now() > deadline {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status(client: &reqwest::Client, url: String) -> u16 {
    client.get(url).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_and_security_decisions_are_audited_once_per_interval() {
    let dir = TempDir::new("audit");
    let audit = dir.0.join("audit.log");
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = TestGateway::builder(format!(
        r#"
[audit_log]
enabled = true
path = {audit:?}
security_interval = "1s"

[[listeners]]
name = "web"
bind = "127.0.0.1:0"

[[upstreams]]
name = "app"
targets = ["{origin}"]

[[routes]]
name = "open"
path_prefix = "/open"
upstream = "app"

[[routes]]
name = "closed"
path_prefix = "/closed"
upstream = "app"
access = {{ deny = ["127.0.0.0/8"] }}
"#,
        audit = audit.display().to_string(),
        origin = origin.addr(),
    ))
    .access_log()
    .start();
    let client = reqwest::Client::new();
    for _ in 0..5 {
        assert_eq!(status(&client, gw.url("web", "/closed/x")).await, 403);
    }
    for _ in 0..3 {
        assert_eq!(status(&client, gw.url("web", "/open/x")).await, 200);
    }
    for _ in 0..2 {
        assert_eq!(status(&client, gw.url("web", "/nowhere")).await, 404);
    }
    let all = wait_for(&audit, |l| l["event"] == "security_summary").await;
    let startup = &all[0];
    assert_eq!(startup["event"], "config_change", "{all:#?}");
    assert_eq!(startup["trigger"], "startup");
    assert_eq!(startup["generation"], 1);
    assert_eq!(
        startup["changes"]["routes"]["added"],
        serde_json::json!(["open", "closed"])
    );
    assert_eq!(
        startup["changes"]["listeners"]["added"],
        serde_json::json!(["web"])
    );
    assert_eq!(
        startup["changes"]["upstreams"]["added"],
        serde_json::json!(["app"])
    );
    let decisions: Vec<_> = all
        .iter()
        .filter(|l| l["event"] == "security_decision")
        .collect();
    assert_eq!(decisions.len(), 1, "one line for five refusals: {all:#?}");
    assert_eq!(decisions[0]["reason"], "ip_denied");
    assert_eq!(decisions[0]["status"], 403);
    assert_eq!(decisions[0]["example"]["route"], "closed");
    assert_eq!(decisions[0]["example"]["client_ip"], "127.0.0.1");
    let summary = all
        .iter()
        .find(|l| l["event"] == "security_summary")
        .unwrap();
    assert_eq!(summary["reason"], "ip_denied");
    assert_eq!(summary["count"], 5, "{all:#?}");
    assert!(
        !all.iter().any(|l| l.to_string().contains("no_route")),
        "a 404 is not a security decision: {all:#?}"
    );
    // Only the open route's requests reached the upstream.
    let requests = origin.wait_for_requests(3, WAIT).await;
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.starts_with(b"GET /open/x ")));
    // A new interval reports the reason again.
    assert_eq!(status(&client, gw.url("web", "/closed/y")).await, 403);
    let all = wait_for(&audit, |l| {
        l["event"] == "security_decision"
            && l["example"]["request_id"] != decisions[0]["example"]["request_id"]
    })
    .await;
    assert_eq!(
        all.iter()
            .filter(|l| l["event"] == "security_decision")
            .count(),
        2,
        "{all:#?}"
    );
    // The access log has one line per request and no audit lines.
    let access = gw.access_log_json(11);
    assert_eq!(access.len(), 11);
    assert!(access.iter().all(|l| l.get("event").is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_audit_log_writes_nothing() {
    let dir = TempDir::new("audit");
    let audit = dir.0.join("audit.log");
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = TestGateway::builder(format!(
        "[audit_log]\nenabled = false\npath = {:?}\n\n[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\naccess = {{ deny = [\"127.0.0.0/8\"] }}\n\n[[upstreams]]\nname = \"app\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"all\"\nupstream = \"app\"\n",
        audit.display().to_string(),
        origin.addr()
    ))
    .start();
    let client = reqwest::Client::new();
    assert_eq!(status(&client, gw.url("web", "/")).await, 403);
    gw.shutdown();
    assert!(!audit.exists(), "no file is created when disabled");
    assert_eq!(origin.requests().len(), 0);
}

/// Sends `POST /reload` to the admin API from a socket whose address the test knows; returns
/// that address and the status code.
async fn admin_reload(admin_url: &str) -> (std::net::SocketAddr, u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = admin_url
        .trim_start_matches("http://")
        .trim_end_matches("/reload");
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let local = stream.local_addr().unwrap();
    stream
        .write_all(
            format!("POST /reload HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("admin answer in time")
        .unwrap();
    let status = String::from_utf8_lossy(&answer)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (local, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reload_records_the_peer_that_asked() {
    let dir = TempDir::new("audit");
    let audit = dir.0.join("audit.log");
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = TestGateway::builder(format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n[audit_log]\nenabled = true\npath = {:?}\n\n\
         [[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\n\n[[upstreams]]\nname = \"app\"\n\
         targets = [\"{}\"]\n\n[[routes]]\nname = \"all\"\nupstream = \"app\"\n",
        audit.display().to_string(),
        origin.addr()
    ))
    .config_file()
    .start();
    let (peer, status) = admin_reload(&gw.admin_url("/reload")).await;
    assert_eq!(status, 200);
    let all = wait_for(&audit, |l| l["generation"] == 2).await;
    let change = all.iter().find(|l| l["generation"] == 2).unwrap();
    assert_eq!(change["event"], "config_change", "{all:#?}");
    assert_eq!(change["trigger"], "admin_api");
    assert_eq!(change["peer"], peer.to_string());
    assert!(
        change.get("identity").is_none(),
        "no identity without admin auth: {change}"
    );
    // A refused reload names its peer too.
    std::fs::write(gw.config_path(), "this is not toml").unwrap();
    let (peer, status) = admin_reload(&gw.admin_url("/reload")).await;
    assert_eq!(status, 422);
    let all = wait_for(&audit, |l| l["event"] == "config_rejected").await;
    let rejected = all
        .iter()
        .find(|l| l["event"] == "config_rejected")
        .unwrap_or_else(|| panic!("{all:#?}"));
    assert_eq!(rejected["trigger"], "admin_api");
    assert_eq!(rejected["peer"], peer.to_string());
    // The startup line has no peer.
    assert!(all[0].get("peer").is_none(), "{:?}", all[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_transitions_are_audited() {
    let dir = TempDir::new("audit-circuit");
    let audit = dir.0.join("audit.log");
    let down = rampart_testkit::free_port_closed().unwrap();
    let gw = TestGateway::builder(format!(
        "[audit_log]\nenabled = true\npath = {audit:?}\n\n\
         [[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"app\"\ntargets = [\"{down}\"]\n\
         [upstreams.circuit_breaker]\nconsecutive_failures = 2\nopen_for = \"1m\"\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"app\"\n"
    ))
    .start();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .unwrap();
    for expected in [502, 502, 503] {
        assert_eq!(status(&client, gw.url("web", "/")).await, expected);
    }
    let all = wait_for(&audit, |l| l["event"] == "circuit_change").await;
    let changes: Vec<&Value> = all
        .iter()
        .filter(|l| l["event"] == "circuit_change")
        .collect();
    assert_eq!(changes.len(), 1, "{all:?}");
    let c = changes[0];
    assert_eq!(c["upstream"], "app");
    assert_eq!(c["from"], "closed");
    assert_eq!(c["to"], "open");
    assert_eq!(c["reason"], "consecutive_failures");
    assert!(c["ts"].is_string());
}

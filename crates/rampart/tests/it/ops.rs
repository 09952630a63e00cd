//! Operations, in process: Prometheus metrics, the admin API (status, routes, upstreams,
//! redacted config, drain, bearer token) and hot reload (bad configs refused with the old one
//! serving, listeners added and removed, rate-limit state and WebSocket tunnels kept).
//!
//! Every wait is bounded; nothing asserts on wall-clock durations.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rampart_testkit::reqwest;
use rampart_testkit::tokio_tungstenite::connect_async;
use rampart_testkit::tokio_tungstenite::tungstenite::Message;
use rampart_testkit::{HttpOrigin, TestGateway, WsOrigin};
use serde_json::Value;

use crate::support::within;

fn config(origin: &str, extra_route: &str, admin: &str) -> String {
    format!(
        "[server]\nworkers = 2\ndrain_timeout = \"5s\"\n\n[access_log]\nenabled = false\n\n{admin}\n\
         [[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\nhealth_endpoints = true\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n\n\
         [[rate_limits]]\nname = \"tight\"\nrequests = 2\nper = \"1m\"\nkey = [\"client_ip\"]\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"origin\"\n\n\
         [[routes]]\nname = \"limited\"\npath = \"/limited\"\nrate_limits = [\"tight\"]\nrespond = {{ status = 200, body = \"ok\" }}\n\n\
         {extra_route}"
    )
}

const ADMIN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\n";

async fn get(url: &str) -> (u16, String) {
    let resp = within(reqwest::get(url)).await.unwrap();
    let status = resp.status().as_u16();
    (status, within(resp.text()).await.unwrap())
}

/// The value of the sample line that starts with `series` (name and labels), if any.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_latency_bytes_and_rejections_by_config_names() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = TestGateway::builder(config(&origin.addr().to_string(), "", ADMIN)).start();
    for _ in 0..3 {
        assert_eq!(get(&gw.url("public", "/api/x?secret=1")).await.0, 200);
    }
    assert_eq!(get(&gw.url("public", "/nothing/here")).await.0, 404);
    assert_eq!(get(&gw.url("public", "/healthz")).await.0, 200);
    let (status, text) = get(&gw.admin_url("/metrics")).await;
    assert_eq!(status, 200);
    let ok = sample(
        &text,
        "rampart_requests_total{listener=\"public\",route=\"api\",upstream=\"origin\",method=\"GET\",status_class=\"2xx\"}",
    );
    assert_eq!(ok, Some(3.0), "{text}");
    let unrouted = sample(
        &text,
        "rampart_requests_total{listener=\"public\",route=\"\",upstream=\"\",method=\"GET\",status_class=\"4xx\"}",
    );
    assert_eq!(unrouted, Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "rampart_rejections_total{reason=\"no_route\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "rampart_request_duration_seconds_count{route=\"api\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "rampart_upstream_duration_seconds_count{upstream=\"origin\"}"
        ),
        Some(3.0)
    );
    assert!(sample(&text, "rampart_received_bytes_total{listener=\"public\"}").unwrap() > 0.0);
    assert!(sample(&text, "rampart_sent_bytes_total{listener=\"public\"}").unwrap() > 0.0);
    assert_eq!(sample(&text, "rampart_config_generation"), Some(1.0));
    assert!(text.contains("# TYPE rampart_request_duration_seconds histogram"));
    assert!(text.contains("rampart_upstream_target_healthy{upstream=\"origin\","));
    // The keep-alive connection used above waits in a worker's pool.
    let idle = sample(
        &text,
        "rampart_upstream_pool_idle_connections{upstream=\"origin\"}",
    );
    assert!(idle.is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 0.0);
    // Raw paths and query strings never become labels.
    assert!(
        !text.contains("/nothing") && !text.contains("secret=1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_reports_status_routes_upstreams_and_redacted_config() {
    let origin = HttpOrigin::start().await.unwrap();
    let admin = "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"${RAMPART_OPS_TEST_UNSET_TOKEN:-s3cret-admin-token}\"\n";
    let gw = TestGateway::builder(config(&origin.addr().to_string(), "", admin)).start();
    let client = reqwest::Client::new();
    let unauth = within(client.get(gw.admin_url("/status")).send())
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    let wrong = within(
        client
            .get(gw.admin_url("/status"))
            .bearer_auth("s3cret-admin-tokem")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), 401);
    let fetch = |path: &'static str| {
        let req = client
            .get(gw.admin_url(path))
            .bearer_auth("s3cret-admin-token");
        async move {
            let resp = within(req.send()).await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            serde_json::from_str::<Value>(&within(resp.text()).await.unwrap()).unwrap()
        }
    };
    let status = fetch("/status").await;
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["generation"], 1);
    assert_eq!(status["workers"], 2);
    assert_eq!(status["draining"], false);
    assert_eq!(status["listeners"][0]["name"], "public");
    assert_eq!(
        status["listeners"][0]["address"],
        gw.addr("public").to_string()
    );
    let routes = fetch("/routes").await;
    let names: Vec<&str> = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "limited"]);
    assert!(
        routes["routes"][1]["stages"].to_string().contains("rate"),
        "{routes}"
    );
    let upstreams = fetch("/upstreams").await;
    assert_eq!(upstreams["upstreams"][0]["name"], "origin");
    assert_eq!(
        upstreams["upstreams"][0]["targets"][0]["target"],
        origin.addr().to_string()
    );
    assert!(upstreams["upstreams"][0]["targets"][0]["state"].is_string());
    let config = fetch("/config").await;
    assert_eq!(config["admin"]["token"], "<redacted>");
    assert!(!config.to_string().contains("s3cret-admin-token"));
    assert_eq!(config["routes"][0]["name"], "api");
    // Drain: /readyz on the data plane turns 503, /healthz stays 200.
    assert_eq!(get(&gw.url("public", "/readyz")).await.0, 200);
    let drained = within(
        client
            .post(gw.admin_url("/drain"))
            .bearer_auth("s3cret-admin-token")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(drained.status(), 200);
    assert_eq!(get(&gw.url("public", "/readyz")).await.0, 503);
    assert_eq!(get(&gw.url("public", "/healthz")).await.0, 200);
    assert_eq!(fetch("/status").await["draining"], true);
    let missing = within(
        client
            .get(gw.admin_url("/nope"))
            .bearer_auth("s3cret-admin-token")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_reload_keeps_the_running_config_and_is_reported() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = TestGateway::builder(config(&origin.addr().to_string(), "", ADMIN)).start();
    let err = gw
        .handle()
        .reload_str("[[routes]]\nname = \"x\"\nupstream = \"missing\"\n")
        .unwrap_err();
    assert!(err.contains("missing"), "{err}");
    let err = gw.handle().reload_str("this is not toml").unwrap_err();
    assert!(!err.is_empty());
    assert_eq!(gw.handle().generation(), 1);
    assert_eq!(get(&gw.url("public", "/api/still")).await.0, 200);
    let text = gw.handle().metrics_text();
    assert_eq!(
        sample(&text, "rampart_config_reloads_total{result=\"failure\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "rampart_config_reloads_total{result=\"success\"}"),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_binds_and_closes_listeners_and_keeps_counters_state_and_tunnels() {
    let origin = HttpOrigin::start().await.unwrap();
    let ws = WsOrigin::start().await.unwrap();
    let ws_route = format!(
        "[[upstreams]]\nname = \"ws\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"chat\"\npath = \"/chat\"\nupstream = \"ws\"\n\n",
        ws.addr()
    );
    let base = config(&origin.addr().to_string(), &ws_route, ADMIN);
    let gw = TestGateway::builder(base.clone()).start();
    let (mut chat, _) = within(connect_async(format!("ws://{}/chat", gw.addr("public"))))
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(get(&gw.url("public", "/limited")).await.0, 200);
    }
    assert_eq!(get(&gw.url("public", "/api/a")).await.0, 200);

    // Generation 2: one more route and one more listener.
    let extra = format!(
        "{ws_route}[[listeners]]\nname = \"extra\"\nbind = \"127.0.0.1:0\"\n\n\
         [[routes]]\nname = \"added\"\npath = \"/added\"\nrespond = {{ status = 200, body = \"new\" }}\n"
    );
    let report = gw
        .handle()
        .reload_str(&config(&origin.addr().to_string(), &extra, ADMIN))
        .unwrap();
    assert_eq!(report.generation, 2);
    assert_eq!(report.listeners_added, ["extra"]);
    let extra_addr = gw.addr("extra");
    assert_eq!(
        get(&format!("http://{extra_addr}/added")).await,
        (200, "new".into())
    );
    assert_eq!(get(&gw.url("public", "/added")).await.0, 200);
    // The rate-limit policy did not change: its bucket is the one already spent.
    assert_eq!(get(&gw.url("public", "/limited")).await.0, 429);
    // The WebSocket opened before the reload still works.
    within(chat.send(Message::text("after reload")))
        .await
        .unwrap();
    let echoed = within(chat.next()).await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "after reload");

    // Generation 3: back to the first config; the extra listener is closed.
    let report = gw.handle().reload_str(&base).unwrap();
    assert_eq!(report.listeners_removed, ["extra"]);
    assert!(gw.handle().addr("extra").is_none());
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(extra_addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the removed listener still accepts");
    assert_eq!(get(&gw.url("public", "/added")).await.0, 404);
    // Counters of kept names went on counting across both reloads.
    assert_eq!(get(&gw.url("public", "/api/b")).await.0, 200);
    let text = gw.handle().metrics_text();
    assert_eq!(
        sample(
            &text,
            "rampart_requests_total{listener=\"public\",route=\"api\",upstream=\"origin\",method=\"GET\",status_class=\"2xx\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(sample(&text, "rampart_config_generation"), Some(3.0));
    assert_eq!(
        sample(&text, "rampart_config_reloads_total{result=\"success\"}"),
        Some(2.0)
    );
    within(chat.send(Message::text("still"))).await.unwrap();
    let echoed = within(chat.next()).await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "still");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejections_are_counted_by_target_and_reason() {
    let origin = HttpOrigin::start().await.unwrap();
    // A port nobody listens on any more: every connect to it is refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = TestGateway::builder(format!(
        "[access_log]\nenabled = false\n\n{ADMIN}\n\
         [[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{}\", \"{dead}\"]\nbalance = \"round_robin\"\n\n\
         [[routes]]\nname = \"api\"\nupstream = \"origin\"\n",
        origin.addr()
    ))
    .start();
    // Round robin sends every other request to the dead target first; each is retried on the
    // live one, and the third refused connect in a row ejects the dead target.
    for _ in 0..8 {
        assert_eq!(get(&gw.url("public", "/x")).await.0, 200);
    }
    let (_, text) = get(&gw.admin_url("/metrics")).await;
    let series = format!(
        "rampart_upstream_ejections_total{{upstream=\"origin\",target=\"{dead}\",reason=\"consecutive_connect_errors\"}}"
    );
    assert_eq!(sample(&text, &series), Some(1.0), "{text}");
    let live = format!(
        "rampart_upstream_ejections_total{{upstream=\"origin\",target=\"{}\"",
        origin.addr()
    );
    assert!(!text.contains(&live), "{text}");
}

/// A port nobody listens on any more: every connect to it is refused.
fn dead_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// An upstream `origin` of a live and a dead target, round robin, `extra` keys after it.
fn live_and_dead(live: std::net::SocketAddr, dead: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "[access_log]\nenabled = false\n\n{ADMIN}\n\
         [[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{live}\", \"{dead}\"]\nbalance = \"round_robin\"\n{extra}\n\n\
         [[routes]]\nname = \"api\"\nupstream = \"origin\"\n"
    )
}

/// Target `target` of upstream `origin` in `GET /upstreams`.
async fn target_status(gw: &TestGateway, target: std::net::SocketAddr) -> Value {
    let (status, text) = get(&gw.admin_url("/upstreams")).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["upstreams"][0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == target.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("no {target} in {doc}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_and_metrics_count_ejections_the_same_way() {
    let origin = HttpOrigin::start().await.unwrap();
    let dead = dead_port();
    // The first probe comes after 2 s: passive ejection first, then a failed active check.
    let gw = TestGateway::builder(live_and_dead(
        origin.addr(),
        dead,
        "[upstreams.health_check]\nkind = \"tcp\"\ninterval = \"2s\"\njitter = \"0s\"\nunhealthy_threshold = 1",
    ))
    .start();
    for _ in 0..8 {
        assert_eq!(get(&gw.url("public", "/x")).await.0, 200);
    }
    let mut target = target_status(&gw, dead).await;
    for _ in 0..150 {
        if target["ejections_by_reason"]["active_check_failed"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        target = target_status(&gw, dead).await;
    }
    assert_eq!(
        target["ejections_by_reason"],
        serde_json::json!({"consecutive_connect_errors": 1, "active_check_failed": 1}),
        "{target}"
    );
    assert_eq!(target["ejections"], 2, "{target}");
    let (_, text) = get(&gw.admin_url("/metrics")).await;
    let prefix =
        format!("rampart_upstream_ejections_total{{upstream=\"origin\",target=\"{dead}\",reason=");
    let total: f64 = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| rest.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(Some(total), target["ejections"].as_f64(), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_health_of_an_unchanged_upstream() {
    let origin = HttpOrigin::start().await.unwrap();
    let dead = dead_port();
    let outlier = "[upstreams.outlier]\nbase_ejection = \"60s\"\nmax_ejection = \"120s\"";
    let base = live_and_dead(origin.addr(), dead, outlier);
    let gw = TestGateway::builder(base.clone()).start();
    for _ in 0..8 {
        assert_eq!(get(&gw.url("public", "/x")).await.0, 200);
    }
    let before = target_status(&gw, dead).await;
    assert_eq!(before["state"], "ejected", "{before}");
    assert_eq!(before["ejections"], 1, "{before}");
    // Generation 2 adds a route; the upstream is unchanged and keeps its health.
    let report = gw
        .handle()
        .reload_str(&format!(
            "{base}\n[[routes]]\nname = \"added\"\npath = \"/added\"\nrespond = {{ status = 200, body = \"new\" }}\n"
        ))
        .unwrap();
    assert_eq!(report.generation, 2);
    assert_eq!(get(&gw.url("public", "/added")).await.0, 200);
    let after = target_status(&gw, dead).await;
    assert_eq!(after["state"], "ejected", "{after}");
    assert_eq!(after["reason"], "consecutive_connect_errors", "{after}");
    assert_eq!(after["ejections"], 1, "{after}");
    assert_eq!(after["backoff_level"], before["backoff_level"], "{after}");
    // No request tries the ejected target: it is not asked again after the reload.
    for _ in 0..4 {
        assert_eq!(get(&gw.url("public", "/x")).await.0, 200);
    }
    let last = target_status(&gw, dead).await;
    assert_eq!(last["requests"], before["requests"], "{last}");
}

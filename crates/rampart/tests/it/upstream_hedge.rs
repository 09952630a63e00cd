//! Hedged requests: a second target asked when the first is slow to answer, the winner kept,
//! and the attempt left behind still counted against its target.

use std::collections::HashMap;
use std::net::SocketAddr;

use rampart_testkit::{Behavior, HttpOrigin, ScriptedOrigin, TestGateway};
use serde_json::Value;

use crate::support::{client, within};

const ADMIN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\n";

fn config(targets: &[SocketAddr], upstream_extra: &str, route_extra: &str) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n[[upstreams]]\nname = \"u\"\ntargets = [{}]\n{upstream_extra}\n\n[[routes]]\nname = \"all\"\nupstream = \"u\"\n{route_extra}\n\n{ADMIN}",
        targets.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedged_requests_race_a_hung_target_and_posts_are_never_hedged() {
    let hung = ScriptedOrigin::start(Behavior::Hang).await.unwrap();
    let fast = HttpOrigin::start().await.unwrap();
    let upstream =
        "balance = \"round_robin\"\nrequest_timeout = \"2s\"\n[upstreams.outlier]\nenabled = false";
    let gw = TestGateway::builder(config(
        &[hung.addr(), fast.addr()],
        upstream,
        "[routes.retry]\nhedge_after = \"50ms\"",
    ))
    .access_log()
    .start();
    let client = client();
    for k in 0..6 {
        let r = within(client.get(gw.url("public", &format!("/h/{k}"))).send())
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "GET {k}: the fast target answers the hedge"
        );
        // A hedged copy carries the fields Rampart adds, like the first attempt.
        let echo: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        let names: Vec<&str> = echo["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|h| h[0].as_str())
            .collect();
        for added in ["x-forwarded-for", "via", "x-request-id", "traceparent"] {
            assert!(
                names.contains(&added),
                "GET {k}: {added} missing: {names:?}"
            );
        }
    }
    assert!(
        hung.connections() >= 3,
        "round robin sent every other GET to the hung target first ({} connections)",
        hung.connections()
    );
    assert_eq!(fast.requests(), 6);
    let lines = gw.access_log_json(6);
    let hedged = lines.iter().filter(|l| l["retries"] == 1).count();
    assert!(
        hedged >= 3,
        "hedges count as retries in the access log: {lines:?}"
    );

    // A POST is never hedged: the one that reaches the hung target times out.
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let r = within(client.post(gw.url("public", "/p")).body("x").send())
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 504]);
    assert_eq!(fast.requests(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_first_attempts_rotate_when_requests_are_hedged() {
    let a = HttpOrigin::start().await.unwrap();
    let b = HttpOrigin::start().await.unwrap();
    let gw = TestGateway::builder(config(
        &[a.addr(), b.addr()],
        "balance = \"round_robin\"\n[upstreams.outlier]\nenabled = false",
        "[routes.retry]\nhedge_after = \"50ms\"",
    ))
    .access_log()
    .start();
    let client = client();
    for k in 0..10 {
        // Both targets are equally slow: the first attempt, 50 ms ahead, answers.
        let r = within(
            client
                .get(gw.url("public", &format!("/delay/300?k={k}")))
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
    }
    let lines = gw.access_log_json(10);
    let mut answered: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        assert_eq!(line["retries"], 1, "every request was hedged: {line}");
        *answered
            .entry(line["upstream_target"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for origin in [a.addr(), b.addr()] {
        let n = answered.get(&origin.to_string()).copied().unwrap_or(0);
        assert!(
            n >= 3,
            "first attempts follow the rotation, the hedge does not take a turn: {answered:?}"
        );
    }
}

/// Target `addr` of upstream `u` as `GET /upstreams` shows it.
async fn upstream_target(gw: &TestGateway, addr: SocketAddr) -> Value {
    let text = within(client().get(gw.admin_url("/upstreams")).send())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    body["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "u")
        .and_then(|u| {
            u["targets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["target"] == addr.to_string())
                .cloned()
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_hedges_keep_winning_against_is_still_seen_as_slow() {
    let slow = ScriptedOrigin::start(Behavior::Hang).await.unwrap();
    let fast = HttpOrigin::start().await.unwrap();
    let gw = TestGateway::builder(config(
        &[slow.addr(), fast.addr()],
        "balance = \"p2c\"\nrequest_timeout = \"5s\"",
        "[routes.retry]\nhedge_after = \"100ms\"",
    ))
    .access_log()
    .start();
    let client = client();
    for k in 0..20 {
        let r = within(client.get(gw.url("public", &format!("/h/{k}"))).send())
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {k}");
    }
    let lines = gw.access_log_json(20);
    let hedged_late = lines[10..].iter().filter(|l| l["retries"] == 1).count();
    let t = upstream_target(&gw, slow.addr()).await;
    let requests = t["requests"].as_u64().unwrap();
    assert!(
        requests >= 1 && t["abandoned"].as_u64() == Some(requests),
        "every attempt left behind on the slow target counts: {t}"
    );
    assert!(
        t["ewma_ms"].as_f64().unwrap() >= 90.0 || t["state"] == "ejected",
        "at least the time until it was abandoned goes into its EWMA: {t}"
    );
    assert!(
        requests <= 5 && hedged_late <= 1,
        "p2c then avoids the slow target ({requests} requests there, {hedged_late} of the last 10 hedged): {t}"
    );
    assert_eq!(t["in_flight"], 0, "{t}");
    let fast_t = upstream_target(&gw, fast.addr()).await;
    assert_eq!(fast_t["requests"], 20, "{fast_t}");
}

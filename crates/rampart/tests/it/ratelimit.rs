//! Local rate limiting through a real gateway: bursts, 429 with `Retry-After` and the
//! `RateLimit-*` fields, keys (client IP, header, query, route), policies shared by routes or
//! applied to all of them, and refused requests never reaching the upstream.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_testkit::{RecordingOrigin, TestGateway};

use crate::support::{access_log_line, send_within};

/// Bound on every wait in this file.
const WAIT: Duration = Duration::from_secs(10);

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n{extra}\r\n")
}

/// Sends `n` identical requests and returns their statuses.
async fn statuses(addr: SocketAddr, path: &str, extra: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(send_within(WAIT, addr, get(path, extra)).await.status);
    }
    out
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// A gateway with `policies` (`[[rate_limits]]` tables) and `routes` in front of `origin`.
fn gateway(origin: SocketAddr, policies: &str, routes: &str) -> TestGateway {
    TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "app"
targets = ["{origin}"]

{policies}

{routes}
"#
    ))
    .access_log()
    .workers(2)
    .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_admitted_then_429_with_retry_after_and_ratelimit_fields() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        origin.addr(),
        r#"
[[rate_limits]]
name = "per-ip"
requests = 3
per = "1h"
"#,
        r#"
[[routes]]
name = "app"
upstream = "app"
rate_limits = ["per-ip"]
security_headers = { content_type_options = true }
"#,
    );
    let addr = gw.addr("public");
    // A spoofed X-Forwarded-For from an untrusted client does not give it a fresh bucket.
    let mut seen = Vec::new();
    for i in 0..5 {
        let resp = send_within(
            WAIT,
            addr,
            get("/a", &format!("X-Forwarded-For: 198.51.100.{i}\r\n")),
        )
        .await;
        seen.push(resp);
    }
    let codes: Vec<u16> = seen.iter().map(|r| r.status).collect();
    assert_eq!(codes, [200, 200, 200, 429, 429]);
    let refused = &seen[3];
    assert_eq!(refused.header("retry-after"), Some("1200"));
    assert_eq!(refused.header("ratelimit-limit"), Some("3"));
    assert_eq!(refused.header("ratelimit-remaining"), Some("0"));
    assert_eq!(refused.header("ratelimit-reset"), Some("3600"));
    assert_eq!(refused.header("ratelimit-policy"), Some("3;w=3600"));
    // The refusal is a route response like any other: security headers included.
    assert_eq!(refused.header("x-content-type-options"), Some("nosniff"));
    assert!(refused.body_text().contains("Too many requests"));
    // Admitted responses carry no rate-limit fields (nothing is formatted on that path).
    assert_eq!(seen[0].header("ratelimit-limit"), None);
    let line = access_log_line(&gw, refused).await;
    assert_eq!(line["reason"], "rate_limited");
    assert_eq!(line["status"], 429);
    assert_eq!(line["route"], "app");
    // Exactly the three admitted requests reached the upstream.
    let requests = origin.wait_for_requests(3, WAIT).await;
    assert_eq!(requests.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_from_a_header_or_the_query_have_their_own_buckets() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        origin.addr(),
        r#"
[[rate_limits]]
name = "by-header"
requests = 2
per = "1h"
key = ["header:x-api-key"]

[[rate_limits]]
name = "by-query"
requests = 2
per = "1h"
key = ["query:api_key"]
missing_key = "skip"
"#,
        r#"
[[routes]]
name = "h"
path_prefix = "/h"
upstream = "app"
rate_limits = ["by-header"]

[[routes]]
name = "q"
path_prefix = "/q"
upstream = "app"
rate_limits = ["by-query"]
"#,
    );
    let addr = gw.addr("public");
    assert_eq!(
        statuses(addr, "/h", "X-Api-Key: alice\r\n", 3).await,
        [200, 200, 429]
    );
    assert_eq!(
        statuses(addr, "/h", "X-Api-Key: bob\r\n", 3).await,
        [200, 200, 429]
    );
    // Requests without the header share one bucket (they cannot dodge the limit).
    assert_eq!(statuses(addr, "/h", "", 3).await, [200, 200, 429]);

    assert_eq!(statuses(addr, "/q?api_key=k1", "", 2).await, [200, 200]);
    // The same key percent-encoded differently is the same key.
    assert_eq!(statuses(addr, "/q?%61pi_key=%6b1", "", 1).await, [429]);
    assert_eq!(
        statuses(addr, "/q?x=1&api_key=k2", "", 3).await,
        [200, 200, 429]
    );
    // `missing_key = "skip"`: without the parameter the policy does not apply.
    assert_eq!(count(&statuses(addr, "/q", "", 5).await, 200), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_policy_counts_routes_together_unless_keyed_by_route() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        origin.addr(),
        r#"
[[rate_limits]]
name = "shared"
requests = 4
per = "1h"

[[rate_limits]]
name = "each"
requests = 2
per = "1h"
key = ["client_ip", "route"]

[[rate_limits]]
name = "everything"
requests = 1000
per = "1s"
burst = 1000
all_routes = true
"#,
        r#"
[[routes]]
name = "a"
path_prefix = "/a"
upstream = "app"
rate_limits = ["shared"]

[[routes]]
name = "b"
path_prefix = "/b"
upstream = "app"
rate_limits = ["shared"]

[[routes]]
name = "c"
path_prefix = "/c"
upstream = "app"
rate_limits = ["each"]

[[routes]]
name = "d"
path_prefix = "/d"
upstream = "app"
rate_limits = ["each"]

[[routes]]
name = "free"
path_prefix = "/free"
upstream = "app"
"#,
    );
    let addr = gw.addr("public");
    let mut shared = statuses(addr, "/a", "", 3).await;
    shared.extend(statuses(addr, "/b", "", 3).await);
    assert_eq!(shared, [200, 200, 200, 200, 429, 429]);
    assert_eq!(statuses(addr, "/c", "", 3).await, [200, 200, 429]);
    assert_eq!(statuses(addr, "/d", "", 3).await, [200, 200, 429]);
    // The all-routes policy is high enough never to trigger here.
    assert_eq!(count(&statuses(addr, "/free", "", 5).await, 200), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_routes_policy_limits_routes_without_their_own() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        origin.addr(),
        r#"
[[rate_limits]]
name = "global"
requests = 2
per = "1h"
all_routes = true
"#,
        r#"
[[routes]]
name = "a"
path_prefix = "/a"
upstream = "app"

[[routes]]
name = "b"
path_prefix = "/b"
echo = true
"#,
    );
    let addr = gw.addr("public");
    let mut all = statuses(addr, "/a", "", 1).await;
    all.extend(statuses(addr, "/b", "", 2).await);
    assert_eq!(all, [200, 200, 429]);
}

fn config_error(policies: &str, route_extra: &str) -> String {
    let text = format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n{policies}\n\n[[routes]]\nname = \"app\"\necho = true\n{route_extra}\n"
    );
    match rampart_config::load_str(&text, "test.toml") {
        Ok(_) => panic!("config accepted:\n{text}"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn broken_policies_and_references_are_refused_with_their_key() {
    let ok = "[[rate_limits]]\nname = \"p\"\nrequests = 5\n";
    for (policies, route, expect) in [
        (
            ok,
            r#"rate_limits = ["q"]"#,
            "unknown rate-limit policy \"q\"",
        ),
        (ok, r#"rate_limits = ["p", "p"]"#, "listed twice"),
        (
            "[[rate_limits]]\nname = \"p\"\nrequests = 0\n",
            "",
            "rate_limits[0].requests",
        ),
        (
            "[[rate_limits]]\nname = \"p\"\nrequests = 5\nburst = 0\n",
            "",
            "rate_limits[0].burst",
        ),
        (
            "[[rate_limits]]\nname = \"p\"\nrequests = 5000000\nper = \"1s\"\n",
            "",
            "one per microsecond",
        ),
        (
            "[[rate_limits]]\nname = \"p\"\nrequests = 5\nkey = [\"jwt:sub\"]\n",
            "",
            "authentication",
        ),
        (
            "[[rate_limits]]\nname = \"p\"\nrequests = 5\nkey = [\"cookie:x\"]\n",
            "",
            "rate_limits[0].key[0]",
        ),
        (
            "[[rate_limits]]\nname = \"p\"\nrequests = 5\nkey = []\n",
            "",
            "at least one key part",
        ),
        (
            "[[rate_limits]]\nname = \"p\"\nrequests = 5\nstore = \"redis\"\n",
            "",
            "needs a `[redis]` section",
        ),
        (
            "[[rate_limits]]\nname = \"p\"\nrequests = 5\non_redis_error = \"deny\"\n",
            "",
            "only to policies with `store = \"redis\"`",
        ),
        (
            "[[rate_limits]]\nname = \"p\"\nrequests = 5\nall_routes = true\n",
            r#"rate_limits = ["p"]"#,
            "applies here already",
        ),
        (
            "[[rate_limits]]\nname = \"p\"\nrequests = 5\nstore = \"redis\"\non_redis_error = \"allow\"\nfallback = { requests = 1 }\n[redis]\nurl = \"redis://127.0.0.1:1\"\n",
            "",
            "only with `on_redis_error = \"local\"`",
        ),
        ("[redis]\nurl = \"http://127.0.0.1:1\"\n", "", "redis.url"),
        (
            "[redis]\nurl = \"redis://127.0.0.1:1\"\n",
            "",
            "no rate-limit policy has `store = \"redis\"`",
        ),
    ] {
        let msg = config_error(policies, route);
        assert!(msg.contains(expect), "{policies} / {route}: {msg}");
    }
}

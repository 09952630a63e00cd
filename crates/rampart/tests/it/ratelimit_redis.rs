//! Distributed rate limiting against a real `redis-server` on loopback (installed by
//! `scripts/test`; each test starts its own on a free port with a temporary directory and kills
//! it at the end): two gateways share one budget, and a dead or frozen Redis behaves as each
//! policy says (fail open, fail closed, or a local fallback limit) without stalling requests;
//! after a restart, idle instances find the broken connection themselves and go back to the
//! shared budget.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rampart_testkit::{RawResponse, TestGateway, free_port_closed, raw_request_parsed};

use crate::support::access_log_line;

/// Bound on every wait in this file.
const WAIT: Duration = Duration::from_secs(10);

/// A `redis-server` child process with its own port and directory.
struct Redis {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    /// Not yet killed and reaped (its pid still names it).
    alive: bool,
}

impl Redis {
    fn start() -> Self {
        Self::start_at(free_port_closed().unwrap())
    }

    /// A server on `addr` (a fresh one, empty, where another was killed: a restart).
    fn start_at(addr: SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "rampart-redis-{}-{}",
            std::process::id(),
            addr.port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}): install it, for example with ./scripts/test")
            });
        let redis = Self {
            child,
            addr,
            dir,
            alive: true,
        };
        let deadline = Instant::now() + WAIT;
        while !redis.ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not come up on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// One `PING` over RESP on a fresh connection.
    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    /// Sends a signal to the server (`STOP` freezes it: connections stay open, nothing answers).
    fn signal(&self, sig: &str) {
        assert!(self.alive);
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn kill(&mut self) {
        if std::mem::replace(&mut self.alive, false) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn send(addr: SocketAddr, path: &str) -> RawResponse {
    let bytes = format!("GET {path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n");
    tokio::time::timeout(WAIT, raw_request_parsed(addr, bytes.as_bytes()))
        .await
        .expect("a response in bounded time, whatever Redis does")
        .unwrap()
}

fn gateway(redis_url: &str, policies: &str, routes: &str) -> TestGateway {
    TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[redis]
url = "{redis_url}"
timeout = "200ms"
retry_interval = "1s"

{policies}

{routes}
"#
    ))
    .access_log()
    .workers(2)
    .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_budget_through_redis() {
    let redis = Redis::start();
    let policy = r#"
[[rate_limits]]
name = "shared"
requests = 100
per = "1h"
store = "redis"
on_redis_error = "deny"
"#;
    let route = "[[routes]]\nname = \"api\"\necho = true\nrate_limits = [\"shared\"]\n";
    let a = gateway(&redis.url(), policy, route);
    let b = gateway(&redis.url(), policy, route);
    let (mut admitted, mut refused) = (0, 0);
    for i in 0..160 {
        let gw = if i % 2 == 0 { &a } else { &b };
        match send(gw.addr("public"), "/x").await.status {
            200 => admitted += 1,
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(admitted + refused, 160);
    // Within 5% of the configured 100 (the refill over the test's few seconds is 0.03/s).
    assert!(
        (95..=105).contains(&admitted),
        "{admitted} admitted across both instances"
    );
    let resp = send(b.addr("public"), "/x").await;
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("ratelimit-limit"), Some("100"));
    assert_eq!(resp.header("ratelimit-policy"), Some("100;w=3600"));
    assert!(resp.header("retry-after").is_some());
    assert_eq!(access_log_line(&b, &resp).await["reason"], "rate_limited");
}

const FAILURE_POLICIES: &str = r#"
[[rate_limits]]
name = "open"
requests = 2
per = "1h"
store = "redis"
on_redis_error = "allow"

[[rate_limits]]
name = "closed"
requests = 2
per = "1h"
store = "redis"
on_redis_error = "deny"

[[rate_limits]]
name = "fallback"
requests = 100
per = "1h"
store = "redis"
on_redis_error = "local"
fallback = { requests = 3, per = "1h" }
"#;

const FAILURE_ROUTES: &str = r#"
[[routes]]
name = "open"
path_prefix = "/open"
echo = true
rate_limits = ["open"]

[[routes]]
name = "closed"
path_prefix = "/closed"
echo = true
rate_limits = ["closed"]

[[routes]]
name = "fallback"
path_prefix = "/fallback"
echo = true
rate_limits = ["fallback"]
"#;

async fn statuses(addr: SocketAddr, path: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(send(addr, path).await.status);
    }
    out
}

/// With Redis gone (killed, or frozen so that calls time out), each policy does what its
/// `on_redis_error` says.
async fn assert_failure_modes(gw: &TestGateway) {
    let addr = gw.addr("public");
    assert_eq!(statuses(addr, "/open", 5).await, [200; 5], "fail open");
    let resp = send(addr, "/closed").await;
    assert_eq!(resp.status, 503, "fail closed");
    assert_eq!(
        access_log_line(gw, &resp).await["reason"],
        "rate_limit_unavailable"
    );
    assert_eq!(statuses(addr, "/closed", 2).await, [503, 503]);
    // The local fallback: 3 per instance, then 429.
    let fallback = statuses(addr, "/fallback", 5).await;
    assert_eq!(fallback, [200, 200, 200, 429, 429], "local fallback");
    let resp = send(addr, "/fallback").await;
    assert_eq!(resp.header("ratelimit-limit"), Some("3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_test_fails_open_closed_or_to_the_local_limit() {
    let mut redis = Redis::start();
    let gw = gateway(&redis.url(), FAILURE_POLICIES, FAILURE_ROUTES);
    let addr = gw.addr("public");
    // While Redis is up, the Redis limits apply.
    assert_eq!(statuses(addr, "/open", 3).await, [200, 200, 429]);
    assert_eq!(statuses(addr, "/closed", 3).await, [200, 200, 429]);
    assert_eq!(statuses(addr, "/fallback", 2).await, [200, 200]);
    redis.kill();
    assert_failure_modes(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_at_most_the_timeout_then_the_failure_mode_applies() {
    let redis = Redis::start();
    let gw = gateway(&redis.url(), FAILURE_POLICIES, FAILURE_ROUTES);
    let addr = gw.addr("public");
    // Connect every worker's connection first, so the freeze hits open connections.
    assert_eq!(statuses(addr, "/open", 2).await, [200, 200]);
    redis.signal("STOP");
    // Every request still gets an answer within the bounded wait in `send`.
    assert_failure_modes(&gw).await;
    redis.signal("CONT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_startup_does_not_stop_the_gateway() {
    let dead = free_port_closed().unwrap();
    let gw = gateway(&format!("redis://{dead}"), FAILURE_POLICIES, FAILURE_ROUTES);
    assert_failure_modes(&gw).await;
}

/// A gateway with one worker (one Redis connection) and the admin API, for its metrics.
fn gateway_with_metrics(redis_url: &str, policies: &str, routes: &str) -> TestGateway {
    TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"

[redis]
url = "{redis_url}"
timeout = "200ms"
retry_interval = "300ms"

{policies}

{routes}
"#
    ))
    .workers(1)
    .start()
}

/// The value of metric `name` (without labels) on `gw`'s admin API, if it is there.
async fn metric(gw: &TestGateway, name: &str) -> Option<u64> {
    let resp = tokio::time::timeout(WAIT, reqwest_get(&gw.admin_url("/metrics")))
        .await
        .ok()??;
    resp.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn reqwest_get(url: &str) -> Option<String> {
    let client = rampart_testkit::reqwest::Client::builder()
        .no_proxy()
        .build()
        .ok()?;
    client.get(url).send().await.ok()?.text().await.ok()
}

/// Waits (bounded) until `gw` reports that Redis answered again after a failure.
async fn wait_recovered(gw: &TestGateway, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let recoveries = metric(gw, "rampart_redis_recoveries_total").await;
        let up = metric(gw, "rampart_redis_up").await;
        if recoveries.is_some_and(|n| n >= 1) && up == Some(1) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not report Redis back (recoveries {recoveries:?}, up {up:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_idle_instances_go_back_to_the_shared_budget() {
    let mut redis = Redis::start();
    let addr = redis.addr;
    let policy = r#"
[[rate_limits]]
name = "shared"
requests = 5
per = "1h"
store = "redis"
on_redis_error = "local"
fallback = { requests = 5, per = "1h" }
"#;
    let route = "[[routes]]\nname = \"api\"\necho = true\nrate_limits = [\"shared\"]\n";
    let a = gateway_with_metrics(&redis.url(), policy, route);
    let b = gateway_with_metrics(&redis.url(), policy, route);
    // Both instances have a connection to Redis, then sit idle while it restarts (a new,
    // empty server on the same port: the budget starts over).
    assert_eq!(send(a.addr("public"), "/x").await.status, 200);
    assert_eq!(send(b.addr("public"), "/x").await.status, 200);
    redis.kill();
    let _restarted = Redis::start_at(addr);
    // Without a request, each instance finds its broken connection and reconnects.
    wait_recovered(&a, "instance a").await;
    wait_recovered(&b, "instance b").await;
    // Together they admit the shared limit, not each its local fallback.
    let mut admitted = 0;
    for i in 0..20 {
        let gw = if i % 2 == 0 { &a } else { &b };
        match send(gw.addr("public"), "/x").await.status {
            200 => admitted += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        admitted, 5,
        "admitted across both instances after the restart"
    );
}

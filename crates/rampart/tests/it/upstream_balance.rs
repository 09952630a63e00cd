//! Balancing, sticky sessions, retries, circuit breaking and active health checks through a
//! real gateway and real origins.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rampart_testkit::reqwest;
use rampart_testkit::{Behavior, HttpOrigin, ScriptedOrigin, TestGateway, free_port_closed};
use serde_json::Value;

use crate::support::{WAIT, client, within};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn config(targets: &[SocketAddr], upstream_extra: &str, route_extra: &str) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n[[upstreams]]\nname = \"u\"\ntargets = [{}]\n{upstream_extra}\n\n[[routes]]\nname = \"all\"\nupstream = \"u\"\n{route_extra}\n",
        targets.join(", ")
    )
}

fn always_503() -> Behavior {
    Behavior::Respond(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy".to_vec())
}

/// The `name=value` part of a `Set-Cookie`.
fn cookie_pair(resp: &reqwest::Response) -> Option<String> {
    let v = resp.headers().get("set-cookie")?.to_str().ok()?;
    v.split(';').next().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookies_pin_a_client_and_forged_ones_fall_back() {
    let a = HttpOrigin::start().await.unwrap();
    let b = HttpOrigin::start().await.unwrap();
    let extra =
        format!("[upstreams.sticky]\ncookie = \"aff\"\nsecret = \"{SECRET}\"\nmax_age = \"1h\"");
    let gw = TestGateway::builder(config(&[a.addr(), b.addr()], &extra, ""))
        .access_log()
        .start();
    let client = client();
    let first = within(client.get(gw.url("public", "/s/0")).send())
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let set = first.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("Max-Age=3600") && set.contains("HttpOnly"),
        "{set}"
    );
    let cookie = cookie_pair(&first).unwrap();
    let pinned = gw.access_log_json(1)[0]["upstream_target"].clone();
    for i in 1..=10 {
        let resp = within(
            client
                .get(gw.url("public", &format!("/s/{i}")))
                .header("cookie", &cookie)
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers().get("set-cookie").is_none(),
            "a valid cookie is not set again"
        );
        let echo: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        let sent: Vec<&Value> = echo["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0] == "cookie")
            .collect();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0][1],
            cookie.as_str(),
            "the cookie reaches the upstream unchanged"
        );
    }
    let lines = gw.access_log_json(11);
    assert!(
        lines.iter().all(|l| l["upstream_target"] == pinned),
        "{lines:?}"
    );
    // Hostile cookies: a forged tag, another key's cookie, garbage. Each is ignored (the
    // balancer picks), answered 200, and replaced by a valid cookie.
    let (name, value) = cookie.split_once('=').unwrap();
    let mut forged_tag = value.to_owned();
    let last = forged_tag.pop().unwrap();
    forged_tag.push(if last == '0' { '1' } else { '0' });
    for hostile in [
        format!("{name}={forged_tag}"),
        format!("{name}=0000000000000000.00000000000000000000000000000000"),
        format!("{name}=%00%ff..;{name}=x"),
        format!("{name}={}", "f".repeat(4000)),
    ] {
        let before = a.requests() + b.requests();
        let resp = within(
            client
                .get(gw.url("public", "/hostile"))
                .header("cookie", &hostile)
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 200, "{hostile}");
        let fresh = cookie_pair(&resp).expect("a fresh cookie replaces a bad one");
        assert_ne!(fresh, hostile);
        assert_eq!(
            a.requests() + b.requests(),
            before + 1,
            "exactly one request reached a target"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_keeps_each_key_on_one_target() {
    let origins = [
        HttpOrigin::start().await.unwrap(),
        HttpOrigin::start().await.unwrap(),
        HttpOrigin::start().await.unwrap(),
    ];
    let addrs: Vec<SocketAddr> = origins.iter().map(HttpOrigin::addr).collect();
    let extra = "balance = \"maglev\"\nhash_on = \"header:x-user\"";
    let gw = TestGateway::builder(config(&addrs, extra, ""))
        .access_log()
        .start();
    let client = client();
    for round in 0..3 {
        for user in 0..20 {
            let resp = within(
                client
                    .get(gw.url("public", &format!("/u/{round}")))
                    .header("x-user", format!("user-{user}"))
                    .send(),
            )
            .await
            .unwrap();
            assert_eq!(resp.status(), 200);
        }
    }
    let lines = gw.access_log_json(60);
    let mut owner: HashMap<usize, Value> = HashMap::new();
    for (i, l) in lines.iter().enumerate() {
        let prev = owner
            .entry(i % 20)
            .or_insert_with(|| l["upstream_target"].clone());
        assert_eq!(*prev, l["upstream_target"], "user {} moved", i % 20);
    }
    let used: std::collections::HashSet<String> = owner.values().map(ToString::to_string).collect();
    assert!(used.len() >= 2, "20 keys all on one target: {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_elsewhere_for_get_and_only_route_allowed_posts_with_small_bodies() {
    let bad = ScriptedOrigin::start(always_503()).await.unwrap();
    let good = HttpOrigin::start().await.unwrap();
    // Round robin makes the order of targets known; no ejection, so the bad target stays in.
    let upstream = "balance = \"round_robin\"\n[upstreams.retry]\nbuffer_body = \"16B\"\n[upstreams.outlier]\nconsecutive_5xx = 0";
    let routes = "methods = [\"GET\"]\n\n[[routes]]\nname = \"orders\"\npath = \"/orders\"\nupstream = \"u\"\n[routes.retry]\nnon_idempotent = true\n\n[[routes]]\nname = \"posts\"\nupstream = \"u\"\n";
    let gw = TestGateway::builder(config(&[bad.addr(), good.addr()], upstream, routes))
        .access_log()
        .start();
    let client = client();
    // Round robin starts at the bad target: the GET is retried on the good one.
    let resp = within(client.get(gw.url("public", "/get")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let line = &gw.access_log_json(1)[0];
    assert_eq!(line["retries"], 1);
    assert_eq!(line["upstream_target"], good.addr().to_string());
    // A POST on a route without `non_idempotent` is not sent twice: the 503 stands.
    let sent_before = good.requests();
    let mut saw_503 = false;
    for _ in 0..2 {
        let resp = within(client.post(gw.url("public", "/posts")).body("abc").send())
            .await
            .unwrap();
        saw_503 |= resp.status() == 503;
    }
    assert!(
        saw_503,
        "one of two POSTs hit the bad target and got its 503"
    );
    assert_eq!(
        good.requests(),
        sent_before + 1,
        "the POST that got a 503 never reached the good target"
    );
    // The route allows it: the order whose turn is the bad target's is replayed on the good one
    // from its buffered body, byte for byte (the rotation alternates first attempts).
    let mut replayed = 0;
    for _ in 0..2 {
        let resp = within(client.post(gw.url("public", "/orders")).body("abc").send())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let echo: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(echo["body_len"], 3);
        replayed += 1;
    }
    assert_eq!(replayed, 2);
    // A body above `buffer_body` streams and is never replayed.
    let mut big_503 = false;
    for _ in 0..2 {
        let resp = within(
            client
                .post(gw.url("public", "/orders"))
                .body("x".repeat(64))
                .send(),
        )
        .await
        .unwrap();
        big_503 |= resp.status() == 503;
    }
    assert!(big_503, "a large body is not replayed");
    let lines = gw.access_log_json(7);
    let retried: Vec<&Value> = lines.iter().filter(|l| l["retries"] == 1).collect();
    assert_eq!(
        retried.len(),
        2,
        "the GET and the small-body order that met the bad target were retried: {lines:?}"
    );
    let all = gw.handle().upstream_statuses();
    let bad_status = all[0]
        .1
        .iter()
        .find(|t| t.target == bad.addr().to_string())
        .unwrap();
    assert_eq!(bad_status.failures, 4, "every 503 counted as a failure");
    assert!(
        bad_status.taken_out.is_empty(),
        "consecutive_5xx = 0 never ejects"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_circuit_breaker_answers_503_with_retry_after() {
    let origin = HttpOrigin::start().await.unwrap();
    let extra =
        "[upstreams.circuit_breaker]\nmax_requests = 1\nmax_pending = 0\nretry_after = \"3s\"";
    let gw = TestGateway::builder(config(&[origin.addr()], extra, ""))
        .access_log()
        .start();
    let client = client();
    let slow = tokio::spawn({
        let (client, url) = (client.clone(), gw.url("public", "/delay/1500"));
        async move { client.get(url).send().await.unwrap().status() }
    });
    let started = Instant::now();
    while origin.requests() == 0 {
        assert!(started.elapsed() < WAIT, "the slow request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let resp = within(client.get(gw.url("public", "/second")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "3");
    assert_eq!(
        origin.requests(),
        1,
        "the refused request never reached the origin"
    );
    assert_eq!(within(slow).await.unwrap(), 200);
    let resp = within(client.get(gw.url("public", "/third")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the slot is free again");
    let lines = gw.access_log_json(3);
    assert!(
        lines.iter().any(|l| l["reason"] == "upstream_overloaded"),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_http_checks_take_a_failing_target_out() {
    let live = HttpOrigin::start().await.unwrap();
    let dead = free_port_closed().unwrap();
    let extra = "balance = \"round_robin\"\n[upstreams.health_check]\npath = \"/probe\"\nbody_contains = \"GET\"\ninterval = \"100ms\"\njitter = \"0s\"\nunhealthy_threshold = 2";
    let gw = TestGateway::builder(config(&[dead, live.addr()], extra, ""))
        .access_log()
        .start();
    let started = Instant::now();
    loop {
        let all = gw.handle().upstream_statuses();
        let dead_state = all[0]
            .1
            .iter()
            .find(|t| t.target == dead.to_string())
            .unwrap();
        if dead_state.state.as_str() == "unhealthy" {
            assert_eq!(dead_state.reason, Some("active_check_failed"));
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "the dead target was never marked unhealthy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = client();
    for i in 0..6 {
        let resp = within(client.get(gw.url("public", &format!("/r/{i}"))).send())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let lines = gw.access_log_json(6);
    assert!(
        lines.iter().all(|l| l["retries"] == 0),
        "nothing was sent to the unhealthy target: {lines:?}"
    );
    let live_state = gw.handle().upstream_statuses()[0]
        .1
        .iter()
        .find(|t| t.target == live.addr().to_string())
        .unwrap()
        .clone();
    assert_eq!(live_state.state.as_str(), "healthy");
    assert!(
        live.requests() >= 6 + 2,
        "probes reached the live target too"
    );
}

/// An HTTP/1.1 origin on a Unix socket that answers `unix <method> <path> <body length>`.
async fn unix_origin(path: &std::path::Path) -> tokio::task::JoinHandle<()> {
    use http_body_util::BodyExt;
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        // Connections live in this set: aborting the task closes them too.
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            conns.spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let (parts, body) = req.into_parts();
                        let len = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes().len())
                            .unwrap_or(0);
                        let text = format!("unix {} {} {len}", parts.method, parts.uri.path());
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(text)),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_targets_are_proxied_and_probed() {
    let dir = std::env::temp_dir().join(format!("rampart-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("app.sock");
    let _ = std::fs::remove_file(&sock);
    let origin = unix_origin(&sock).await;
    let text = format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n[[upstreams]]\nname = \"u\"\ntargets = [\"unix:{}\"]\n[upstreams.health_check]\nkind = \"tcp\"\ninterval = \"100ms\"\n\n[[routes]]\nname = \"all\"\nupstream = \"u\"\n",
        sock.display()
    );
    let gw = TestGateway::builder(text).start();
    let client = client();
    for i in 0..3 {
        let resp = within(
            client
                .post(gw.url("public", &format!("/sock/{i}")))
                .body("hello")
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), format!("unix POST /sock/{i} 5"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = &gw.handle().upstream_statuses()[0].1[0];
    assert_eq!(st.state.as_str(), "healthy");
    assert_eq!(st.requests, 3);
    // The socket goes away: a 502 or 503, not a hang. (A connection task being cancelled may
    // still answer one request already on its way, so up to three tries.)
    origin.abort();
    let _ = origin.await;
    std::fs::remove_file(&sock).unwrap();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let resp = within(client.get(gw.url("public", "/gone")).send())
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() != 200 {
            break;
        }
    }
    assert!(matches!(statuses.last(), Some(502 | 503)), "{statuses:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

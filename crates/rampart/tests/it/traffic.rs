//! Traffic management: a route's `split` (a share to other upstreams, overrides, stickiness,
//! weights changed by reload) and `fault` (injected aborts and delays, from the config and from
//! a trusted client's `x-rampart-fault` header), with real origins.

use std::net::SocketAddr;

use rampart_testkit::{HttpOrigin, TestGateway};

use crate::support::{client, within};

/// Listener `public`, upstreams `v1` and `v2` (one origin each), and `routes`.
fn config(v1: SocketAddr, v2: SocketAddr, routes: &str) -> String {
    format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"v1\"\ntargets = [\"{v1}\"]\n\n\
         [[upstreams]]\nname = \"v2\"\ntargets = [\"{v2}\"]\n\n{routes}"
    )
}

async fn origins() -> (HttpOrigin, HttpOrigin) {
    (
        HttpOrigin::start().await.unwrap(),
        HttpOrigin::start().await.unwrap(),
    )
}

/// Sends `count` GETs to `path` with `headers`; returns the statuses that were not 200.
async fn send(gw: &TestGateway, path: &str, headers: &[(&str, &str)], count: usize) -> Vec<u16> {
    let http = client();
    let mut failed = Vec::new();
    for _ in 0..count {
        let mut req = http.get(gw.url("public", path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let status = within(req.send()).await.unwrap().status().as_u16();
        if status != 200 {
            failed.push(status);
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_sends_its_share_to_the_canary_and_the_rest_to_the_route_upstream() {
    let (v1, v2) = origins().await;
    let gw = TestGateway::builder(config(
        v1.addr(),
        v2.addr(),
        "[[routes]]\nname = \"api\"\nupstream = \"v1\"\n\
         [routes.split]\nbackends = [{ upstream = \"v2\", percent = 20 }]\n",
    ))
    .access_log()
    .start();
    let n = 1000;
    assert_eq!(send(&gw, "/x", &[], n).await, Vec::<u16>::new());
    let to_v2 = v2.requests();
    assert_eq!(v1.requests() + to_v2, 1000);
    // 20% of 1,000: the binomial standard deviation is about 12.6; five of them either side.
    assert!((137..=263).contains(&to_v2), "{to_v2} of {n} went to v2");
    // The access log names the upstream each request went to.
    let lines = gw.access_log_json(n);
    let logged = lines.iter().filter(|l| l["upstream"] == "v2").count();
    assert_eq!(u64::try_from(logged).unwrap(), to_v2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_and_sticky_users_keep_their_upstream() {
    let (v1, v2) = origins().await;
    let gw = TestGateway::builder(config(
        v1.addr(),
        v2.addr(),
        "[[routes]]\nname = \"by-header\"\npath_prefix = \"/h\"\nupstream = \"v1\"\n\
         [routes.split]\nbackends = [{ upstream = \"v2\", percent = 50 }]\n\
         sticky = { header = \"x-user\" }\n\
         overrides = [{ header = \"x-canary\", value = \"always\", upstream = \"v2\" },\
                      { cookie = \"canary\", value = \"never\", upstream = \"v1\" }]\n\n\
         [[routes]]\nname = \"by-cookie\"\npath_prefix = \"/c\"\nupstream = \"v1\"\n\
         [routes.split]\nbackends = [{ upstream = \"v2\", percent = 50 }]\n\
         sticky = { cookie = \"rampart_split\" }\n",
    ))
    .start();
    // An override sends every request where it says.
    send(&gw, "/h", &[("x-canary", "always")], 20).await;
    assert_eq!((v1.requests(), v2.requests()), (0, 20));
    send(&gw, "/h", &[("cookie", "a=b; canary=never")], 20).await;
    assert_eq!((v1.requests(), v2.requests()), (20, 20));
    // One user (by header) always lands on one upstream; across many users both get some.
    for user in 0..20 {
        let (before1, before2) = (v1.requests(), v2.requests());
        let id = format!("user-{user}");
        send(&gw, "/h", &[("x-user", &id)], 5).await;
        let (d1, d2) = (v1.requests() - before1, v2.requests() - before2);
        assert!(
            (d1, d2) == (5, 0) || (d1, d2) == (0, 5),
            "{id}: {d1} and {d2}"
        );
    }
    assert!(v1.requests() > 20 && v2.requests() > 20);
    // By cookie: the first answer sets it; requests carrying it stay on that upstream.
    let resp = within(client().get(gw.url("public", "/c")).send())
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("rampart_split=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let (before1, before2) = (v1.requests(), v2.requests());
    let http = client();
    for _ in 0..20 {
        let resp = within(
            http.get(gw.url("public", "/c"))
                .header("cookie", &pair)
                .send(),
        )
        .await
        .unwrap();
        assert!(resp.headers().get("set-cookie").is_none());
    }
    let (d1, d2) = (v1.requests() - before1, v2.requests() - before2);
    assert!((d1, d2) == (20, 0) || (d1, d2) == (0, 20), "{d1} and {d2}");
    // A forged or stale tag is not an upstream: the request is split afresh and gets a cookie.
    let resp = within(
        http.get(gw.url("public", "/c"))
            .header("cookie", "rampart_split=0000000000000000")
            .send(),
    )
    .await
    .unwrap();
    assert!(resp.headers().get("set-cookie").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_changed_by_reload_apply_without_a_failed_request() {
    let (v1, v2) = origins().await;
    let route = |percent: u32| {
        config(
            v1.addr(),
            v2.addr(),
            &format!(
                "[[routes]]\nname = \"api\"\nupstream = \"v1\"\n\
                 [routes.split]\nbackends = [{{ upstream = \"v2\", percent = {percent} }}]\n"
            ),
        )
    };
    let gw = TestGateway::builder(route(0)).start();
    let load = {
        let url = gw.url("public", "/x");
        tokio::spawn(async move {
            let http = client();
            let mut failed = 0;
            for _ in 0..300 {
                match within(http.get(&url).send()).await {
                    Ok(resp) if resp.status() == 200 => {}
                    _ => failed += 1,
                }
            }
            failed
        })
    };
    // While the load runs: everything to v2, then back to nothing.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    gw.handle().reload_str(&route(100)).unwrap();
    let at_switch = (v1.requests(), v2.requests());
    send(&gw, "/x", &[], 10).await;
    // These ten at least went to v2 (the load's requests too, but for any in flight).
    assert!(
        v2.requests() - at_switch.1 >= 10,
        "{at_switch:?} {}",
        v2.requests()
    );
    gw.handle().reload_str(&route(0)).unwrap();
    assert_eq!(
        within(load).await.unwrap(),
        0,
        "requests failed across reloads"
    );
    let before = v2.requests();
    send(&gw, "/x", &[], 10).await;
    assert_eq!(v2.requests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_abort_and_delay_and_are_logged_as_injected() {
    let (v1, v2) = origins().await;
    let gw = TestGateway::builder(config(
        v1.addr(),
        v2.addr(),
        "[[routes]]\nname = \"aborted\"\npath_prefix = \"/abort\"\nupstream = \"v1\"\n\
         [routes.fault]\nabort = { status = 503, percent = 30 }\n\n\
         [[routes]]\nname = \"delayed\"\npath_prefix = \"/slow\"\nupstream = \"v1\"\n\
         [routes.fault]\ndelay = { duration = \"50ms\" }\n\n\
         [[routes]]\nname = \"on-demand\"\npath_prefix = \"/ask\"\nupstream = \"v2\"\n\
         [routes.fault]\nheader_from = [\"127.0.0.0/8\"]\nmax_delay = \"1s\"\n\n\
         [[routes]]\nname = \"untrusted\"\npath_prefix = \"/other\"\nupstream = \"v2\"\n\
         [routes.fault]\nheader_from = [\"10.0.0.0/8\"]\n",
    ))
    .access_log()
    .start();
    // 30% of 400 aborted: the standard deviation is about 9.2; five of them either side.
    let failed = send(&gw, "/abort", &[], 400).await;
    assert!(failed.iter().all(|s| *s == 503), "{failed:?}");
    assert!(
        (74..=166).contains(&failed.len()),
        "{} aborted",
        failed.len()
    );
    assert_eq!(v1.requests(), 400 - failed.len() as u64);
    let lines = gw.access_log_json(400);
    let aborted: Vec<_> = lines.iter().filter(|l| l["status"] == 503).collect();
    assert_eq!(aborted.len(), failed.len());
    assert!(
        aborted.iter().all(|l| l["reason"] == "fault_abort"),
        "{aborted:?}"
    );
    // A delay lets the request through and says so in the log.
    assert!(send(&gw, "/slow", &[], 3).await.is_empty());
    let lines = gw.access_log_json(403);
    let delayed: Vec<_> = lines.iter().filter(|l| l["route"] == "delayed").collect();
    assert_eq!(delayed.len(), 3);
    assert!(
        delayed.iter().all(|l| l["detail"] == "fault_delay 50ms"),
        "{delayed:?}"
    );
    // A trusted client asks for a fault; the header never reaches the upstream.
    let http = client();
    let asked = |path: &'static str, value: &'static str| {
        let req = http
            .get(gw.url("public", path))
            .header("x-rampart-fault", value);
        async move { within(req.send()).await.unwrap() }
    };
    assert_eq!(asked("/ask", "abort=418").await.status(), 418);
    let passed = asked("/ask", "delay=10ms").await;
    assert_eq!(passed.status(), 200);
    let echo: serde_json::Value =
        serde_json::from_slice(&within(passed.bytes()).await.unwrap()).unwrap();
    assert!(
        !echo["headers"].to_string().contains("x-rampart-fault"),
        "{echo}"
    );
    // Bad values are refused with a reason, and so is a delay over max_delay.
    assert_eq!(asked("/ask", "abort=200").await.status(), 400);
    assert_eq!(asked("/ask", "delay=5s").await.status(), 400);
    // From an untrusted network the header is ignored and removed.
    let ignored = asked("/other", "abort=500").await;
    assert_eq!(ignored.status(), 200);
    let echo: serde_json::Value =
        serde_json::from_slice(&within(ignored.bytes()).await.unwrap()).unwrap();
    assert!(!echo["headers"].to_string().contains("x-rampart-fault"));
}

/// The config errors of `routes` (empty when it compiles).
fn compile_errors(routes: &str) -> String {
    let origin: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let text = config(origin, origin, routes);
    let config = rampart_config::load_str(&text, "traffic.toml").map_err(|d| d.to_string());
    match config.and_then(|c| {
        rampart_server::compile(&c)
            .map(|_| ())
            .map_err(|d| d.to_string())
    }) {
        Ok(()) => String::new(),
        Err(e) => e,
    }
}

#[test]
fn broken_splits_and_faults_are_refused_with_their_place() {
    let route = "[[routes]]\nname = \"api\"\nupstream = \"v1\"\n";
    for (extra, expect) in [
        (
            "[routes.split]\nbackends = [{ upstream = \"v3\", percent = 5 }]\n",
            "unknown upstream \"v3\"",
        ),
        (
            "[routes.split]\nbackends = [{ upstream = \"v1\", percent = 5 }]\n",
            "listed twice",
        ),
        (
            "[routes.split]\nbackends = [{ upstream = \"v2\", percent = 101 }]\n",
            "routes[0].split.backends[0].percent",
        ),
        (
            "[routes.split]\nbackends = [{ upstream = \"v2\", percent = 5 }]\n\
             overrides = [{ header = \"x-canary\", value = \"1\", upstream = \"v3\" }]\n",
            "neither the route's upstream nor one of the split's backends",
        ),
        (
            "[routes.split]\nbackends = [{ upstream = \"v2\", percent = 5 }]\n\
             sticky = { header = \"x-user\", cookie = \"c\" }\n",
            "exactly one of `header` or `cookie`",
        ),
        (
            "[routes.split]\nbackends = [{ upstream = \"v2\", percent = 5 }]\n\
             sticky = { cookie = \"a b\" }\n",
            "not a valid cookie name",
        ),
        (
            "[routes.fault]\nabort = { status = 200 }\n",
            "routes[0].fault.abort.status",
        ),
        (
            "[routes.fault]\ndelay = { duration = \"1s\", percent = -1 }\n",
            "fault.delay.percent",
        ),
        (
            "[routes.fault]\n",
            "needs `delay`, `abort` or `header_from`",
        ),
    ] {
        let errors = compile_errors(&format!("{route}{extra}"));
        assert!(errors.contains(expect), "{extra}: {errors}");
        // Each error points at its place in the file.
        assert!(errors.contains("traffic.toml:"), "{extra}: {errors}");
    }
    let no_upstream = compile_errors(
        "[[routes]]\nname = \"api\"\necho = true\n\
         [routes.split]\nbackends = [{ upstream = \"v2\", percent = 5 }]\n",
    );
    assert!(
        no_upstream.contains("needs the route's own `upstream`"),
        "{no_upstream}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_takes_what_the_route_upstream_cannot_serve() {
    let dead = rampart_testkit::free_port_closed().unwrap();
    let fallback = HttpOrigin::start().await.unwrap();
    let gw = TestGateway::builder(config(
        dead,
        fallback.addr(),
        "[[routes]]\nname = \"api\"\nupstream = \"v1\"\n\
         fallback = { upstream = \"v2\", max_body = \"1KiB\" }\n",
    ))
    .access_log()
    .start();
    let http = client();
    let resp = within(http.post(gw.url("public", "/orders")).body("abc").send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: serde_json::Value =
        serde_json::from_slice(&within(resp.bytes()).await.unwrap()).unwrap();
    assert_eq!(echo["body_len"], 3, "{echo}");
    assert_eq!(fallback.requests(), 1);
    let line = &gw.access_log_json(1)[0];
    assert_eq!(line["upstream"], "v2", "{line}");
    assert_eq!(
        line["detail"], "fallback from upstream v1: upstream_connect_failed",
        "{line}"
    );
    // A body too large to keep for a second send has no fallback.
    let big = vec![b'x'; 64 * 1024];
    let resp = within(http.post(gw.url("public", "/orders")).body(big).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(fallback.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_status_sends_the_request_to_the_fallback() {
    let primary = HttpOrigin::start().await.unwrap();
    let fallback = rampart_testkit::RecordingOrigin::start().await.unwrap();
    let gw = TestGateway::builder(config(
        primary.addr(),
        fallback.addr(),
        "[[routes]]\nname = \"api\"\nupstream = \"v1\"\n\
         fallback = { upstream = \"v2\", on_status = [503] }\n",
    ))
    .start();
    let http = client();
    let resp = within(http.get(gw.url("public", "/status/503")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(within(resp.text()).await.unwrap(), "ok");
    // Other answers are the primary's.
    let resp = within(http.get(gw.url("public", "/status/404")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(primary.requests(), 2);
    assert_eq!(fallback.requests().len(), 1);
    let copy = String::from_utf8_lossy(&fallback.requests()[0]).to_lowercase();
    assert!(
        copy.starts_with("get /status/503 ") && copy.contains("x-request-id: "),
        "{copy}"
    );
}

#[test]
fn broken_fallbacks_are_refused_with_their_place() {
    for (route, expect) in [
        (
            "upstream = \"v1\"\nfallback = { upstream = \"v3\" }\n",
            "unknown upstream \"v3\"",
        ),
        (
            "upstream = \"v1\"\nfallback = { upstream = \"v1\" }\n",
            "the route's own upstream",
        ),
        (
            "upstream = \"v1\"\nfallback = { upstream = \"v2\", on_status = [99] }\n",
            "routes[0].fallback.on_status",
        ),
        (
            "echo = true\nfallback = { upstream = \"v2\" }\n",
            "which it needs",
        ),
    ] {
        let errors = compile_errors(&format!("[[routes]]\nname = \"api\"\n{route}"));
        assert!(
            errors.contains(expect) && errors.contains("traffic.toml:"),
            "{route}: {errors}"
        );
    }
}

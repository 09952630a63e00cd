//! Mirroring (shadow traffic): copies reach the shadow upstream whole, with the added fields
//! and the suffixed host; a hanging, resetting or saturated shadow changes nothing for the
//! client; large bodies are passed on whole and not copied; every result is counted.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_testkit::{Behavior, HttpOrigin, RecordingOrigin, ScriptedOrigin, TestGateway};

use crate::support::{client, within};

/// Listener `public`, the admin API, upstreams `primary` and `shadow`, and one route `api`
/// proxying to `primary` with `[routes.mirror]` = `mirror`.
fn gateway(primary: SocketAddr, shadow: SocketAddr, mirror: &str) -> TestGateway {
    TestGateway::builder(format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"primary\"\ntargets = [\"{primary}\"]\n\n\
         [[upstreams]]\nname = \"shadow\"\ntargets = [\"{shadow}\"]\n\n\
         [[routes]]\nname = \"api\"\nupstream = \"primary\"\n\
         [routes.mirror]\nupstream = \"shadow\"\n{mirror}\n"
    ))
    .start()
}

/// `rampart_mirror_requests_total` of route `api` to `shadow` for `result`.
async fn mirrored(gw: &TestGateway, result: &str) -> u64 {
    let text = within(
        within(reqwest::get(gw.admin_url("/metrics")))
            .await
            .unwrap()
            .text(),
    )
    .await
    .unwrap();
    let series = format!(
        "rampart_mirror_requests_total{{route=\"api\",upstream=\"shadow\",result=\"{result}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}

/// Waits (bounded) until `result` reached `n`; returns what it reached.
async fn wait_mirrored(gw: &TestGateway, result: &str, n: u64) -> u64 {
    for _ in 0..100 {
        let got = mirrored(gw, result).await;
        if got >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    mirrored(gw, result).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_reaches_the_shadow_whole_and_the_client_gets_the_primarys_answer() {
    let primary = HttpOrigin::start().await.unwrap();
    let shadow = RecordingOrigin::start().await.unwrap();
    let gw = gateway(primary.addr(), shadow.addr(), "host_suffix = \"-shadow\"\n");
    let resp = within(
        client()
            .post(gw.url("public", "/orders?id=7"))
            .body("hello shadow")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: serde_json::Value =
        serde_json::from_slice(&within(resp.bytes()).await.unwrap()).unwrap();
    assert_eq!(echo["body_len"], 12, "{echo}");
    let copies = shadow.wait_for_requests(1, Duration::from_secs(10)).await;
    assert_eq!(copies.len(), 1);
    let copy = String::from_utf8_lossy(&copies[0]).to_lowercase();
    let port = gw.addr("public").port();
    assert!(copy.starts_with("post /orders?id=7 http/1.1\r\n"), "{copy}");
    assert!(
        copy.contains(&format!("host: 127.0.0.1-shadow:{port}\r\n")),
        "{copy}"
    );
    assert!(
        copy.contains("x-request-id: ") && copy.contains("x-forwarded-for: 127.0.0.1"),
        "{copy}"
    );
    assert!(copy.ends_with("\r\n\r\nhello shadow"), "{copy}");
    assert_eq!(wait_mirrored(&gw, "2xx", 1).await, 1);
    assert_eq!(primary.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_or_saturated_shadow_changes_nothing_for_the_client() {
    let primary = HttpOrigin::start().await.unwrap();
    let shadow = ScriptedOrigin::start(Behavior::Hang).await.unwrap();
    let gw = gateway(
        primary.addr(),
        shadow.addr(),
        "timeout = \"300ms\"\nmax_concurrent = 2\n",
    );
    let http = client();
    for i in 0..10 {
        let resp = within(http.get(gw.url("public", &format!("/r{i}"))).send())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
    }
    assert_eq!(primary.requests(), 10);
    // Two copies hang until their timeout; the ones sent while both slots were taken are
    // dropped. Every copy is accounted for.
    let failed = wait_mirrored(&gw, "failed", 2).await;
    let dropped = mirrored(&gw, "dropped").await;
    assert!(
        failed >= 2 && failed + dropped == 10,
        "{failed} failed, {dropped} dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resetting_shadow_is_counted_as_failed() {
    let primary = HttpOrigin::start().await.unwrap();
    let shadow = ScriptedOrigin::start(Behavior::Reset).await.unwrap();
    let gw = gateway(primary.addr(), shadow.addr(), "");
    for _ in 0..3 {
        let resp = within(client().get(gw.url("public", "/x")).send())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(wait_mirrored(&gw, "failed", 3).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_cap_goes_to_the_primary_whole_and_is_not_copied() {
    let primary = HttpOrigin::start().await.unwrap();
    let shadow = RecordingOrigin::start().await.unwrap();
    let gw = gateway(primary.addr(), shadow.addr(), "max_body = \"1KiB\"\n");
    let big = vec![b'x'; 200 * 1024];
    let resp = within(client().post(gw.url("public", "/upload")).body(big).send())
        .await
        .unwrap();
    let echo: serde_json::Value =
        serde_json::from_slice(&within(resp.bytes()).await.unwrap()).unwrap();
    assert_eq!(echo["body_len"], 200 * 1024, "{echo}");
    assert_eq!(mirrored(&gw, "skipped").await, 1);
    // A small one right after is copied.
    let resp = within(client().post(gw.url("public", "/small")).body("s").send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let copies = shadow.wait_for_requests(1, Duration::from_secs(10)).await;
    assert_eq!(copies.len(), 1);
    assert!(String::from_utf8_lossy(&copies[0]).starts_with("POST /small "));
}

#[test]
fn broken_mirrors_are_refused_with_their_place() {
    let origin: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let base = format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"primary\"\ntargets = [\"{origin}\"]\n\n\
         [[upstreams]]\nname = \"shadow\"\ntargets = [\"{origin}\"]\n\n"
    );
    for (route, expect) in [
        (
            "upstream = \"primary\"\nmirror = { upstream = \"nope\" }\n",
            "unknown upstream \"nope\"",
        ),
        (
            "upstream = \"primary\"\nmirror = { upstream = \"primary\" }\n",
            "the route's own upstream",
        ),
        (
            "echo = true\nmirror = { upstream = \"shadow\" }\n",
            "the route needs an `upstream`",
        ),
        (
            "upstream = \"primary\"\nmirror = { upstream = \"shadow\", max_concurrent = 0 }\n",
            "routes[0].mirror.max_concurrent",
        ),
        (
            "upstream = \"primary\"\nmirror = { upstream = \"shadow\", percent = 120 }\n",
            "routes[0].mirror.percent",
        ),
        (
            "upstream = \"primary\"\nmirror = { upstream = \"shadow\", host_suffix = \"a/b\" }\n",
            "routes[0].mirror.host_suffix",
        ),
        (
            "upstream = \"primary\"\nmirror = { upstream = \"shadow\", only_if = { value = \"1\" } }\n",
            "exactly one of `header` or `cookie`",
        ),
    ] {
        let text = format!("{base}[[routes]]\nname = \"api\"\n{route}");
        let config = rampart_config::load_str(&text, "mirror.toml").unwrap();
        let Err(errors) = rampart_server::compile(&config) else {
            panic!("accepted: {route}");
        };
        let errors = errors.to_string();
        assert!(
            errors.contains(expect) && errors.contains("mirror.toml:"),
            "{route}: {errors}"
        );
    }
}

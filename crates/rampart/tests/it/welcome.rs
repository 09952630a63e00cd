//! The embedded default config's welcome page, served by a real gateway running the default
//! config's own text (listeners rebound to free loopback ports).

use rampart_config::DEFAULT_CONFIG;
use rampart_testkit::{RawConnection, RawResponse, TestGateway, free_port_closed};
use serde_json::Value;

use crate::support::{WAIT, client, within};

/// The docs link the page must carry (the root Cargo.toml's `repository`, then `docs/`).
const DOCS_URL: &str = "https://github.com/rampart-proxy/rampart/tree/main/docs";

/// Replaces the one occurrence of `from` in `text`, failing loudly if the default config no
/// longer reads that way.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "expected {from:?} exactly once in the default config"
    );
    text.replacen(from, to, 1)
}

/// The default config, unchanged but for its addresses (free loopback ports, the demo
/// upstream following its listener), one worker, a short drain and no access log on stdout.
fn default_config_on_free_ports() -> String {
    let origin = free_port_closed().unwrap();
    let mut text = DEFAULT_CONFIG.to_owned();
    for (from, to) in [
        (
            "name = \"public\"\nbind = \"127.0.0.1:8080\"",
            "name = \"public\"\nbind = \"127.0.0.1:0\"".to_owned(),
        ),
        ("bind = \"127.0.0.1:8081\"", format!("bind = \"{origin}\"")),
        (
            "targets = [\"127.0.0.1:8081\"]",
            format!("targets = [\"{origin}\"]"),
        ),
        ("workers = 0 ", "workers = 1 ".to_owned()),
        (
            "drain_timeout = \"30s\"",
            "drain_timeout = \"5s\"".to_owned(),
        ),
        (
            "[access_log]\nenabled = true",
            "[access_log]\nenabled = false".to_owned(),
        ),
    ] {
        text = replace_once(&text, from, &to);
    }
    text
}

/// Sends `request` on a fresh connection, reads one response, and checks that the server then
/// closes without sending another byte.
async fn raw_then_closed(gw: &TestGateway, request: &str, head: bool) -> RawResponse {
    let mut conn = within(RawConnection::connect_timeout(gw.addr("public"), WAIT))
        .await
        .unwrap();
    within(conn.send(request.as_bytes())).await.unwrap();
    let raw = within(conn.read_response_bytes(head)).await.unwrap();
    assert!(
        within(conn.is_closed()).await,
        "bytes after the response to {request:?}"
    );
    RawResponse::parse_for(&raw, head).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_config_welcomes_on_slash_and_keeps_its_other_paths() {
    let gw = TestGateway::builder(default_config_on_free_ports()).start();
    let http = client();

    // GET /: the welcome page.
    let resp = within(http.get(gw.url("public", "/")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'"),
        "{headers:?}"
    );
    let body = within(resp.text()).await.unwrap();
    assert!(body.starts_with("<!doctype html>"), "{body}");
    assert!(body.contains("Rampart"), "{body}");
    assert!(body.contains(DOCS_URL), "{body}");
    assert!(
        body.contains("rampart config default &gt; rampart.toml"),
        "{body}"
    );
    assert!(!body.contains("<script"), "{body}");
    let length: usize = headers["content-length"].to_str().unwrap().parse().unwrap();
    assert_eq!(length, body.len());

    // HEAD /: the same status and headers, Content-Length included, and not one body byte.
    let head = raw_then_closed(
        &gw,
        "HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        true,
    )
    .await;
    assert_eq!(head.status, 200, "{}", head.status_line);
    assert!(head.body.is_empty());
    assert!(head.raw.ends_with(b"\r\n\r\n"), "{:?}", head.raw);
    for name in [
        "content-type",
        "cache-control",
        "x-content-type-options",
        "content-security-policy",
        "referrer-policy",
    ] {
        assert_eq!(
            head.header(name),
            headers.get(name).map(|v| v.to_str().unwrap()),
            "{name}"
        );
    }
    assert_eq!(
        head.header("content-length"),
        Some(length.to_string().as_str())
    );

    // Other methods on / are refused, not answered with the page.
    let post = within(http.post(gw.url("public", "/")).send())
        .await
        .unwrap();
    assert_eq!(post.status(), 405);

    // Other paths keep their routes: 404 with a hint, the echo service, the proxy demo.
    let resp = within(http.get(gw.url("public", "/nope")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let hint = within(resp.text()).await.unwrap();
    assert!(hint.contains("Try /echo"), "{hint}");

    let resp = within(http.get(gw.url("public", "/echo/x")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
    assert_eq!(echo["method"], "GET", "{echo}");
    assert_eq!(echo["path"], "/echo/x", "{echo}");
    assert_eq!(echo["route"], "echo", "{echo}");

    // The proxy path ends on the demo origin's echo, also for `/proxy` itself (stripped to `/`):
    // the welcome route serves the public listener only.
    for (path, upstream_path) in [("/proxy/x", "/x"), ("/proxy", "/")] {
        let resp = within(http.get(gw.url("public", path)).send())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
        assert_eq!(echo["path"], upstream_path, "{echo}");
        assert_eq!(echo["route"], "demo-origin", "{echo}");
    }

    gw.shutdown();
}

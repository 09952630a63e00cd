//! `rampart top`: a text snapshot with `--once` from a running gateway's admin API, and a clear
//! message (not an OS error) when there is no terminal.

use rampart_testkit::{HttpOrigin, TestGateway};

use crate::cli::run_cli;
use crate::support::{client, within};

fn config(origin: &str) -> String {
    format!(
        "[server]\nworkers = 1\n\n[access_log]\nenabled = false\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"top-test-token\"\n\n\
         [[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"app\"\ntargets = [\"{origin}\"]\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"app\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_once_prints_a_text_snapshot_of_a_running_gateway() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = TestGateway::builder(config(&origin.addr().to_string())).start();
    let resp = within(client().get(gw.url("web", "/api/x")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The request is counted once its log phase ran: wait (bounded) until the metrics show it.
    for _ in 0..100 {
        let metrics = within(
            client()
                .get(gw.admin_url("/metrics"))
                .bearer_auth("top-test-token")
                .send(),
        )
        .await
        .unwrap();
        let text = within(metrics.text()).await.unwrap();
        if text.contains("rampart_requests_total{") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let admin = gw.admin_url("");
    let out = tokio::task::spawn_blocking(move || {
        run_cli(&[
            "top",
            "--once",
            "--interval",
            "100",
            "--token",
            "top-test-token",
            "--admin",
            &admin,
        ])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    let text = out.stdout;
    assert!(text.starts_with("rampart "), "{text}");
    assert!(text.contains("requests 1 · 0.0 req/s"), "{text}");
    for line in ["ROUTE", "UPSTREAM", "LISTENER"] {
        assert!(text.lines().any(|l| l.starts_with(line)), "{line}: {text}");
    }
    let api = text.lines().find(|l| l.starts_with("api ")).expect(&text);
    assert!(api.split_whitespace().nth(1) == Some("1"), "{api}");
    let target = origin.addr().to_string();
    assert!(
        text.lines()
            .any(|l| l.starts_with("app ") && l.contains(&target)),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("web ")), "{text}");
    assert!(!text.contains("-0"), "no negative zero: {text}");
    gw.shutdown();
}

#[test]
fn top_without_a_terminal_says_what_to_use_instead() {
    // stdin is /dev/null and stdout a pipe: no terminal.
    let out = run_cli(&["top", "--admin", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("top needs a terminal"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("curl http://127.0.0.1:9/status"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--once"), "{}", out.stderr);
    assert!(!out.stderr.contains("os error"), "{}", out.stderr);
}

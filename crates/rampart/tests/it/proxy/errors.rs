//! Upstream failures: connect retries on another target, 502/504 with a reason in the log.

use rampart_testkit::{Behavior, HttpOrigin, ScriptedOrigin, TestGateway, free_port_closed};
use serde_json::Value;

use super::{listener, log_line, upstream};
use crate::support::{client, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_failure_is_retried_once_on_the_other_target() {
    let dead = free_port_closed().unwrap();
    let live = HttpOrigin::start().await.unwrap();
    let config = format!(
        "{}{}[[routes]]\nname = \"all\"\nupstream = \"pair\"\n",
        listener("public", ""),
        upstream("pair", &[dead, live.addr()], "")
    );
    let gw = TestGateway::builder(config).access_log().start();
    let client = client();
    for i in 0..10 {
        let resp = within(
            client
                .post(gw.url("public", &format!("/retry/{i}")))
                .body("data")
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        let echo: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
        assert_eq!(echo["body_len"], 4, "the body survives the retry");
    }
    assert_eq!(live.requests(), 10);
    let lines = gw.access_log_json(10);
    assert_eq!(lines.len(), 10);
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == 200 && l["upstream_target"] == live.addr().to_string())
    );
    let retried = lines.iter().filter(|l| l["retries"] == 1).count();
    assert!(retried >= 1, "no request was retried: {lines:?}");
    assert!(lines.iter().all(|l| l["retries"] == 0 || l["retries"] == 1));
}

/// Sends `GET path` asking for a JSON error and checks status, body code and request id, and
/// the access log line; returns the log line.
async fn expect_upstream_error(
    gw: &TestGateway,
    path: &str,
    status: u16,
    code: &str,
    route: &str,
    logged_so_far: usize,
) -> Value {
    let resp = within(
        client()
            .get(gw.url("public", path))
            .header("accept", "application/json")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), status, "{path}");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = serde_json::from_str(&within(resp.text()).await.unwrap()).unwrap();
    assert_eq!(body["error"]["status"], status);
    let line = log_line(gw, &request_id, logged_so_far + 1);
    assert_eq!(body["error"]["code"], code, "{line}");
    assert_eq!(body["error"]["request_id"], request_id.as_str());
    assert_eq!(line["status"], status);
    assert_eq!(line["reason"], code);
    assert_eq!(line["route"], route);
    assert_eq!(
        line["upstream"], route,
        "upstreams are named like their routes here"
    );
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_map_to_502_and_504_with_a_reason_in_the_log() {
    let refused = free_port_closed().unwrap();
    let reset = ScriptedOrigin::start(Behavior::Reset).await.unwrap();
    let garbage = ScriptedOrigin::start(Behavior::Garbage).await.unwrap();
    let hang = ScriptedOrigin::start(Behavior::Hang).await.unwrap();
    let mut config = listener("public", "");
    for (name, addr) in [
        ("refused", refused),
        ("reset", reset.addr()),
        ("garbage", garbage.addr()),
    ] {
        config.push_str(&upstream(name, &[addr], ""));
    }
    config.push_str(&upstream(
        "hang",
        &[hang.addr()],
        "request_timeout = \"300ms\"",
    ));
    config.push_str(&upstream("patient", &[hang.addr()], ""));
    for name in ["refused", "reset", "garbage", "hang"] {
        config.push_str(&format!(
            "[[routes]]\nname = \"{name}\"\npath_prefix = \"/{name}\"\nupstream = \"{name}\"\n\n"
        ));
    }
    // The upstream would wait 60 s; the route's own timeout is shorter and wins.
    config.push_str(
        "[[routes]]\nname = \"patient\"\npath_prefix = \"/patient\"\nupstream = \"patient\"\n\
         timeout = \"300ms\"\n\n",
    );
    let gw = TestGateway::builder(config).access_log().start();

    let line = expect_upstream_error(
        &gw,
        "/refused",
        502,
        "upstream_connect_failed",
        "refused",
        0,
    )
    .await;
    assert_eq!(line["upstream_target"], refused.to_string());
    // The reset can land before the kernel reports the connect as complete (then it is a
    // failed connect) or after (a reset exchange): a 502 either way, with one of those reasons.
    let resp = within(client().get(gw.url("public", "/reset")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let line = log_line(&gw, &request_id, 2);
    assert!(
        line["reason"] == "upstream_reset" || line["reason"] == "upstream_connect_failed",
        "{line}"
    );
    assert_eq!(
        (&line["status"], &line["route"], &line["upstream"]),
        (&502.into(), &"reset".into(), &"reset".into())
    );
    expect_upstream_error(&gw, "/garbage", 502, "upstream_bad_response", "garbage", 2).await;
    expect_upstream_error(&gw, "/hang", 504, "upstream_timeout", "hang", 3).await;
    expect_upstream_error(&gw, "/patient", 504, "upstream_timeout", "patient", 4).await;
    assert!(reset.connections() >= 1 && garbage.connections() >= 1 && hang.connections() >= 1);

    // The error text never leaks internal detail (addresses, error chains).
    let resp = within(client().get(gw.url("public", "/refused")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let text = within(resp.text()).await.unwrap();
    assert!(text.starts_with("502 Bad Gateway"), "{text}");
    assert!(!text.contains(&refused.port().to_string()), "{text}");
}

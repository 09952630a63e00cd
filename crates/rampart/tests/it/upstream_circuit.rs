//! The circuit of `[upstreams.circuit_breaker]`: it opens after failures from a real origin
//! (500s, refused connections), fails fast with 503 `circuit_open` and `Retry-After`, lets a
//! trial through once `open_for` has passed, opens again on a failed trial and closes on a
//! successful one, for a single-target upstream.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_testkit::{Behavior, ScriptedOrigin, TestGateway, free_port_closed};
use serde_json::Value;

use crate::support::{client, within};

fn gateway(target: SocketAddr, breaker: &str) -> TestGateway {
    TestGateway::builder(format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"u\"\ntargets = [\"{target}\"]\n\
         [upstreams.circuit_breaker]\n{breaker}\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"u\"\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n"
    ))
    .access_log()
    .start()
}

fn respond(status: &str) -> Behavior {
    Behavior::Respond(format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\nok").into_bytes())
}

/// (status, `Retry-After`) of one GET.
async fn get(gw: &TestGateway) -> (u16, Option<String>) {
    let r = within(client().get(gw.url("public", "/")).send())
        .await
        .unwrap();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), retry_after)
}

/// The circuit of upstream `u` as `GET /upstreams` shows it.
async fn circuit(gw: &TestGateway) -> Value {
    let text = within(client().get(gw.admin_url("/upstreams")).send())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    body["upstreams"][0]["circuit"].clone()
}

/// GETs every 50 ms (at most 100) until one is not refused by the open circuit.
async fn first_through(gw: &TestGateway) -> u16 {
    for _ in 0..100 {
        let (status, _) = get(gw).await;
        if status != 503 {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the circuit never let a trial through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_lone_target_opens_the_circuit_which_fails_fast_then_heals_through_trials() {
    // Four 500s, then 200s: one connection per request.
    let mut script = vec![respond("500 Internal Server Error"); 4];
    script.push(respond("200 OK"));
    let origin = ScriptedOrigin::with_script(script).await.unwrap();
    let gw = gateway(
        origin.addr(),
        "consecutive_failures = 3\nopen_for = \"400ms\"",
    );
    for _ in 0..3 {
        assert_eq!(get(&gw).await.0, 500, "the origin's own answer passes");
    }
    let c = circuit(&gw).await;
    assert_eq!(c["state"], "open", "{c}");
    assert_eq!(c["reason"], "consecutive_failures", "{c}");
    let (status, retry_after) = get(&gw).await;
    assert_eq!(status, 503);
    assert_eq!(
        retry_after.as_deref(),
        Some("1"),
        "the time left, rounded up"
    );
    assert_eq!(origin.connections(), 3, "an open circuit fails fast");
    let log = gw.access_log_json(4);
    assert_eq!(log[3]["reason"], "circuit_open", "{log:?}");
    let metrics = gw.handle().metrics_text();
    assert!(
        metrics.contains("rampart_upstream_circuit_state{upstream=\"u\",state=\"open\"} 1"),
        "{metrics}"
    );

    // After open_for, one trial goes through; it fails (the fourth 500): open again at once.
    assert_eq!(first_through(&gw).await, 500);
    assert_eq!(origin.connections(), 4);
    let c = circuit(&gw).await;
    assert_eq!(
        c["state"], "open",
        "a failed trial opens the circuit again: {c}"
    );
    assert_eq!(c["reason"], "trial_failed", "{c}");
    assert_eq!(get(&gw).await.0, 503);

    // The next trial succeeds and closes it; requests flow again.
    assert_eq!(first_through(&gw).await, 200);
    let c = circuit(&gw).await;
    assert_eq!(c["state"], "closed", "{c}");
    assert_eq!(c["reason"], "trial_succeeded", "{c}");
    assert_eq!(c["transitions"], serde_json::json!([1, 2, 2]), "{c}");
    for _ in 0..3 {
        assert_eq!(get(&gw).await.0, 200);
    }
    let metrics = gw.handle().metrics_text();
    assert!(
        metrics
            .contains("rampart_upstream_circuit_transitions_total{upstream=\"u\",to=\"open\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_origin_opens_the_circuit() {
    let down = free_port_closed().unwrap();
    let gw = gateway(down, "consecutive_failures = 2\nopen_for = \"1h\"");
    for _ in 0..2 {
        assert_eq!(get(&gw).await.0, 502);
    }
    let (status, retry_after) = get(&gw).await;
    assert_eq!(status, 503);
    assert_eq!(retry_after.as_deref(), Some("3600"));
    let log = gw.access_log_json(3);
    assert_eq!(log[2]["reason"], "circuit_open", "{log:?}");
    assert_eq!(circuit(&gw).await["state"], "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_limit_alone_has_no_circuit_and_an_empty_section_is_refused() {
    let down = free_port_closed().unwrap();
    let gw = gateway(down, "max_requests = 10");
    for _ in 0..4 {
        assert_eq!(
            get(&gw).await.0,
            502,
            "no circuit opens on a limit-only breaker"
        );
    }
    assert!(circuit(&gw).await.is_null());
    let text = format!(
        "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n[[upstreams]]\nname = \"u\"\ntargets = [\"{down}\"]\n[upstreams.circuit_breaker]\nopen_for = \"1s\"\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n"
    );
    let err = rampart_config::load_str(&text, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("consecutive_failures"), "{err}");
}

/// A gateway whose lone target is `target`, with `outlier` as its `[upstreams.outlier]`.
fn lone_target_gateway(target: SocketAddr, outlier: &str) -> TestGateway {
    TestGateway::builder(format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"u\"\ntargets = [\"{target}\"]\n\
         [upstreams.outlier]\n{outlier}\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"u\"\n"
    ))
    .access_log()
    .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_lone_target_gets_no_traffic_without_panic_mode() {
    let origin = ScriptedOrigin::start(respond("500 Internal Server Error"))
        .await
        .unwrap();
    let outlier = "consecutive_5xx = 3\nmax_ejection_percent = 100\nbase_ejection = \"1m\"";
    let gw = lone_target_gateway(origin.addr(), &format!("{outlier}\npanic_mode = false"));
    for _ in 0..3 {
        assert_eq!(get(&gw).await.0, 500);
    }
    let statuses = gw.handle().upstream_statuses();
    assert_eq!(statuses[0].1[0].state.as_str(), "ejected");
    for _ in 0..3 {
        assert_eq!(get(&gw).await.0, 503, "no target takes requests");
    }
    assert_eq!(
        origin.connections(),
        3,
        "the ejected target got nothing more"
    );
    let log = gw.access_log_json(6);
    assert_eq!(log[5]["reason"], "no_upstream_target", "{log:?}");

    // The documented default fails open: the ejected lone target still gets the requests.
    let origin = ScriptedOrigin::start(respond("500 Internal Server Error"))
        .await
        .unwrap();
    let gw = lone_target_gateway(origin.addr(), outlier);
    for _ in 0..5 {
        assert_eq!(get(&gw).await.0, 500);
    }
    assert_eq!(
        origin.connections(),
        5,
        "panic mode sends to the ejected target"
    );
    let statuses = gw.handle().upstream_statuses();
    assert_eq!(statuses[0].1[0].state.as_str(), "ejected");
}

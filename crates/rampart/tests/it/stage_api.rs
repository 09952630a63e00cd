//! The Stage API from outside: a stage defined here, in a test, registered with one line
//! (`StageRegistry::builtin().with(..)`), acts in every phase of real requests through a real
//! gateway, without any change to the listener or the HTTP front end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use rampart_config::ConfigError;
use rampart_core::{
    Body, ErrorKind, Flow, Outcome, Phases, Prepared, ProxyError, RequestCtx, RouteSpec, Stage,
    StageFactory, StageFuture,
};
use rampart_server::StageRegistry;
use rampart_testkit::{HttpOrigin, RecordingOrigin, TestGateway};
use serde_json::Value;

use crate::support::{client, header_values, within};

/// What the stage saw, shared with the test.
#[derive(Default)]
struct Seen {
    /// Requests finished, by the logging phase.
    logged: AtomicU64,
    /// The logging phase's outcomes: (path, status, completed).
    outcomes: Mutex<Vec<(String, u16, bool)>>,
}

/// A stage for routes whose name starts with `staged`: tags requests, answers `/answer`,
/// refuses `/refuse`, uppercases request bodies, sends `x-canary: 1` to upstream `canary`,
/// tags and uppercases responses, and counts finished requests.
struct TestStage(Arc<Seen>);

/// Uppercases ASCII letters of a body as it streams.
fn uppercase(body: Body) -> Body {
    Body::boxed(
        body.map_frame(|frame| {
            frame.map_data(|data: Bytes| Bytes::from(data.to_ascii_uppercase()))
        }),
    )
}

impl Stage for TestStage {
    fn name(&self) -> &'static str {
        "test_stage"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
            | Phases::REQUEST_BODY
            | Phases::UPSTREAM
            | Phases::RESPONSE
            | Phases::RESPONSE_BODY
            | Phases::LOG
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        _ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        req.headers_mut()
            .insert("x-test-stage", HeaderValue::from_static("request"));
        match req.uri().path() {
            "/answer" => {
                let mut resp = Response::new(Body::full("answered by the test stage"));
                *resp.status_mut() = StatusCode::NON_AUTHORITATIVE_INFORMATION;
                Ok(Flow::respond(resp, "test_answer")).into()
            }
            "/refuse" => Err(ProxyError::new(
                ErrorKind::IpDenied,
                "the test stage refuses",
            ))
            .into(),
            _ => Ok(Flow::Continue).into(),
        }
    }

    fn on_request_body<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        _ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        let body = std::mem::take(req.body_mut());
        *req.body_mut() = uppercase(body);
        Ok(Flow::Continue).into()
    }

    fn choose_upstream(&self, req: &Request<Body>, _ctx: &RequestCtx) -> Option<Arc<str>> {
        req.headers()
            .contains_key("x-canary")
            .then(|| Arc::from("canary"))
    }

    fn on_response(&self, resp: &mut Response<Body>, _ctx: &mut RequestCtx) {
        resp.headers_mut()
            .insert("x-test-stage", HeaderValue::from_static("response"));
    }

    fn on_response_body(&self, resp: &mut Response<Body>, _ctx: &mut RequestCtx) {
        let body = std::mem::take(resp.body_mut());
        *resp.body_mut() = uppercase(body);
    }

    fn on_log(&self, ctx: &RequestCtx, outcome: &Outcome) {
        self.0.logged.fetch_add(1, Ordering::Relaxed);
        self.0.outcomes.lock().unwrap().push((
            ctx.uri.path().to_owned(),
            outcome.status,
            outcome.completed,
        ));
    }
}

/// Puts [`TestStage`] on routes named `staged*`, checking at config time that the upstream
/// it may choose exists.
struct TestStages(Arc<Seen>);

impl StageFactory for TestStages {
    fn name(&self) -> &'static str {
        "test_stage"
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        _prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        if !route.route.name.as_str().starts_with("staged") {
            return Ok(Vec::new());
        }
        let upstreams = &route.config.raw().upstreams;
        if !upstreams.iter().any(|u| u.name.as_str() == "canary") {
            return Err(vec![route.error(
                None,
                "test_stage",
                "needs an upstream named canary",
            )]);
        }
        Ok(vec![Box::new(TestStage(Arc::clone(&self.0)))])
    }
}

fn config(main: &RecordingOrigin, canary: &HttpOrigin) -> String {
    format!(
        r#"
[admin]
enabled = true
listen = "127.0.0.1:0"

[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "main"
targets = ["{main}"]

[[upstreams]]
name = "canary"
targets = ["{canary}"]

[[routes]]
name = "staged"
path_prefix = "/"
upstream = "main"

[[routes]]
name = "plain"
path_prefix = "/plain"
upstream = "main"
"#,
        main = main.addr(),
        canary = canary.addr(),
    )
}

fn start(seen: &Arc<Seen>, main: &RecordingOrigin, canary: &HttpOrigin) -> TestGateway {
    TestGateway::builder(config(main, canary))
        .access_log()
        .stages(StageRegistry::builtin().with(TestStages(Arc::clone(seen))))
        .start()
}

#[tokio::test]
async fn a_stage_defined_outside_rampart_acts_in_every_phase() {
    let main = RecordingOrigin::start().await.unwrap();
    let canary = HttpOrigin::start().await.unwrap();
    let seen = Arc::new(Seen::default());
    let gw = start(&seen, &main, &canary);
    let http = client();

    // Request head and body: the upstream gets the stage's header and the uppercased body.
    let resp = within(
        http.post(gw.url("public", "/upload"))
            .body("hello stages")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-test-stage"], "response");
    // Response body: the origin's `ok`, uppercased on the way out.
    assert_eq!(within(resp.text()).await.unwrap(), "OK");
    let recorded = main.requests();
    let upload = recorded.last().unwrap();
    assert_eq!(header_values(upload, "x-test-stage"), ["request"]);
    // A transformed body has no known length any more: it goes upstream chunked.
    let upload = String::from_utf8_lossy(upload);
    assert!(
        upload.contains("transfer-encoding: chunked\r\n"),
        "{upload}"
    );
    assert!(
        upload.ends_with("\r\n\r\nc\r\nHELLO STAGES\r\n0\r\n\r\n"),
        "{upload}"
    );

    // Upstream choice: `x-canary` goes to the canary upstream (a JSON echo, uppercased).
    let resp = within(
        http.get(gw.url("public", "/choose"))
            .header("x-canary", "1")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = within(resp.text()).await.unwrap();
    assert!(body.contains("\"URI\":\"/CHOOSE\""), "{body}");
    assert_eq!(main.requests().len(), 1, "the canary request reached main");

    // Answer: the stage's own response, still through the response phases.
    let resp = within(http.get(gw.url("public", "/answer")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NON_AUTHORITATIVE_INFORMATION);
    assert_eq!(resp.headers()["x-test-stage"], "response");
    assert_eq!(
        within(resp.text()).await.unwrap(),
        "ANSWERED BY THE TEST STAGE"
    );

    // Refusal: an error response with the stage's reason.
    let resp = within(http.get(gw.url("public", "/refuse")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["x-test-stage"], "response");

    // A route the factory skipped has no test stage at all.
    let resp = within(http.get(gw.url("public", "/plain")).send())
        .await
        .unwrap();
    assert!(resp.headers().get("x-test-stage").is_none());
    assert_eq!(within(resp.text()).await.unwrap(), "ok");

    // Logging: every request of the staged route, once, with its outcome.
    let lines = gw.access_log_json(5);
    let by_path = |path: &str| -> Value {
        lines
            .iter()
            .find(|l| l["uri"] == path)
            .cloned()
            .unwrap_or_else(|| panic!("no access log line for {path}: {lines:?}"))
    };
    assert_eq!(by_path("/answer")["reason"], "test_answer");
    assert_eq!(by_path("/answer")["stage"], "test_stage");
    assert_eq!(by_path("/refuse")["reason"], "ip_denied");
    assert_eq!(by_path("/refuse")["stage"], "test_stage");
    assert_eq!(by_path("/upload")["stage"], Value::Null);
    assert_eq!(by_path("/choose")["upstream"], "canary");
    assert_eq!(seen.logged.load(Ordering::Relaxed), 4);
    let mut outcomes = seen.outcomes.lock().unwrap().clone();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("/answer".to_owned(), 203, true),
            ("/choose".to_owned(), 200, true),
            ("/refuse".to_owned(), 403, true),
            ("/upload".to_owned(), 200, true),
        ]
    );

    // Metrics and the admin API count the stage's decisions.
    let metrics = gw.handle().metrics_text();
    for decision in ["answer", "refuse"] {
        let line = format!(
            "rampart_stage_decisions_total{{route=\"staged\",stage=\"test_stage\",decision=\"{decision}\"}} 1"
        );
        assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
    }
    let routes = within(async {
        http.get(gw.admin_url("/routes"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
    .await;
    let routes: Value = serde_json::from_str(&routes).unwrap();
    let staged = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "staged")
        .unwrap();
    assert!(
        staged["stages"]
            .as_array()
            .unwrap()
            .contains(&"test_stage".into())
    );
    assert_eq!(
        staged["stage_decisions"]["test_stage"],
        serde_json::json!({ "answered": 1, "refused": 1 })
    );
}

#[tokio::test]
async fn a_stage_factory_refuses_config_with_a_located_error() {
    let seen = Arc::new(Seen::default());
    let text = r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[routes]]
name = "staged"
path_prefix = "/"
echo = true
"#;
    let config = rampart_config::load_str(text, "stage.toml").unwrap();
    let options = rampart_server::StartOptions {
        stages: StageRegistry::builtin().with(TestStages(seen)),
        ..rampart_server::StartOptions::default()
    };
    let Err(err) = rampart_server::start_with(&config, options) else {
        panic!("a config the stage refuses started");
    };
    let message = err.to_string();
    assert!(message.contains("routes[0].test_stage"), "{message}");
    assert!(
        message.contains("needs an upstream named canary"),
        "{message}"
    );
    assert!(message.contains("stage.toml:"), "{message}");
}

//! API keys: accepted from a header or a query parameter by SHA-256, named in the log, scopes as
//! a claim the route can require; unknown keys get 401 with an `ApiKey` challenge, and no key
//! reaches the log.

use rampart_testkit::{RecordingOrigin, TestGateway};

use super::{get, sha256_hex};
use crate::support::{header_values, request_line};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_checked_by_hash_and_give_a_named_principal() {
    let origin = RecordingOrigin::start().await.unwrap();
    let (ci, ops) = ("ci-key-4f1d9a7c2b", "ops-key-88e0b3d1aa");
    let gw = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "api"
targets = ["{}"]

[[auth.api_keys]]
name = "keys"
key_from = ["header:x-api-key", "query:api_key"]
keys = [
  {{ name = "ci", sha256 = "{}", scopes = ["read"] }},
  {{ name = "ops", sha256 = "{}", scopes = ["read", "write"] }},
]

[[routes]]
name = "write"
path_prefix = "/write"
upstream = "api"
auth = {{ providers = ["keys"], claims = [{{ name = "scope", contains = "write" }}], headers = {{ "X-Key-Name" = "sub" }} }}

[[routes]]
name = "read"
upstream = "api"
auth = {{ providers = ["keys"], realm = "api" }}
"#,
        origin.addr(),
        sha256_hex(ci),
        sha256_hex(ops)
    ))
    .access_log()
    .start();
    let addr = gw.addr("public");
    assert_eq!(
        get(addr, "/r", &format!("X-Api-Key: {ci}\r\n"))
            .await
            .status,
        200
    );
    assert_eq!(
        get(addr, &format!("/r?api_key={ops}"), "").await.status,
        200
    );
    let resp = get(addr, "/write/x", &format!("X-Api-Key: {ci}\r\n")).await;
    assert_eq!(resp.status, 403);
    let resp = get(
        addr,
        "/write/x",
        &format!("X-Api-Key: {ops}\r\nX-Key-Name: ci\r\n"),
    )
    .await;
    assert_eq!(resp.status, 200);
    let resp = get(addr, "/r", "X-Api-Key: ops-key-88e0b3d1ab\r\n").await;
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.header("www-authenticate"),
        Some(
            "ApiKey realm=\"api\", error=\"invalid_token\", error_description=\"unknown API key\""
        )
    );
    let resp = get(addr, "/r", "").await;
    assert_eq!(
        resp.header("www-authenticate"),
        Some("ApiKey realm=\"api\"")
    );

    let reqs = origin.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(request_line(&reqs[1]), "GET /r HTTP/1.1");
    assert_eq!(header_values(&reqs[2], "x-key-name"), vec!["ops"]);
    let lines = gw.access_log_json(6);
    let who: Vec<(&str, &str)> = lines[..4]
        .iter()
        .map(|l| {
            (
                l["auth_method"].as_str().unwrap(),
                l["auth_subject"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            ("api_key", "ci"),
            ("api_key", "ops"),
            ("api_key", "ci"),
            ("api_key", "ops")
        ]
    );
    assert_eq!(lines[1]["uri"], "/r?api_key=REDACTED");
    let raw = gw.access_log_lines(6).join("\n");
    assert!(
        !raw.contains(ci) && !raw.contains(ops),
        "a key reached the log"
    );
}

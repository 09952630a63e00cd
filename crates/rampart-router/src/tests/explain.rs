//! `explain`: reasons, ordering, display and serialization.

use super::*;
use crate::{Rule, Verdict};

// ---- explain ---------------------------------------------------------------------------------

fn example_router() -> Router<usize> {
    build(&[
        r#"name = "api"
hosts = ["api.example.com"]
path_prefix = "/api""#,
        r#"name = "users"
hosts = ["api.example.com"]
path_template = "/api/users/{id}""#,
        r#"name = "admin"
hosts = ["api.example.com"]
path_prefix = "/api"
methods = ["POST", "DELETE"]"#,
        r#"name = "beta"
hosts = ["api.example.com"]
path_prefix = "/api"
headers = [{ name = "x-env", value = "beta" }]"#,
        r#"name = "docs"
path_prefix = "/docs""#,
        r#"name = "maintenance"
hosts = ["*.example.com"]
priority = 10
query = [{ name = "maintenance", value = "1" }]"#,
        r#"name = "www"
hosts = ["www.example.com"]"#,
    ])
}

#[test]
fn explain_gives_the_first_failing_predicate_or_the_deciding_rule() {
    let r = example_router();
    let probe = req("api.example.com", "/api/users/42").header("x-env", b"dev");
    let e = r.explain(&probe.view());
    assert_eq!(e.winner.as_ref().map(|w| w.name.as_str()), Some("users"));
    let reasons: Vec<(&str, &str)> = e
        .others
        .iter()
        .map(|o| (o.route.name.as_str(), o.verdict.reason()))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                "api",
                "matched, but a more specific path wins (template beats prefix)"
            ),
            ("admin", "method GET not in [POST, DELETE]"),
            ("beta", "header x-env: expected \"beta\", got \"dev\""),
            ("maintenance", "query maintenance absent"),
            (
                "docs",
                "path \"/api/users/42\" does not match prefix \"/docs\""
            ),
            ("www", "host \"api.example.com\" not in [www.example.com]"),
        ]
    );
    let progress: Vec<(usize, usize)> = e
        .others
        .iter()
        .map(|o| (o.checks_passed, o.checks))
        .collect();
    assert_eq!(progress, [(2, 2), (2, 3), (2, 3), (2, 3), (1, 2), (0, 2)]);
}

#[test]
fn explain_names_priority_and_order_rules() {
    let r = example_router();
    let e = r.explain(&req("api.example.com", "/api/x?maintenance=1").view());
    assert_eq!(
        e.winner.as_ref().map(|w| w.name.as_str()),
        Some("maintenance")
    );
    let api = e.others.iter().find(|o| o.route.name == "api").unwrap();
    assert_eq!(
        api.verdict,
        Verdict::Outranked {
            rule: Rule::Priority,
            reason: "matched, but route maintenance has higher priority (10 > 0)".into()
        }
    );
    let r = build(&[
        r#"name = "one"
path = "/x""#,
        r#"name = "two"
path = "/x"
hosts = ["*"]
listeners = ["main"]"#,
    ]);
    let e = r.explain(&req("h", "/x").view());
    assert_eq!(
        e.others[0].verdict.reason(),
        "matched, but declared later (route one comes first)"
    );
}

#[test]
fn explain_reports_a_missing_host_and_no_winner() {
    let r = example_router();
    let e = r.explain(&req("", "/nothing").view());
    assert!(e.winner.is_none());
    let www = e.others.iter().find(|o| o.route.name == "www").unwrap();
    assert_eq!(
        www.verdict.reason(),
        "no host in the request; route needs one of [www.example.com]"
    );
    assert!(e.to_string().contains("winner:   none (no route matches)"));
}

/// The exact output shown in docs/routing.md.
const EXPLAIN_EXAMPLE: &str = r#"request:  GET /api/users/42?page=2 (host api.example.com)
winner:   users (routes[1])
other routes:
  api (routes[0]): matched, but a more specific path wins (template beats prefix)
  admin (routes[2]): method GET not in [POST, DELETE] [2/3 checks passed]
  beta (routes[3]): header x-env: expected "beta", got "dev" [2/3 checks passed]
  maintenance (routes[5]): query maintenance absent [2/3 checks passed]
  docs (routes[4]): path "/api/users/42" does not match prefix "/docs" [1/2 checks passed]
  www (routes[6]): host "api.example.com" not in [www.example.com] [0/2 checks passed]"#;

#[test]
fn explain_display_reads_as_documented() {
    let r = example_router();
    let probe = req("API.example.com:443", "/api/users/42?page=2").header("x-env", b"dev");
    let e = r.explain(&probe.view());
    assert_eq!(e.to_string(), EXPLAIN_EXAMPLE);
    let all = format!("{e:#}");
    assert!(all.contains("\nwinner:   users (routes[1])\n          precedence: priority 0, exact host \"api.example.com\", template \"/api/users/{id}\" (2 literal segments, 1 param), 0 predicates, entry #1\n"), "{all}");
    assert!(all.contains("\n  docs (routes[4]): path \"/api/users/42\" does not match prefix \"/docs\" [1/2 checks passed]\n      precedence: priority 0, any host, prefix \"/docs\" (5 bytes), 0 predicates, entry #4\n"), "{all}");
    assert_eq!(all.lines().count(), EXPLAIN_EXAMPLE.lines().count() + 7);
}

#[test]
fn explanation_serializes_for_machine_output() {
    let r = example_router();
    let e = r.explain(&req("api.example.com", "/api/x?maintenance=1").view());
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["winner"]["name"], "maintenance");
    assert_eq!(json["winner"]["index"], 5);
    let api = json["others"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "api")
        .unwrap();
    assert_eq!(api["verdict"], "outranked");
    assert_eq!(api["rule"], "priority");
    assert_eq!(api["config_path"], "routes[0]");
    let docs = json["others"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "docs")
        .unwrap();
    assert_eq!(docs["verdict"], "missed");
    assert_eq!(docs["predicate"], "path");
    assert_eq!(docs["checks_passed"], 1);
}

//! `rampart explain`: the winning route, its stages, upstream and near misses, as text and JSON;
//! for scripts, a documented exit code when no route takes the request, and labels that line up.

use serde_json::Value;

use super::{EXPLAIN_CONFIG, run_cli};
use crate::support::TempDir;

#[test]
fn explain_prints_the_winner_its_stages_the_upstream_and_near_misses() {
    let dir = TempDir::new("cli");
    let path = dir.file("explain.toml", EXPLAIN_CONFIG);
    let out = run_cli(&[
        "explain",
        "-c",
        path.to_str().unwrap(),
        "GET",
        "http://api.example.com/users/7",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let text = &out.stdout;
    for needle in [
        "listener: web",
        "path:     /users/7 → upstream gets /7",
        "winner:   users (routes[0])",
        "stages:   allow_methods → body_limit → rewrite_path",
        "proxy to upstream \"users\"",
        "127.0.0.1:3000",
        "writes (routes[2]): method GET not in [POST]",
        "admin-area (routes[1]): path \"/users/7\" does not match prefix \"/admin\"",
        "catch-all (routes[3]): matched, but route users has higher priority (0 > -1)",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(
        text.ends_with('\n'),
        "the output must end with a newline: {text:?}"
    );

    // --all adds each route's precedence key.
    let out = run_cli(&[
        "explain",
        "-c",
        path.to_str().unwrap(),
        "--all",
        "GET",
        "http://api.example.com/users/7",
    ]);
    assert!(
        out.stdout
            .contains("precedence: priority 0, exact host \"api.example.com\", template"),
        "{}",
        out.stdout
    );

    // A path and a Host header; nothing matches but the catch-all.
    let out = run_cli(&[
        "explain",
        "-c",
        path.to_str().unwrap(),
        "GET",
        "/nothing",
        "-H",
        "host: other.org",
    ]);
    assert!(
        out.stdout.contains("winner:   catch-all (routes[3])"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("host \"other.org\" not in [api.example.com]"),
        "{}",
        out.stdout
    );

    // --listener picks another listener's routes.
    let out = run_cli(&[
        "explain",
        "-c",
        path.to_str().unwrap(),
        "--listener",
        "admin",
        "GET",
        "/metrics",
        "-H",
        "host: x",
    ]);
    assert!(
        out.stdout.contains("listener: admin") && out.stdout.contains("winner:   metrics"),
        "{}",
        out.stdout
    );
    let out = run_cli(&[
        "explain",
        "-c",
        path.to_str().unwrap(),
        "--listener",
        "nope",
        "GET",
        "/",
    ]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("unknown listener \"nope\""),
        "{}",
        out.stderr
    );

    // A path that would be refused says so.
    let out = run_cli(&[
        "explain",
        "-c",
        path.to_str().unwrap(),
        "GET",
        "http://api.example.com/../etc",
    ]);
    assert!(out.stdout.contains("400"), "{}", out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a refused path reaches no route"
    );
}

#[test]
fn explain_json_is_machine_readable() {
    let dir = TempDir::new("cli");
    let path = dir.file("explain.toml", EXPLAIN_CONFIG);
    let out = run_cli(&[
        "explain",
        "-c",
        path.to_str().unwrap(),
        "--json",
        "POST",
        "/users/7",
        "-H",
        "host: api.example.com",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).expect("--json prints JSON");
    assert_eq!(report["listener"], "web");
    assert_eq!(report["routing"]["winner"]["name"], "writes");
    assert!(
        report["handler"]
            .as_str()
            .unwrap()
            .contains("upstream \"users\""),
        "{report}"
    );
    let others = report["routing"]["others"].as_array().unwrap();
    let users = others
        .iter()
        .find(|o| o["name"] == "users")
        .expect("users in others");
    assert_eq!(users["verdict"], "missed");
    assert_eq!(users["predicate"], "method");
    assert_eq!(users["reason"], "method POST not in [GET]");
}

#[test]
fn explain_exits_3_when_no_route_takes_the_request() {
    let dir = TempDir::new("explain");
    let lonely = dir.file(
        "lonely.toml",
        "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\n\n[[routes]]\nname = \"only\"\npath = \"/only\"\nrespond = { body = \"x\" }\n",
    );
    let out = run_cli(&[
        "explain",
        "-c",
        lonely.to_str().unwrap(),
        "GET",
        "/elsewhere",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("404 Not Found (no route matches)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("winner:   none"), "{}", out.stdout);
    let out = run_cli(&[
        "explain",
        "-c",
        lonely.to_str().unwrap(),
        "--json",
        "GET",
        "/elsewhere",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", out.stderr);
    let out = run_cli(&["explain", "-c", lonely.to_str().unwrap(), "GET", "/only"]);
    assert!(out.status.success(), "{}", out.stderr);
}

#[test]
fn explain_labels_line_up() {
    let dir = TempDir::new("explain");
    let path = dir.file("explain.toml", EXPLAIN_CONFIG);
    let out = run_cli(&[
        "explain",
        "-c",
        path.to_str().unwrap(),
        "GET",
        "http://api.example.com/users/7",
    ]);
    // Every `label: value` line before `other routes:` has its value in column 11.
    for line in out
        .stdout
        .lines()
        .take_while(|l| !l.starts_with("other routes"))
    {
        let (label, _) = line.split_once(':').unwrap();
        assert_eq!(
            line.chars().nth(10).map(|c| c != ' '),
            Some(true),
            "{label}: {line:?}"
        );
        assert_eq!(
            line[label.len() + 1..]
                .chars()
                .take_while(|c| *c == ' ')
                .count()
                + label.len()
                + 1,
            10,
            "{line:?}"
        );
    }
}

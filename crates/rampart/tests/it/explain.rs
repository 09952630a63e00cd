//! `rampart explain` for scripts: a documented exit code when no route takes the request, and
//! labels that line up.

use crate::cli::{EXPLAIN_CONFIG, run_cli};
use crate::support::TempDir;

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

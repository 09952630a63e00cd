//! `rampart check`: valid and broken files, unreadable paths, and every shipped config passing.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use super::{run_cli, run_cli_env};
use crate::support::TempDir;

// ---------------------------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------------------------

const VALID: &str = r#"
[[listeners]]
name = "web"
bind = "127.0.0.1:8080"

[[upstreams]]
name = "app"
targets = ["127.0.0.1:3000"]

[[routes]]
name = "app"
upstream = "app"
"#;

#[test]
fn check_accepts_a_valid_file_and_prints_a_summary() {
    let dir = TempDir::new("cli");
    let path = dir.file("valid.toml", VALID);
    let out = run_cli(&["check", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        format!("{}: ok (1 listener, 1 route, 1 upstream)", path.display())
    );
}

#[test]
fn check_reports_every_error_with_location_key_and_expectation() {
    let dir = TempDir::new("cli");
    let broken = r#"[[listeners]]
name = "web"
bind = "127.0.0.1:8080"
colour = "blue"

[timeouts]
keepalive = "5 parsecs"

[[routes]]
name = "app"
upstream = "nowhere"
"#;
    let path = dir.file("broken.toml", broken);
    let file = path.display().to_string();
    let out = run_cli(&["check", "-c", &file]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    let err = &out.stderr;
    // file:line:col, the key path and what was expected, for each error at once.
    for (location, key, expectation) in [
        (
            format!("{file}:4:1:"),
            "listeners[0].colour",
            "unknown key `colour`",
        ),
        (
            format!("{file}:7:13:"),
            "timeouts.keepalive",
            "invalid duration \"5 parsecs\"",
        ),
        (
            format!("{file}:11:12:"),
            "routes[0].upstream",
            "unknown upstream \"nowhere\"",
        ),
    ] {
        let line = err
            .lines()
            .find(|l| l.starts_with(&location))
            .unwrap_or_else(|| panic!("no error at {location} in:\n{err}"));
        assert!(line.contains(key) && line.contains(expectation), "{line}");
    }
    assert!(
        err.contains("expected one of `name`, `bind`"),
        "the unknown key lists the valid ones:\n{err}"
    );
    assert!(
        err.contains("such as \"30s\""),
        "the bad duration shows the expected form:\n{err}"
    );
    assert!(err.contains("3 errors"), "{err}");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn check_fails_clearly_on_an_unreadable_path() {
    let dir = TempDir::new("cli");
    let missing = dir.0.join("missing.toml");
    for path in [missing.as_path(), dir.0.as_path()] {
        let out = run_cli(&["check", "-c", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            out.stderr.contains(&path.display().to_string()),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("cannot read config file"),
            "{}",
            out.stderr
        );
    }
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn every_example_config_passes_check() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    assert!(
        !files.is_empty(),
        "no examples/*.toml found in {}",
        examples_dir().display()
    );
    // examples/tls.toml reads its certificates from ${RAMPART_CERTS}: generate them.
    let pki = rampart_testkit::TestPki::new();
    let _ = pki.server("server", &["www.example.com", "example.com"]);
    let _ = pki.server("api", &["api.example.com"]);
    let _ = pki.client("client", "ops", &["ops.example.com"]);
    for file in &files {
        assert_check_passes(file, pki.dir());
    }
}

/// The benchmark templates (`bench/*.toml.tmpl`), rendered as `../shared/bench/run` renders
/// them for a plain scenario and for the TLS one, are valid configs.
#[test]
fn bench_templates_render_to_valid_configs() {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench");
    let mut templates: Vec<PathBuf> = std::fs::read_dir(&bench)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    templates.retain(|p| p.to_string_lossy().ends_with(".toml.tmpl"));
    templates.sort();
    assert!(!templates.is_empty(), "no bench/*.toml.tmpl found");
    let pki = rampart_testkit::TestPki::new();
    let cert = pki.server("bench", &["localhost"]);
    let dir = TempDir::new("cli");
    // `check` binds nothing and connects nowhere; the upstream is still a real local socket.
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = upstream.local_addr().unwrap();
    for template in &templates {
        let source = std::fs::read_to_string(template).unwrap();
        for (scenario, keep, drop) in [("a", "@@plain ", "@@tls "), ("d", "@@tls ", "@@plain ")] {
            let text = render_bench_template(&source, keep, drop, upstream)
                .replace("{tls_cert}", &cert.cert)
                .replace("{tls_key}", &cert.key);
            let unrendered: Vec<&str> = text
                .lines()
                .filter(|line| !line.trim_start().starts_with('#') && has_placeholder(line))
                .collect();
            assert!(
                unrendered.is_empty(),
                "{}, scenario {scenario}: placeholders the test does not fill: {unrendered:?}",
                template.display()
            );
            let file = dir.file(&format!("bench-{scenario}.toml"), &text);
            assert_check_passes(&file, pki.dir());
        }
    }
}

/// The training workload of `scripts/build-pgo` is a valid config once the variables the script
/// exports are set.
#[test]
fn pgo_training_config_passes_check() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/pgo/train.toml");
    let pki = rampart_testkit::TestPki::new();
    let _ = pki.server("server", &["www.example.com"]);
    let work = TempDir::new("cli");
    let ports = [
        ("PGO_PORT_PLAIN", "47081"),
        ("PGO_PORT_TLS", "47082"),
        ("PGO_PORT_ORIGIN", "47083"),
    ];
    let mut env: Vec<(&str, &Path)> = ports.iter().map(|(k, v)| (*k, Path::new(v))).collect();
    env.extend([("PGO_WORK", work.0.as_path()), ("PGO_CERTS", pki.dir())]);
    let out = run_cli_env(&["check", "-c", config.to_str().unwrap()], &env);
    assert!(
        out.status.success(),
        "bench/pgo/train.toml fails check:\n{}",
        out.stderr
    );
    assert!(out.stdout.contains(": ok ("), "{}", out.stdout);
}

/// Keeps the lines marked `keep` (marker removed), drops those marked `drop`, and fills the
/// harness's placeholders other than the certificate paths (the listener on port 0).
fn render_bench_template(source: &str, keep: &str, drop: &str, upstream: SocketAddr) -> String {
    source
        .lines()
        .filter(|line| !line.starts_with(drop))
        .map(|line| line.strip_prefix(keep).unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("{threads}", "1")
        .replace("{listen}", "127.0.0.1:0")
        .replace("{upstream}", &upstream.to_string())
        .replace("{upstream_host}", &upstream.ip().to_string())
        .replace("{upstream_port}", &upstream.port().to_string())
        .replace("{maxconn}", "32512")
}

/// True when `line` holds a `{word}` placeholder (lowercase letters and underscores).
fn has_placeholder(line: &str) -> bool {
    line.split('{').skip(1).any(|rest| {
        rest.split_once('}').is_some_and(|(word, _)| {
            !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
    })
}

/// `rampart check -c file` exits 0 and says ok (`certs` is `${RAMPART_CERTS}`).
fn assert_check_passes(file: &Path, certs: &Path) {
    let out = run_cli_env(
        &["check", "-c", file.to_str().unwrap()],
        &[("RAMPART_CERTS", certs)],
    );
    assert!(
        out.status.success(),
        "{} fails check:\n{}",
        file.display(),
        out.stderr
    );
    assert!(out.stdout.contains(": ok ("), "{}", out.stdout);
}

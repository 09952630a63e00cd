//! The `rampart` binary: version and help, `config`, `check`, `explain`, `run` with a graceful
//! SIGTERM, `proxy`, and clear failures. Every child is killed if a test fails, and every wait
//! is bounded.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_testkit::HttpOrigin;
use serde_json::Value;

use crate::support::{TempDir, client_with_timeout};

/// Bound on a short command (`check`, `explain`, ...), generous for a loaded machine.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on a server starting up or shutting down.
const SERVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one HTTP request to a running server.
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

fn rampart() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.env_remove("RUST_LOG").stdin(Stdio::null());
    cmd
}

// ---------------------------------------------------------------------------------------------
// Helpers: temp files, short commands, long-running children
// ---------------------------------------------------------------------------------------------

/// What a finished command printed.
pub(crate) struct Output {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `args` to completion within [`COMMAND_TIMEOUT`] (killed and failed otherwise).
pub(crate) fn run_cli(args: &[&str]) -> Output {
    run_cli_env(args, &[])
}

/// [`run_cli`] with extra environment variables.
fn run_cli_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut child = rampart()
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rampart {args:?} did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A long-running `rampart` child: killed on drop unless it already exited; its stderr lines
/// are collected by a thread.
struct Server {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn spawn(args: &[&str]) -> Self {
        let mut child = rampart()
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let all = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                all.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the `listening on http://ADDR` line and returns ADDR; `Err(stderr)` if the
    /// process ended first.
    fn listening_addr(&mut self) -> Result<SocketAddr, String> {
        let deadline = Instant::now() + SERVER_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        return Ok(addr
                            .parse()
                            .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}")));
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.wait_exit(SERVER_TIMEOUT);
                    return Err(self.stderr());
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            assert!(
                Instant::now() < deadline,
                "no `listening on` line within {SERVER_TIMEOUT:?}:\n{}",
                self.stderr()
            );
        }
    }

    /// Waits up to `timeout` for the process to exit.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// [`Self::wait_exit`] without blocking the async runtime's thread.
    async fn wait_exit_async(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// --version, --help, config
// ---------------------------------------------------------------------------------------------

#[test]
fn version_prints_the_package_version() {
    let out = run_cli(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        out.stdout.trim(),
        format!("rampart {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_shows_commands_and_examples() {
    let out = run_cli(&["--help"]);
    assert!(out.status.success(), "{}", out.stderr);
    for needle in [
        "run",
        "check",
        "proxy",
        "explain",
        "config",
        "--log-level",
        "Examples:",
        "rampart check -c rampart.toml",
    ] {
        assert!(
            out.stdout.contains(needle),
            "{needle:?} missing from --help:\n{}",
            out.stdout
        );
    }
    for sub in ["run", "check", "proxy", "explain"] {
        let out = run_cli(&[sub, "--help"]);
        assert!(out.status.success());
        assert!(
            out.stdout.contains("Examples:"),
            "`{sub} --help` has no examples:\n{}",
            out.stdout
        );
    }
}

#[test]
fn config_default_prints_a_config_that_check_accepts() {
    let out = run_cli(&["config", "default"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("[[listeners]]"), "{}", out.stdout);
    let dir = TempDir::new("cli");
    let path = dir.file("default.toml", &out.stdout);
    let check = run_cli(&["check", "-c", path.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "the default config fails check:\n{}",
        check.stderr
    );
    assert!(check.stdout.contains(": ok"), "{}", check.stdout);
}

/// Follows `$ref` (into `$defs`), `allOf`/`anyOf` and array `items` to the object schema.
fn resolve<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        if let Some(r) = schema["$ref"].as_str() {
            let name = r.rsplit('/').next().unwrap();
            schema = &root["$defs"][name];
        } else if schema["items"].is_object() {
            schema = &schema["items"];
        } else if let Some(first) = schema["allOf"]
            .as_array()
            .or_else(|| schema["anyOf"].as_array())
            .and_then(|a| a.first())
        {
            schema = first;
        } else {
            break;
        }
    }
    schema
}

#[test]
fn config_schema_describes_every_section() {
    let out = run_cli(&["config", "schema"]);
    assert!(out.status.success(), "{}", out.stderr);
    let schema: Value = serde_json::from_str(&out.stdout).expect("config schema prints JSON");
    let props = schema["properties"]
        .as_object()
        .expect("top-level properties");
    for section in [
        "server",
        "log",
        "access_log",
        "limits",
        "timeouts",
        "listeners",
        "upstreams",
        "routes",
    ] {
        let def = resolve(
            &schema,
            props
                .get(section)
                .unwrap_or_else(|| panic!("no section {section}")),
        );
        let fields = def["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{section} has no properties: {def}"));
        assert!(!fields.is_empty(), "{section}");
    }
    assert!(resolve(&schema, &props["listeners"])["properties"]["bind"].is_object());
    assert!(resolve(&schema, &props["routes"])["properties"]["path_prefix"].is_object());
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown top-level keys must be refused"
    );
}

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

// ---------------------------------------------------------------------------------------------
// explain
// ---------------------------------------------------------------------------------------------

pub(crate) const EXPLAIN_CONFIG: &str = r#"
[[listeners]]
name = "web"
bind = "127.0.0.1:8080"

[[listeners]]
name = "admin"
bind = "127.0.0.1:9090"

[[upstreams]]
name = "users"
targets = ["127.0.0.1:3000"]

[[routes]]
name = "users"
hosts = ["api.example.com"]
path_template = "/users/{id}"
methods = ["GET"]
allow_methods = ["GET", "DELETE"]
upstream = "users"
rewrite = { strip_prefix = "/users" }

[[routes]]
name = "admin-area"
hosts = ["api.example.com"]
path_prefix = "/admin"
respond = { status = 403 }

[[routes]]
name = "writes"
hosts = ["api.example.com"]
path_template = "/users/{id}"
methods = ["POST"]
upstream = "users"

[[routes]]
name = "catch-all"
priority = -1
respond = { status = 404, body = "nope" }

[[routes]]
name = "metrics"
listeners = ["admin"]
path = "/metrics"
respond = { body = "m" }
"#;

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

// ---------------------------------------------------------------------------------------------
// run, proxy, and failures to start
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_requests_and_drains_in_flight_ones_on_sigterm() {
    let origin = HttpOrigin::start().await.unwrap();
    let dir = TempDir::new("cli");
    let config = format!(
        r#"
[server]
workers = 1
drain_timeout = "10s"

[access_log]
enabled = false

[[listeners]]
name = "web"
bind = "127.0.0.1:0"

[[upstreams]]
name = "origin"
targets = ["{}"]

[[routes]]
name = "all"
upstream = "origin"
"#,
        origin.addr()
    );
    let path = dir.file("run.toml", &config);
    let mut server = Server::spawn(&["run", "-c", path.to_str().unwrap()]);
    let addr = server
        .listening_addr()
        .unwrap_or_else(|stderr| panic!("rampart run failed:\n{stderr}"));

    let http = client_with_timeout(HTTP_TIMEOUT);
    let resp = http
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(echo["uri"], "/hello");

    // A slow request in flight when SIGTERM arrives still completes.
    let slow = tokio::spawn({
        let http = http.clone();
        async move { http.get(format!("http://{addr}/delay/1000")).send().await }
    });
    let deadline = Instant::now() + SERVER_TIMEOUT;
    while origin.requests() < 2 {
        assert!(
            Instant::now() < deadline,
            "the slow request never reached the origin"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.sigterm();
    let resp = tokio::time::timeout(SERVER_TIMEOUT, slow)
        .await
        .expect("slow request bounded")
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(echo["uri"], "/delay/1000");

    let status = server
        .wait_exit_async(SERVER_TIMEOUT)
        .await
        .unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", server.stderr()));
    assert!(status.success(), "exit {status:?}:\n{}", server.stderr());
    assert!(server.stderr().contains("SIGTERM"), "{}", server.stderr());
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_forwards_every_request_to_one_upstream() {
    let origin = HttpOrigin::start().await.unwrap();
    let to = format!("http://{}", origin.addr());
    let mut attempt = 0;
    let (mut server, addr) = loop {
        attempt += 1;
        let listen = format!("127.0.0.1:{}", free_port());
        let mut server = Server::spawn(&[
            "proxy",
            "--listen",
            &listen,
            "--to",
            &to,
            "--workers",
            "1",
            "--quiet",
        ]);
        match server.listening_addr() {
            Ok(addr) => {
                assert_eq!(addr.to_string(), listen);
                break (server, addr);
            }
            // Someone took the port between our check and the bind: try once more.
            Err(stderr) if attempt == 1 && stderr.contains("in use") => {}
            Err(stderr) => panic!("rampart proxy failed:\n{stderr}"),
        }
    };
    let http = client_with_timeout(HTTP_TIMEOUT);
    for path in ["/", "/a/b?c=d"] {
        let resp = http
            .post(format!("http://{addr}{path}"))
            .body("payload")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let echo: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(echo["method"], "POST");
        assert_eq!(echo["uri"], path);
        assert_eq!(echo["body_len"], 7);
    }
    assert_eq!(origin.requests(), 2);
    server.sigterm();
    let status = server
        .wait_exit_async(SERVER_TIMEOUT)
        .await
        .expect("proxy exits after SIGTERM");
    assert!(status.success(), "{}", server.stderr());
}

#[test]
fn proxy_refuses_an_unsupported_scheme() {
    let out = run_cli(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--to",
        "https://127.0.0.1:1",
    ]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("--to") && out.stderr.contains("https"),
        "{}",
        out.stderr
    );
}

#[test]
fn run_fails_clearly_on_an_unreadable_config_path() {
    let dir = TempDir::new("cli");
    let missing = dir.0.join("nope.toml");
    for path in [missing.as_path(), dir.0.as_path()] {
        let out = run_cli(&["run", "-c", path.to_str().unwrap()]);
        assert!(!out.status.success());
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

fn listener_config(port: u16) -> String {
    format!(
        "[server]\nworkers = 1\n\n[access_log]\nenabled = false\n\n[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:{port}\"\n\n[[routes]]\nname = \"r\"\nrespond = {{ body = \"hi\" }}\n"
    )
}

#[test]
fn run_fails_clearly_when_the_port_is_taken() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new("cli");
    let path = dir.file("taken.toml", &listener_config(port));
    let out = run_cli(&["run", "-c", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.to_lowercase().contains("in use"),
        "{}",
        out.stderr
    );
    drop(taken);
}

#[test]
fn run_fails_clearly_when_another_rampart_holds_the_port() {
    let dir = TempDir::new("cli");
    let first_config = dir.file("first.toml", &listener_config(0));
    let mut first = Server::spawn(&["run", "-c", first_config.to_str().unwrap()]);
    let addr = first
        .listening_addr()
        .unwrap_or_else(|stderr| panic!("first rampart failed:\n{stderr}"));
    // The same port again: the kernel must not silently split connections between two
    // unrelated processes.
    let second_config = dir.file("second.toml", &listener_config(addr.port()));
    let mut second = Server::spawn(&["run", "-c", second_config.to_str().unwrap()]);
    match second.listening_addr() {
        Ok(_) => panic!("a second rampart started on {addr}, which another one serves"),
        Err(stderr) => {
            assert!(
                stderr.contains(&addr.to_string()) && stderr.to_lowercase().contains("in use"),
                "{stderr}"
            );
        }
    }
    let status = second
        .wait_exit(SERVER_TIMEOUT)
        .expect("the second rampart exits");
    assert!(!status.success());
    first.sigterm();
    assert!(
        first.wait_exit(SERVER_TIMEOUT).is_some_and(|s| s.success()),
        "{}",
        first.stderr()
    );
}

#[test]
fn sigterm_right_after_startup_is_a_clean_shutdown() {
    let dir = TempDir::new("cli");
    let path = dir.file("quick.toml", &listener_config(0));
    let mut server = Server::spawn(&["run", "-c", path.to_str().unwrap()]);
    // Supervisors may stop a service as soon as it says it listens: the signal must already be
    // handled by then, not kill the process mid-start.
    server
        .listening_addr()
        .unwrap_or_else(|stderr| panic!("rampart run failed:\n{stderr}"));
    server.sigterm();
    let status = server
        .wait_exit(SERVER_TIMEOUT)
        .expect("exit after SIGTERM");
    assert!(status.success(), "exit {status:?}:\n{}", server.stderr());
}

#[test]
fn the_startup_line_names_each_listeners_scheme_and_http_versions() {
    let pki = rampart_testkit::TestPki::new();
    let cert = pki.server("localhost", &["localhost"]);
    let dir = TempDir::new("cli");
    let config = format!(
        "[access_log]\nenabled = false\n\n\
         [[listeners]]\nname = \"plain\"\nbind = \"127.0.0.1:0\"\nhttp2 = false\n\n\
         [[listeners]]\nname = \"clear2\"\nbind = \"127.0.0.1:0\"\n\n\
         [[listeners]]\nname = \"secure\"\nbind = \"127.0.0.1:0\"\n\n\
         [listeners.tls]\n[[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\n\
         [[routes]]\nname = \"all\"\nrespond = {{ status = 200, body = \"ok\" }}\n",
        cert.cert, cert.key
    );
    let path = dir.file("listeners.toml", &config);
    let server = Server::spawn(&["run", "-c", path.to_str().unwrap()]);
    let deadline = Instant::now() + SERVER_TIMEOUT;
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("rampart started")) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no startup line:\n{}", server.stderr());
        if let Ok(line) = server
            .lines
            .recv_timeout(left.min(Duration::from_millis(100)))
        {
            lines.push(line);
        }
    }
    let listening = |name: &str| -> String {
        let line = lines
            .iter()
            .find(|l| l.contains("listening on") && l.contains(&format!("listener={name}")))
            .unwrap_or_else(|| panic!("no line for {name}: {lines:#?}"));
        let rest = line.split("listening on ").nth(1).unwrap();
        // The address varies; the scheme and the versions must not.
        let (scheme, after) = rest.split_once("://127.0.0.1:").unwrap();
        let versions = after.split_once(' ').map_or("", |(_, v)| v);
        let versions = versions.split(')').next().unwrap_or_default();
        format!("{scheme} {versions})")
    };
    assert_eq!(listening("plain"), "http (http/1.1)");
    assert_eq!(listening("clear2"), "http (http/1.1, h2c)");
    assert_eq!(listening("secure"), "https (http/1.1, h2)");
}

//! `rampart run` and `rampart proxy`: serving, SIGTERM drain, the startup line, clear failures.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_testkit::HttpOrigin;
use serde_json::Value;

use super::{rampart, run_cli};
use crate::support::{TempDir, client_with_timeout};

/// Bound on a server starting up or shutting down.
const SERVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one HTTP request to a running server.
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

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

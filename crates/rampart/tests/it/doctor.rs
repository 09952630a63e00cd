//! `rampart doctor` on real configs: a port another socket holds, an expired certificate, a
//! leaf without its chain, an unreachable upstream, a config that does not load, and a clean
//! config whose exit code follows its worst finding. Every run is bounded in time.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart_testkit::{HttpOrigin, TestPki, free_port_closed};
use serde_json::Value;

use crate::support::TempDir;

/// Bound on one doctor run (DNS and connect checks are bounded at 3 s each inside).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `rampart doctor -c CONFIG [args]`; returns the exit code and stdout.
fn doctor(config: &PathBuf, args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("doctor")
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rampart doctor did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn doctor_json(config: &PathBuf) -> (i32, Value) {
    let (code, out) = doctor(config, &["--format", "json"]);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["exit_code"], code, "{report:#}");
    (code, report)
}

fn findings<'a>(report: &'a Value, check: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .collect()
}

/// A config with small caps and backlog so that the machine's own limits do not add warnings.
fn config(listeners: &str, target: &str) -> String {
    format!(
        "[limits]\nmax_connections = 100\n\n{listeners}\n[[upstreams]]\nname = \"app\"\ntargets = [\"{target}\"]\n\n[[routes]]\nname = \"all\"\nupstream = \"app\"\n"
    )
}

fn listener(name: &str, bind: &str) -> String {
    format!("[[listeners]]\nname = \"{name}\"\nbind = \"{bind}\"\nbacklog = 64\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_already_bound_is_an_error_and_exits_1() {
    let origin = HttpOrigin::start().await.unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = TempDir::new("doctor");
    let path = dir.file(
        "taken.toml",
        &config(
            &(listener("web", &addr.to_string()) + &listener("spare", "127.0.0.1:0")),
            &origin.addr().to_string(),
        ),
    );
    let (code, report) = tokio::task::spawn_blocking(move || doctor_json(&path))
        .await
        .unwrap();
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["worst"], "error");
    let ports = findings(&report, "port");
    assert_eq!(ports.len(), 2, "{report:#}");
    let web = ports
        .iter()
        .find(|f| f["subject"].as_str().unwrap().contains("web"))
        .unwrap();
    assert_eq!(web["severity"], "error", "{web}");
    assert!(
        web["message"].as_str().unwrap().contains("already in use"),
        "{web}"
    );
    assert!(web["fix"].as_str().unwrap().contains("ss -ltnp"), "{web}");
    let spare = ports
        .iter()
        .find(|f| f["subject"].as_str().unwrap().contains("spare"))
        .unwrap();
    assert_eq!(spare["severity"], "ok", "{spare}");
    // The reachable upstream is fine.
    let up = findings(&report, "upstream");
    assert_eq!(up.len(), 1);
    assert_eq!(up[0]["severity"], "ok", "{report:#}");
    drop(taken);
}

#[test]
fn text_output_names_severity_and_fix() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = TempDir::new("doctor");
    let path = dir.file(
        "taken.toml",
        &config(
            &listener("web", &taken.local_addr().unwrap().to_string()),
            &free_port_closed().unwrap().to_string(),
        ),
    );
    let (code, out) = doctor(&path, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[error  ] port listener web"), "{out}");
    assert!(out.contains("fix: find the owner"), "{out}");
    assert!(out.contains("Rampart will not start"), "{out}");
}

#[test]
fn an_expired_certificate_is_an_error_and_a_leaf_without_chain_a_warning() {
    let pki = TestPki::new();
    let expired = pki.expired("old", &["old.example"]);
    let valid = pki.server("new", &["new.example"]);
    let dir = TempDir::new("doctor");
    let tls = |name: &str, files: &rampart_testkit::CertFiles| {
        format!(
            "{}\n[[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n",
            listener(name, "127.0.0.1:0"),
            files.cert,
            files.key
        )
    };
    let path = dir.file(
        "certs.toml",
        &config(
            &(tls("old", &expired) + &tls("new", &valid)),
            &free_port_closed().unwrap().to_string(),
        ),
    );
    let (code, report) = doctor_json(&path);
    assert_eq!(code, 1, "{report:#}");
    let certs = findings(&report, "certificate");
    let old: Vec<_> = certs
        .iter()
        .filter(|f| f["subject"].as_str().unwrap().contains(&expired.cert))
        .collect();
    assert!(
        old.iter().any(|f| f["severity"] == "error" && f["message"].as_str().unwrap().contains("expired")),
        "{report:#}"
    );
    let new: Vec<_> = certs
        .iter()
        .filter(|f| f["subject"].as_str().unwrap().contains(&valid.cert))
        .collect();
    // Valid for a year or so, key matches, but the CA-issued leaf comes without its issuer.
    assert!(
        new.iter()
            .any(|f| f["severity"] == "ok" && f["message"].as_str().unwrap().contains("valid for")),
        "{report:#}"
    );
    assert!(
        new.iter()
            .any(|f| f["severity"] == "ok" && f["message"].as_str().unwrap().contains("matches")),
        "{report:#}"
    );
    assert!(
        new.iter().any(|f| f["severity"] == "warning"
            && f["message"].as_str().unwrap().contains("only the leaf")),
        "{report:#}"
    );
    assert!(new.iter().all(|f| f["severity"] != "error"), "{report:#}");
    // The config itself refuses the expired certificate too.
    assert_eq!(findings(&report, "config")[0]["severity"], "error");
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_an_error() {
    let pki = TestPki::new();
    let files = pki.wrong_key("mismatch", &["m.example"]);
    let dir = TempDir::new("doctor");
    let path = dir.file(
        "key.toml",
        &config(
            &format!(
                "{}\n[[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n",
                listener("tls", "127.0.0.1:0"),
                files.cert,
                files.key
            ),
            &free_port_closed().unwrap().to_string(),
        ),
    );
    let (code, report) = doctor_json(&path);
    assert_eq!(code, 1, "{report:#}");
    assert!(
        findings(&report, "certificate")
            .iter()
            .any(|f| f["severity"] == "error"
                && f["message"].as_str().unwrap().contains("does not belong")),
        "{report:#}"
    );
}

#[test]
fn an_unreachable_upstream_is_a_warning() {
    let closed = free_port_closed().unwrap();
    let dir = TempDir::new("doctor");
    let path = dir.file(
        "down.toml",
        &config(&listener("web", "127.0.0.1:0"), &closed.to_string()),
    );
    let (code, report) = doctor_json(&path);
    let up = findings(&report, "upstream");
    assert_eq!(up.len(), 1, "{report:#}");
    assert_eq!(up[0]["severity"], "warning", "{report:#}");
    assert!(
        up[0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{report:#}"
    );
    assert!(
        up[0]["subject"]
            .as_str()
            .unwrap()
            .contains(&closed.to_string())
    );
    // Nothing else is an error here, so the exit code is the warnings' 2.
    assert_eq!(report["worst"], "warning", "{report:#}");
    assert_eq!(code, 2);
}

#[test]
fn an_upstream_name_that_does_not_resolve_is_a_warning() {
    let dir = TempDir::new("doctor");
    let path = dir.file(
        "dns.toml",
        &config(&listener("web", "127.0.0.1:0"), "no-such-host.invalid:80"),
    );
    let (code, report) = doctor_json(&path);
    let up = findings(&report, "upstream");
    assert_eq!(up[0]["severity"], "warning", "{report:#}");
    assert!(
        up[0]["message"]
            .as_str()
            .unwrap()
            .contains("does not resolve")
            || up[0]["message"]
                .as_str()
                .unwrap()
                .contains("DNS lookup took"),
        "{report:#}"
    );
    assert_eq!(code, 2, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_config_exits_with_the_code_of_its_worst_finding() {
    let origin = HttpOrigin::start().await.unwrap();
    let dir = TempDir::new("doctor");
    let path = dir.file(
        "ok.toml",
        &config(&listener("web", "127.0.0.1:0"), &origin.addr().to_string()),
    );
    let (code, report) = tokio::task::spawn_blocking(move || doctor_json(&path))
        .await
        .unwrap();
    for check in ["config", "port", "upstream", "fd_limit"] {
        let found = findings(&report, check);
        assert!(!found.is_empty(), "no {check} finding: {report:#}");
        assert!(
            found.iter().all(|f| f["severity"] == "ok"),
            "{check}: {report:#}"
        );
    }
    // Kernel settings depend on the machine; the exit code must follow whatever they say.
    let worst = report["worst"].as_str().unwrap();
    let expected = match worst {
        "ok" | "info" => 0,
        "warning" => 2,
        _ => 1,
    };
    assert_eq!(code, expected, "{report:#}");
    assert_ne!(worst, "error", "{report:#}");
}

#[test]
fn a_config_that_does_not_load_is_an_error() {
    let dir = TempDir::new("doctor");
    let path = dir.file(
        "bad.toml",
        "[[listeners]]\nname = \"web\"\nbind = \"not an address\"\n",
    );
    let (code, report) = doctor_json(&path);
    assert_eq!(code, 1);
    let config = findings(&report, "config");
    assert_eq!(config.len(), 1);
    assert_eq!(config[0]["severity"], "error");
    assert!(
        config[0]["message"].as_str().unwrap().contains("bad.toml"),
        "{report:#}"
    );
}

#[test]
fn unix_socket_targets_are_connected_to() {
    let dir = TempDir::new("doctor");
    let live = dir.0.join("live.sock");
    let _listening = std::os::unix::net::UnixListener::bind(&live).unwrap();
    let dead = dir.0.join("dead.sock");
    let path = dir.file(
        "unix.toml",
        &format!(
            "[limits]\nmax_connections = 100\n\n{}\n[[upstreams]]\nname = \"app\"\ntargets = [\"unix:{}\", \"unix:{}\"]\n\n[[routes]]\nname = \"all\"\nupstream = \"app\"\n",
            listener("web", "127.0.0.1:0"),
            live.display(),
            dead.display()
        ),
    );
    let (code, report) = doctor_json(&path);
    let up = findings(&report, "upstream");
    assert_eq!(up.len(), 2, "{report:#}");
    assert_eq!(up[0]["severity"], "ok", "{report:#}");
    assert!(
        up[0]["message"]
            .as_str()
            .unwrap()
            .contains("accepts connections")
    );
    assert_eq!(up[1]["severity"], "warning", "{report:#}");
    assert!(
        up[1]["message"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{report:#}"
    );
    assert_eq!(code, 2, "{report:#}");
}

/// Runs `BIN ARGS…` under `sh` with the soft fd limit lowered to `soft` first.
fn with_fd_limit(soft: u32, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -Sn {soft} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

#[test]
fn an_fd_limit_below_max_connections_is_a_warning_that_says_what_happens_and_rampart_starts() {
    let bind = free_port_closed().unwrap();
    let dir = TempDir::new("doctor");
    // The default max_connections (50000) against a soft limit of 2000.
    let path = dir.file(
        "fds.toml",
        &format!(
            "{}\n[[routes]]\nname = \"hello\"\nrespond = {{ body = \"hi\" }}\n",
            listener("web", &bind.to_string())
        ),
    );
    let out = with_fd_limit(
        2000,
        &["doctor", "-c", path.to_str().unwrap(), "--format", "json"],
    )
    .output()
    .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fd = findings(&report, "fd_limit");
    assert_eq!(fd.len(), 1, "{report:#}");
    assert_eq!(fd[0]["severity"], "warning", "{report:#}");
    let message = fd[0]["message"].as_str().unwrap();
    // (2000 - 256 reserved) / 2 descriptors per proxied connection.
    assert!(
        message.contains("allows about 872 proxied connections"),
        "{message}"
    );
    assert!(message.contains("backs off"), "{message}");
    let fix = fd[0]["fix"].as_str().unwrap();
    assert!(
        fix.contains("LimitNOFILE=100256") && fix.contains("ulimit -n"),
        "{fix}"
    );
    assert_ne!(report["worst"], "error", "{report:#}");

    // And Rampart does start under that limit and serve.
    let mut child = with_fd_limit(2000, &["run", "-c", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + RUN_TIMEOUT;
    let answer = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(bind) {
            use std::io::{Read, Write};
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .unwrap();
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            break text;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("rampart did not start under a soft fd limit of 2000");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hi"), "{answer}");
}

#[test]
fn a_leaf_issued_by_the_configured_private_ca_is_complete() {
    let pki = TestPki::new();
    let leaf = pki.server("private", &["private.example"]);
    let dir = TempDir::new("doctor");
    let tls = |client_ca: &str| {
        format!(
            "{}{client_ca}\n[[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n",
            listener("web", "127.0.0.1:0"),
            leaf.cert,
            leaf.key
        )
    };
    let target = free_port_closed().unwrap().to_string();
    let known = dir.file(
        "known.toml",
        &config(
            &tls(&format!(
                "[listeners.tls]\nclient_auth = \"optional\"\nclient_ca = {:?}\n",
                pki.ca_path
            )),
            &target,
        ),
    );
    let (_, report) = doctor_json(&known);
    let certs = findings(&report, "certificate");
    assert!(
        certs.iter().all(|f| f["severity"] == "ok"),
        "a private CA the config names needs no chain: {report:#}"
    );
    assert!(
        certs.iter().any(|f| f["message"]
            .as_str()
            .unwrap()
            .contains("issued directly by the private CA")),
        "{report:#}"
    );
    // Without it, the warning says who it matters for.
    let unknown = dir.file("unknown.toml", &config(&tls(""), &target));
    let (_, report) = doctor_json(&unknown);
    let warning = findings(&report, "certificate")
        .into_iter()
        .find(|f| f["severity"] == "warning")
        .expect("a warning for a lone leaf of an unknown CA");
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("public clients"),
        "{warning:#}"
    );
}

#[test]
fn text_lines_name_each_subject_once() {
    let closed = free_port_closed().unwrap();
    let dir = TempDir::new("doctor");
    let path = dir.file(
        "down.toml",
        &config(&listener("web", "127.0.0.1:0"), &closed.to_string()),
    );
    let (_, out) = doctor(&path, &[]);
    let line = out
        .lines()
        .find(|l| l.contains(" target "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.starts_with(&format!(
            "[warning] upstream app target {closed}: cannot connect: "
        )),
        "{line}"
    );
    assert!(!out.contains("upstream upstream"), "{out}");
}

#[test]
fn a_fast_open_listener_has_the_kernels_fast_open_setting_checked() {
    let origin = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = TempDir::new("doctor");
    let target = origin.local_addr().unwrap().to_string();
    let plain = dir.file(
        "plain.toml",
        &config(&listener("web", "127.0.0.1:0"), &target),
    );
    let (_, report) = doctor_json(&plain);
    let subject = |f: &&&Value| f["subject"] == "net.ipv4.tcp_fastopen";
    assert!(
        !findings(&report, "kernel").iter().any(|f| subject(&f)),
        "{report:#}"
    );
    let tfo = format!("{}fast_open = 16\n", listener("web", "127.0.0.1:0"));
    let path = dir.file("tfo.toml", &config(&tfo, &target));
    let (_, report) = doctor_json(&path);
    let kernel = findings(&report, "kernel");
    let Some(finding) = kernel.iter().find(subject) else {
        panic!("no net.ipv4.tcp_fastopen finding: {report:#}");
    };
    // Readable on Linux: a warning naming the fix when the server bit (2) is off, else ok.
    match std::fs::read_to_string("/proc/sys/net/ipv4/tcp_fastopen") {
        Ok(v) if v.trim().parse::<u64>().unwrap() & 2 == 0 => {
            assert_eq!(finding["severity"], "warning", "{report:#}");
            assert!(
                finding["message"].as_str().unwrap().contains("no effect"),
                "{report:#}"
            );
        }
        Ok(_) => assert_eq!(finding["severity"], "ok", "{report:#}"),
        Err(_) => assert_eq!(finding["severity"], "info", "{report:#}"),
    }
}

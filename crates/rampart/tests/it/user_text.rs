//! What users read carries no Rust debug text: `rampart check` and `rampart doctor` on good and
//! broken configs, and a running gateway's log lines (an upstream failure, a refused reload),
//! are scanned for `Some(`, `None`, `Ok(`, `Err(`, debug-escaped quotes and format remnants.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart_testkit::free_port_closed;

use crate::cli::run_cli;
use crate::support::TempDir;

/// Bound on the gateway starting and on each log line showing up.
const WAIT: Duration = Duration::from_secs(30);

/// Text that only Rust's `{:?}` (or a forgotten placeholder) writes.
const DEBUG_TEXT: [&str; 7] = ["Some(", "None", "Ok(", "Err(", "\\\"", "{:?}", "{}"];

fn assert_plain(what: &str, text: &str) {
    for needle in DEBUG_TEXT {
        assert!(!text.contains(needle), "{what} shows {needle:?}:\n{text}");
    }
}

fn gateway_config(bind: &str, down: &str) -> String {
    format!(
        "[log]\nlevel = \"info\"\n\n[[listeners]]\nname = \"web\"\nbind = \"{bind}\"\n\n\
         [[upstreams]]\nname = \"app\"\ntargets = [\"{down}\"]\n\n\
         [[routes]]\nname = \"main\"\nupstream = \"app\"\n"
    )
}

const BROKEN: [&str; 5] = [
    // Wrong types, a misspelled key and an unknown reference at once.
    "[server]\nworkers = \"four\"\n\n[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\n\n\
     [[routes]]\nname = \"a\"\npriority = \"high\"\nmethods = \"GET\"\nupstrem = \"x\"\nupstream = \"nowhere\"\n",
    // Not TOML.
    "[[listeners]\nname = \"web\"\n",
    // An unknown section and a value of the wrong kind.
    "[sever]\nworkers = 2\n\n[[listeners]]\nname = \"web\"\nbind = 8080\n",
    // A client_cert that requires nothing, a header predicate of the wrong shape.
    "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\n\n[[routes]]\nname = \"r\"\nrespond = { body = \"x\" }\nclient_cert = { }\nheaders = [\"x-env\"]\n",
    // Names with quotes in them.
    "[[listeners]]\nname = \"we\\\"b\"\nbind = \"127.0.0.1:0\"\n\n[[routes]]\nname = \"r\"\nupstream = \"a\\\"b\"\n",
];

#[test]
fn check_and_doctor_write_no_debug_text() {
    let dir = TempDir::new("user-text");
    let down = free_port_closed().unwrap().to_string();
    let good = dir.file("good.toml", &gateway_config("127.0.0.1:0", &down));
    let mut files = vec![good];
    for (i, text) in BROKEN.iter().enumerate() {
        files.push(dir.file(&format!("broken{i}.toml"), text));
    }
    for (i, file) in files.iter().enumerate() {
        let path = file.to_str().unwrap();
        let check = run_cli(&["check", "-c", path]);
        assert_eq!(check.status.success(), i == 0, "{}", check.stderr);
        let doctor = run_cli(&["doctor", "-c", path]);
        // A name with a quote in it is the user's text, shown as written.
        let (check_text, doctor_text) = if i == 5 {
            (
                check.stderr.replace(r#"we\"b"#, "").replace(r#"a\"b"#, ""),
                doctor.stdout.replace(r#"we\"b"#, "").replace(r#"a\"b"#, ""),
            )
        } else {
            (check.stderr.clone(), doctor.stdout.clone())
        };
        assert_plain(&format!("check {path}"), &(check.stdout + &check_text));
        assert_plain(&format!("doctor {path}"), &doctor_text);
    }
}

/// Reads `file` until it contains `needle`, within [`WAIT`].
fn wait_for(file: &Path, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn gateway_log_lines_write_no_debug_text() {
    let dir = TempDir::new("user-text");
    let bind = free_port_closed().unwrap();
    let down = free_port_closed().unwrap().to_string();
    let config = dir.file("gw.toml", &gateway_config(&bind.to_string(), &down));
    let stderr_path = dir.0.join("stderr.log");
    let stdout_path = dir.0.join("stdout.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["run", "-c", config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        wait_for(&stderr_path, "listening on");
        // An upstream failure on route `main`.
        let mut s = TcpStream::connect(bind).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(b"GET /x HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
        wait_for(&stderr_path, "upstream failure");
        // A reload that is refused.
        std::fs::write(&config, "[[listeners]]\nname = 7\n").unwrap();
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let log = wait_for(&stderr_path, "reload refused");
        let line = log
            .lines()
            .find(|l| l.contains("upstream failure"))
            .unwrap();
        assert!(line.contains("main") && line.contains("app"), "{line}");
        let access = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        (log, access)
    });
    let _ = child.kill();
    let _ = child.wait();
    let (log, access) = result.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert_plain("the diagnostic log", &log);
    assert_plain("the access log", &access);
}

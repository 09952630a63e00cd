//! The `rampart` binary: version and help, `config`, `check`, `explain`, `run` with a graceful
//! SIGTERM, `proxy`, and clear failures. Every child is killed if a test fails, and every wait
//! is bounded.

mod check;
mod explain;
mod info;
mod run;

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Bound on a short command (`check`, `explain`, ...), generous for a loaded machine.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

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

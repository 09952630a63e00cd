//! [`TestGateway`]: a real Rampart data plane started in-process from a TOML config, on
//! loopback ports chosen by the kernel.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rampart_admin::AdminServer;
use rampart_server::{ServerHandle, StageRegistry, StartOptions};

/// A running gateway, with its admin API when the config enables `[admin]`; shut down
/// (drained and joined) on drop.
pub struct TestGateway {
    handle: Option<ServerHandle>,
    admin: Option<AdminServer>,
    access_log: Option<PathBuf>,
    config_file: Option<PathBuf>,
    _dir: Option<TempDir>,
}

/// A builder for [`TestGateway`].
#[derive(Debug, Clone)]
pub struct GatewayBuilder {
    config: String,
    access_log: bool,
    config_file: bool,
    workers: usize,
    stages: StageRegistry,
}

impl TestGateway {
    /// Starts from a config body holding `[[listeners]]`, `[[upstreams]]`, `[[routes]]` and any
    /// other sections. `{origin}`-style placeholders are the caller's business (use `format!`).
    /// Unless the config has a `[server]` section, one worker is used.
    #[must_use]
    pub fn builder(config: impl Into<String>) -> GatewayBuilder {
        GatewayBuilder {
            config: config.into(),
            access_log: false,
            config_file: false,
            workers: 1,
            stages: StageRegistry::builtin(),
        }
    }

    /// The bound address of listener `name`.
    ///
    /// # Panics
    /// When there is no such listener.
    #[must_use]
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.handle
            .as_ref()
            .and_then(|h| h.addr(name))
            .unwrap_or_else(|| panic!("no listener {name:?}"))
    }

    /// `http://ADDR{path}` on listener `name`.
    #[must_use]
    pub fn url(&self, name: &str, path: &str) -> String {
        format!("http://{}{path}", self.addr(name))
    }

    /// The access log lines written so far (needs [`GatewayBuilder::access_log`]); waits up to
    /// 5 s for at least `min` lines, since the log is written by a background thread.
    #[must_use]
    pub fn access_log_lines(&self, min: usize) -> Vec<String> {
        let Some(path) = &self.access_log else {
            return Vec::new();
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let lines: Vec<String> = std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect();
            if lines.len() >= min || std::time::Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The access log as parsed JSON objects (see [`Self::access_log_lines`]).
    #[must_use]
    pub fn access_log_json(&self, min: usize) -> Vec<serde_json::Value> {
        self.access_log_lines(min)
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The gateway's TLS counters.
    ///
    /// # Panics
    /// After shutdown.
    #[must_use]
    pub fn tls_stats(&self) -> rampart_server::TlsStatsSnapshot {
        self.handle
            .as_ref()
            .map(rampart_server::ServerHandle::tls_stats)
            .unwrap_or_else(|| panic!("gateway is shut down"))
    }

    /// The running server (reload, metrics, TLS counters).
    ///
    /// # Panics
    /// After shutdown.
    #[must_use]
    pub fn handle(&self) -> &ServerHandle {
        self.handle
            .as_ref()
            .unwrap_or_else(|| panic!("gateway is shut down"))
    }

    /// `http://ADMIN{path}` on the admin API (needs `[admin]` in the config).
    ///
    /// # Panics
    /// When the config has no admin API.
    #[must_use]
    pub fn admin_url(&self, path: &str) -> String {
        let addr = self
            .admin
            .as_ref()
            .map(AdminServer::addr)
            .unwrap_or_else(|| panic!("no [admin] section"));
        format!("http://{addr}{path}")
    }

    /// The config file the gateway was started from (see [`GatewayBuilder::config_file`]);
    /// rewrite it and call reload to change the config.
    ///
    /// # Panics
    /// When the gateway was started from text alone.
    #[must_use]
    pub fn config_path(&self) -> &std::path::Path {
        self.config_file
            .as_deref()
            .unwrap_or_else(|| panic!("not started from a config file"))
    }

    /// Stops the admin API, then stops accepting, drains and joins the workers.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        drop(self.admin.take());
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.stop();
    }
}

impl GatewayBuilder {
    /// Writes a JSON access log to a temporary file readable with
    /// [`TestGateway::access_log_lines`].
    #[must_use]
    pub const fn access_log(mut self) -> Self {
        self.access_log = true;
        self
    }

    /// Writes the config to a temporary file and starts from it, so that `POST /reload` and
    /// [`ServerHandle::reload`] reload that file ([`TestGateway::config_path`]).
    #[must_use]
    pub const fn config_file(mut self) -> Self {
        self.config_file = true;
        self
    }

    /// Number of workers (default 1) when the config has no `[server]` section.
    #[must_use]
    pub const fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Builds routes with `stages` instead of Rampart's built-in stages alone (to test a stage
    /// defined outside Rampart).
    #[must_use]
    pub fn stages(mut self, stages: StageRegistry) -> Self {
        self.stages = stages;
        self
    }

    /// Compiles the config and starts the gateway.
    ///
    /// # Panics
    /// When the config is refused or a listener cannot be bound (tests want to fail loudly).
    #[must_use]
    pub fn start(self) -> TestGateway {
        let mut text = self.config;
        if !text.contains("[server]") {
            text = format!(
                "[server]\nworkers = {}\ndrain_timeout = \"5s\"\n\n{text}",
                self.workers
            );
        }
        let (dir, access_log) = if self.access_log && !text.contains("[access_log]") {
            let dir = TempDir::new();
            let path = dir.0.join("access.log");
            text = format!(
                "[access_log]\nenabled = true\nformat = \"json\"\npath = {:?}\n\n{text}",
                path.display().to_string()
            );
            (Some(dir), Some(path))
        } else if !text.contains("[access_log]") {
            text = format!("[access_log]\nenabled = false\n\n{text}");
            (None, None)
        } else {
            (None, None)
        };
        let config = rampart_config::load_str(&text, "test.toml")
            .unwrap_or_else(|d| panic!("config refused:\n{d}\n---\n{text}"));
        let (dir, config_file) = if self.config_file {
            let dir = dir.unwrap_or_else(TempDir::new);
            let path = dir.0.join("rampart.toml");
            std::fs::write(&path, &text)
                .unwrap_or_else(|e| panic!("config file {}: {e}", path.display()));
            (Some(dir), Some(path))
        } else {
            (dir, None)
        };
        let options = StartOptions {
            config_path: config_file.clone(),
            stages: self.stages,
            ..StartOptions::default()
        };
        let handle = rampart_server::start_with(&config, options)
            .unwrap_or_else(|e| panic!("gateway did not start: {e}"));
        let admin = rampart_admin::start(&config, &handle, &mut Vec::new())
            .unwrap_or_else(|e| panic!("admin API did not start: {e}"));
        TestGateway {
            handle: Some(handle),
            admin,
            access_log,
            config_file,
            _dir: dir,
        }
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("rampart-test-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("temp dir {}: {e}", path.display()));
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

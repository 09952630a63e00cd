//! Upstream discovery through a real DNS server (`dnsmasq` on loopback, installed by
//! `scripts/test`) and a watched target file, with records and files changed while traffic
//! flows: no request may fail.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rampart_testkit::{HttpOrigin, TestGateway, free_port_closed};

use crate::support::{WAIT, client};

/// Most requests one traffic loop sends.
const MAX_REQUESTS: u64 = 50_000;

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "rampart-discovery-{tag}-{}-{}",
            std::process::id(),
            free_port_closed().unwrap().port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `text` to `name` atomically (a rename, as orchestrators do).
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `dnsmasq` child answering from a hosts file and `--srv-host` records on a loopback port.
struct Dnsmasq {
    child: Option<Child>,
    port: u16,
    hosts: PathBuf,
    _dir: Scratch,
}

fn dnsmasq_binary() -> &'static str {
    if Path::new("/usr/sbin/dnsmasq").exists() {
        "/usr/sbin/dnsmasq"
    } else {
        "dnsmasq"
    }
}

impl Dnsmasq {
    fn start(hosts: &str, records: &[String]) -> Self {
        let dir = Scratch::new("dns");
        let hosts = dir.write("hosts", hosts);
        let port = free_port_closed().unwrap().port();
        let mut dns = Self {
            child: None,
            port,
            hosts,
            _dir: dir,
        };
        dns.spawn(records);
        dns
    }

    fn spawn(&mut self, records: &[String]) {
        let child = Command::new(dnsmasq_binary())
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--user=root",
                "--pid-file=",
                "--local-ttl=1",
            ])
            .arg(format!("--port={}", self.port))
            .arg(format!("--addn-hosts={}", self.hosts.display()))
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run dnsmasq ({e}): install it, for example with ./scripts/test")
            });
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not come up on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Replaces the hosts file and makes dnsmasq re-read it (SIGHUP).
    fn set_hosts(&self, text: &str) {
        let dir = self.hosts.parent().unwrap();
        let tmp = dir.join(".hosts.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.hosts).unwrap();
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(status.success());
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same port with other SRV records.
    fn restart(&mut self, records: &[String]) {
        self.stop();
        self.spawn(records);
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Requests sent one after another (two loops) until stopped; counts answers and failures.
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    fn start(url: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let tasks = (0..2)
            .map(|_| {
                let (stop, ok, failed, url) = (
                    Arc::clone(&stop),
                    Arc::clone(&ok),
                    Arc::clone(&failed),
                    url.to_owned(),
                );
                tokio::spawn(async move {
                    let client = client();
                    let deadline = Instant::now() + Duration::from_secs(120);
                    while !stop.load(Ordering::Relaxed)
                        && ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed)
                            < MAX_REQUESTS
                        && Instant::now() < deadline
                    {
                        match client.get(&url).send().await {
                            Ok(r) if r.status() == 200 => {
                                let _ = r.bytes().await;
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => {
                                eprintln!("traffic: status {}", r.status());
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                eprintln!("traffic: {e}");
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits until `n` more requests have been answered.
    async fn pass(&self, n: u64) {
        let target = self.ok() + n;
        wait_until(&format!("{n} more answered requests"), || {
            self.ok() >= target
        })
        .await;
    }

    /// Stops the loops; returns (answered, failed).
    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let Self {
            ok, failed, tasks, ..
        } = self;
        for t in tasks {
            t.await.unwrap();
        }
        (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn config(upstream_extra: &str, discovery: &str) -> String {
    format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n[[upstreams]]\nname = \"u\"\n{upstream_extra}\n[upstreams.discovery]\n{discovery}\n\n[[routes]]\nname = \"all\"\nupstream = \"u\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_a_records_are_followed_while_traffic_flows() {
    let a = HttpOrigin::start().await.unwrap();
    let port = a.addr().port();
    let b = HttpOrigin::start_at(SocketAddr::from(([127, 0, 0, 2], port)))
        .await
        .unwrap();
    let c = HttpOrigin::start_at(SocketAddr::from(([127, 0, 0, 3], port)))
        .await
        .unwrap();
    let mut dns = Dnsmasq::start("127.0.0.1 api.test\n127.0.0.2 api.test\n", &[]);
    let gw = TestGateway::builder(config(
        "balance = \"round_robin\"",
        &format!(
            "dns = \"api.test:{port}\"\nresolvers = [\"{}\"]\nmin_ttl = \"100ms\"\nmax_ttl = \"1s\"\nfamily = \"ipv4\"",
            dns.addr()
        ),
    ))
    .start();
    let traffic = Traffic::start(&gw.url("public", "/"));
    wait_until("both first targets to serve", || {
        a.requests() > 0 && b.requests() > 0
    })
    .await;
    assert_eq!(c.requests(), 0, "127.0.0.3 is not in DNS yet");

    dns.set_hosts("127.0.0.2 api.test\n127.0.0.3 api.test\n");
    wait_until("the new address to serve", || c.requests() > 0).await;
    traffic.pass(20).await;
    let a_before = a.requests();
    traffic.pass(100).await;
    assert_eq!(
        a.requests(),
        a_before,
        "127.0.0.1 left DNS and gets nothing"
    );

    // An empty answer and a dead DNS server keep the last targets in service.
    dns.set_hosts("");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    dns.stop();
    let (b_before, c_before) = (b.requests(), c.requests());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    traffic.pass(50).await;
    assert!(b.requests() > b_before && c.requests() > c_before);

    let (ok, failed) = traffic.finish().await;
    assert!(ok > 200, "{ok} requests answered");
    assert_eq!(
        failed, 0,
        "no request may fail while DNS changes ({ok} answered)"
    );
}

fn srv(port: u16, priority: u16, weight: u16) -> String {
    format!("--srv-host=_http._tcp.svc.test,app.test,{port},{priority},{weight}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_give_ports_weights_and_priorities() {
    let o1 = HttpOrigin::start().await.unwrap();
    let o2 = HttpOrigin::start().await.unwrap();
    let o3 = HttpOrigin::start().await.unwrap();
    let o4 = HttpOrigin::start().await.unwrap();
    let host = "--host-record=app.test,127.0.0.1".to_owned();
    let mut dns = Dnsmasq::start(
        "",
        &[
            host.clone(),
            srv(o1.addr().port(), 10, 30),
            srv(o2.addr().port(), 10, 10),
            srv(o3.addr().port(), 20, 10),
        ],
    );
    let gw = TestGateway::builder(config(
        "balance = \"weighted_round_robin\"\n[upstreams.health_check]\nkind = \"tcp\"\ninterval = \"100ms\"\nunhealthy_threshold = 1\nhealthy_threshold = 1",
        &format!(
            "srv = \"_http._tcp.svc.test\"\nresolvers = [\"{}\"]\nmin_ttl = \"100ms\"\nmax_ttl = \"1s\"",
            dns.addr()
        ),
    ))
    .start();
    let client = client();
    // The first request waits for the first answer; 40 picks are one whole weighted cycle.
    for _ in 0..40 {
        let r = client.get(gw.url("public", "/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        (o1.requests(), o2.requests(), o3.requests()),
        (30, 10, 0),
        "weights 30:10 in priority 10; priority 20 is a backup"
    );

    // The whole first tier goes away: the backup tier takes over once the checks see it.
    drop(o1);
    drop(o2);
    let mut served = 0;
    let deadline = Instant::now() + WAIT;
    while served < 20 {
        assert!(Instant::now() < deadline, "the backup tier never took over");
        let before = o3.requests();
        if let Ok(r) = client.get(gw.url("public", "/")).send().await
            && r.status() == 200
            && o3.requests() > before
        {
            served += 1;
        }
    }

    // New records while traffic flows: no request fails.
    let traffic = Traffic::start(&gw.url("public", "/"));
    traffic.pass(20).await;
    dns.restart(&[
        host,
        srv(o3.addr().port(), 10, 10),
        srv(o4.addr().port(), 10, 10),
    ]);
    wait_until("the added SRV target to serve", || o4.requests() > 0).await;
    traffic.pass(50).await;
    let (ok, failed) = traffic.finish().await;
    assert_eq!(
        failed, 0,
        "no request may fail while SRV records change ({ok} answered)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_target_file_is_followed_and_a_broken_one_ignored() {
    let a = HttpOrigin::start().await.unwrap();
    let b = HttpOrigin::start().await.unwrap();
    let dir = Scratch::new("file");
    let list = |targets: &[&HttpOrigin]| {
        let quoted: Vec<String> = targets
            .iter()
            .map(|o| format!("\"{}\"", o.addr()))
            .collect();
        format!("{{\"targets\": [{}]}}", quoted.join(", "))
    };
    let path = dir.write("targets.json", &list(&[&a]));
    // Without slow start, a target that joins takes every other request at once, so the
    // request counts below do not depend on how fast its share ramps up.
    let gw = TestGateway::builder(config(
        "balance = \"round_robin\"\n[upstreams.outlier]\nslow_start = \"0s\"",
        &format!("file = \"{}\"", path.display()),
    ))
    .start();
    let traffic = Traffic::start(&gw.url("public", "/"));
    traffic.pass(20).await;
    assert!(a.requests() >= 20 && b.requests() == 0);

    dir.write("targets.json", &list(&[&a, &b]));
    wait_until("the added target to serve", || b.requests() > 0).await;

    dir.write("targets.json", "{\"targets\": [\"127.0.0.1\"]");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (a_before, b_before) = (a.requests(), b.requests());
    traffic.pass(50).await;
    assert!(
        a.requests() > a_before && b.requests() > b_before,
        "a broken file keeps the last list"
    );

    dir.write("targets.json", &list(&[&b]));
    // The removed target has gone quiet once it served nothing over 20 answered requests.
    let deadline = Instant::now() + WAIT;
    let a_final = loop {
        let before = a.requests();
        traffic.pass(20).await;
        if a.requests() == before {
            break before;
        }
        assert!(
            Instant::now() < deadline,
            "the removed target never went quiet"
        );
    };
    traffic.pass(50).await;
    assert_eq!(a.requests(), a_final);

    let (ok, failed) = traffic.finish().await;
    assert_eq!(
        failed, 0,
        "no request may fail while the file changes ({ok} answered)"
    );
}

#[test]
fn check_names_a_missing_target_file() {
    let dir = Scratch::new("check");
    let missing = dir.0.join("nowhere.toml");
    let cfg = dir.write(
        "rampart.toml",
        &config("", &format!("file = \"{}\"", missing.display())),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["check", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nowhere.toml") && stderr.contains("discovery.file"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_never_resolves_gets_a_503_not_a_hang() {
    let dns = Dnsmasq::start("", &[]);
    let gw = TestGateway::builder(config(
        "connect_timeout = \"10s\"",
        &format!(
            "dns = \"missing.test:80\"\nresolvers = [\"{}\"]\nfamily = \"ipv4\"",
            dns.addr()
        ),
    ))
    .access_log()
    .start();
    let r = client().get(gw.url("public", "/")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let line = &gw.access_log_json(1)[0];
    assert_eq!(line["reason"], "no_upstream_target", "{line}");
}

//! Decompression bombs against the real binary: 10 MB and 1 GiB of zeros gzipped (made here,
//! streaming, never held whole) get 413 `decompression_limit`, and the gateway's peak resident
//! memory (`VmHWM` of its own process) grows by far less than one bomb's inflated size.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use rampart_testkit::{RecordingOrigin, free_port_closed};

use super::{SAMPLE, WAIT, gzip, post};
use crate::support::TempDir;

/// Most the gateway's peak resident memory may grow while refusing the bombs. Inflating one
/// of them whole would take 10 MB or 1 GiB; the caps keep each at about 100 KiB.
const MAX_GROWTH_KIB: u64 = 32 * 1024;

/// `mib` MiB of zeros gzipped, fed to the encoder 1 MiB at a time.
fn zeros_gzipped(mib: usize) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..mib {
        e.write_all(&zeros).unwrap();
    }
    e.finish().unwrap()
}

/// The gateway binary, killed on drop.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A field of `/proc/PID/status` in KiB (`VmHWM`, `VmRSS`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the gateway did not listen on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gzip_bombs_get_413_and_the_gateway_memory_stays_bounded() {
    // Made while the gateway starts: the 1 GiB one takes a few seconds of CPU.
    let big = tokio::task::spawn_blocking(|| zeros_gzipped(1024));
    let small = zeros_gzipped(10);
    let origin = RecordingOrigin::start().await.unwrap();
    let addr = free_port_closed().unwrap();
    let dir = TempDir::new("decompress");
    let config = dir.file(
        "rampart.toml",
        &format!(
            r#"
[server]
workers = 2

[access_log]
enabled = false

[[listeners]]
name = "public"
bind = "{addr}"

[[upstreams]]
name = "api"
targets = ["{}"]

[[routes]]
name = "inflating"
path_prefix = "/"
upstream = "api"
decompress = true
"#,
            origin.addr()
        ),
    );
    let gateway = Gateway(
        Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["run", "-c"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = gateway.0.id();
    wait_listening(addr).await;
    // Warm up: every worker has served decompressed requests before the baseline.
    for _ in 0..20 {
        let resp = post(addr, "/items", "gzip", gzip(SAMPLE)).await;
        assert_eq!(resp.status, 200);
    }
    let before = status_kib(pid, "VmHWM");
    let big = big.await.unwrap();
    eprintln!(
        "bombs: 10 MiB of zeros in {} bytes, 1 GiB in {} bytes of gzip",
        small.len(),
        big.len()
    );
    let resp = post(addr, "/items", "gzip", small).await;
    assert_eq!(resp.status, 413);
    // Several 1 GiB bombs at once.
    let bombs: Vec<_> = (0..4)
        .map(|_| tokio::spawn(post(addr, "/items", "gzip", big.clone())))
        .collect();
    for bomb in bombs {
        assert_eq!(bomb.await.unwrap().status, 413);
    }
    let after = status_kib(pid, "VmHWM");
    eprintln!(
        "gateway VmHWM: {before} KiB before the bombs, {after} KiB after; VmRSS now {} KiB",
        status_kib(pid, "VmRSS")
    );
    assert!(
        after.saturating_sub(before) < MAX_GROWTH_KIB,
        "peak memory grew from {before} KiB to {after} KiB"
    );
    assert_eq!(origin.requests().len(), 20, "no bomb reached the origin");
}

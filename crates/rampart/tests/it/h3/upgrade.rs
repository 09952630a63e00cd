//! The binary upgrade with HTTP/3, on the real binary: the UDP socket goes to the new process
//! with the TCP ones, a request in flight on the old process finishes there, and new QUIC
//! connections are served by the new process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rampart_testkit::{HttpOrigin, TestPki, free_port_closed, reqwest};
use serde_json::Value;

use super::client::{H3Client, WAIT, request};

/// The first process and, once known, its successor: both stopped when the test ends.
struct Procs {
    first: Child,
    successor: Option<i32>,
    dir: PathBuf,
}

impl Drop for Procs {
    fn drop(&mut self) {
        let _ = self.first.kill();
        let _ = self.first.wait();
        if let Some(pid) = self.successor.and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `/status` of the admin API once it answers with a pid other than `not` (bounded).
async fn status(client: &reqwest::Client, admin: &str, not: Option<u64>) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Ok(resp)) = tokio::time::timeout(
            Duration::from_secs(2),
            client.get(format!("http://{admin}/status")).send(),
        )
        .await
            && let Ok(text) = resp.text().await
            && let Ok(v) = serde_json::from_str::<Value>(&text)
            && v["pid"].as_u64().is_some()
            && v["pid"].as_u64() != not
        {
            return v;
        }
        assert!(Instant::now() < deadline, "admin API did not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_upgrade_hands_the_udp_socket_over_and_lets_old_requests_finish() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let cert = pki.server("h3", &["h3.test"]);
    let dir = std::env::temp_dir().join(format!("rampart-h3-upgrade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let listen = free_port_closed().unwrap();
    let admin = free_port_closed().unwrap().to_string();
    let path = dir.join("rampart.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nworkers = 2\ndrain_timeout = \"10s\"\n\n[log]\nlevel = \"warn\"\n\n\
             [access_log]\nenabled = false\n\n[admin]\nlisten = \"{admin}\"\n\n\
             [[listeners]]\nname = \"h3\"\nbind = \"{listen}\"\n[listeners.http3]\n\
             [listeners.tls]\n[[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\n\
             [[upstreams]]\nname = \"origin\"\ntargets = [\"{}\"]\n\n\
             [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
            cert.cert,
            cert.key,
            origin.addr()
        ),
    )
    .unwrap();
    let first = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["run", "-c"])
        .arg(&path)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut procs = Procs {
        first,
        successor: None,
        dir,
    };
    let http = reqwest::Client::new();
    let old = status(&http, &admin, None).await;
    let old_pid = old["pid"].as_u64();
    let mut client = H3Client::connect(listen, &pki, "h3.test").await;
    assert_eq!(client.get("h3.test", "/before").await.status(), 200);
    let mut slow = client
        .send
        .send_request(request("GET", "h3.test", "/delay/1500"))
        .await
        .unwrap();
    slow.finish().await.unwrap();
    let resp = http
        .post(format!("http://{admin}/upgrade"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let new = status(&http, &admin, old_pid).await;
    procs.successor = new["pid"].as_u64().and_then(|p| i32::try_from(p).ok());
    let head = tokio::time::timeout(WAIT, slow.recv_response())
        .await
        .expect("the in-flight request finished on the old process")
        .unwrap();
    assert_eq!(head.status(), 200);
    client.close().await;
    // New connections reach the new process (the old one ignores them while it drains).
    let deadline = Instant::now() + WAIT;
    let mut fresh = loop {
        let attempt = H3Client::connect_with(
            super::client::endpoint(super::client::client_crypto(&pki)),
            listen,
            "h3.test",
        )
        .await;
        match attempt {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "no new connection served: {e}"),
        }
    };
    assert_eq!(fresh.get("h3.test", "/after").await.status(), 200);
    fresh.close().await;
    let _ = procs.first.wait();
}

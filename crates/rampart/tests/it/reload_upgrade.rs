//! The proof of "nothing is lost", with the real binary: under continuous load, 50 reloads
//! through `POST /reload` (alternately adding and removing an unrelated route) and 3 binary
//! upgrades through `POST /upgrade` give zero failed requests and zero reset connections, and
//! a WebSocket opened before the reloads still works after them. Plus SIGHUP and a broken
//! config file on the real process.
//!
//! Every loop and wait is bounded; nothing asserts on wall-clock durations.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rampart_testkit::reqwest;
use rampart_testkit::tokio_tungstenite::connect_async;
use rampart_testkit::tokio_tungstenite::tungstenite::Message;
use rampart_testkit::{HttpOrigin, WsOrigin, free_port_closed};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// Stops the process serving now (after upgrades, no longer our child) even when the test
/// fails half-way.
struct Successor(Option<u64>);

impl Drop for Successor {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok())
            && let Some(pid) = rustix::process::Pid::from_raw(pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
}

struct Proc {
    child: Child,
    dir: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_config(path: &Path, listen: &str, admin: &str, origin: &str, ws: &str, variant: usize) {
    write_config_with(path, listen, admin, (origin, ws), variant, "");
}

fn write_config_with(
    path: &Path,
    listen: &str,
    admin: &str,
    (origin, ws): (&str, &str),
    variant: usize,
    extra: &str,
) {
    let unrelated = if variant % 2 == 1 {
        "[[routes]]\nname = \"unrelated\"\npath = \"/unrelated\"\nrespond = { status = 200, body = \"u\" }\n"
    } else {
        ""
    };
    let text = format!(
        "[server]\nworkers = 2\ndrain_timeout = \"10s\"\n\n[log]\nlevel = \"warn\"\n\n[access_log]\nenabled = false\n\n\
         {extra}[admin]\nlisten = \"{admin}\"\n\n\
         [[listeners]]\nname = \"public\"\nbind = \"{listen}\"\nhealth_endpoints = true\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n\n\
         [[upstreams]]\nname = \"ws\"\ntargets = [\"{ws}\"]\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"origin\"\n\n\
         [[routes]]\nname = \"chat\"\npath = \"/chat\"\nupstream = \"ws\"\n\n{unrelated}"
    );
    // Written beside and renamed, as deployment tools do: a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn admin_json(client: &reqwest::Client, url: String, post: bool) -> (u16, Value) {
    let req = if post {
        client.post(url)
    } else {
        client.get(url)
    };
    let resp = tokio::time::timeout(WAIT, req.send())
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or(Value::Null),
    )
}

/// Waits until the admin API answers `/status` with a pid other than `not` (bounded).
async fn wait_status(client: &reqwest::Client, admin: &str, not: Option<u64>) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Ok(resp)) = tokio::time::timeout(
            Duration::from_secs(2),
            client.get(format!("http://{admin}/status")).send(),
        )
        .await
            && let Ok(text) = resp.text().await
            && let Ok(v) = serde_json::from_str::<Value>(&text)
            && v["pid"].as_u64() != not
        {
            return v;
        }
        assert!(Instant::now() < deadline, "admin API did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn(config: &Path, dir: PathBuf) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["run", "-c"])
        .arg(config)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Proc { child, dir }
}

/// Load on fresh connections (one request each: every accept goes through whichever process
/// owns the sockets at that moment), on one keep-alive client, and on HTTP/2 connections
/// (hyper's client, which moves to a new connection on GOAWAY); counts outcomes.
#[derive(Default)]
struct Load {
    ok: AtomicU64,
    /// Of `ok`, the requests answered over HTTP/2.
    h2_ok: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

/// How a load driver connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connect {
    /// A new HTTP/1.1 connection per request.
    Fresh,
    /// One HTTP/1.1 keep-alive connection at a time.
    KeepAlive,
    /// HTTP/2 with prior knowledge, on the given client.
    Http2,
}

fn load_client(connect: Connect) -> reqwest::Client {
    let builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    match connect {
        Connect::Fresh => builder.pool_max_idle_per_host(0),
        Connect::KeepAlive => builder,
        Connect::Http2 => builder.http2_prior_knowledge(),
    }
    .build()
    .unwrap()
}

async fn drive(load: Arc<Load>, url: String, client: reqwest::Client, connect: Connect) {
    let mut n = 0u64;
    while !load.stop.load(Ordering::Relaxed) && n < 1_000_000 {
        n += 1;
        match client.get(&url).send().await {
            Ok(r) => {
                let status = r.status();
                let version = r.version();
                match r.bytes().await {
                    Ok(_) if status == 200 => {
                        load.ok.fetch_add(1, Ordering::Relaxed);
                        if version == reqwest::Version::HTTP_2 {
                            load.h2_ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    other => {
                        eprintln!(
                            "failed request ({connect:?}): status {status}, body {:?}",
                            other.err()
                        );
                        load.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(e) => {
                eprintln!("failed request ({connect:?}): {e:?}");
                load.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_reloads_and_three_upgrades_under_load_lose_nothing() {
    let origin = HttpOrigin::start().await.unwrap();
    let ws = WsOrigin::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("rampart-proof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rampart.toml");
    let listen = free_port_closed().unwrap().to_string();
    let admin = free_port_closed().unwrap().to_string();
    let (o, w) = (origin.addr().to_string(), ws.addr().to_string());
    write_config(&path, &listen, &admin, &o, &w, 0);
    let _first = spawn(&path, dir.clone());
    let client = reqwest::Client::new();
    let status = wait_status(&client, &admin, None).await;
    assert_eq!(status["generation"], 1);

    let (mut chat, _) = tokio::time::timeout(WAIT, connect_async(format!("ws://{listen}/chat")))
        .await
        .unwrap()
        .unwrap();
    let load = Arc::new(Load::default());
    let url = format!("http://{listen}/api/load");
    let mut drivers = Vec::new();
    for connect in [
        Connect::KeepAlive,
        Connect::Fresh,
        Connect::Fresh,
        Connect::Fresh,
    ] {
        let client = load_client(connect);
        drivers.push(tokio::spawn(drive(
            load.clone(),
            url.clone(),
            client,
            connect,
        )));
    }
    // Two drivers share one HTTP/2 client: their requests are concurrent streams on one
    // connection, which each GOAWAY of a draining process moves to the next process.
    let h2 = load_client(Connect::Http2);
    for _ in 0..2 {
        let client = h2.clone();
        drivers.push(tokio::spawn(drive(
            load.clone(),
            url.clone(),
            client,
            Connect::Http2,
        )));
    }

    for i in 1..=50 {
        write_config(&path, &listen, &admin, &o, &w, i);
        let (code, body) = admin_json(&client, format!("http://{admin}/reload"), true).await;
        assert_eq!(code, 200, "reload {i}: {body}");
        assert_eq!(body["generation"], i + 1, "reload {i}");
    }
    let after_reloads = load.ok.load(Ordering::Relaxed);
    within_ws(&mut chat, "after 50 reloads").await;

    let mut pid = status["pid"].as_u64();
    let mut serving = Successor(None);
    for u in 1..=3 {
        let (code, body) = admin_json(&client, format!("http://{admin}/upgrade"), true).await;
        assert_eq!(code, 202, "upgrade {u}: {body}");
        let next = wait_status(&client, &admin, pid).await;
        assert_ne!(next["pid"].as_u64(), pid);
        pid = next["pid"].as_u64();
        serving.0 = pid;
        // Let load run on the new process before the next upgrade.
        let seen = load.ok.load(Ordering::Relaxed);
        let deadline = Instant::now() + WAIT;
        while load.ok.load(Ordering::Relaxed) < seen + 200 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    load.stop.store(true, Ordering::Relaxed);
    for d in drivers {
        tokio::time::timeout(WAIT, d).await.unwrap().unwrap();
    }
    let ok = load.ok.load(Ordering::Relaxed);
    let failed = load.failed.load(Ordering::Relaxed);
    eprintln!(
        "proof: {ok} requests ok ({after_reloads} during the 50 reloads), {failed} failed, 50 reloads, 3 upgrades"
    );
    assert_eq!(failed, 0, "{failed} requests failed out of {}", ok + failed);
    let h2_ok = load.h2_ok.load(Ordering::Relaxed);
    eprintln!("proof: {h2_ok} of them over HTTP/2");
    assert!(h2_ok > 0, "no request went over HTTP/2");
    assert!(after_reloads > 0 && ok > after_reloads);
    drop(serving);
}

async fn within_ws<S>(chat: &mut S, text: &str)
where
    S: SinkExt<Message>
        + StreamExt<Item = Result<Message, rampart_testkit::tokio_tungstenite::tungstenite::Error>>
        + Unpin,
    <S as futures_util::Sink<Message>>::Error: std::fmt::Debug,
{
    tokio::time::timeout(WAIT, chat.send(Message::text(text)))
        .await
        .unwrap()
        .unwrap();
    let echoed = tokio::time::timeout(WAIT, chat.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_file_and_a_broken_file_keeps_the_old_config() {
    let origin = HttpOrigin::start().await.unwrap();
    let ws = WsOrigin::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("rampart-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rampart.toml");
    let listen = free_port_closed().unwrap().to_string();
    let admin = free_port_closed().unwrap().to_string();
    let (o, w) = (origin.addr().to_string(), ws.addr().to_string());
    write_config(&path, &listen, &admin, &o, &w, 0);
    let proc = spawn(&path, dir.clone());
    let client = reqwest::Client::new();
    wait_status(&client, &admin, None).await;
    let unrelated = format!("http://{listen}/unrelated");
    assert_eq!(client.get(&unrelated).send().await.unwrap().status(), 404);

    write_config(&path, &listen, &admin, &o, &w, 1);
    let pid = rustix::process::Pid::from_raw(i32::try_from(proc.child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, s) = admin_json(&client, format!("http://{admin}/status"), false).await;
        if s["generation"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.get(&unrelated).send().await.unwrap().status(), 200);

    std::fs::write(&path, "[[routes]]\nname = 1\n").unwrap();
    let (code, body) = admin_json(&client, format!("http://{admin}/reload"), true).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["ok"], false);
    assert!(
        body["error"].as_str().unwrap().contains("rampart.toml"),
        "{body}"
    );
    let (_, s) = admin_json(&client, format!("http://{admin}/status"), false).await;
    assert_eq!(s["generation"], 2);
    assert_eq!(client.get(&unrelated).send().await.unwrap().status(), 200);
    let metrics = client
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("rampart_config_reloads_total{result=\"failure\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_config_file_reloads_itself_when_it_changes() {
    let origin = HttpOrigin::start().await.unwrap();
    let ws = WsOrigin::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("rampart-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rampart.toml");
    let listen = free_port_closed().unwrap().to_string();
    let admin = free_port_closed().unwrap().to_string();
    let (o, w) = (origin.addr().to_string(), ws.addr().to_string());
    let watch = "[reload]\nwatch = true\ndebounce = \"100ms\"\n\n";
    write_config_with(&path, &listen, &admin, (&o, &w), 0, watch);
    let _proc = spawn(&path, dir.clone());
    let client = reqwest::Client::new();
    wait_status(&client, &admin, None).await;
    write_config_with(&path, &listen, &admin, (&o, &w), 1, watch);
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, s) = admin_json(&client, format!("http://{admin}/status"), false).await;
        if s["generation"] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the file change was not picked up: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unrelated = format!("http://{listen}/unrelated");
    assert_eq!(client.get(&unrelated).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rampart_upgrade_replaces_the_process_by_pid() {
    let origin = HttpOrigin::start().await.unwrap();
    let ws = WsOrigin::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("rampart-cli-upgrade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rampart.toml");
    let listen = free_port_closed().unwrap().to_string();
    let admin = free_port_closed().unwrap().to_string();
    write_config(
        &path,
        &listen,
        &admin,
        &origin.addr().to_string(),
        &ws.addr().to_string(),
        0,
    );
    let mut proc = spawn(&path, dir.clone());
    let client = reqwest::Client::new();
    let before = wait_status(&client, &admin, None).await;
    let old_pid = proc.child.id();
    assert_eq!(before["pid"].as_u64(), Some(u64::from(old_pid)));
    // Reap the old process as it exits, so `rampart upgrade` sees it gone (not a zombie).
    let reaped = std::thread::spawn(move || {
        let status = proc.child.wait();
        (proc, status)
    });
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["upgrade", "--pid", &old_pid.to_string(), "--timeout", "30"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (proc, status) = reaped.join().unwrap();
    assert!(
        status.unwrap().success(),
        "the old process exits 0 after draining"
    );
    let after = wait_status(&client, &admin, Some(u64::from(old_pid))).await;
    let _serving = Successor(after["pid"].as_u64());
    let resp = client
        .get(format!("http://{listen}/api/after"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    drop(proc);
}

//! Slow clients and floods: slowloris heads, slow bodies and connection floods are cut off
//! while normal clients keep being served. Attackers connect from 127.0.0.2, normal clients
//! from 127.0.0.3, so per-IP caps can tell them apart. Every loop is bounded in count and
//! time; nothing asserts on timing.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use rampart_testkit::{RawResponse, RecordingOrigin, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Bound on every single wait in this file.
const WAIT: Duration = Duration::from_secs(15);

const ATTACKER: &str = "127.0.0.2";
const NORMAL: &str = "127.0.0.3";

fn gateway(prelude: &str, origin: SocketAddr) -> TestGateway {
    let config = format!(
        "{prelude}\n\
         [[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n\n\
         [[routes]]\nname = \"echo\"\npath_prefix = \"/echo\"\necho = true\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n"
    );
    TestGateway::builder(config).access_log().start()
}

async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = tokio::time::timeout(WAIT, socket.connect(to))
        .await
        .unwrap()
        .unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// One complete request from a well-behaved client; returns its status.
async fn normal_request(to: SocketAddr, path: &str) -> u16 {
    let mut stream = connect_from(NORMAL, to).await;
    let req = format!("GET {path} HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    RawResponse::parse(&raw).map_or(0, |r| r.status)
}

/// Reads until the server closes (bounded); returns what it sent.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("still open");
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_heads_are_cut_off_while_normal_clients_are_served() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway("[timeouts]\nheader_read = \"2s\"\n", origin.addr());
    let to = gw.addr("public");
    let mut attackers = Vec::new();
    for _ in 0..100 {
        let mut s = connect_from(ATTACKER, to).await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").await.unwrap();
        attackers.push(s);
    }
    // Keep trickling header lines while normal clients come and go.
    let trickle = tokio::spawn(async move {
        for round in 0..8 {
            for s in &mut attackers {
                let _ = s.write_all(format!("X-{round}: x\r\n").as_bytes()).await;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        attackers
    });
    for i in 0..20 {
        assert_eq!(
            normal_request(to, &format!("/n{i}")).await,
            200,
            "request {i}"
        );
    }
    let mut attackers = trickle.await.unwrap();
    for s in &mut attackers {
        let raw = until_closed(s).await;
        if !raw.is_empty() {
            assert!(
                raw.starts_with(b"HTTP/1.1 408 "),
                "{:?}",
                String::from_utf8_lossy(&raw)
            );
        }
    }
    assert_eq!(
        origin.requests().len(),
        20,
        "only the normal requests were forwarded"
    );
    let timeouts = gw
        .access_log_json(100)
        .iter()
        .filter(|l| l["reason"] == "header_read_timeout")
        .count();
    assert!(timeouts > 0, "slow heads are logged with their reason");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_slower_than_the_minimum_rate_gets_408() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        "[limits]\nmin_body_rate = \"1KiB\"\n[timeouts]\nbody_grace = \"1s\"\n",
        origin.addr(),
    );
    let to = gw.addr("public");
    let mut slow = connect_from(ATTACKER, to).await;
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    // 10 bytes every 100 ms is 100 bytes/s, far below 1 KiB/s: refused after about 1.1 s.
    for _ in 0..100 {
        if slow.write_all(&[b'x'; 10]).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if raw.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    raw.extend(until_closed(&mut slow).await);
    let resp = RawResponse::parse(&raw)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&raw)));
    assert_eq!(resp.status, 408, "{}", resp.body_text());
    assert!(
        gw.access_log_json(1)
            .iter()
            .any(|l| l["reason"] == "body_too_slow")
    );
    // A body at a normal pace is fine, and normal clients never noticed.
    let mut fast = connect_from(NORMAL, to).await;
    fast.write_all(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    fast.write_all(&[b'y'; 5000]).await.unwrap();
    let resp = RawResponse::parse(&until_closed(&mut fast).await).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(normal_request(to, "/after").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_and_global_connection_caps_close_extra_connections_at_accept() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        "[limits]\nmax_connections_per_ip = 3\nmax_connections = 6\n",
        origin.addr(),
    );
    let to = gw.addr("public");
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(ATTACKER, to).await);
    }
    // The fourth from the same address is closed before a byte is read.
    let mut extra = connect_from(ATTACKER, to).await;
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(
        until_closed(&mut extra).await.is_empty(),
        "no answer over the cap"
    );
    // Another address is still served.
    assert_eq!(normal_request(to, "/other").await, 200);
    // A freed slot is usable again (the server notices the close asynchronously).
    drop(held.pop());
    let mut served = false;
    for _ in 0..50 {
        let mut s = connect_from(ATTACKER, to).await;
        let _ = s
            .write_all(b"GET /again HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await;
        if RawResponse::parse(&until_closed(&mut s).await).is_ok_and(|r| r.status == 200) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the per-IP slot was never given back");
    // The global cap counts every address: fill it from other addresses.
    let mut others = Vec::new();
    for i in 10..14 {
        others.push(connect_from(&format!("127.0.0.{i}"), to).await);
    }
    let mut over = connect_from("127.0.0.20", to).await;
    let _ = over.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(until_closed(&mut over).await.is_empty(), "global cap");
    let forwarded = origin.requests().len();
    assert_eq!(forwarded, 2, "only /other and /again were forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowhttptest_slowloris_and_slow_body_attacks_do_not_starve_normal_clients() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        "[timeouts]\nheader_read = \"3s\"\nbody_grace = \"2s\"\n[limits]\nmin_body_rate = \"1KiB\"\n",
        origin.addr(),
    );
    let to = gw.addr("public");
    for mode in ["-H", "-B"] {
        let mut attack = std::process::Command::new("slowhttptest")
            .args([
                mode, "-c", "300", "-r", "150", "-i", "1", "-x", "8", "-s", "65536", "-l", "6",
                "-p", "2",
            ])
            .arg("-u")
            .arg(format!("http://127.0.0.1:{}/echo", to.port()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("slowhttptest is installed by scripts/test (apt-get install slowhttptest)");
        // Let the attack open its connections, then keep serving normal clients through it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for i in 0..20 {
            assert_eq!(
                normal_request(to, &format!("/during-{mode}-{i}")).await,
                200,
                "{mode} request {i}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // It stops by itself after `-l` seconds; bounded anyway.
        let mut exited = false;
        for _ in 0..400 {
            if attack.try_wait().unwrap().is_some() {
                exited = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !exited {
            let _ = attack.kill();
        }
        let output = attack.wait_with_output().unwrap();
        assert!(exited, "slowhttptest did not end by itself");
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(report.contains("slowhttptest"), "the attack ran: {report}");
    }
    let lines = gw.access_log_json(40);
    let reasons: Vec<&str> = lines.iter().filter_map(|l| l["reason"].as_str()).collect();
    assert!(
        reasons.contains(&"header_read_timeout"),
        "slow heads were cut off: {reasons:?}"
    );
    assert!(
        reasons.contains(&"body_too_slow"),
        "slow bodies were cut off: {reasons:?}"
    );
}

/// A client with a small receive buffer that has asked for `path` on `to` (nothing read yet).
async fn reader(to: SocketAddr, path: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .bind(format!("{ATTACKER}:0").parse().unwrap())
        .unwrap();
    let mut stream = tokio::time::timeout(WAIT, socket.connect(to))
        .await
        .unwrap()
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: app.example\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_its_answer_is_cut_off_by_the_send_timeout() {
    let origin = rampart_testkit::HttpOrigin::start().await.unwrap();
    let gw = gateway("[timeouts]\nsend = \"1s\"\n", origin.addr());
    let to = gw.addr("public");
    const SIZE: u64 = 64 * 1024 * 1024;
    let mut stalled = reader(to, &format!("/bytes/{SIZE}")).await;
    let mut first = [0u8; 1024];
    let n = tokio::time::timeout(WAIT, stalled.read(&mut first))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 0, "no answer began");
    // The client stops reading; the gateway closes the connection once its writes stall for
    // the send timeout, and logs why.
    let line = {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let lines = gw.access_log_json(1);
            if let Some(line) = lines
                .into_iter()
                .find(|l| l["uri"] == format!("/bytes/{SIZE}"))
            {
                break line;
            }
            assert!(std::time::Instant::now() < deadline, "no access log line");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert_eq!(
        (&line["reason"], &line["completed"], &line["status"]),
        (&"send_timeout".into(), &false.into(), &200.into()),
        "{line}"
    );
    // What was sent before the close is readable; then the connection ends.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, stalled.read_to_end(&mut rest))
        .await
        .expect("still open after the send timeout");
    assert!(
        read.is_err() || (rest.len() as u64) < SIZE,
        "the whole answer came"
    );
    // Normal clients are served.
    assert_eq!(normal_request(to, "/echo").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_that_keeps_reading_gets_its_whole_answer() {
    let origin = rampart_testkit::HttpOrigin::start().await.unwrap();
    let gw = gateway("[timeouts]\nsend = \"1s\"\n", origin.addr());
    const SIZE: usize = 1024 * 1024;
    let mut slow = reader(gw.addr("public"), &format!("/bytes/{SIZE}")).await;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    // Bounded: at least 32 KiB every 20 ms, so well within the send timeout between reads.
    for _ in 0..2000 {
        let n = tokio::time::timeout(WAIT, slow.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if RawResponse::parse(&got).is_ok_and(|r| r.body.len() == SIZE) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp = RawResponse::parse(&got).unwrap();
    assert_eq!((resp.status, resp.body.len()), (200, SIZE));
}

#[test]
fn a_tls_client_that_stops_reading_is_cut_off_by_the_send_timeout() {
    use std::io::{Read, Write};

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = runtime
        .block_on(rampart_testkit::HttpOrigin::start())
        .unwrap();
    let pki = rampart_testkit::TestPki::new();
    let a = pki.server("a", &["a.test"]);
    let gw = TestGateway::builder(format!(
        "[timeouts]\nsend = \"1s\"\n\n\
         [[listeners]]\nname = \"https\"\nbind = \"127.0.0.1:0\"\n[listeners.tls]\n\
         [[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        a.cert,
        a.key,
        origin.addr()
    ))
    .access_log()
    .start();
    let config = std::sync::Arc::new(pki.client_config(&[b"http/1.1"]));
    let tcp = std::net::TcpStream::connect(gw.addr("https")).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let uri = "/bytes/67108864";
    stream
        .write_all(format!("GET {uri} HTTP/1.1\r\nhost: a.test\r\n\r\n").as_bytes())
        .unwrap();
    let mut first = [0u8; 1024];
    assert!(stream.read(&mut first).unwrap() > 0, "no answer began");
    // Stop reading: the log line comes once the gateway gave up on the stalled writes.
    let deadline = std::time::Instant::now() + WAIT;
    let line = loop {
        if let Some(line) = gw.access_log_json(1).into_iter().find(|l| l["uri"] == uri) {
            break line;
        }
        assert!(std::time::Instant::now() < deadline, "no access log line");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        (&line["reason"], &line["completed"]),
        (&"send_timeout".into(), &false.into()),
        "{line}"
    );
}

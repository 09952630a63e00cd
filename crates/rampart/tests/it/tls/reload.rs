//! Certificate reloads: new certificates are swapped in, a broken one keeps the old, and both
//! outcomes are counted in `/metrics` and written to the audit log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_testkit::{TestGateway, TestPki};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use serde_json::Value;

use super::{get, https, status};
use crate::support::TempDir;

/// The `/metrics` text of `gw`'s admin API.
pub(super) fn metrics(gw: &TestGateway) -> String {
    let url = gw.admin_url("/metrics");
    let admin = url.trim_start_matches("http://").split('/').next().unwrap();
    let mut stream = TcpStream::connect(admin).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of the unlabelled series `name` in `text`.
pub(super) fn series(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let value = l.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits (bounded) until `check` holds.
pub(super) fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn certificate_reloads_are_counted_in_metrics_and_audited_both_ways() {
    let pki = TestPki::new();
    let dir = TempDir::new("tls-reload-audit");
    let audit = dir.0.join("audit.log");
    let first = pki.server("watched", &["r.test"]);
    let gw = TestGateway::builder(format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[audit_log]\nenabled = true\npath = {audit:?}\n\
         [[listeners]]\nname = \"https\"\nbind = \"127.0.0.1:0\"\n[[listeners.tls.certificates]]\n\
         cert = {:?}\nkey = {:?}\n[[routes]]\nname = \"echo\"\necho = true\n",
        first.cert, first.key
    ))
    .start();
    let text = metrics(&gw);
    assert_eq!(
        series(&text, "rampart_tls_reloads_total"),
        Some(0),
        "{text}"
    );
    assert_eq!(series(&text, "rampart_tls_reload_failures_total"), Some(0));

    let second = pki.server("replacement", &["r.test"]);
    std::fs::copy(&second.key, &first.key).unwrap();
    std::fs::copy(&second.cert, &first.cert).unwrap();
    wait_until("a good reload", || gw.tls_stats().reloads >= 1);
    std::fs::write(&first.cert, "garbage").unwrap();
    wait_until("a refused reload", || gw.tls_stats().reload_failures >= 1);

    let text = metrics(&gw);
    assert!(
        series(&text, "rampart_tls_reloads_total").unwrap_or(0) >= 1,
        "{text}"
    );
    assert!(
        series(&text, "rampart_tls_reload_failures_total").unwrap_or(0) >= 1,
        "{text}"
    );
    // The certificate in service is still the good one.
    let config = Arc::new(pki.client_config(&[]));
    let (_, conn) = https(gw.addr("https"), &config, "r.test", &get("r.test", "/")).unwrap();
    assert_eq!(conn.peer_certificates().unwrap()[0], second.der);

    let mut lines = Vec::new();
    wait_until("both audit lines", || {
        lines = audit_lines(&audit);
        lines
            .iter()
            .filter(|l| l["event"] == "certificate_reload")
            .count()
            >= 2
    });
    let reloads: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "certificate_reload")
        .collect();
    let ok = reloads.iter().find(|l| l["result"] == "ok").unwrap();
    assert_eq!(ok["listener"], "https");
    assert_eq!(ok["file"], first.cert.as_str());
    assert!(ok["error"].is_null(), "{ok}");
    let failed = reloads.iter().find(|l| l["result"] == "failed").unwrap();
    assert_eq!(failed["file"], first.cert.as_str());
    assert!(
        failed["error"].as_str().unwrap().contains(&first.cert),
        "{failed}"
    );
}

#[test]
fn reload_swaps_certificates_and_keeps_the_old_one_when_the_new_is_broken() {
    let pki = TestPki::new();
    let first = pki.server("live", &["r.test"]);
    let gw = TestGateway::builder(format!(
        "[[listeners]]\nname = \"https\"\nbind = \"127.0.0.1:0\"\n[[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n[[routes]]\nname = \"echo\"\necho = true\n",
        first.cert, first.key
    ))
    .start();
    let addr = gw.addr("https");
    // Resumed handshakes carry no certificate: make every handshake a full one.
    let mut config = pki.client_config(&[]);
    config.resumption = rustls::client::Resumption::disabled();
    let config = Arc::new(config);
    let serve = || {
        https(addr, &config, "r.test", &get("r.test", "/"))
            .unwrap()
            .1
    };
    let before = serve().peer_certificates().unwrap()[0].clone();
    // An established connection is not affected by the reload.
    let mut kept = TcpStream::connect(addr).unwrap();
    let mut kept_conn =
        ClientConnection::new(config.clone(), ServerName::try_from("r.test").unwrap()).unwrap();
    while kept_conn.is_handshaking() {
        kept_conn.complete_io(&mut kept).unwrap();
    }

    // A new certificate written over the old files is picked up.
    let second = pki.server("next", &["r.test"]);
    std::fs::copy(&second.key, &first.key).unwrap();
    std::fs::copy(&second.cert, &first.cert).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = serve().peer_certificates().unwrap()[0].clone();
        if now != before {
            assert_eq!(now, second.der);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "certificate was not reloaded: {:?}",
            gw.tls_stats()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gw.tls_stats().reloads >= 1);

    // A broken file keeps the current certificate and counts a failure.
    std::fs::write(&first.cert, "garbage").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.tls_stats().reload_failures == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "broken file was not noticed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(serve().peer_certificates().unwrap()[0], second.der);

    let mut stream = StreamOwned::new(kept_conn, kept);
    stream
        .write_all(get("r.test", "/still").as_bytes())
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    assert_eq!(status(&String::from_utf8_lossy(&out)), 200);
}

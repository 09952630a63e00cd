//! One client identity: the client IP is resolved once, from the socket or through trusted
//! proxies only, and every consumer uses that one value. A client spoofing `X-Forwarded-For`
//! from an untrusted address changes none of them (one test per consumer: access log, upstream
//! `X-Forwarded-For`, access-control decision, echo output). Rate limiting keys on the same
//! `client_ip`; its spoofing test lives with the rate limiter's tests.
//!
//! Clients connect from distinct loopback addresses (127.0.0.2, 127.0.0.3, ...) so that one
//! can be a "trusted proxy" and another not.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rampart_testkit::{
    MmdbWriter, RawResponse, RecordingOrigin, TestGateway, asn_record, country_record,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::support::header_values;

/// Bound on every wait in this file.
const WAIT: Duration = Duration::from_secs(10);

/// The address a trusted proxy connects from.
const PROXY: &str = "127.0.0.1";
/// The address an untrusted client connects from.
const CLIENT: &str = "127.0.0.2";

/// Sends `request` (which should ask to close) from local address `from` and reads the answer.
async fn send_from(from: &str, to: SocketAddr, request: &str) -> RawResponse {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = tokio::time::timeout(WAIT, socket.connect(to))
        .await
        .unwrap()
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    RawResponse::parse(&raw).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&raw)))
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n{extra}\r\n")
}

/// A gateway with `prelude` sections, listener `public` (with `listener_extra` keys), an echo
/// route `/echo`, and a catch-all route to `origin` (with `route_extra` keys).
fn gateway(
    prelude: &str,
    listener_extra: &str,
    route_extra: &str,
    origin: SocketAddr,
) -> TestGateway {
    let config = format!(
        "{prelude}\n\
         [[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n{listener_extra}\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n\n\
         [[routes]]\nname = \"echo\"\npath_prefix = \"/echo\"\necho = true\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n{route_extra}\n"
    );
    TestGateway::builder(config).access_log().start()
}

fn trusting_loopback_proxy() -> &'static str {
    "[client_ip]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"
}

fn log_line(gw: &TestGateway, resp: &RawResponse) -> Value {
    let id = resp.header("x-request-id").unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(line) = gw
            .access_log_json(1)
            .into_iter()
            .find(|l| l["request_id"] == id)
        {
            return line;
        }
        assert!(std::time::Instant::now() < deadline, "no log line for {id}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SPOOF: &str = "X-Forwarded-For: 203.0.113.9\r\nForwarded: for=203.0.113.9\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_x_forwarded_for_does_not_change_the_access_log_client_ip() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(trusting_loopback_proxy(), "", "", origin.addr());
    let addr = gw.addr("public");
    let spoofed = send_from(CLIENT, addr, &get("/a", SPOOF)).await;
    assert_eq!(spoofed.status, 200);
    assert_eq!(log_line(&gw, &spoofed)["client_ip"], CLIENT);
    // The same header from the trusted proxy is believed.
    let relayed = send_from(PROXY, addr, &get("/b", "X-Forwarded-For: 203.0.113.9\r\n")).await;
    assert_eq!(log_line(&gw, &relayed)["client_ip"], "203.0.113.9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_x_forwarded_for_does_not_reach_the_upstream() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        trusting_loopback_proxy(),
        "forwarded = true",
        "",
        origin.addr(),
    );
    let addr = gw.addr("public");
    assert_eq!(send_from(CLIENT, addr, &get("/a", SPOOF)).await.status, 200);
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(header_values(&requests[0], "x-forwarded-for"), [CLIENT]);
    assert_eq!(
        header_values(&requests[0], "forwarded"),
        [format!("for={CLIENT};proto=http;host=\"app.example\"")]
    );
    // Relayed by the trusted proxy: the client it names is the one sent upstream.
    assert_eq!(
        send_from(
            PROXY,
            addr,
            &get("/b", "X-Forwarded-For: 6.6.6.6, 203.0.113.9\r\n")
        )
        .await
        .status,
        200
    );
    let requests = origin.wait_for_requests(2, WAIT).await;
    assert_eq!(
        header_values(&requests[1], "x-forwarded-for"),
        ["203.0.113.9"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_x_forwarded_for_does_not_pass_an_allow_list() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        trusting_loopback_proxy(),
        "",
        "access = { allow = [\"203.0.113.0/24\"] }",
        origin.addr(),
    );
    let addr = gw.addr("public");
    let refused = send_from(CLIENT, addr, &get("/a", SPOOF)).await;
    assert_eq!(refused.status, 403, "{}", refused.body_text());
    let line = log_line(&gw, &refused);
    assert_eq!(line["reason"], "ip_denied");
    assert_eq!(line["client_ip"], CLIENT);
    let allowed = send_from(PROXY, addr, &get("/b", "X-Forwarded-For: 203.0.113.9\r\n")).await;
    assert_eq!(allowed.status, 200);
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(requests.len(), 1, "only the allowed request was forwarded");
    assert!(requests[0].starts_with(b"GET /b "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_x_forwarded_for_does_not_change_the_echoed_client() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(trusting_loopback_proxy(), "", "", origin.addr());
    let resp = send_from(CLIENT, gw.addr("public"), &get("/echo", SPOOF)).await;
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["client"]["ip"], CLIENT);
    let resp = send_from(
        PROXY,
        gw.addr("public"),
        &get("/echo", "X-Forwarded-For: 203.0.113.9\r\n"),
    )
    .await;
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["client"]["ip"], "203.0.113.9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_rightmost_untrusted_hop_counts() {
    let origin = RecordingOrigin::start().await.unwrap();
    let prelude = "[client_ip]\ntrusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\"]\n";
    let gw = gateway(prelude, "", "", origin.addr());
    let cases = [
        (
            "X-Forwarded-For: 6.6.6.6, 198.51.100.4, 10.1.1.1\r\n",
            "198.51.100.4",
        ),
        (
            "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 198.51.100.4\r\n",
            "198.51.100.4",
        ),
        (
            "X-Forwarded-For: 198.51.100.4, garbage, 10.1.1.1\r\n",
            "10.1.1.1",
        ),
        ("X-Forwarded-For: [2001:db8::7]:443\r\n", "2001:db8::7"),
        ("", PROXY),
    ];
    for (header, expected) in cases {
        let resp = send_from(PROXY, gw.addr("public"), &get("/echo", header)).await;
        let echo: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(echo["client"]["ip"], expected, "{header:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_list_overrides_the_global_one_and_forwarded_can_be_the_source() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        trusting_loopback_proxy(),
        "trusted_proxies = []",
        "",
        origin.addr(),
    );
    let resp = send_from(
        PROXY,
        gw.addr("public"),
        &get("/echo", "X-Forwarded-For: 203.0.113.9\r\n"),
    )
    .await;
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["client"]["ip"], PROXY, "the listener trusts nobody");

    let prelude = "[client_ip]\ntrusted_proxies = [\"127.0.0.1\"]\nheader = \"forwarded\"\n";
    let gw = gateway(prelude, "", "", origin.addr());
    let resp = send_from(
        PROXY,
        gw.addr("public"),
        &get(
            "/echo",
            "X-Forwarded-For: 6.6.6.6\r\nForwarded: for=\"[2001:db8::9]:1234\";proto=https\r\n",
        ),
    )
    .await;
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["client"]["ip"], "2001:db8::9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_and_route_lists_deny_and_allow_with_403() {
    let origin = RecordingOrigin::start().await.unwrap();
    let config = format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\naccess = {{ deny = [\"127.0.0.3\"] }}\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"admin\"\npath_prefix = \"/admin\"\nupstream = \"origin\"\naccess = {{ allow = [\"127.0.0.2/32\", \"::1\"] }}\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        origin.addr()
    );
    let gw = TestGateway::builder(config).access_log().start();
    let addr = gw.addr("public");
    let cases = [
        ("127.0.0.3", "/open", 403, Some("ip_denied")),
        ("127.0.0.3", "/admin", 403, Some("ip_denied")),
        ("127.0.0.4", "/admin", 403, Some("ip_denied")),
        ("127.0.0.2", "/admin", 200, None),
        ("127.0.0.4", "/open", 200, None),
    ];
    for (from, path, status, reason) in cases {
        let resp = send_from(from, addr, &get(path, "Accept: application/json\r\n")).await;
        assert_eq!(resp.status, status, "{from} {path}: {}", resp.body_text());
        let line = log_line(&gw, &resp);
        assert_eq!(line["reason"].as_str(), reason, "{from} {path}");
        if status == 403 {
            let body: Value = serde_json::from_slice(&resp.body).unwrap();
            assert_eq!(body["error"]["code"], "ip_denied");
        }
    }
    let requests = origin.wait_for_requests(2, WAIT).await;
    let lines: Vec<String> = requests
        .iter()
        .map(|r| {
            String::from_utf8_lossy(r)
                .lines()
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(lines, ["GET /admin HTTP/1.1", "GET /open HTTP/1.1"]);
}

/// A temporary directory with a test GeoIP database.
struct GeoDb {
    dir: PathBuf,
}

impl GeoDb {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "rampart-geo-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        MmdbWriter::new("Rampart-Test-Country")
            .insert("203.0.113.0/24", country_record("DE"))
            .insert("198.51.100.0/24", country_record("US"))
            .insert("2001:db8::/32", country_record("JP"))
            .write_to(&dir.join("country.mmdb"))
            .unwrap();
        MmdbWriter::new("Rampart-Test-ASN")
            .insert("203.0.113.0/24", asn_record(64_500, "Example Net"))
            .insert("198.51.100.0/24", asn_record(64_501, "Other Net"))
            .write_to(&dir.join("asn.mmdb"))
            .unwrap();
        Self { dir }
    }

    fn prelude(&self, extra: &str) -> String {
        format!(
            "{}\n[geoip]\ncountry_db = {:?}\nasn_db = {:?}\n{extra}\n",
            trusting_loopback_proxy(),
            self.dir.join("country.mmdb").display().to_string(),
            self.dir.join("asn.mmdb").display().to_string()
        )
    }
}

impl Drop for GeoDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn relayed_for(ip: &str) -> String {
    format!("X-Forwarded-For: {ip}\r\nX-Country: FR\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_country_is_sent_upstream_and_logged_and_client_copies_are_dropped() {
    let db = GeoDb::new();
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        &db.prelude("country_header = \"X-Country\""),
        "",
        "",
        origin.addr(),
    );
    let addr = gw.addr("public");
    for (ip, country) in [
        ("203.0.113.9", Some("DE")),
        ("2001:db8::1", Some("JP")),
        ("192.0.2.1", None),
    ] {
        let resp = send_from(PROXY, addr, &get("/x", &relayed_for(ip))).await;
        assert_eq!(resp.status, 200);
        let line = log_line(&gw, &resp);
        assert_eq!(line["country"].as_str(), country, "{ip}");
    }
    let requests = origin.wait_for_requests(3, WAIT).await;
    assert_eq!(header_values(&requests[0], "x-country"), ["DE"]);
    assert_eq!(header_values(&requests[1], "x-country"), ["JP"]);
    assert!(
        header_values(&requests[2], "x-country").is_empty(),
        "unknown country: no header, and the client's FR is gone"
    );
    // An untrusted client cannot choose its country either.
    let resp = send_from(CLIENT, addr, &get("/x", &relayed_for("203.0.113.9"))).await;
    assert!(log_line(&gw, &resp)["country"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn country_and_asn_rules_refuse_with_geo_denied() {
    let db = GeoDb::new();
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        &db.prelude(""),
        "access = { deny_countries = [\"US\"] }",
        "access = { allow_asns = [64500] }",
        origin.addr(),
    );
    let addr = gw.addr("public");
    for (ip, status) in [
        ("203.0.113.9", 200),
        ("198.51.100.4", 403),
        ("192.0.2.1", 403),
    ] {
        let resp = send_from(
            PROXY,
            addr,
            &get("/x", &format!("X-Forwarded-For: {ip}\r\n")),
        )
        .await;
        assert_eq!(resp.status, status, "{ip}");
        let line = log_line(&gw, &resp);
        if status == 403 {
            assert_eq!(line["reason"], "geo_denied", "{ip}");
        }
    }
    let requests = origin.wait_for_requests(1, WAIT).await;
    assert_eq!(requests.len(), 1);
}

#[test]
fn a_missing_or_corrupt_geoip_database_is_a_config_error() {
    let dir = std::env::temp_dir().join(format!("rampart-geo-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corrupt = dir.join("corrupt.mmdb");
    std::fs::write(&corrupt, b"not a database").unwrap();
    for path in [dir.join("missing.mmdb"), corrupt] {
        let text = format!(
            "[geoip]\ncountry_db = {:?}\n\n[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n\n[[routes]]\nname = \"r\"\necho = true\n",
            path.display().to_string()
        );
        let config = rampart_config::load_str(&text, "geo.toml").unwrap();
        let err = rampart_server::compile(&config)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("geoip") && err.contains("MaxMind DB"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! Keys from a JWKS endpoint served by the test: fetched once and cached, a rotation picked up
//! on the first token naming the new `kid`, unknown `kid`s fetched for at most once per
//! interval, the last good set kept while the endpoint fails, `Cache-Control: max-age` driving
//! the background refresh, a slow or dead endpoint answered with 503 in bounded time, and
//! https with a configured CA (an untrusted certificate is never used).

use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use rampart_testkit::{RecordingOrigin, TestGateway, TestPki, free_port_closed};

use super::{JwksServer, SigningKey, WAIT, claims, get_with, jwks_doc};

fn gateway(origin: &RecordingOrigin, url: &str, extra: &str) -> TestGateway {
    TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "api"
targets = ["{}"]

[[auth.jwt]]
name = "idp"
algorithms = ["RS256", "ES256"]
jwks_url = "{url}"
{extra}

[[routes]]
name = "api"
upstream = "api"
auth = {{ providers = ["idp"] }}
"#,
        origin.addr()
    ))
    .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_set_is_cached_and_unknown_kids_fetch_at_most_once_per_interval() {
    let origin = RecordingOrigin::start().await.unwrap();
    let k1 = SigningKey::new(Algorithm::RS256, "k1");
    let k2 = SigningKey::new(Algorithm::RS256, "k2");
    let jwks = JwksServer::start(jwks_doc(&[&k1])).await;
    let gw = gateway(
        &origin,
        &jwks.url(),
        "jwks_min_refresh = \"1h\"\njwks_cache = \"1h\"",
    );
    let addr = gw.addr("public");
    for user in ["a", "b", "c"] {
        let resp = get_with(addr, "/x", &k1.sign(&claims(user))).await;
        assert_eq!(resp.status, 200, "{}", resp.body_text());
    }
    assert_eq!(jwks.hits(), 1, "one fetch serves every token");
    // A rotation at the issuer is not fetched again within the interval: made-up kids cannot
    // make Rampart hammer the endpoint.
    jwks.set(|s| s.body = jwks_doc(&[&k1, &k2]));
    for user in ["a", "b", "c"] {
        let resp = get_with(addr, "/x", &k2.sign(&claims(user))).await;
        assert_eq!(resp.status, 401);
        assert!(
            resp.header("www-authenticate")
                .unwrap()
                .contains("unknown key")
        );
    }
    assert_eq!(jwks.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_is_picked_up_and_the_last_good_set_survives_a_failing_endpoint() {
    let origin = RecordingOrigin::start().await.unwrap();
    let k1 = SigningKey::new(Algorithm::RS256, "k1");
    let k2 = SigningKey::new(Algorithm::ES256, "k2");
    let k3 = SigningKey::new(Algorithm::RS256, "k3");
    let jwks = JwksServer::start(jwks_doc(&[&k1])).await;
    let gw = gateway(
        &origin,
        &jwks.url(),
        "jwks_min_refresh = \"1ms\"\njwks_cache = \"1h\"",
    );
    let addr = gw.addr("public");
    assert_eq!(
        get_with(addr, "/x", &k1.sign(&claims("a"))).await.status,
        200
    );
    // Rotation: k1 retired, k2 published; the first k2 token fetches the new set.
    jwks.set(|s| s.body = jwks_doc(&[&k2]));
    assert_eq!(
        get_with(addr, "/x", &k2.sign(&claims("b"))).await.status,
        200
    );
    assert_eq!(jwks.hits(), 2);
    // k1 is gone from the set (a token verified before stays in the verified-token cache
    // until its exp; a new one does not pass).
    assert_eq!(
        get_with(addr, "/x", &k1.sign(&claims("new"))).await.status,
        401
    );
    // The endpoint fails: k2 tokens keep passing on the last good set; k3 cannot be fetched.
    jwks.set(|s| {
        s.status = 500;
        s.body = jwks_doc(&[&k2, &k3]);
    });
    let resp = get_with(addr, "/x", &k3.sign(&claims("c"))).await;
    assert_eq!(resp.status, 401);
    assert_eq!(
        get_with(addr, "/x", &k2.sign(&claims("d"))).await.status,
        200
    );
    // Back up: k3 is found.
    jwks.set(|s| s.status = 200);
    assert_eq!(
        get_with(addr, "/x", &k3.sign(&claims("e"))).await.status,
        200
    );
    assert_eq!(origin.requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_max_age_drives_a_background_refresh() {
    let origin = RecordingOrigin::start().await.unwrap();
    let k1 = SigningKey::new(Algorithm::ES256, "k1");
    let jwks = JwksServer::start(jwks_doc(&[&k1])).await;
    jwks.set(|s| s.cache_control = Some("public, max-age=1".into()));
    let gw = gateway(
        &origin,
        &jwks.url(),
        "jwks_min_refresh = \"100ms\"\njwks_cache = \"1h\"",
    );
    let addr = gw.addr("public");
    assert_eq!(
        get_with(addr, "/x", &k1.sign(&claims("a"))).await.status,
        200
    );
    // No request needs new keys, yet the set is fetched again before it goes stale.
    let deadline = Instant::now() + WAIT;
    while jwks.hits() < 3 {
        assert!(Instant::now() < deadline, "only {} fetches", jwks.hits());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        get_with(addr, "/x", &k1.sign(&claims("b"))).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_dead_endpoint_is_answered_with_503_within_the_timeout() {
    let origin = RecordingOrigin::start().await.unwrap();
    let k1 = SigningKey::new(Algorithm::RS256, "k1");
    let jwks = JwksServer::start(jwks_doc(&[&k1])).await;
    jwks.set(|s| s.delay = Duration::from_secs(30));
    let gw = gateway(&origin, &jwks.url(), "jwks_timeout = \"200ms\"");
    let resp = get_with(gw.addr("public"), "/x", &k1.sign(&claims("a"))).await;
    assert_eq!(resp.status, 503, "{}", resp.body_text());
    let dead = format!("http://{}/jwks", free_port_closed().unwrap());
    let gw = gateway(&origin, &dead, "");
    let resp = get_with(gw.addr("public"), "/x", &k1.sign(&claims("a"))).await;
    assert_eq!(resp.status, 503, "{}", resp.body_text());
    assert!(origin.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_is_trusted_through_its_ca_only() {
    let origin = RecordingOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let cert = pki.server("idp", &["localhost"]);
    let k1 = SigningKey::new(Algorithm::ES256, "k1");
    let jwks = JwksServer::start_tls(
        jwks_doc(&[&k1]),
        pki.server_config(&cert, &[b"http/1.1"], false),
    )
    .await;
    let url = format!("https://localhost:{}/jwks", jwks.addr.port());
    let gw = gateway(
        &origin,
        &url,
        &format!("jwks_ca = {:?}", pki.path("ca.pem")),
    );
    let resp = get_with(gw.addr("public"), "/x", &k1.sign(&claims("a"))).await;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    // The same endpoint against the system trust store: the test CA is not in it.
    let gw = gateway(&origin, &url, "");
    let resp = get_with(gw.addr("public"), "/x", &k1.sign(&claims("a"))).await;
    assert_eq!(resp.status, 503, "{}", resp.body_text());
    assert_eq!(origin.requests().len(), 1);
}

//! A route's `client_cert = { required = true }`: any certificate the listener verified is
//! enough; without one the route answers 403 while other routes of the listener still serve.

use std::sync::Arc;

use rampart_testkit::{HttpOrigin, TestGateway, TestPki};

use super::{get, https, status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_can_require_any_verified_client_certificate() {
    let pki = TestPki::new();
    let server = pki.server("s", &["s.test"]);
    let (alice, _) = pki.client("alice", "alice", &[]);
    let (bob, _) = pki.client("bob", "bob", &[]);
    let origin = HttpOrigin::start().await.unwrap();
    let gw = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "https"
bind = "127.0.0.1:0"
[listeners.tls]
client_auth = "optional"
client_ca = {ca:?}
[[listeners.tls.certificates]]
cert = {cert:?}
key = {key:?}

[[upstreams]]
name = "origin"
targets = ["{origin}"]

[[routes]]
name = "members"
path_prefix = "/members"
upstream = "origin"
client_cert = {{ required = true }}

[[routes]]
name = "public"
upstream = "origin"
"#,
        ca = pki.ca_path,
        cert = server.cert,
        key = server.key,
        origin = origin.addr(),
    ))
    .start();
    let addr = gw.addr("https");
    let alice = Arc::new(pki.client_config_with_cert(&[], &alice));
    let bob = Arc::new(pki.client_config_with_cert(&[], &bob));
    let anonymous = Arc::new(pki.client_config(&[]));
    tokio::task::spawn_blocking(move || {
        for who in [&alice, &bob] {
            let (resp, _) = https(addr, who, "s.test", &get("s.test", "/members/1")).unwrap();
            assert_eq!(status(&resp), 200, "{resp}");
        }
        let (resp, _) = https(addr, &anonymous, "s.test", &get("s.test", "/members/1")).unwrap();
        assert_eq!(status(&resp), 403, "{resp}");
        let (resp, _) = https(addr, &anonymous, "s.test", &get("s.test", "/open")).unwrap();
        assert_eq!(status(&resp), 200, "{resp}");
    })
    .await
    .unwrap();
}

//! HTTPS on top of TLS: strict SNI, HSTS, the HTTPS redirect, slow heads, WebSocket tunnels.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rampart_testkit::{TestGateway, TestPki, WsOrigin};
use rustls::pki_types::ServerName;

use super::{a_test_echo_gateway, echo_gateway, get, header, https, status};

#[test]
fn strict_sni_hsts_and_the_https_redirect() {
    let pki = TestPki::new();
    let gw = echo_gateway(
        &pki,
        "strict_sni = true\nhsts = { max_age = \"365d\", include_subdomains = true }",
    );
    let addr = gw.addr("https");
    let config = Arc::new(pki.client_config(&[]));
    let (resp, _) = https(addr, &config, "a.test", &get("a.test", "/")).unwrap();
    assert_eq!(status(&resp), 200, "{resp}");
    assert_eq!(
        header(&resp, "strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    // The connection was made for a.test: b.test (another certificate) is misdirected.
    let (resp, _) = https(addr, &config, "a.test", &get("b.test", "/")).unwrap();
    assert_eq!(status(&resp), 421, "{resp}");

    let redirect = TestGateway::builder(
        "[[listeners]]\nname = \"http\"\nbind = \"127.0.0.1:0\"\nredirect_https = { port = 8443 }\n[[routes]]\nname = \"echo\"\necho = true\n",
    )
    .start();
    let mut tcp = TcpStream::connect(redirect.addr("http")).unwrap();
    tcp.write_all(get("www.example.com:8080", "/a/b?c=d").as_bytes())
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).unwrap();
    assert_eq!(status(&out), 308, "{out}");
    assert_eq!(
        header(&out, "location"),
        Some("https://www.example.com:8443/a/b?c=d")
    );
}

#[test]
fn a_slow_head_over_tls_gets_its_408() {
    // The 408 is written into TLS and must leave the write buffer before the connection ends.
    let pki = TestPki::new();
    let gw = a_test_echo_gateway(&pki, "[timeouts]\nheader_read = \"300ms\"\n", "");
    let config = Arc::new(pki.client_config(&[b"http/1.1"]));
    let (resp, _) = https(
        gw.addr("https"),
        &config,
        "a.test",
        "GET /slow HTTP/1.1\r\nhost: a.test\r\n",
    )
    .unwrap();
    assert_eq!(status(&resp), 408, "{resp}");
    assert!(header(&resp, "x-request-id").is_some(), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_tls_round_trips_through_the_tunnel() {
    // The 101 is written while the connection's loop batches its writes; the tunnel that
    // follows writes through the same stream once the loop has let go of it.
    use futures_util::{SinkExt, StreamExt};
    use rampart_testkit::tokio_tungstenite::client_async;
    use rampart_testkit::tokio_tungstenite::tungstenite::Message;
    let wait = Duration::from_secs(10);
    let pki = TestPki::new();
    let origin = WsOrigin::start().await.unwrap();
    let a = pki.server("a", &["a.test"]);
    let gw = TestGateway::builder(format!(
        "[[listeners]]\nname = \"https\"\nbind = \"127.0.0.1:0\"\n[listeners.tls]\n\
         [[listeners.tls.certificates]]\ncert = {:?}\nkey = {:?}\n\n\
         [[upstreams]]\nname = \"ws\"\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"ws\"\nupstream = \"ws\"\n",
        a.cert,
        a.key,
        origin.addr()
    ))
    .start();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(pki.client_config(&[b"http/1.1"])));
    let tcp = tokio::net::TcpStream::connect(gw.addr("https"))
        .await
        .unwrap();
    let name = ServerName::try_from("a.test").unwrap();
    let tls = tokio::time::timeout(wait, connector.connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    let (mut ws, resp) = tokio::time::timeout(wait, client_async("wss://a.test/chat", tls))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        let text = format!("message {i} over TLS");
        tokio::time::timeout(wait, ws.send(Message::text(text.clone())))
            .await
            .unwrap()
            .unwrap();
        let reply = tokio::time::timeout(wait, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(reply, Message::text(text));
    }
    assert_eq!(origin.upgrades(), 1);
}

//! 0-RTT over QUIC with a real quinn client: a safe request in early data is served and
//! forwarded with `Early-Data: 1`; a POST in early data gets 425 and reaches no upstream.

use rampart_testkit::{HttpOrigin, TestPki};

use super::client::{H3Client, client_crypto, endpoint, request};
use super::gateway;

fn has_early_data_header(echo: &serde_json::Value) -> bool {
    echo["headers"]
        .as_array()
        .is_some_and(|h| h.iter().any(|p| p[0] == "early-data" && p[1] == "1"))
}

#[tokio::test]
async fn early_data_serves_a_get_with_early_data_1_and_refuses_a_post_with_425() {
    let origin = HttpOrigin::start().await.unwrap();
    let pki = TestPki::new();
    let gw = gateway(&pki, origin.addr(), "early_data = true", "");
    let addr = gw.addr("h3");
    let mut crypto = client_crypto(&pki);
    crypto.enable_early_data = true;
    // One endpoint, one client config: the second connection resumes the first one's session.
    let endpoint = endpoint(crypto);
    let mut first = H3Client::connect_with(endpoint.clone(), addr, "h3.test")
        .await
        .unwrap();
    let answer = first.get("h3.test", "/full").await;
    assert!(!has_early_data_header(&answer.json()));
    first.conn.close(0u32.into(), b"");
    let connecting = endpoint.connect(addr, "h3.test").unwrap();
    let Ok((conn, accepted)) = connecting.into_0rtt() else {
        panic!("no session to resume: 0-RTT impossible");
    };
    let mut early = H3Client::over(endpoint.clone(), conn).await.unwrap();
    let (mut to_get, mut to_post) = (early.send.clone(), early.send.clone());
    let (get, post) = tokio::join!(
        to_get.send_request(request("GET", "h3.test", "/early")),
        to_post.send_request(request("POST", "h3.test", "/early-post")),
    );
    let (mut get, mut post) = (get.unwrap(), post.unwrap());
    get.finish().await.unwrap();
    post.send_data(bytes::Bytes::from_static(b"x"))
        .await
        .unwrap();
    post.finish().await.unwrap();
    assert!(accepted.await, "the server accepted 0-RTT");
    let post_head = post.recv_response().await.unwrap();
    assert_eq!(post_head.status(), 425);
    let get_head = get.recv_response().await.unwrap();
    assert_eq!(get_head.status(), 200);
    let mut body = Vec::new();
    while let Some(chunk) = get.recv_data().await.unwrap() {
        use bytes::Buf;
        body.extend_from_slice(chunk.chunk());
    }
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(has_early_data_header(&echo), "{echo}");
    assert_eq!(
        origin.requests(),
        2,
        "the full request and the early GET; not the POST"
    );
    let _ = early.get("h3.test", "/later").await;
    early.close().await;
}

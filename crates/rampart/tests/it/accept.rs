//! The accept path's listener options: a `defer_accept` listener (the kernel hands a connection
//! over only once its first bytes arrived) serves requests as any other, and a client that
//! connects and sends nothing is still closed by the header read timeout once the kernel hands
//! it over; a `fast_open` listener serves plain clients as before. Nothing asserts on timing;
//! every wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_testkit::{RawConnection, RecordingOrigin, TestGateway};

/// Bound on every wait in this file.
const WAIT: Duration = Duration::from_secs(15);

fn deferred(prelude: &str, origin: SocketAddr) -> TestGateway {
    let config = format!(
        "{prelude}\n\
         [[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\ndefer_accept = true\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n"
    );
    TestGateway::builder(config).start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_accept_listener_serves_new_and_keep_alive_connections() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = deferred("", origin.addr());
    for round in 0..3 {
        let mut conn = RawConnection::connect_timeout(gw.addr("public"), WAIT)
            .await
            .unwrap();
        for i in 0..2 {
            conn.send(format!("GET /r{round}-{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
                .await
                .unwrap();
            assert_eq!(conn.read_response().await.unwrap().status, 200);
        }
    }
    assert_eq!(origin.wait_for_requests(6, WAIT).await.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_of_a_deferred_listener_is_still_closed_by_the_header_timeout() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = deferred("[timeouts]\nheader_read = \"500ms\"", origin.addr());
    let mut conn = RawConnection::connect_timeout(gw.addr("public"), WAIT)
        .await
        .unwrap();
    // The kernel holds the connection back for about a second (one SYN-ACK retransmission),
    // then hands it over, and the header read timeout closes it quietly.
    assert!(
        conn.is_closed().await,
        "the silent connection was not closed"
    );
    assert!(origin.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_waits_before_its_first_request_is_served_on_a_deferred_listener() {
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = deferred("", origin.addr());
    let mut conn = RawConnection::connect_timeout(gw.addr("public"), WAIT)
        .await
        .unwrap();
    // Longer than the deferral: the kernel has handed the connection over by now, with no
    // byte received, and the client's late request is served as usual.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    conn.send(b"GET /late HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(conn.read_response().await.unwrap().status, 200);
    assert_eq!(origin.wait_for_requests(1, WAIT).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_open_listener_serves_requests() {
    let origin = RecordingOrigin::start().await.unwrap();
    let config = format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\nfast_open = 64\n\n\
         [[upstreams]]\nname = \"origin\"\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        origin.addr()
    );
    let gw = TestGateway::builder(config).start();
    for i in 0..3 {
        let mut conn = RawConnection::connect_timeout(gw.addr("public"), WAIT)
            .await
            .unwrap();
        conn.send(
            format!("GET /tfo-{i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(conn.read_response().await.unwrap().status, 200);
    }
    assert_eq!(origin.wait_for_requests(3, WAIT).await.len(), 3);
}

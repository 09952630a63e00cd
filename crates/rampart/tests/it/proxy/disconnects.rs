//! Clients leaving early (HTTP/2 cancel, HTTP/1 close or reset) and graceful shutdown.

use std::time::Duration;

use rampart_testkit::{HttpOrigin, RawConnection, TestGateway};
use serde_json::Value;

use super::{one_route_config, simple_gateway};
use crate::support::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_request_cancelled_by_the_client_is_logged_and_frees_the_connection() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let origin = HttpOrigin::start().await.unwrap();
    let config = format!(
        "[timeouts]\nkeepalive = \"500ms\"\n\n{}",
        one_route_config(origin.addr(), "")
    );
    let gw = TestGateway::builder(config).access_log().start();
    let stream = within(tokio::net::TcpStream::connect(gw.addr("public")))
        .await
        .unwrap();
    let (mut sender, conn) = within(hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(stream),
    ))
    .await
    .unwrap();
    let conn = tokio::spawn(conn);

    let request = http::Request::get(gw.url("public", "/delay/3000"))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let pending = tokio::spawn(sender.send_request(request));
    within(async {
        while origin.requests() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // Dropping the response future resets the stream (RST_STREAM CANCEL).
    pending.abort();

    let lines = gw.access_log_json(1);
    assert_eq!(
        lines.len(),
        1,
        "no access log line for the cancelled request"
    );
    assert_eq!(lines[0]["completed"], false, "{}", lines[0]);
    assert_eq!(lines[0]["status"], 499, "logged as closed by the client");
    assert_eq!(lines[0]["route"], "all");
    // With nothing in flight the connection is idle: the keep-alive timeout closes it.
    within(conn).await.unwrap().unwrap();
}

/// How a test client leaves.
#[derive(Clone, Copy)]
enum Leave {
    /// Close normally (FIN).
    Close,
    /// Reset the connection (RST).
    Reset,
}

/// Sends `parts` on one HTTP/1 connection (50 ms apart) for a request the origin answers after
/// 3 s, leaves the way `leave` says once the request reached the origin, and returns the
/// request's access log line.
async fn log_of_request_left_by(parts: &[&[u8]], leave: Leave) -> Value {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = simple_gateway(origin.addr());
    let mut conn = within(RawConnection::connect(gw.addr("public")))
        .await
        .unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        within(conn.send(part)).await.unwrap();
    }
    within(async {
        while origin.requests() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    match leave {
        Leave::Close => drop(conn),
        Leave::Reset => conn.reset().unwrap(),
    }
    let mut lines = gw.access_log_json(1);
    assert_eq!(
        lines.len(),
        1,
        "no access log line for the abandoned request"
    );
    lines.remove(0)
}

/// [`log_of_request_left_by`], checking the line says the client closed the request (499,
/// not completed).
async fn log_of_request_abandoned_by(parts: &[&[u8]], leave: Leave) -> Value {
    let line = log_of_request_left_by(parts, leave).await;
    assert_eq!(
        (&line["status"], &line["completed"]),
        (&499.into(), &false.into()),
        "{line}"
    );
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_client_closing_inside_its_body_is_logged() {
    // A client that ends its side after a whole request has only half-closed and is answered
    // (see `half_close`); one that ends it inside the body cut the request short.
    let line = log_of_request_left_by(
        &[
            b"POST /delay/3000 HTTP/1.1\r\nHost: app.example\r\nContent-Length: 10\r\n\r\n",
            b"hello",
        ],
        Leave::Close,
    )
    .await;
    assert_eq!(
        (&line["status"], &line["reason"]),
        (&400.into(), &"client_body_error".into()),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_client_resetting_mid_request_is_logged() {
    let line = log_of_request_abandoned_by(
        &[b"GET /delay/3000 HTTP/1.1\r\nHost: app.example\r\n\r\n"],
        Leave::Reset,
    )
    .await;
    assert_eq!(line["uri"], "/delay/3000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_client_resetting_after_sending_its_body_is_logged() {
    // The body arrives after the head: the client is watched again once it has been read.
    log_of_request_abandoned_by(
        &[
            b"POST /delay/3000 HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\n",
            b"hello",
        ],
        Leave::Reset,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests_and_refuses_new_connections() {
    let origin = HttpOrigin::start().await.unwrap();
    let gw = simple_gateway(origin.addr());
    let addr = gw.addr("public");
    let slow = tokio::spawn(async move {
        let mut conn = RawConnection::connect(addr).await.unwrap();
        conn.send(b"GET /delay/1500 HTTP/1.1\r\nHost: app.example\r\n\r\n")
            .await
            .unwrap();
        conn.read_response().await
    });
    within(async {
        while origin.requests() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    let shutdown = tokio::task::spawn_blocking(move || gw.shutdown());
    // The listening sockets close as soon as shutdown starts: new connections are refused.
    within(async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    let resp = within(slow)
        .await
        .unwrap()
        .expect("the in-flight request was cut off");
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["uri"], "/delay/1500");
    within(shutdown).await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

//! A quinn + h3 client for the HTTP/3 tests: one QUIC connection, requests with streamed
//! bodies and trailers, every wait bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use h3::client::SendRequest;
use http::{HeaderMap, Request, Response};
use quinn::crypto::rustls::QuicClientConfig;
use rampart_testkit::TestPki;

/// Bound on one connection or exchange.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A response read whole.
pub(crate) struct Answer {
    pub(crate) head: Response<()>,
    pub(crate) body: Bytes,
    pub(crate) trailers: Option<HeaderMap>,
}

impl Answer {
    /// The status code.
    pub(crate) fn status(&self) -> u16 {
        self.head.status().as_u16()
    }

    /// A response header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP/3 connection.
pub(crate) struct H3Client {
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) conn: quinn::Connection,
    pub(crate) send: SendRequest<h3_quinn::OpenStreams, Bytes>,
    driver: tokio::task::JoinHandle<h3::error::ConnectionError>,
}

/// A rustls client config trusting `pki`, offering `h3`.
pub(crate) fn client_crypto(pki: &TestPki) -> rustls::ClientConfig {
    pki.client_config(&[b"h3"])
}

/// A client endpoint on 127.0.0.1 with `crypto`.
pub(crate) fn endpoint(crypto: rustls::ClientConfig) -> quinn::Endpoint {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let quic = QuicClientConfig::try_from(crypto).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    endpoint
}

impl H3Client {
    /// Connects to `addr` as `sni` trusting `pki`.
    pub(crate) async fn connect(addr: SocketAddr, pki: &TestPki, sni: &str) -> Self {
        Self::connect_with(endpoint(client_crypto(pki)), addr, sni)
            .await
            .unwrap_or_else(|e| panic!("HTTP/3 connection to {addr}: {e}"))
    }

    /// Connects on `endpoint`; the error says why the connection failed.
    pub(crate) async fn connect_with(
        endpoint: quinn::Endpoint,
        addr: SocketAddr,
        sni: &str,
    ) -> Result<Self, String> {
        let connecting = endpoint.connect(addr, sni).map_err(|e| e.to_string())?;
        let conn = tokio::time::timeout(WAIT, connecting)
            .await
            .map_err(|_| "handshake timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        Self::over(endpoint, conn).await
    }

    /// HTTP/3 on an established connection.
    pub(crate) async fn over(
        endpoint: quinn::Endpoint,
        conn: quinn::Connection,
    ) -> Result<Self, String> {
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
            .await
            .map_err(|e| e.to_string())?;
        let driver =
            tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
        Ok(Self {
            endpoint,
            conn,
            send,
            driver,
        })
    }

    /// Sends `req` with `body` (empty: the stream ends with the head) and reads the answer.
    pub(crate) async fn request(&mut self, req: Request<()>, body: &[u8]) -> Answer {
        tokio::time::timeout(WAIT, self.exchange(req, body, None))
            .await
            .unwrap_or_else(|_| panic!("no HTTP/3 answer within {WAIT:?}"))
            .unwrap_or_else(|e| panic!("HTTP/3 exchange failed: {e}"))
    }

    /// GET `path` on `host`.
    pub(crate) async fn get(&mut self, host: &str, path: &str) -> Answer {
        self.request(request("GET", host, path), b"").await
    }

    /// Sends `req`, then `body` in chunks, then `trailers`; reads the whole answer.
    pub(crate) async fn exchange(
        &mut self,
        req: Request<()>,
        body: &[u8],
        trailers: Option<HeaderMap>,
    ) -> Result<Answer, String> {
        let mut stream = self
            .send
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        for chunk in body.chunks(16 * 1024) {
            stream
                .send_data(Bytes::copy_from_slice(chunk))
                .await
                .map_err(|e| e.to_string())?;
        }
        if let Some(t) = trailers {
            stream.send_trailers(t).await.map_err(|e| e.to_string())?;
        }
        stream.finish().await.map_err(|e| e.to_string())?;
        let head = stream.recv_response().await.map_err(|e| e.to_string())?;
        let mut body = BytesMut::new();
        while let Some(mut chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
            body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        let trailers = stream.recv_trailers().await.map_err(|e| e.to_string())?;
        Ok(Answer {
            head,
            body: body.freeze(),
            trailers,
        })
    }

    /// Waits (bounded) for the gateway to close the connection and asserts it closed it with
    /// the HTTP/3 error `code` (`name` says which, for the failure message); `context` is added
    /// to the message when it closed another way.
    pub(crate) async fn assert_closed_with(&self, code: u64, name: &str, context: &str) {
        let reason = tokio::time::timeout(WAIT, self.conn.closed())
            .await
            .unwrap_or_else(|_| panic!("the connection was not closed within {WAIT:?}"));
        match reason {
            quinn::ConnectionError::ApplicationClosed(close) => {
                assert_eq!(u64::from(close.error_code), code, "{name}: {close:?}");
            }
            other => panic!("closed for another reason{context}: {other}"),
        }
    }

    /// Closes the connection.
    pub(crate) async fn close(self) {
        self.conn.close(0u32.into(), b"");
        self.driver.abort();
        let _ = tokio::time::timeout(WAIT, self.endpoint.wait_idle()).await;
    }
}

/// A request head for `https://{host}{path}`.
pub(crate) fn request(method: &str, host: &str, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("https://{host}{path}"))
        .body(())
        .unwrap()
}

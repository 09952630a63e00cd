//! Helpers several areas share. Areas whose helper of the same name behaves differently (another
//! bound, another host, no timeout) keep their own.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rampart_testkit::{RawResponse, TestGateway, raw_request_parsed, reqwest};

/// Bound on every ordinary wait in the areas that use [`within`] and [`client`].
pub(crate) const WAIT: Duration = Duration::from_secs(15);

/// Awaits `f`, failing the test if it takes longer than [`WAIT`].
pub(crate) async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

/// An HTTP client that ignores proxy settings from the environment and gives up after [`WAIT`].
pub(crate) fn client() -> reqwest::Client {
    client_with_timeout(WAIT)
}

/// An HTTP client that ignores proxy settings from the environment and gives up after `timeout`.
pub(crate) fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .unwrap()
}

/// Sends raw `bytes` to `addr` and parses the answer, failing the test if none arrives within
/// `limit`.
pub(crate) async fn send_within(
    limit: Duration,
    addr: SocketAddr,
    bytes: impl AsRef<[u8]>,
) -> RawResponse {
    let bytes = bytes.as_ref();
    tokio::time::timeout(limit, raw_request_parsed(addr, bytes))
        .await
        .expect("response in time")
        .unwrap_or_else(|e| panic!("no response to {:?}: {e}", String::from_utf8_lossy(bytes)))
}

/// The first line of a raw HTTP message (a recorded request's request line).
pub(crate) fn request_line(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Every value of header `name` (any case) in the head of a raw HTTP message, trimmed, in order.
pub(crate) fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

/// A fresh directory under the system temp dir, `rampart-{tag}-test-{pid}-{n}`, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("rampart-{tag}-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// Writes `text` to `name` in this directory and returns its path.
    pub(crate) fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The access-log line (JSON) of the request that got `resp`, found by its `X-Request-Id`;
/// waits up to [`WAIT`] for the line to be written.
pub(crate) async fn access_log_line(gw: &TestGateway, resp: &RawResponse) -> serde_json::Value {
    let id = resp
        .header("x-request-id")
        .expect("the response names its request id")
        .to_owned();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(line) = gw
            .access_log_json(0)
            .into_iter()
            .find(|l| l["request_id"] == id.as_str())
        {
            return line;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line for {id}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

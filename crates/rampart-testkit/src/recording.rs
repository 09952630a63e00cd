//! `RecordingOrigin`: raw TCP origin recording the exact bytes of every request it receives.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::h1::{self, Framing, MAX_HEAD};
use crate::server::{ServerTask, bind_loopback, spawn_accept_loop};

/// Longest a connection may sit idle (no bytes) before the origin closes it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest time spent writing one response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Body of every answer.
const BODY: &[u8] = b"ok";

/// Recorded state shared with the connection tasks.
#[derive(Debug, Default)]
struct State {
    /// Raw bytes of each complete request, in arrival order.
    requests: Mutex<Vec<Vec<u8>>>,
    /// Accepted TCP connections.
    connections: AtomicU64,
    /// Total bytes received on all connections.
    bytes: AtomicU64,
    /// Woken on every recorded request.
    recorded: Notify,
}

impl State {
    /// Appends a complete request.
    fn record(&self, request: Vec<u8>) {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        self.recorded.notify_waiters();
    }

    /// A copy of the recorded requests.
    fn snapshot(&self) -> Vec<Vec<u8>> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A raw HTTP/1.1 origin on 127.0.0.1 that records each request's exact bytes.
///
/// It frames requests by `Content-Length` or `Transfer-Encoding: chunked`, records each one
/// before answering `HTTP/1.1 200 OK` with `Content-Length: 2` and body `ok` (no body for
/// `HEAD`), and keeps the connection alive unless the request asked to close. Requests with
/// invalid framing are recorded as received so far and answered `400` with the connection closed.
#[derive(Debug)]
pub struct RecordingOrigin {
    /// Bound address.
    addr: SocketAddr,
    /// Shared records.
    state: Arc<State>,
    /// Accept loop; aborted on drop.
    _server: ServerTask,
}

impl RecordingOrigin {
    /// Starts a recording origin on `127.0.0.1:0`.
    pub async fn start() -> io::Result<Self> {
        let listener = bind_loopback().await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let loop_state = Arc::clone(&state);
        let server = spawn_accept_loop(listener, move |stream, _peer| {
            loop_state.connections.fetch_add(1, Ordering::SeqCst);
            serve(stream, Arc::clone(&loop_state))
        });
        Ok(Self {
            addr,
            state,
            _server: server,
        })
    }

    /// The bound address (`127.0.0.1:port`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port` followed by `path` (which should start with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The raw bytes of each request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.state.snapshot()
    }

    /// Number of TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Total bytes received so far on all connections (complete requests or not).
    pub fn bytes_received(&self) -> u64 {
        self.state.bytes.load(Ordering::SeqCst)
    }

    /// Waits up to `timeout` until at least `n` requests are recorded; returns all recorded.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let wait = async {
            loop {
                let notified = self.state.recorded.notified();
                let requests = self.state.snapshot();
                if requests.len() >= n {
                    return requests;
                }
                notified.await;
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(requests) => requests,
            Err(_) => self.state.snapshot(),
        }
    }
}

/// Reads more bytes into `buf`; false on EOF, error or idle timeout.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, state: &State) -> bool {
    buf.reserve(64 * 1024);
    match tokio::time::timeout(IDLE_TIMEOUT, stream.read_buf(buf)).await {
        Ok(Ok(n)) if n > 0 => {
            state.bytes.fetch_add(n as u64, Ordering::SeqCst);
            true
        }
        _ => false,
    }
}

/// Writes `bytes` with a bound; false on failure.
async fn write(stream: &mut TcpStream, bytes: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Serves one connection: frame, record, answer, repeat.
async fn serve(mut stream: TcpStream, state: Arc<State>) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(end) = h1::find_head_end(&buf) {
                break end;
            }
            if buf.len() > MAX_HEAD || !read_more(&mut stream, &mut buf, &state).await {
                return;
            }
        };
        let head = h1::parse_head(&buf[..head_end]);
        let framing = h1::request_framing(&head);
        if matches!(framing, Framing::Length(_) | Framing::Chunked)
            && head.has_token("expect", "100-continue")
            && !write(&mut stream, b"HTTP/1.1 100 Continue\r\n\r\n").await
        {
            return;
        }
        let total = match framing {
            Framing::Empty => Some(head_end),
            Framing::Length(n) => match head_end.checked_add(n) {
                Some(total) => loop {
                    if buf.len() >= total {
                        break Some(total);
                    }
                    if !read_more(&mut stream, &mut buf, &state).await {
                        return;
                    }
                },
                None => None,
            },
            Framing::Chunked => loop {
                match h1::walk_chunked(&buf[head_end..], |_| {}) {
                    Ok(Some(len)) => break Some(head_end + len),
                    Ok(None) => {
                        if !read_more(&mut stream, &mut buf, &state).await {
                            return;
                        }
                    }
                    Err(()) => break None,
                }
            },
            Framing::UntilClose | Framing::Invalid => None,
        };
        let Some(total) = total else {
            state.record(std::mem::take(&mut buf));
            let _ = write(
                &mut stream,
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
            let _ = stream.shutdown().await;
            return;
        };
        let request: Vec<u8> = buf.drain(..total).collect();
        state.record(request);

        let is_head = head.start_line.starts_with("HEAD ");
        let close = head.has_token("connection", "close")
            || (head.start_line.ends_with("HTTP/1.0")
                && !head.has_token("connection", "keep-alive"));
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n{}\r\n",
            BODY.len(),
            if close { "Connection: close\r\n" } else { "" }
        )
        .into_bytes();
        if !is_head {
            response.extend_from_slice(BODY);
        }
        if !write(&mut stream, &response).await {
            return;
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

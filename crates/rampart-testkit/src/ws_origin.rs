//! `WsOrigin`: a WebSocket echo server over raw TCP accept (tokio-tungstenite server side).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use crate::server::{ServerTask, bind_loopback, spawn_accept_loop};

/// Longest time the opening handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a WebSocket connection may sit idle before the origin closes it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Counters.
#[derive(Debug, Default)]
struct Stats {
    /// Accepted TCP connections.
    connections: AtomicU64,
    /// Completed WebSocket handshakes.
    upgrades: AtomicU64,
    /// Text and binary messages echoed.
    messages: AtomicU64,
}

/// A WebSocket origin on 127.0.0.1 echoing text and binary messages back.
#[derive(Debug)]
pub struct WsOrigin {
    /// Bound address.
    addr: SocketAddr,
    /// Shared counters.
    stats: Arc<Stats>,
    /// Accept loop; aborted on drop.
    _server: ServerTask,
}

impl WsOrigin {
    /// Starts an echo server that upgrades on any path.
    pub async fn start() -> io::Result<Self> {
        Self::spawn(None).await
    }

    /// Starts an echo server that upgrades only on `/ws` and answers 404 elsewhere.
    pub async fn with_path_check() -> io::Result<Self> {
        Self::spawn(Some("/ws")).await
    }

    /// Binds and spawns the accept loop.
    async fn spawn(path: Option<&'static str>) -> io::Result<Self> {
        let listener = bind_loopback().await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let loop_stats = Arc::clone(&stats);
        let server = spawn_accept_loop(listener, move |stream, _peer| {
            loop_stats.connections.fetch_add(1, Ordering::SeqCst);
            serve(stream, path, Arc::clone(&loop_stats))
        });
        Ok(Self {
            addr,
            stats,
            _server: server,
        })
    }

    /// The bound address (`127.0.0.1:port`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:port` followed by `path` (which should start with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Number of TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// Number of successful WebSocket handshakes so far.
    pub fn upgrades(&self) -> u64 {
        self.stats.upgrades.load(Ordering::SeqCst)
    }

    /// Number of text and binary messages echoed so far.
    pub fn messages(&self) -> u64 {
        self.stats.messages.load(Ordering::SeqCst)
    }
}

/// Handshakes and echoes one connection.
#[allow(
    clippy::result_large_err,
    reason = "the handshake callback's signature is fixed by tungstenite"
)]
async fn serve(stream: TcpStream, path: Option<&'static str>, stats: Arc<Stats>) {
    let _ = stream.set_nodelay(true);
    let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match path {
            Some(p) if req.uri().path() != p => {
                let mut err = ErrorResponse::new(Some("not found\n".to_owned()));
                *err.status_mut() = StatusCode::NOT_FOUND;
                Err(err)
            }
            _ => Ok(resp),
        }
    };
    let handshake = tokio_tungstenite::accept_hdr_async(stream, check);
    let Ok(Ok(mut ws)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await else {
        return;
    };
    stats.upgrades.fetch_add(1, Ordering::SeqCst);
    // After a Close, tungstenite queues the reply; the next read flushes it and ends the stream.
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(IDLE_TIMEOUT, ws.next()).await {
        if matches!(msg, Message::Text(_) | Message::Binary(_)) {
            stats.messages.fetch_add(1, Ordering::SeqCst);
            if ws.send(msg).await.is_err() {
                break;
            }
        }
    }
}

//! `ScriptedOrigin`: raw TCP origin misbehaving on purpose, for 502/504 tests.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::h1::{self, MAX_HEAD};
use crate::server::{ServerTask, bind_loopback, spawn_accept_loop};

/// Longest wait for a request head before acting anyway.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest time spent writing, and then draining the peer after our FIN.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a `Hang` connection is held open (the origin's drop ends it sooner).
const HANG_LIMIT: Duration = Duration::from_secs(600);

/// What a `ScriptedOrigin` does with one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behavior {
    /// Accept, then reset at once (`SO_LINGER` 0 and close, sending RST).
    Reset,
    /// Read a request head, reply `not http\r\n\r\n`, then close.
    Garbage,
    /// Accept and read, but never answer; held open until the origin is dropped.
    Hang,
    /// Read a request head, write these exact bytes, then close (FIN).
    Respond(Vec<u8>),
}

/// Shared script and counters.
#[derive(Debug)]
struct State {
    /// Behaviour of connection `i` is `script[i]`, the last one repeating.
    script: Vec<Behavior>,
    /// Accepted TCP connections.
    connections: AtomicU64,
}

impl State {
    /// Behaviour for the connection with 0-based index `i`.
    fn behavior(&self, i: u64) -> Behavior {
        let idx = usize::try_from(i).unwrap_or(usize::MAX);
        self.script
            .get(idx)
            .or_else(|| self.script.last())
            .cloned()
            .unwrap_or(Behavior::Reset)
    }
}

/// A raw TCP origin on 127.0.0.1 whose per-connection behaviour is scripted.
#[derive(Debug)]
pub struct ScriptedOrigin {
    /// Bound address.
    addr: SocketAddr,
    /// Shared state.
    state: Arc<State>,
    /// Accept loop; aborted on drop.
    _server: ServerTask,
}

impl ScriptedOrigin {
    /// Starts an origin applying `behavior` to every connection.
    pub async fn start(behavior: Behavior) -> io::Result<Self> {
        Self::with_script(vec![behavior]).await
    }

    /// Starts an origin applying `script[i]` to the i-th connection, repeating the last entry
    /// (an empty script resets every connection).
    pub async fn with_script(script: Vec<Behavior>) -> io::Result<Self> {
        let listener = bind_loopback().await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            script,
            connections: AtomicU64::new(0),
        });
        let loop_state = Arc::clone(&state);
        let server = spawn_accept_loop(listener, move |stream, _peer| {
            let index = loop_state.connections.fetch_add(1, Ordering::SeqCst);
            act(stream, loop_state.behavior(index))
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

    /// Number of TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }
}

/// Applies `behavior` to one connection.
async fn act(mut stream: TcpStream, behavior: Behavior) {
    match behavior {
        Behavior::Reset => {
            let _ = stream.set_zero_linger();
            drop(stream);
        }
        Behavior::Garbage => reply_and_close(stream, b"not http\r\n\r\n").await,
        Behavior::Respond(bytes) => reply_and_close(stream, &bytes).await,
        Behavior::Hang => {
            let mut sink = vec![0u8; 16 * 1024];
            let hold = async {
                while let Ok(n) = stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(HANG_LIMIT, hold).await;
        }
    }
}

/// Reads a request head (bounded), writes `bytes`, sends FIN and drains until the peer closes.
async fn reply_and_close(mut stream: TcpStream, bytes: &[u8]) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let read_head = async {
        while h1::find_head_end(&buf).is_none() && buf.len() <= MAX_HEAD {
            match stream.read_buf(&mut buf).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(HEAD_TIMEOUT, read_head).await;
    let write = async {
        stream.write_all(bytes).await?;
        stream.shutdown().await
    };
    if !matches!(tokio::time::timeout(IO_TIMEOUT, write).await, Ok(Ok(()))) {
        return;
    }
    // Draining (rather than dropping with unread input) avoids an RST racing our reply.
    let mut sink = vec![0u8; 16 * 1024];
    let drain = async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(IO_TIMEOUT, drain).await;
}

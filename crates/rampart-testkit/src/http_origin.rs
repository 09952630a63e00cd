//! `HttpOrigin`: a hyper HTTP/1.1 (or h2c) origin that echoes requests and has test routes.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::server::{ServerTask, bind_loopback, spawn_accept_loop};

/// Response body type of the origin's service.
type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Size of each chunk streamed by `/bytes/{n}`.
const CHUNK: usize = 64 * 1024;

/// Longest time a request body is read before the origin answers with what it got.
const BODY_READ_LIMIT: Duration = Duration::from_secs(120);

/// Longest `/delay/{ms}` and `/sse` interval honoured.
const MAX_DELAY_MS: u64 = 60_000;

/// Most `/sse` events or `/chunked` chunks sent.
const MAX_ITEMS: u64 = 100_000;

/// The pattern `/bytes/{n}` sends: `a..z` repeated, restarting at every 64 KiB chunk.
static PATTERN: [u8; CHUNK] = pattern();

/// Builds [`PATTERN`] at compile time.
const fn pattern() -> [u8; CHUNK] {
    let mut out = [0u8; CHUNK];
    let mut i = 0;
    while i < CHUNK {
        out[i] = b'a' + (i % 26) as u8;
        i += 1;
    }
    out
}

/// Which protocol the origin speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2 with prior knowledge (cleartext).
    H2c,
}

/// Connection and request counters.
#[derive(Debug, Default)]
struct Stats {
    /// Accepted TCP connections.
    connections: AtomicU64,
    /// Requests handled.
    requests: AtomicU64,
}

/// An HTTP origin (hyper) on 127.0.0.1 that echoes requests as JSON and serves test routes.
///
/// Routes (by path prefix): `/status/{code}`, `/delay/{ms}`, `/bytes/{n}`, `/sink`,
/// `/sse?events=N&interval_ms=M`, `/chunked?chunks=N`, `/close`, `/headers`; anything else is
/// the JSON echo `{method, uri, version, headers: [[name, value]..], body_len, peer, connection}`.
/// `connection` is the 1-based index of the TCP connection that carried the request.
#[derive(Debug)]
pub struct HttpOrigin {
    /// Bound address.
    addr: SocketAddr,
    /// Shared counters.
    stats: Arc<Stats>,
    /// Accept loop; aborted on drop.
    _server: ServerTask,
}

impl HttpOrigin {
    /// Starts an HTTP/1.1 (keep-alive) origin on `127.0.0.1:0`.
    pub async fn start() -> io::Result<Self> {
        Self::spawn(Proto::Http1).await
    }

    /// Starts the same service over HTTP/2 with prior knowledge only (h2c, no upgrade).
    pub async fn h2c() -> io::Result<Self> {
        Self::spawn(Proto::H2c).await
    }

    /// Starts the same service over TLS with `config`: HTTP/2 when the client negotiates `h2`
    /// by ALPN, HTTP/1.1 otherwise. Connections that fail the handshake are counted too.
    pub async fn tls(config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let listener = bind_loopback().await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let loop_stats = Arc::clone(&stats);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let server = spawn_accept_loop(listener, move |stream, peer| {
            let conn_id = loop_stats.connections.fetch_add(1, Ordering::SeqCst) + 1;
            let stats = Arc::clone(&loop_stats);
            let acceptor = acceptor.clone();
            async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let proto = if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    Proto::H2c
                } else {
                    Proto::Http1
                };
                serve_io(TokioIo::new(tls), peer, proto, stats, conn_id).await;
            }
        });
        Ok(Self {
            addr,
            stats,
            _server: server,
        })
    }

    /// Starts an HTTP/1.1 origin on a chosen loopback address (for example `127.0.0.2` with
    /// the port of another origin, so that DNS discovery tests can tell targets apart by IP).
    pub async fn start_at(addr: SocketAddr) -> io::Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "test origins bind loopback addresses only",
            ));
        }
        Self::serve(tokio::net::TcpListener::bind(addr).await?, Proto::Http1)
    }

    /// Binds and spawns the accept loop.
    async fn spawn(proto: Proto) -> io::Result<Self> {
        Self::serve(bind_loopback().await?, proto)
    }

    fn serve(listener: tokio::net::TcpListener, proto: Proto) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let loop_stats = Arc::clone(&stats);
        let server = spawn_accept_loop(listener, move |stream, peer| {
            let conn_id = loop_stats.connections.fetch_add(1, Ordering::SeqCst) + 1;
            serve_connection(stream, peer, proto, Arc::clone(&loop_stats), conn_id)
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

    /// `http://127.0.0.1:port` followed by `path_and_query` (which should start with `/`).
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// Number of TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// Number of requests received so far.
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::SeqCst)
    }
}

/// Serves one accepted connection until it closes.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    proto: Proto,
    stats: Arc<Stats>,
    conn_id: u64,
) {
    let _ = stream.set_nodelay(true);
    serve_io(TokioIo::new(stream), peer, proto, stats, conn_id).await;
}

/// Serves HTTP on an established stream (plain or TLS) until it closes.
async fn serve_io<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    proto: Proto,
    stats: Arc<Stats>,
    conn_id: u64,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        stats.requests.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(route(req, peer, conn_id).await) }
    });
    match proto {
        Proto::Http1 => {
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .keep_alive(true)
                .serve_connection(io, service)
                .await;
        }
        Proto::H2c => {
            let _ = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(io, service)
                .await;
        }
    }
}

/// True if `path` is `prefix` or below it.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// First path segment after `prefix/`, if any.
fn segment<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)?
        .strip_prefix('/')
        .map(|rest| rest.split('/').next().unwrap_or_default())
}

/// Value of query parameter `name`, parsed as `u64`.
fn query_u64(parts: &Parts, name: &str) -> Option<u64> {
    parts
        .uri
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// Reads and discards the request body, returning its length in bytes.
async fn count_body(mut body: Incoming) -> u64 {
    let mut n = 0u64;
    let read = async {
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        n += data.len() as u64;
                    }
                }
                Err(_) => break,
            }
        }
    };
    let _ = tokio::time::timeout(BODY_READ_LIMIT, read).await;
    n
}

/// Dispatches one request to its route.
async fn route(req: Request<Incoming>, peer: SocketAddr, conn_id: u64) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body_len = count_body(body).await;
    let path = parts.uri.path().to_owned();
    let echo = || echo_body(&parts, body_len, peer, conn_id);

    if under(&path, "/status") {
        let code = segment(&path, "/status").and_then(|s| s.parse::<u16>().ok());
        match code.and_then(|c| StatusCode::from_u16(c).ok()) {
            Some(status) if status.as_u16() >= 200 => {
                let mut resp =
                    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
                        Response::new(full(Bytes::new()))
                    } else {
                        json_response(echo())
                    };
                *resp.status_mut() = status;
                resp
            }
            _ => text_response(StatusCode::BAD_REQUEST, "bad status code\n"),
        }
    } else if under(&path, "/delay") {
        match segment(&path, "/delay").and_then(|s| s.parse::<u64>().ok()) {
            Some(ms) => {
                tokio::time::sleep(Duration::from_millis(ms.min(MAX_DELAY_MS))).await;
                json_response(echo())
            }
            None => text_response(StatusCode::BAD_REQUEST, "bad delay\n"),
        }
    } else if under(&path, "/bytes") {
        match segment(&path, "/bytes").and_then(|s| s.parse::<u64>().ok()) {
            Some(n) => bytes_response(n),
            None => text_response(StatusCode::BAD_REQUEST, "bad byte count\n"),
        }
    } else if under(&path, "/sink") {
        json_response(serde_json::json!({ "received": body_len }).to_string())
    } else if under(&path, "/sse") {
        let events = query_u64(&parts, "events").unwrap_or(3).min(MAX_ITEMS);
        let interval = query_u64(&parts, "interval_ms")
            .unwrap_or(50)
            .min(MAX_DELAY_MS);
        sse_response(events, Duration::from_millis(interval))
    } else if under(&path, "/chunked") {
        chunked_response(query_u64(&parts, "chunks").unwrap_or(5).min(MAX_ITEMS))
    } else if under(&path, "/close") {
        let mut resp = json_response(echo());
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        resp
    } else {
        json_response(echo())
    }
}

/// The JSON echo of a request.
fn echo_body(parts: &Parts, body_len: u64, peer: SocketAddr, conn_id: u64) -> String {
    let headers: Vec<[String; 2]> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            [
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ]
        })
        .collect();
    serde_json::json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": body_len,
        "peer": peer.to_string(),
        "connection": conn_id,
    })
    .to_string()
}

/// A complete body.
fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// `200` with a JSON body.
fn json_response(json: String) -> Response<Body> {
    let mut resp = Response::new(full(json));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A plain-text response with `status`.
fn text_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// `n` generated bytes streamed in 64 KiB chunks with a `Content-Length`.
fn bytes_response(n: u64) -> Response<Body> {
    let chunks = stream::unfold(n, |remaining| async move {
        if remaining == 0 {
            return None;
        }
        let len = usize::try_from(remaining).map_or(CHUNK, |r| r.min(CHUNK));
        let frame = Frame::data(Bytes::from_static(&PATTERN[..len]));
        Some((Ok::<_, Infallible>(frame), remaining - len as u64))
    });
    let mut resp = Response::new(StreamBody::new(chunks).boxed_unsync());
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(n));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

/// `events` server-sent events `data: event i`, `interval` apart (the first at once).
fn sse_response(events: u64, interval: Duration) -> Response<Body> {
    let stream = stream::unfold(0u64, move |i| async move {
        if i >= events {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(interval).await;
        }
        let frame = Frame::data(Bytes::from(format!("data: event {i}\n\n")));
        Some((Ok::<_, Infallible>(frame), i + 1))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    resp
}

/// A body of `chunks` frames `chunk i\n` with no length (chunked on HTTP/1.1).
fn chunked_response(chunks: u64) -> Response<Body> {
    let stream = stream::unfold(0u64, move |i| async move {
        if i >= chunks {
            return None;
        }
        tokio::task::yield_now().await;
        let frame = Frame::data(Bytes::from(format!("chunk {i}\n")));
        Some((Ok::<_, Infallible>(frame), i + 1))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

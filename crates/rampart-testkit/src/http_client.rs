//! A tiny raw-TCP HTTP/1.1 client for malformed-request tests.
//!
//! It writes exactly the bytes given and reads one response, framed by `Content-Length`,
//! `Transfer-Encoding: chunked` or connection close, with a bounded timeout.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::h1::{self, Framing};

/// Default bound on connecting, writing and reading one response.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `bytes` on a fresh connection and returns the raw bytes of one response.
///
/// Reads until a full response (per `Content-Length`/chunked; interim 1xx are included) or until
/// the server closes (always so for bytes that are not a framable HTTP response); an empty
/// vector means it closed without answering. Fails with `TimedOut` after [`DEFAULT_TIMEOUT`].
pub async fn raw_request(addr: SocketAddr, bytes: &[u8]) -> io::Result<Vec<u8>> {
    raw_request_timeout(addr, bytes, DEFAULT_TIMEOUT).await
}

/// [`raw_request`] with an explicit timeout (applied to connect, write and read each).
pub async fn raw_request_timeout(
    addr: SocketAddr,
    bytes: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let mut conn = RawConnection::connect_timeout(addr, timeout).await?;
    let head_request = bytes.starts_with(b"HEAD ");
    // A server may answer and close before reading everything: still read what it sent.
    let sent = conn.send(bytes).await;
    match conn.read_response_bytes(head_request).await {
        Ok(response) if response.is_empty() => sent.map(|()| response),
        Ok(response) => Ok(response),
        Err(e) => Err(sent.err().unwrap_or(e)),
    }
}

/// [`raw_request`], parsed into a [`RawResponse`].
pub async fn raw_request_parsed(addr: SocketAddr, bytes: &[u8]) -> io::Result<RawResponse> {
    let raw = raw_request(addr, bytes).await?;
    RawResponse::parse_for(&raw, bytes.starts_with(b"HEAD "))
}

/// A raw connection for sending bytes and reading successive responses (keep-alive, pipelining).
#[derive(Debug)]
pub struct RawConnection {
    /// The socket.
    stream: TcpStream,
    /// Bytes read but not yet returned.
    buf: Vec<u8>,
    /// Whether the server closed its side (or reset after sending something).
    eof: bool,
    /// Bound on each connect, write and response read.
    timeout: Duration,
}

impl RawConnection {
    /// Connects to `addr` with [`DEFAULT_TIMEOUT`].
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        Self::connect_timeout(addr, DEFAULT_TIMEOUT).await
    }

    /// Connects to `addr`; `timeout` also bounds every later write and response read.
    pub async fn connect_timeout(addr: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out("connect"))??;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::new(),
            eof: false,
            timeout,
        })
    }

    /// Writes `bytes` exactly as given.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        tokio::time::timeout(self.timeout, self.stream.write_all(bytes))
            .await
            .map_err(|_| timed_out("write"))?
    }

    /// Shuts down the write side (sends FIN).
    pub async fn shutdown_write(&mut self) -> io::Result<()> {
        tokio::time::timeout(self.timeout, self.stream.shutdown())
            .await
            .map_err(|_| timed_out("shutdown"))?
    }

    /// Closes the connection with a reset (RST) instead of a FIN, as a crashed client or a
    /// middlebox would.
    pub fn reset(self) -> io::Result<()> {
        socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO))?;
        drop(self.stream);
        Ok(())
    }

    /// Reads the raw bytes of the next response (to a request that was `HEAD` or not).
    ///
    /// Returns an empty vector if the server closed without sending anything.
    pub async fn read_response_bytes(&mut self, head_request: bool) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(len) = response_len(&self.buf, head_request) {
                return Ok(self.buf.drain(..len).collect());
            }
            if self.eof {
                return Ok(std::mem::take(&mut self.buf));
            }
            self.buf.reserve(64 * 1024);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(timed_out("read")),
                Ok(Ok(0)) => self.eof = true,
                Ok(Ok(_)) => {}
                // A reset after a response (common after an error reply) keeps what arrived.
                Ok(Err(e)) if self.buf.is_empty() => return Err(e),
                Ok(Err(_)) => self.eof = true,
            }
        }
    }

    /// Reads and parses the next response to a non-`HEAD` request.
    pub async fn read_response(&mut self) -> io::Result<RawResponse> {
        let raw = self.read_response_bytes(false).await?;
        RawResponse::parse_for(&raw, false)
    }

    /// True once the server has closed the connection and every byte was consumed.
    pub async fn is_closed(&mut self) -> bool {
        if self.eof {
            return self.buf.is_empty();
        }
        let mut probe = [0u8; 1];
        match tokio::time::timeout(self.timeout, self.stream.read(&mut probe)).await {
            Ok(Ok(0) | Err(_)) => {
                self.eof = true;
                self.buf.is_empty()
            }
            Ok(Ok(_)) => {
                self.buf.push(probe[0]);
                false
            }
            Err(_) => false,
        }
    }
}

/// A `TimedOut` error for `what`.
fn timed_out(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("raw client {what} timed out"),
    )
}

/// An `InvalidData` error.
fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// Status code from a status line like `HTTP/1.1 200 OK`.
fn status_of(start_line: &str) -> io::Result<u16> {
    let mut parts = start_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/") {
        return Err(invalid("not an HTTP status line"));
    }
    parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| invalid("bad status code"))
}

/// Length of the first complete response in `buf` (1xx interim responses included), if any.
///
/// `None` also when the bytes cannot be framed (not HTTP, malformed chunks): the caller then
/// reads until the server closes.
fn response_len(buf: &[u8], head_request: bool) -> Option<usize> {
    let mut start = 0;
    loop {
        let rest = &buf[start..];
        let head_end = h1::find_head_end(rest)?;
        let head = h1::parse_head(&rest[..head_end]);
        let status = status_of(&head.start_line).ok()?;
        if (100..200).contains(&status) && status != 101 {
            start += head_end;
            continue;
        }
        let end = match h1::response_framing(&head, status, head_request) {
            Framing::Empty => Some(head_end),
            Framing::Length(n) => head_end.checked_add(n).filter(|&total| rest.len() >= total),
            Framing::Chunked => h1::walk_chunked(&rest[head_end..], |_| {})
                .ok()
                .flatten()
                .map(|len| head_end + len),
            Framing::UntilClose | Framing::Invalid => None,
        };
        return end.map(|end| start + end);
    }
}

/// A parsed HTTP/1.x response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The status line, e.g. `HTTP/1.1 200 OK`.
    pub status_line: String,
    /// The status code.
    pub status: u16,
    /// Header fields in wire order, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked if it was chunked.
    pub body: Vec<u8>,
    /// The exact bytes received, interim 1xx responses included.
    pub raw: Vec<u8>,
}

impl RawResponse {
    /// Parses the raw bytes of a response to a non-`HEAD` request.
    pub fn parse(raw: &[u8]) -> io::Result<Self> {
        Self::parse_for(raw, false)
    }

    /// Parses the raw bytes of a response; `head_request` says the request was `HEAD`.
    pub fn parse_for(raw: &[u8], head_request: bool) -> io::Result<Self> {
        if raw.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed without a response",
            ));
        }
        let mut start = 0;
        loop {
            let rest = &raw[start..];
            let head_end = h1::find_head_end(rest).ok_or_else(|| invalid("incomplete head"))?;
            let head = h1::parse_head(&rest[..head_end]);
            let status = status_of(&head.start_line)?;
            if (100..200).contains(&status) && status != 101 && head_end < rest.len() {
                start += head_end;
                continue;
            }
            let after = &rest[head_end..];
            let body = match h1::response_framing(&head, status, head_request) {
                Framing::Empty => Vec::new(),
                Framing::Length(n) => after[..n.min(after.len())].to_vec(),
                Framing::Chunked => {
                    let mut body = Vec::new();
                    h1::walk_chunked(after, |d| body.extend_from_slice(d))
                        .map_err(|()| invalid("malformed chunked response"))?;
                    body
                }
                Framing::UntilClose | Framing::Invalid => after.to_vec(),
            };
            return Ok(Self {
                status_line: head.start_line,
                status,
                headers: head.headers,
                body,
                raw: raw.to_vec(),
            });
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as (lossy) UTF-8 text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_chunked_interim_and_close_delimited() {
        let r =
            RawResponse::parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nA: 1\r\n\r\nhi").unwrap();
        assert_eq!((r.status, r.body_text().as_str()), (200, "hi"));
        assert_eq!(r.header("a"), Some("1"));

        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        assert_eq!(response_len(raw, false), Some(raw.len()));
        let r = RawResponse::parse(raw).unwrap();
        assert_eq!((r.status, r.body_text().as_str()), (201, "hi"));

        let raw = b"HTTP/1.0 200 OK\r\n\r\nuntil close";
        assert_eq!(response_len(raw, false), None);
        assert_eq!(RawResponse::parse(raw).unwrap().body, b"until close");

        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(response_len(raw, true), Some(raw.len()));
        assert_eq!(response_len(raw, false), None);

        assert_eq!(response_len(b"not http\r\n\r\n", false), None);
        assert!(RawResponse::parse(b"not http\r\n\r\n").is_err());
        assert!(RawResponse::parse(b"").is_err());
    }
}

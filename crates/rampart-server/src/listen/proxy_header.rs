//! Reading the PROXY protocol header at the start of a connection from a configured load
//! balancer, before TLS or HTTP: exactly the header's bytes are consumed, so the client's own
//! bytes stay in the socket for what comes next.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_core::proxy_protocol::{self, Command, ParseError, Parsed, V2_MAX_LEN};
use rampart_core::{ConnInfo, ErrorKind, Outcome, RequestCtx};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::pipeline::session::Shared;

/// Why no header could be read.
#[derive(Debug)]
pub(crate) enum HeaderError {
    /// The bytes are not a valid header (or no header at all).
    Invalid(ParseError),
    /// The header did not arrive within the header-read timeout.
    Timeout,
    /// The peer closed (or reset) before a whole header arrived.
    Closed(usize),
}

impl HeaderError {
    fn reason(&self) -> ErrorKind {
        match self {
            Self::Invalid(ParseError::Missing) | Self::Closed(0) | Self::Timeout => {
                ErrorKind::ProxyProtocolMissing
            }
            _ => ErrorKind::ProxyProtocolInvalid,
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Invalid(e) => format!("PROXY protocol {}: {e}", e.code()),
            Self::Timeout => "no PROXY protocol header within the header read timeout".to_owned(),
            Self::Closed(n) => {
                format!("connection closed after {n} bytes of a PROXY protocol header")
            }
        }
    }
}

/// Reads the header and returns the client address it names (`None` for `LOCAL` and
/// `UNKNOWN`: the connection's own addresses stand).
///
/// # Errors
/// A missing, malformed or late header; the caller closes the connection.
pub(crate) async fn read(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<Option<SocketAddr>, HeaderError> {
    match tokio::time::timeout(timeout, read_inner(stream)).await {
        Ok(result) => result,
        Err(_) => Err(HeaderError::Timeout),
    }
}

async fn read_inner(stream: &mut TcpStream) -> Result<Option<SocketAddr>, HeaderError> {
    let mut buf = vec![0u8; V2_MAX_LEN];
    // Usually the whole header arrives in the first segment: peek, then consume exactly it.
    let peeked = stream
        .peek(&mut buf)
        .await
        .map_err(|_| HeaderError::Closed(0))?;
    if peeked == 0 {
        return Err(HeaderError::Closed(0));
    }
    if let Parsed::Complete { len, .. } =
        proxy_protocol::parse(&buf[..peeked]).map_err(HeaderError::Invalid)?
    {
        stream
            .read_exact(&mut buf[..len])
            .await
            .map_err(|_| HeaderError::Closed(0))?;
        return source(&buf[..len]);
    }
    // Split across segments: read exactly as many bytes as the parser asks for.
    let mut have = 0;
    loop {
        match proxy_protocol::parse(&buf[..have]).map_err(HeaderError::Invalid)? {
            Parsed::Complete { len, .. } => return source(&buf[..len]),
            Parsed::Incomplete { need } => {
                let need = need.min(buf.len());
                if need <= have {
                    return Err(HeaderError::Invalid(ParseError::V2Tlv));
                }
                stream
                    .read_exact(&mut buf[have..need])
                    .await
                    .map_err(|_| HeaderError::Closed(have))?;
                have = need;
            }
        }
    }
}

fn source(header: &[u8]) -> Result<Option<SocketAddr>, HeaderError> {
    match proxy_protocol::parse(header).map_err(HeaderError::Invalid)? {
        Parsed::Complete { header, .. } if header.command == Command::Proxy => Ok(header.source()),
        _ => Ok(None),
    }
}

/// Logs a refused connection: a warning, and an access log line with its reason (method `-`,
/// status 0: the connection is closed without an answer).
pub(crate) fn log_refused(err: &HeaderError, info: &std::sync::Arc<ConnInfo>, shared: &Shared) {
    if matches!(err, HeaderError::Closed(0)) {
        // A load balancer's TCP health check: it connects and closes without a byte.
        tracing::debug!(peer = %info.peer, listener = %info.listener, "connection closed before a PROXY protocol header");
        return;
    }
    let kind = err.reason();
    let detail = err.detail();
    tracing::warn!(peer = %info.peer, listener = %info.listener, reason = kind.code(), %detail, "PROXY protocol header refused");
    if let Some(log) = &shared.access_log {
        let method = http::Method::from_bytes(b"-").unwrap_or_default();
        let mut ctx = RequestCtx::new(
            info.clone(),
            method,
            http::Uri::default(),
            http::Version::HTTP_11,
        );
        ctx.request_id = rampart_core::ids::new_request_id();
        ctx.reason = Some(kind);
        ctx.detail = Some(detail);
        log.record(
            &ctx,
            Outcome {
                status: Outcome::NOTHING_SENT,
                bytes_sent: 0,
                bytes_received: 0,
                completed: false,
            },
        );
    }
}

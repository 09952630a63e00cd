//! Opening connections to targets: DNS resolution for named targets, TCP connect with a
//! timeout, HTTP/1.1 or HTTP/2 handshake, and the driver task of each connection.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_config::syntax::Target as TargetSpec;
use rampart_core::{ErrorKind, ProxyError};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};

use crate::io::UpstreamIo;
use crate::pool::H2Sender;
use crate::set::{Target, UpstreamSet};

/// Connects to `target` within `timeout`, trying each resolved address in turn.
pub(crate) async fn tcp(
    target: &Target,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), ProxyError> {
    match tokio::time::timeout(timeout, tcp_inner(target)).await {
        Ok(result) => result,
        Err(_) => Err(ProxyError::new(
            ErrorKind::UpstreamConnectTimeout,
            format!("connect to {} timed out after {timeout:?}", target.label),
        )
        .retryable()),
    }
}

async fn tcp_inner(target: &Target) -> Result<(TcpStream, SocketAddr), ProxyError> {
    let addrs: Vec<SocketAddr> = match &target.spec {
        TargetSpec::Addr(addr) => vec![*addr],
        TargetSpec::Host(host, port) => tokio::net::lookup_host((host.as_str(), *port))
            .await
            .map_err(|e| connect_error(target, &format!("resolve: {e}")))?
            .collect(),
        TargetSpec::Unix(_) => {
            return Err(connect_error(target, "a Unix socket has no TCP address"));
        }
    };
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Latency matters more than packet count between proxy and upstream.
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr));
            }
            Err(e) => last = Some(format!("connect {addr}: {e}")),
        }
    }
    Err(connect_error(
        target,
        &last.unwrap_or_else(|| "name resolved to no address".to_owned()),
    ))
}

fn connect_error(target: &Target, detail: &str) -> ProxyError {
    ProxyError::new(
        ErrorKind::UpstreamConnect,
        format!("{}: {detail}", target.label),
    )
    .retryable()
}

/// Opens a stream to `target`: TCP, the PROXY protocol `preface` when there is one, then the
/// TLS handshake when the upstream uses TLS, all within the upstream's connect timeout.
pub(crate) async fn stream(
    target: &Target,
    set: &UpstreamSet,
    preface: Option<&[u8]>,
) -> Result<UpstreamIo, ProxyError> {
    let timeout = set.connect_timeout;
    if let TargetSpec::Unix(path) = &target.spec {
        // Validation refuses TLS for Unix socket targets.
        let mut unix = unix(target, path, timeout).await?;
        if let Some(preface) = preface {
            write_preface(&mut unix, preface, target, timeout).await?;
        }
        return Ok(UpstreamIo::Unix(unix));
    }
    let started = std::time::Instant::now();
    let (mut tcp, _) = tcp(target, timeout).await?;
    if let Some(preface) = preface {
        write_preface(&mut tcp, preface, target, timeout).await?;
    }
    let Some(tls) = &set.tls else {
        return Ok(UpstreamIo::Tcp(tcp));
    };
    let name = crate::tls::server_name(&tls.settings, &target.host())
        .map_err(|e| connect_error(target, &e))?;
    let left = timeout.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, crate::tls::connect(tls.config.clone(), name, tcp)).await {
        Ok(Ok(stream)) => Ok(UpstreamIo::Tls(Box::new(stream))),
        Ok(Err(e)) => Err(ProxyError::new(
            ErrorKind::UpstreamTls,
            format!("{}: TLS handshake: {e}", target.label),
        )
        .retryable()),
        Err(_) => Err(ProxyError::new(
            ErrorKind::UpstreamConnectTimeout,
            format!(
                "{}: TLS handshake timed out after {timeout:?}",
                target.label
            ),
        )
        .retryable()),
    }
}

/// Connects to the Unix socket at `path` within `timeout`.
pub(crate) async fn unix(
    target: &Target,
    path: &std::path::Path,
    timeout: Duration,
) -> Result<UnixStream, ProxyError> {
    match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(connect_error(target, &format!("connect: {e}"))),
        Err(_) => Err(ProxyError::new(
            ErrorKind::UpstreamConnectTimeout,
            format!("connect to {} timed out after {timeout:?}", target.label),
        )
        .retryable()),
    }
}

/// Writes the PROXY protocol header: the first bytes of the connection.
async fn write_preface(
    tcp: &mut (impl tokio::io::AsyncWrite + Unpin),
    preface: &[u8],
    target: &Target,
    timeout: Duration,
) -> Result<(), ProxyError> {
    match tokio::time::timeout(timeout, tcp.write_all(preface)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(connect_error(target, &format!("PROXY header: {e}"))),
        Err(_) => Err(connect_error(target, "PROXY header: write timed out")),
    }
}

/// Opens an HTTP/1.1 connection with hyper's client that can become a tunnel (upgrades).
pub(crate) async fn http1_upgradable(
    target: &Target,
    set: &UpstreamSet,
    preface: Option<&[u8]>,
) -> Result<http1::SendRequest<rampart_core::Body>, ProxyError> {
    let io = stream(target, set, preface).await?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| connect_error(target, &format!("handshake: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// Opens an HTTP/2 connection: prior knowledge in cleartext, ALPN `h2` over TLS.
pub(crate) async fn http2(target: &Target, set: &UpstreamSet) -> Result<H2Sender, ProxyError> {
    let io = stream(target, set, None).await?;
    if let UpstreamIo::Tls(tls) = &io
        && !crate::tls::negotiated_h2(tls)
    {
        return Err(ProxyError::new(
            ErrorKind::UpstreamBadResponse,
            format!(
                "{}: the target did not agree to HTTP/2 (ALPN)",
                target.label
            ),
        ));
    }
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| connect_error(target, &format!("h2 handshake: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

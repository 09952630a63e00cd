//! TLS passthrough: read the ClientHello's SNI name without terminating TLS, pick the upstream
//! by it, and relay the raw connection (including the bytes already read) with an idle timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rampart_config::model::{Passthrough, ProxyProtocolVersion, Upstream};
use rampart_upstream::proxy_header::{self, ClientConnection};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::TlsListener;
use super::client_hello::{MAX_CLIENT_HELLO, Sni, parse_sni};
use crate::observe::tls_stats::TlsStats;

/// Where passthrough connections go.
pub(crate) struct PassthroughRt {
    exact: HashMap<String, usize>,
    wildcard: HashMap<String, usize>,
    default: Option<usize>,
    backends: Vec<Backend>,
    hello_timeout: Duration,
    idle_timeout: Duration,
}

struct Backend {
    name: Arc<str>,
    targets: Vec<String>,
    connect_timeout: Duration,
    proxy_protocol: Option<ProxyProtocolVersion>,
    next: AtomicUsize,
}

impl PassthroughRt {
    /// Compiles a listener's `passthrough` section (names and upstreams are validated).
    pub(crate) fn new(p: &Passthrough, upstreams: &[Upstream]) -> Self {
        let mut backends: Vec<Backend> = Vec::new();
        let mut index = |name: &str| -> Option<usize> {
            if let Some(i) = backends.iter().position(|b| &*b.name == name) {
                return Some(i);
            }
            let u = upstreams.iter().find(|u| u.name.as_str() == name)?;
            backends.push(Backend {
                name: Arc::from(name),
                targets: u.targets.iter().map(|t| t.to_string()).collect(),
                connect_timeout: u.connect_timeout.get(),
                proxy_protocol: u.proxy_protocol.as_ref().map(|v| *v.get()),
                next: AtomicUsize::new(0),
            });
            Some(backends.len() - 1)
        };
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (name, upstream) in &p.sni {
            let Some(i) = index(upstream) else { continue };
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(suffix) => wildcard.insert(suffix.to_owned(), i),
                None => exact.insert(name, i),
            };
        }
        let default = p.default.as_ref().and_then(|d| index(d));
        Self {
            exact,
            wildcard,
            default,
            backends,
            hello_timeout: p.client_hello_timeout.get(),
            idle_timeout: p.idle_timeout.get(),
        }
    }

    fn pick(&self, sni: Option<&str>) -> Option<&Backend> {
        let i = sni
            .and_then(|n| {
                self.exact.get(n).copied().or_else(|| {
                    let (_, parent) = n.split_once('.')?;
                    self.wildcard.get(parent).copied()
                })
            })
            .or(self.default)?;
        self.backends.get(i)
    }

    /// Serves one client connection: ClientHello, choice, connect, relay. `addrs` are the
    /// client's address and the one it connected to, for a PROXY header to the upstream.
    pub(crate) async fn serve(
        &self,
        mut client: TcpStream,
        addrs: (SocketAddr, SocketAddr),
        stats: &TlsStats,
    ) {
        let mut buf = Vec::with_capacity(2048);
        let sni = tokio::time::timeout(self.hello_timeout, async {
            loop {
                match parse_sni(&buf) {
                    Sni::Incomplete => {}
                    Sni::None => return Ok(None),
                    Sni::Name(n) => return Ok(Some(n)),
                    Sni::Invalid => return Err("not a TLS ClientHello"),
                }
                if buf.len() >= MAX_CLIENT_HELLO {
                    return Err("ClientHello too large");
                }
                let mut chunk = [0u8; 2048];
                match client.read(&mut chunk).await {
                    Ok(0) | Err(_) => return Err("closed before the ClientHello"),
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .unwrap_or(Err("no ClientHello in time"));
        let sni = match sni {
            Ok(sni) => sni,
            Err(why) => {
                tracing::debug!(reason = why, "passthrough connection closed");
                stats.passthrough(false);
                return;
            }
        };
        let Some(backend) = self.pick(sni.as_deref()) else {
            tracing::debug!(
                sni = sni.as_deref().unwrap_or("-"),
                "passthrough: no upstream for this SNI name"
            );
            stats.passthrough(false);
            return;
        };
        self.forward(client, buf, (backend, sni), addrs, stats)
            .await;
    }

    /// For a listener that also terminates TLS: peeks at the ClientHello (the bytes stay in
    /// the socket) and says whether its SNI name is passed through or terminated here. An exact
    /// name wins over a wildcard, whichever side has it; no SNI, or a name no `sni` entry
    /// matches, is terminated.
    pub(crate) async fn choose(&self, client: &TcpStream, tls: &TlsListener) -> Choice {
        let sni = match peek_sni(client, self.hello_timeout).await {
            Ok(Sni::Name(name)) => name,
            // Not TLS, or no SNI: the handshake answers (and counts) it.
            Ok(Sni::None | Sni::Invalid | Sni::Incomplete) => return Choice::Terminate,
            Err(why) => return Choice::Close(why),
        };
        let backend = match self.exact.get(&sni) {
            Some(i) => Some(*i),
            None if tls.serves_exactly(&sni) => None,
            None => sni
                .split_once('.')
                .and_then(|(_, parent)| self.wildcard.get(parent).copied()),
        };
        match backend {
            Some(i) => Choice::Pass(i, sni),
            None => Choice::Terminate,
        }
    }

    /// Forwards a connection [`Self::choose`] passed through to backend `index`; the
    /// ClientHello is still in the socket.
    pub(crate) async fn pass(
        &self,
        client: TcpStream,
        (index, sni): (usize, String),
        addrs: (SocketAddr, SocketAddr),
        stats: &TlsStats,
    ) {
        let Some(backend) = self.backends.get(index) else {
            return;
        };
        self.forward(client, Vec::new(), (backend, Some(sni)), addrs, stats)
            .await;
    }

    /// Connects to `backend`, sends the PROXY header it asks for and `buf` (what was already
    /// read from the client), then relays both ways.
    async fn forward(
        &self,
        client: TcpStream,
        mut buf: Vec<u8>,
        (backend, sni): (&Backend, Option<String>),
        addrs: (SocketAddr, SocketAddr),
        stats: &TlsStats,
    ) {
        let Some(mut upstream) = backend.connect().await else {
            tracing::warn!(upstream = %backend.name, sni = sni.as_deref().unwrap_or("-"), "passthrough: no target reachable");
            stats.passthrough(false);
            return;
        };
        stats.passthrough(true);
        if let Some(version) = backend.proxy_protocol {
            buf.splice(0..0, proxy_preface(version, addrs, sni.as_deref()));
        }
        if !buf.is_empty() && upstream.write_all(&buf).await.is_err() {
            return;
        }
        let _ = upstream.set_nodelay(true);
        match crate::pipeline::tunnel::relay(client, upstream, self.idle_timeout).await {
            Some(Ok((up, down))) => {
                tracing::debug!(upstream = %backend.name, sni = sni.as_deref().unwrap_or("-"), bytes_to_upstream = up, bytes_to_client = down, "passthrough closed");
            }
            Some(Err(e)) => tracing::debug!(error = %e, "passthrough ended with an error"),
            None => {
                tracing::debug!(idle = ?self.idle_timeout, "passthrough closed after idle timeout");
            }
        }
    }
}

/// Why [`Choice::Close`] closed a connection whose ClientHello did not arrive in time.
pub(crate) const NO_HELLO_IN_TIME: &str = "no ClientHello in time";

/// Where a connection to a listener that both passes through and terminates goes.
pub(crate) enum Choice {
    /// Raw to backend `.0`, chosen by SNI name `.1`.
    Pass(usize, String),
    /// Terminated here.
    Terminate,
    /// Closed: no ClientHello (the reason).
    Close(&'static str),
}

/// Reads the SNI name of the ClientHello at the start of `client` without consuming it. A
/// ClientHello split over several segments is peeked again after a short pause (the socket
/// stays readable while the first part sits in it), at most until `timeout`.
async fn peek_sni(client: &TcpStream, timeout: Duration) -> Result<Sni, &'static str> {
    let mut buf = vec![0u8; 2048];
    let mut pause = Duration::from_millis(1);
    tokio::time::timeout(timeout, async {
        loop {
            let n = client
                .peek(&mut buf)
                .await
                .map_err(|_| "connection failed before the ClientHello")?;
            if n == 0 {
                return Err("closed before the ClientHello");
            }
            let sni = parse_sni(&buf[..n]);
            if sni != Sni::Incomplete {
                return Ok(sni);
            }
            if n == buf.len() {
                if n >= MAX_CLIENT_HELLO {
                    return Ok(Sni::Invalid);
                }
                buf.resize(MAX_CLIENT_HELLO, 0);
                continue;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(25));
        }
    })
    .await
    .unwrap_or(Err(NO_HELLO_IN_TIME))
}

/// The PROXY header opening a passthrough connection (v2 carries the SNI name).
fn proxy_preface(
    version: ProxyProtocolVersion,
    (source, destination): (SocketAddr, SocketAddr),
    sni: Option<&str>,
) -> bytes::Bytes {
    let client = ClientConnection {
        source,
        destination,
        authority: sni.map(str::to_owned),
        unique_id: bytes::Bytes::new(),
        tls: None,
    };
    proxy_header::encode(version, &client)
}

impl Backend {
    /// Connects to the targets in round-robin order, trying each once.
    async fn connect(&self) -> Option<TcpStream> {
        let n = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for k in 0..n {
            let target = &self.targets[(start + k) % n];
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(target.as_str()))
                .await
            {
                Ok(Ok(s)) => return Some(s),
                Ok(Err(e)) => {
                    tracing::debug!(target = %target, error = %e, "passthrough connect failed");
                }
                Err(_) => tracing::debug!(target = %target, "passthrough connect timed out"),
            }
        }
        None
    }
}

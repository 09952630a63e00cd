//! A small HTTP/1.1 GET client for key sets: one connection per fetch (fetches are minutes
//! apart), https through rustls with aws-lc-rs, a bounded body and a deadline on the whole
//! exchange.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// Largest response body accepted.
const MAX_BODY: usize = 1 << 20;

/// What a fetch brought back.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The response body.
    pub(crate) body: Bytes,
    /// `Cache-Control: max-age`, or zero for `no-store`/`no-cache`.
    pub(crate) max_age: Option<Duration>,
}

/// GETs one URL.
pub(crate) struct Fetcher {
    uri: Uri,
    host: String,
    port: u16,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    timeout: Duration,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").field("uri", &self.uri).finish()
    }
}

/// True for `localhost` and loopback addresses, where plain http is allowed.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Fetcher {
    /// A client for `url` (https, or http on loopback), trusting `ca` (a PEM file) or the
    /// system store.
    ///
    /// # Errors
    /// An unusable URL or CA file, explained.
    pub(crate) fn new(url: &str, ca: Option<&str>, timeout: Duration) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        let host = uri
            .host()
            .ok_or_else(|| format!("URL {url:?} has no host"))?
            .to_owned();
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") if is_loopback(&host) => false,
            Some("http") => {
                return Err(format!(
                    "URL {url:?} must use https (plain http is allowed only on loopback)"
                ));
            }
            _ => return Err(format!("URL {url:?} must start with https://")),
        };
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tls = if tls {
            let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
                .map_err(|e| format!("URL {url:?}: {e}"))?
                .to_owned();
            Some((client_config(ca)?, name))
        } else {
            None
        };
        Ok(Self {
            uri,
            host,
            port,
            tls,
            timeout,
        })
    }

    /// GETs the URL within the timeout.
    ///
    /// # Errors
    /// Connection, TLS, HTTP or status failures, and the timeout, explained.
    pub(crate) async fn get(&self) -> Result<Fetched, String> {
        match tokio::time::timeout(self.timeout, self.exchange()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    async fn exchange(&self) -> Result<Fetched, String> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((host, self.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some((config, name)) => {
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                self.request(TokioIo::new(tls)).await
            }
            None => self.request(TokioIo::new(tcp)).await,
        }
    }

    async fn request<T>(&self, io: T) -> Result<Fetched, String>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let path = self
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        let authority = self
            .uri
            .authority()
            .map_or(self.host.as_str(), |a| a.as_str());
        let req = Request::get(path)
            .header(header::HOST, authority)
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "rampart")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status().as_u16()));
        }
        let max_age = resp
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Fetched { body, max_age })
    }
}

/// The freshness a `Cache-Control` value gives: `max-age`, or zero for `no-store`/`no-cache`.
fn max_age(value: &str) -> Option<Duration> {
    let mut found = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age") {
            found = arg
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

/// A rustls client config trusting `ca` (PEM) or the system store.
fn client_config(ca: Option<&str>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("CA file {ca:?}: {e}"))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("CA file {ca:?}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("CA file {ca:?} holds no certificate"));
        }
        for c in certs {
            roots.add(c).map_err(|e| format!("CA file {ca:?}: {e}"))?;
        }
    } else {
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            return Err(
                "no CA certificates in the system trust store; install them or set `jwks_ca`"
                    .to_owned(),
            );
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_gives_max_age_or_zero() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let t = Duration::from_secs(1);
        assert!(Fetcher::new("http://127.0.0.1:9/jwks", None, t).is_ok());
        assert!(Fetcher::new("http://localhost/jwks", None, t).is_ok());
        assert!(
            Fetcher::new("http://idp.example.com/jwks", None, t)
                .unwrap_err()
                .contains("https")
        );
        assert!(Fetcher::new("ftp://x/jwks", None, t).is_err());
    }
}

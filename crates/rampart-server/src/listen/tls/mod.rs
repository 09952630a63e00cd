//! TLS termination: compiled per-listener TLS state (certificates by SNI, client
//! verification, session resumption, early data), the handshake in each worker's accept path,
//! the facts handed to the pipeline ([`rampart_core::TlsInfo`]), certificate reload,
//! ClientHello parsing for passthrough, and counters.
//!
//! Every config is built with an explicit aws-lc-rs provider (`builder_with_provider`), so
//! library code does not depend on a process-wide default provider being installed.

pub(crate) mod certs;
pub mod client_hello;
pub(crate) mod early;
mod ocsp;
pub(crate) mod passthrough;
mod quic;
pub(crate) mod reload;
mod resolver;

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use rampart_config::model::{ClientAuth, Listener, ListenerTls, TlsVersion};
use rampart_config::{ConfigError, Located};
use rampart_core::{ClientCertInfo, TlsInfo};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{
    NoServerSessionStorage, ProducesTickets, ServerSessionMemoryCache, StoresServerSessions,
    WebPkiClientVerifier,
};
use rustls::{ServerConfig, ServerConnection, SupportedProtocolVersion};
use tokio::net::TcpStream;

use self::resolver::{CertSlot, SniResolver};
use crate::http::write_batch::{BatchFlusher, BatchedIo};
use crate::observe::tls_stats::{HandshakeFailure, TlsStats};

/// The crypto provider every Rampart TLS config uses: aws-lc-rs with its default (secure)
/// suites: TLS 1.3 suites, and for TLS 1.2 only ECDHE key exchange with AEAD ciphers.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn versions(min: TlsVersion) -> &'static [&'static SupportedProtocolVersion] {
    static BOTH: [&SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static ONLY13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match min {
        TlsVersion::Tls12 => &BOTH,
        TlsVersion::Tls13 => &ONLY13,
    }
}

/// What building a `ServerConfig` needs besides the certificates; kept so that a CA or CRL
/// reload can rebuild the config with the same session cache and ticket keys.
#[derive(Clone)]
struct Spec {
    versions: &'static [&'static SupportedProtocolVersion],
    alpn: Vec<Vec<u8>>,
    client_auth: ClientAuth,
    client_ca: Option<String>,
    client_crl: Vec<String>,
    session_storage: Arc<dyn StoresServerSessions>,
    ticketer: Option<Arc<dyn ProducesTickets>>,
    send_tickets: usize,
    max_early_data: u32,
}

/// A listener's compiled TLS state.
pub(crate) struct TlsListener {
    /// The listener's name (for logs and counters).
    pub(crate) name: Arc<str>,
    config: ArcSwap<ServerConfig>,
    pub(crate) resolver: Arc<SniResolver>,
    provider: Arc<CryptoProvider>,
    spec: Spec,
    /// Sessions the QUIC side's own session cache keeps.
    quic_session_cache: usize,
    /// The QUIC side's TLS config, when the listener serves HTTP/3.
    quic: arc_swap::ArcSwapOption<quic::QuicCrypto>,
    /// 0-RTT is on: connections go through [`early::EarlyTlsStream`].
    pub(crate) early_data: bool,
    /// Time allowed for the handshake (`None`: the header read timeout).
    pub(crate) handshake_timeout: Option<Duration>,
    /// 421 for hosts the connection's certificate does not cover.
    pub(crate) strict_sni: bool,
    /// `Strict-Transport-Security` value, if configured.
    pub(crate) hsts: Option<HeaderValue>,
    pub(crate) stats: Arc<TlsStats>,
    /// What compiling found worth a warning (a revoked certificate's OCSP response).
    pub(crate) warnings: Vec<String>,
}

fn cfg_err<T>(at: &Located<T>, path: String, msg: String) -> ConfigError {
    ConfigError::new(Some(at.span()), path, msg)
}

impl TlsListener {
    /// Reads and verifies every file of `tls` and builds the listener's TLS state. Every problem
    /// names the file and what is wrong with it; none is ignored.
    pub(crate) fn compile(
        l: &Listener,
        tls: &ListenerTls,
        path: &str,
        stats: &Arc<TlsStats>,
    ) -> Result<Self, Vec<ConfigError>> {
        let provider = provider();
        let mut errors = Vec::new();
        let mut slots = Vec::new();
        let mut default = None;
        let mut warnings = Vec::new();
        for (i, c) in tls.certificates.iter().enumerate() {
            let cpath = format!("{path}.certificates[{i}]");
            let loaded = match certs::load_certified_key(
                &c.cert,
                &c.key,
                c.ocsp.as_deref().map(String::as_str),
                &provider,
            ) {
                Ok(loaded) => loaded,
                Err(msg) => {
                    let (at, key) = if msg.starts_with("key file") {
                        (&c.key, "key")
                    } else if msg.starts_with("OCSP") {
                        (c.ocsp.as_ref().unwrap_or(&c.cert), "ocsp")
                    } else {
                        (&c.cert, "cert")
                    };
                    errors.push(cfg_err(at, format!("{cpath}.{key}"), msg));
                    continue;
                }
            };
            match &loaded.staple {
                certs::Staple::Refused(msg) => {
                    let at = c.ocsp.as_ref().unwrap_or(&c.cert);
                    errors.push(cfg_err(at, format!("{cpath}.ocsp"), msg.clone()));
                    continue;
                }
                certs::Staple::Stapled(checked) => {
                    ocsp::log_stapled(l.name.as_str(), c.cert.as_str(), checked);
                    if let ocsp::CertStatus::Revoked(at) = checked.status {
                        warnings.push(format!(
                            "{cpath}.ocsp: the OCSP response in {:?} says the certificate in {:?} was REVOKED on {}: clients that check the staple will refuse it",
                            c.ocsp.as_ref().map_or("", |o| o.as_str()),
                            c.cert.as_str(),
                            certs::fmt_time(at)
                        ));
                    }
                }
                certs::Staple::None => {}
            }
            let names: Vec<Box<str>> = if c.names.is_empty() {
                loaded.dns_names.iter().map(|n| n.as_str().into()).collect()
            } else {
                c.names
                    .iter()
                    .map(|n| n.to_ascii_lowercase().into())
                    .collect()
            };
            if names.is_empty() && !c.default {
                errors.push(cfg_err(
                    &c.cert,
                    format!("{cpath}.names"),
                    format!(
                        "certificate file {:?} has no DNS names: list the SNI names in `names` or mark it `default = true`",
                        c.cert.get()
                    ),
                ));
                continue;
            }
            if c.default {
                default = Some(slots.len());
            }
            stats.set_expiry(
                &format!("{}:{}", l.name.get(), c.cert.get()),
                loaded.not_after,
            );
            slots.push(CertSlot {
                key: ArcSwap::new(loaded.key),
                names: names.into(),
                cert_path: c.cert.to_string(),
                key_path: c.key.to_string(),
                ocsp_path: c.ocsp.as_ref().map(|o| o.to_string()),
                not_after: AtomicI64::new(loaded.not_after),
            });
        }
        // A CA or CRL that cannot be read must never leave a listener that accepts any client.
        if let Some(ca) = &tls.client_ca
            && let Err(msg) = certs::load_roots(ca)
        {
            errors.push(cfg_err(ca, format!("{path}.client_ca"), msg));
        }
        for (i, crl) in tls.client_crl.iter().enumerate() {
            if let Err(msg) = certs::load_crls(crl) {
                errors.push(cfg_err(crl, format!("{path}.client_crl[{i}]"), msg));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let alpn = if l.http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let session_storage: Arc<dyn StoresServerSessions> = if tls.session_cache > 0 {
            ServerSessionMemoryCache::new(tls.session_cache)
        } else {
            Arc::new(NoServerSessionStorage {})
        };
        let ticketer = if tls.session_tickets {
            match rustls::crypto::aws_lc_rs::Ticketer::new() {
                Ok(t) => Some(t),
                Err(e) => {
                    return Err(vec![cfg_err(
                        &l.name,
                        format!("{path}.session_tickets"),
                        format!("cannot create session ticket keys: {e}"),
                    )]);
                }
            }
        } else {
            None
        };
        let spec = Spec {
            versions: versions(tls.min_version),
            alpn,
            client_auth: tls.client_auth,
            client_ca: tls.client_ca.as_ref().map(|c| c.to_string()),
            client_crl: tls.client_crl.iter().map(|c| c.to_string()).collect(),
            session_storage,
            send_tickets: if tls.session_tickets || tls.session_cache > 0 {
                2
            } else {
                0
            },
            ticketer,
            max_early_data: if tls.early_data {
                u32::try_from(tls.max_early_data.get()).unwrap_or(u32::MAX)
            } else {
                0
            },
        };
        let resolver = Arc::new(SniResolver::new(slots, default));
        let config = build_config(&spec, &provider, &resolver)
            .map_err(|msg| vec![cfg_err(&l.name, path.to_owned(), msg)])?;
        let hsts = tls.hsts.as_ref().and_then(|h| {
            let mut v = format!("max-age={}", h.max_age.get().as_secs());
            if h.include_subdomains {
                v.push_str("; includeSubDomains");
            }
            if h.preload {
                v.push_str("; preload");
            }
            HeaderValue::from_str(&v).ok()
        });
        Ok(Self {
            name: Arc::from(l.name.as_str()),
            config: ArcSwap::from_pointee(config),
            resolver,
            provider,
            spec,
            quic_session_cache: tls.session_cache.max(256),
            quic: arc_swap::ArcSwapOption::empty(),
            early_data: tls.early_data,
            handshake_timeout: tls
                .handshake_timeout
                .map(rampart_config::HumanDuration::get),
            strict_sni: tls.strict_sni,
            hsts,
            stats: Arc::clone(stats),
            warnings,
        })
    }

    /// True when a certificate is configured for exactly `name` (not through a wildcard).
    pub(crate) fn serves_exactly(&self, name: &str) -> bool {
        self.resolver.has_exact(name)
    }

    /// Every name a certificate is configured for, exact or wildcard.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.resolver
            .slots
            .iter()
            .flat_map(|s| s.names.iter().map(|n| &**n))
    }

    /// The config new handshakes use.
    pub(crate) fn config(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }

    /// Rebuilds the config (new CA bundle or CRLs) keeping certificates, session cache and
    /// ticket keys. On error the old config stays in service.
    pub(crate) fn rebuild(&self) -> Result<(), String> {
        let config = build_config(&self.spec, &self.provider, &self.resolver)?;
        self.rebuild_quic()?;
        self.config.store(Arc::new(config));
        Ok(())
    }

    /// Every file this listener was built from (certificates, keys, OCSP, CA, CRLs).
    pub(crate) fn files(&self) -> Vec<String> {
        let mut files: Vec<String> = Vec::new();
        for s in &self.resolver.slots {
            files.push(s.cert_path.clone());
            files.push(s.key_path.clone());
            files.extend(s.ocsp_path.clone());
        }
        files.extend(self.spec.client_ca.clone());
        files.extend(self.spec.client_crl.iter().cloned());
        files
    }

    /// True when `file` is this listener's CA bundle or one of its CRLs.
    pub(crate) fn is_trust_file(&self, file: &str) -> bool {
        self.spec.client_ca.as_deref() == Some(file)
            || self.spec.client_crl.iter().any(|c| c == file)
    }

    pub(crate) fn provider(&self) -> &CryptoProvider {
        &self.provider
    }

    /// Completes a handshake on `stream` within `timeout`; counts it either way.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
        timeout: Duration,
    ) -> Result<(Accepted, TlsInfo), io::Error> {
        let timeout = self.handshake_timeout.unwrap_or(timeout);
        let config = self.config();
        let result = if self.early_data {
            tokio::time::timeout(timeout, early::EarlyTlsStream::accept(stream, config))
                .await
                .map(|r| {
                    r.map(|s| {
                        let info = self.info(s.connection(), s.early_accepted());
                        if info.early_data {
                            self.stats.early_data_accepted();
                        }
                        let handshake_done = s.handshake_done();
                        let (s, flusher) = BatchedIo::new(s);
                        (Accepted::Early(s, flusher, handshake_done), info)
                    })
                })
        } else {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            // On failure, tokio-rustls writes the alert saying why straight to the socket.
            tokio::time::timeout(timeout, acceptor.accept(stream))
                .await
                .map(|r| {
                    r.map(|s| {
                        let info = self.info(s.get_ref().1, false);
                        let (s, flusher) = BatchedIo::new(s);
                        (Accepted::Tls(s, flusher), info)
                    })
                })
        };
        let result = result.unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            ))
        });
        match &result {
            Ok(_) => {}
            Err(e) => self.stats.failure(HandshakeFailure::classify(e)),
        }
        result
    }

    /// The facts of a connection whose handshake has got far enough to know them.
    fn info(&self, conn: &ServerConnection, early_data: bool) -> TlsInfo {
        let version = conn.protocol_version();
        let suite = conn.negotiated_cipher_suite().map(|s| s.suite());
        let alpn = conn.alpn_protocol();
        let resumed = matches!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        self.stats.handshake(version, suite, alpn, resumed);
        let sni = conn.server_name();
        let cert_names = self
            .resolver
            .lookup(sni)
            .map(|s| Arc::clone(&s.names))
            .unwrap_or_else(|| Arc::from(Vec::new()));
        TlsInfo {
            sni: sni.map(Arc::from),
            alpn: match alpn {
                Some(b"h2") => Some("h2"),
                Some(b"http/1.1") => Some("http/1.1"),
                _ => None,
            },
            version: version.map_or("unknown", version_name),
            cipher: suite.and_then(|s| s.as_str()).unwrap_or("unknown"),
            resumed,
            early_data,
            cert_names,
            client_cert: conn
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|der| client_cert_info(der.as_ref())),
        }
    }
}

/// The protocol version as OpenSSL, nginx and HAProxy spell it (`TLSv1.3`), for the PROXY
/// protocol's SSL TLV and the facts handed to stages.
pub(crate) fn version_name(version: rustls::ProtocolVersion) -> &'static str {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        rustls::ProtocolVersion::TLSv1_1 => "TLSv1.1",
        rustls::ProtocolVersion::TLSv1_0 => "TLSv1",
        _ => "unknown",
    }
}

/// A connection after its handshake (or, with early data, after the ClientHello). The
/// flusher hands what the connection wrote to TLS once per wake-up (see [`batch`]).
pub(crate) enum Accepted {
    /// Handshake complete.
    Tls(
        BatchedIo<tokio_rustls::server::TlsStream<TcpStream>>,
        BatchFlusher,
    ),
    /// Early data possible: the rest of the handshake happens while requests are served; the
    /// flag is set once it is done.
    Early(
        BatchedIo<early::EarlyTlsStream>,
        BatchFlusher,
        Arc<std::sync::atomic::AtomicBool>,
    ),
}

/// Headers for a verified client certificate.
fn client_cert_info(der: &[u8]) -> ClientCertInfo {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let mut hex = String::with_capacity(64);
    for b in digest.as_ref() {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    let (subject, sans) = certs::subject_and_sans(der);
    let value = |s: String| {
        HeaderValue::from_str(&s).unwrap_or_else(|_| {
            // Non-visible characters in a name: keep the header, drop the bytes.
            let clean: String = s
                .chars()
                .filter(|c| c.is_ascii_graphic() || *c == ' ')
                .collect();
            HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static(""))
        })
    };
    ClientCertInfo {
        fingerprint: value(hex),
        subject: value(subject),
        sans: value(sans),
    }
}

fn client_verifier(
    spec: &Spec,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let Some(ca) = &spec.client_ca else {
        return Ok(WebPkiClientVerifier::no_client_auth());
    };
    if spec.client_auth == ClientAuth::None {
        return Ok(WebPkiClientVerifier::no_client_auth());
    }
    let roots = certs::load_roots(ca)?;
    let mut crls = Vec::new();
    for path in &spec.client_crl {
        crls.extend(certs::load_crls(path)?);
    }
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
            .with_crls(crls);
    if spec.client_auth == ClientAuth::Optional {
        builder = builder.allow_unauthenticated();
    }
    builder
        .build()
        .map_err(|e| format!("client CA {ca:?}: cannot build a verifier: {e}"))
}

fn build_config(
    spec: &Spec,
    provider: &Arc<CryptoProvider>,
    resolver: &Arc<SniResolver>,
) -> Result<ServerConfig, String> {
    let verifier = client_verifier(spec, provider)?;
    let mut config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(spec.versions)
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::clone(resolver) as Arc<_>);
    config.alpn_protocols.clone_from(&spec.alpn);
    config.ignore_client_order = true;
    config.session_storage = Arc::clone(&spec.session_storage);
    // With early data on, resumption is stateful and single-use: rustls accepts 0-RTT only for
    // sessions taken out of the server's cache (a ticket cannot be replayed to this process);
    // stateless tickets would make every ticket replayable, so they are not issued then.
    if spec.max_early_data == 0
        && let Some(t) = &spec.ticketer
    {
        config.ticketer = Arc::clone(t);
    }
    config.send_tls13_tickets = spec.send_tickets;
    config.max_early_data_size = spec.max_early_data;
    config.send_half_rtt_data = spec.max_early_data > 0;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_spelled_as_openssl_does() {
        assert_eq!(version_name(rustls::ProtocolVersion::TLSv1_3), "TLSv1.3");
        assert_eq!(version_name(rustls::ProtocolVersion::TLSv1_2), "TLSv1.2");
    }
}

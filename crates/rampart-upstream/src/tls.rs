//! Upstream TLS building blocks: the `rustls::ClientConfig` of an upstream's `[upstreams.tls]`
//! (trust roots, client certificate, ALPN, versions), the SNI name for a target, and
//! [`connect`], which runs the handshake over an established stream.
//!
//! Trust roots are the configured `ca` bundle or, without one, the operating system's trust
//! store (rustls-native-certs: it honours the certificates an operator installed, such as a
//! company CA, and `SSL_CERT_FILE`/`SSL_CERT_DIR`; a compiled-in bundle would silently ignore
//! them and go stale with the binary). An empty system store is an error, never "trust all".
//!
//! Configs are built with an explicit aws-lc-rs provider, so nothing depends on a process-wide
//! default provider being installed.

use std::io;
use std::sync::Arc;

use rampart_config::model::{TlsVersion, UpstreamTls};
use rampart_config::{ConfigError, Located};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

/// A TLS stream to an upstream.
pub type TlsStream<IO> = tokio_rustls::client::TlsStream<IO>;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn err<T>(at: Option<&Located<T>>, path: String, msg: String) -> Vec<ConfigError> {
    vec![ConfigError::new(at.map(Located::span), path, msg)]
}

/// Reads every PEM certificate in `path` (`kind` names the file in messages); the server's
/// certificate and CA files are read the same way.
///
/// # Errors
/// The file cannot be read, is not PEM, or holds no certificate.
pub fn read_certs(kind: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("{kind} file {path:?}: cannot read: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{kind} file {path:?}: invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{kind} file {path:?}: no certificate found (expected PEM `BEGIN CERTIFICATE` blocks)"
        ));
    }
    Ok(certs)
}

fn roots(tls: &UpstreamTls, path: &str) -> Result<RootCertStore, Vec<ConfigError>> {
    let mut store = RootCertStore::empty();
    if let Some(ca) = &tls.ca {
        let certs = read_certs("CA", ca).map_err(|m| err(Some(ca), format!("{path}.ca"), m))?;
        for (i, c) in certs.into_iter().enumerate() {
            store.add(c).map_err(|e| {
                err(
                    Some(ca),
                    format!("{path}.ca"),
                    format!("CA file {:?}: certificate #{}: {e}", ca.get(), i + 1),
                )
            })?;
        }
        return Ok(store);
    }
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = store.add_parsable_certificates(native.certs);
    if added == 0 {
        let why = native
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(err(
            None::<&Located<()>>,
            format!("{path}.ca"),
            format!(
                "no CA certificates found in the system trust store{why}; install the system CA bundle (Debian: ca-certificates) or set `ca`"
            ),
        ));
    }
    Ok(store)
}

/// Builds the client config of one upstream's `[upstreams.tls]`, reading and checking every file
/// it names. `http2` offers ALPN `h2` (HTTP/2 and gRPC upstreams), otherwise `http/1.1`.
/// `path` is the key path of the section in messages (`upstreams[2].tls`).
///
/// Logs a warning when `insecure_skip_verify` is on.
///
/// # Errors
/// Unreadable or invalid CA, certificate or key files (the message names the file and the
/// problem), an empty system trust store, a key that does not match its certificate.
pub fn client_config(
    tls: &UpstreamTls,
    http2: bool,
    path: &str,
) -> Result<Arc<ClientConfig>, Vec<ConfigError>> {
    let provider = provider();
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| {
            err(
                None::<&Located<()>>,
                path.to_owned(),
                format!("TLS versions: {e}"),
            )
        })?;
    let builder = if tls.insecure_skip_verify {
        tracing::warn!(
            section = path,
            "insecure_skip_verify = true: upstream certificates are NOT verified; anyone on the path can impersonate this upstream"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(Arc::clone(&provider))))
    } else {
        builder.with_root_certificates(roots(tls, path)?)
    };
    let mut config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs("client certificate", cert)
                .map_err(|m| err(Some(cert), format!("{path}.client_cert"), m))?;
            let key_der = std::fs::read(key.as_str())
                .map_err(|e| format!("client key file {:?}: cannot read: {e}", key.get()))
                .and_then(|b| {
                    PrivateKeyDer::from_pem_slice(&b).map_err(|e| {
                        format!(
                            "client key file {:?}: no usable private key: {e}",
                            key.get()
                        )
                    })
                })
                .map_err(|m| err(Some(key), format!("{path}.client_key"), m))?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                err(
                    Some(key),
                    format!("{path}.client_key"),
                    format!(
                        "client key file {:?} does not fit client certificate {:?}: {e}",
                        key.get(),
                        cert.get()
                    ),
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}

/// The name sent as SNI and verified for a target whose host is `target_host` (a DNS name or an
/// IP literal, IPv6 with or without brackets): `server_name` from the config when set.
///
/// # Errors
/// The host is neither a valid DNS name nor an IP address.
pub fn server_name(tls: &UpstreamTls, target_host: &str) -> Result<ServerName<'static>, String> {
    let host = tls
        .server_name
        .as_deref()
        .map_or(target_host, String::as_str);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|e| format!("invalid TLS server name {host:?}: {e}"))
}

/// Runs the TLS handshake with an upstream over `stream` (already connected). Bound it with the
/// upstream's connect timeout.
///
/// # Errors
/// The handshake failed: untrusted or mismatched certificate, protocol error, I/O error.
pub async fn connect<IO>(
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    stream: IO,
) -> io::Result<TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    tokio_rustls::TlsConnector::from(config)
        .connect(server_name, stream)
        .await
}

/// True when `stream` negotiated HTTP/2 by ALPN.
#[must_use]
pub fn negotiated_h2<IO>(stream: &TlsStream<IO>) -> bool {
    stream.get_ref().1.alpn_protocol() == Some(b"h2")
}

/// Accepts any certificate (signatures are still checked): `insecure_skip_verify`.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;

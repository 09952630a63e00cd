//! Upstream TLS against a real rustls server in-process, with rcgen-made certificates.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rampart_config::model::UpstreamTls;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rampart-upstream-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Upstream Test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Self { dir, ca }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Writes `name.crt` / `name.key` for `sans`; returns (chain, key).
    fn issue(
        &self,
        name: &str,
        sans: &[&str],
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        std::fs::write(self.path(&format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).unwrap();
        (
            vec![cert.der().clone()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_section(toml_text: &str) -> UpstreamTls {
    toml::from_str(toml_text).unwrap()
}

/// A TLS echo server: answers each connection with the ALPN protocol it negotiated and, when
/// the client sent a certificate, "+cert".
async fn server(
    pki: &Pki,
    sans: &[&str],
    alpn: &[&[u8]],
    require_client_cert: bool,
) -> std::net::SocketAddr {
    let (chain, key) = pki.issue("server", sans);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca.der().clone()).unwrap();
        builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap(),
        )
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (_, conn) = tls.get_ref();
                let mut answer = conn.alpn_protocol().map(<[u8]>::to_vec).unwrap_or_default();
                if conn.peer_certificates().is_some() {
                    answer.extend_from_slice(b"+cert");
                }
                let _ = tls.write_all(&answer).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

async fn talk(
    config: Arc<rustls::ClientConfig>,
    name: &str,
    addr: std::net::SocketAddr,
) -> std::io::Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    let tls = UpstreamTls { ..tls_section("") };
    let mut stream = connect(config, server_name(&tls, name).unwrap(), tcp).await?;
    let mut out = String::new();
    stream.read_to_string(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn verifies_against_a_configured_ca_and_sends_sni() {
    let pki = Pki::new();
    let addr = server(&pki, &["upstream.test"], &[b"http/1.1"], false).await;
    let tls = tls_section(&format!("ca = {:?}", pki.path("ca.pem")));
    let config = client_config(&tls, false, "upstreams[0].tls").unwrap();
    assert_eq!(
        talk(config, "upstream.test", addr).await.unwrap(),
        "http/1.1"
    );
}

#[tokio::test]
async fn a_name_the_certificate_does_not_cover_fails() {
    let pki = Pki::new();
    let addr = server(&pki, &["upstream.test"], &[], false).await;
    let tls = tls_section(&format!("ca = {:?}", pki.path("ca.pem")));
    let config = client_config(&tls, false, "u").unwrap();
    let err = talk(config, "other.test", addr).await.unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test]
async fn server_name_overrides_the_target_host() {
    let pki = Pki::new();
    let addr = server(&pki, &["internal.test"], &[], false).await;
    let tls = tls_section(&format!(
        "ca = {:?}\nserver_name = \"internal.test\"",
        pki.path("ca.pem")
    ));
    let config = client_config(&tls, false, "u").unwrap();
    let name = server_name(&tls, "127.0.0.1").unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = connect(config, name, tcp).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
}

#[tokio::test]
async fn an_ip_target_is_verified_against_the_ip_san() {
    let pki = Pki::new();
    let addr = server(&pki, &["127.0.0.1"], &[], false).await;
    let tls = tls_section(&format!("ca = {:?}", pki.path("ca.pem")));
    let config = client_config(&tls, false, "u").unwrap();
    talk(config, "127.0.0.1", addr).await.unwrap();
}

#[tokio::test]
async fn an_untrusted_certificate_fails_unless_verification_is_skipped() {
    let pki = Pki::new();
    let other = Pki::new();
    let addr = server(&pki, &["upstream.test"], &[], false).await;
    let wrong = tls_section(&format!("ca = {:?}", other.path("ca.pem")));
    let config = client_config(&wrong, false, "u").unwrap();
    assert!(talk(config, "upstream.test", addr).await.is_err());
    let insecure = tls_section("insecure_skip_verify = true");
    let config = client_config(&insecure, false, "u").unwrap();
    talk(config, "upstream.test", addr).await.unwrap();
}

#[tokio::test]
async fn h2_upstreams_negotiate_h2_by_alpn() {
    let pki = Pki::new();
    let addr = server(&pki, &["upstream.test"], &[b"h2", b"http/1.1"], false).await;
    let tls = tls_section(&format!("ca = {:?}", pki.path("ca.pem")));
    let config = client_config(&tls, true, "u").unwrap();
    assert_eq!(talk(config, "upstream.test", addr).await.unwrap(), "h2");
}

#[tokio::test]
async fn client_certificates_are_presented_for_mtls() {
    let pki = Pki::new();
    let addr = server(&pki, &["upstream.test"], &[], true).await;
    let _ = pki.issue("client", &["client.test"]);
    let without = tls_section(&format!("ca = {:?}", pki.path("ca.pem")));
    let config = client_config(&without, false, "u").unwrap();
    // TLS 1.3: the client learns of the refusal when it reads.
    assert!(talk(config, "upstream.test", addr).await.is_err());
    let with = tls_section(&format!(
        "ca = {:?}\nclient_cert = {:?}\nclient_key = {:?}",
        pki.path("ca.pem"),
        pki.path("client.crt"),
        pki.path("client.key")
    ));
    let config = client_config(&with, false, "u").unwrap();
    assert_eq!(talk(config, "upstream.test", addr).await.unwrap(), "+cert");
}

#[test]
fn unreadable_and_mismatched_files_are_named() {
    let pki = Pki::new();
    let tls = tls_section("ca = \"/nonexistent/ca.pem\"");
    let errs = client_config(&tls, false, "upstreams[1].tls").unwrap_err();
    assert_eq!(errs[0].path, "upstreams[1].tls.ca");
    assert!(
        errs[0]
            .message
            .contains("\"/nonexistent/ca.pem\": cannot read"),
        "{}",
        errs[0].message
    );

    let _ = pki.issue("a", &["a.test"]);
    let _ = pki.issue("b", &["b.test"]);
    let tls = tls_section(&format!(
        "ca = {:?}\nclient_cert = {:?}\nclient_key = {:?}",
        pki.path("ca.pem"),
        pki.path("a.crt"),
        pki.path("b.key")
    ));
    let errs = client_config(&tls, false, "u").unwrap_err();
    assert_eq!(errs[0].path, "u.client_key");
    assert!(
        errs[0].message.contains("does not fit"),
        "{}",
        errs[0].message
    );

    std::fs::write(pki.path("empty.pem"), "").unwrap();
    let tls = tls_section(&format!("ca = {:?}", pki.path("empty.pem")));
    let errs = client_config(&tls, false, "u").unwrap_err();
    assert!(
        errs[0].message.contains("no certificate found"),
        "{}",
        errs[0].message
    );
}

#[test]
fn invalid_server_names_are_refused() {
    let tls = tls_section("");
    assert!(server_name(&tls, "bad name").is_err());
    assert!(server_name(&tls, "[::1]").is_ok());
}

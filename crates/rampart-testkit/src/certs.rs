//! Test certificates made with rcgen and written to a fresh temporary directory: a CA, server
//! and client certificates signed by it, an expired certificate, a certificate with the wrong
//! key, other key types, and a CRL. Also rustls client configs that trust the CA. Failures
//! panic: this is test support.

#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SerialNumber, SignatureAlgorithm,
};
use rustls::pki_types::CertificateDer;

/// A PEM certificate file and its key file.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// PEM certificate (chain) path.
    pub cert: String,
    /// PEM private key path.
    pub key: String,
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
}

/// A throw-away PKI in a temporary directory (removed on drop).
pub struct TestPki {
    dir: PathBuf,
    pub(crate) ca: CertifiedIssuer<'static, KeyPair>,
    serial: AtomicU64,
    /// Path of the CA certificate (PEM).
    pub ca_path: String,
}

fn unique_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rampart-pki-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Which key algorithm a certificate uses.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    /// ECDSA P-256 (the default).
    EcdsaP256,
    /// ECDSA P-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
    /// RSA 2048.
    Rsa,
}

impl KeyKind {
    fn alg(self) -> &'static SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
            Self::Rsa => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// A new CA ("Rampart Test CA") in a new temporary directory.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        let dir = unique_dir();
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Rampart Test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.key_identifier_method = KeyIdMethod::Sha256;
        let key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("CA cert");
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.pem()).expect("write CA");
        Self {
            dir,
            ca,
            serial: AtomicU64::new(100),
            ca_path: ca_path.display().to_string(),
        }
    }

    /// The directory the files are written to.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A path inside the directory.
    #[must_use]
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The CA certificate, DER.
    #[must_use]
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    #[allow(clippy::expect_used)]
    fn issue(
        &self,
        name: &str,
        cn: &str,
        sans: &[&str],
        kind: KeyKind,
        client: bool,
        validity: Option<(time::OffsetDateTime, time::OffsetDateTime)>,
    ) -> (CertFiles, u64) {
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Rampart Tests");
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if let Some((from, to)) = validity {
            params.not_before = from;
            params.not_after = to;
        }
        let key = KeyPair::generate_for(kind.alg()).expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        let files = CertFiles {
            cert: self.path(&format!("{name}.crt")),
            key: self.path(&format!("{name}.key")),
            der: cert.der().clone(),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write cert");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        (files, serial)
    }

    /// A server certificate for `sans` (DNS names or IP literals), ECDSA P-256.
    #[must_use]
    pub fn server(&self, name: &str, sans: &[&str]) -> CertFiles {
        self.issue(
            name,
            sans.first().copied().unwrap_or(name),
            sans,
            KeyKind::EcdsaP256,
            false,
            None,
        )
        .0
    }

    /// A server certificate with a key of `kind`.
    #[must_use]
    pub fn server_with(&self, name: &str, sans: &[&str], kind: KeyKind) -> CertFiles {
        self.issue(
            name,
            sans.first().copied().unwrap_or(name),
            sans,
            kind,
            false,
            None,
        )
        .0
    }

    /// A client certificate with common name `cn` and `sans` (such as `spiffe://…` URIs are
    /// not supported here: DNS names). Returns the files and the certificate's serial number.
    #[must_use]
    pub fn client(&self, name: &str, cn: &str, sans: &[&str]) -> (CertFiles, u64) {
        self.issue(name, cn, sans, KeyKind::EcdsaP256, true, None)
    }

    /// A server certificate that expired yesterday.
    #[must_use]
    pub fn expired(&self, name: &str, sans: &[&str]) -> CertFiles {
        let now = time::OffsetDateTime::now_utc();
        let from = now - time::Duration::days(30);
        let to = now - time::Duration::days(1);
        self.issue(
            name,
            sans.first().copied().unwrap_or(name),
            sans,
            KeyKind::EcdsaP256,
            false,
            Some((from, to)),
        )
        .0
    }

    /// A server certificate whose key file holds a different key.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn wrong_key(&self, name: &str, sans: &[&str]) -> CertFiles {
        let files = self.server(name, sans);
        let other = KeyPair::generate().expect("key");
        std::fs::write(&files.key, other.serialize_pem()).expect("write key");
        files
    }

    /// A CRL signed by the CA revoking `serials`, written to `name`.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn crl(&self, name: &str, serials: &[u64]) -> String {
        let now = time::OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(7),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: now - time::Duration::hours(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.ca).expect("CRL");
        let path = self.path(name);
        std::fs::write(&path, crl.pem().expect("CRL PEM")).expect("write CRL");
        path
    }

    /// A rustls client config (aws-lc-rs) trusting this CA, offering `alpn`.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn client_config(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der()).expect("CA");
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        config
    }

    /// Like [`Self::client_config`], presenting the client certificate `client`.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn client_config_with_cert(
        &self,
        alpn: &[&[u8]],
        client: &CertFiles,
    ) -> rustls::ClientConfig {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der()).expect("CA");
        let key = PrivateKeyDer::from_pem_file(&client.key).expect("client key");
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![client.der.clone()], key)
        .expect("client auth");
        config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        config
    }
}

impl TestPki {
    /// A rustls server config presenting `server`, offering `alpn`; with `require_client_cert`
    /// clients must present a certificate signed by this CA.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn server_config(
        &self,
        server: &CertFiles,
        alpn: &[&[u8]],
        require_client_cert: bool,
    ) -> rustls::ServerConfig {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::from_pem_file(&server.key).expect("server key");
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der()).expect("CA");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(vec![server.der.clone()], key)
            .expect("server cert");
        config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        config
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

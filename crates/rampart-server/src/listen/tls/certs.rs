//! Reading certificates, keys, CA bundles, CRLs and OCSP responses from files, with errors that
//! name the file and the problem. Used at compile time (`rampart check`, startup) and by reload.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateRevocationListDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::ocsp;

/// A certificate chain with its key, ready to serve.
pub(crate) struct Loaded {
    /// Chain, key and stapled OCSP response.
    pub(crate) key: Arc<CertifiedKey>,
    /// DNS names of the leaf certificate (lowercase).
    pub(crate) dns_names: Vec<String>,
    /// When the leaf certificate expires (Unix seconds).
    pub(crate) not_after: i64,
    /// What became of the configured OCSP response.
    pub(crate) staple: Staple,
}

/// The OCSP response of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Staple {
    /// None is configured.
    None,
    /// Stapled: it matches the certificate and has not expired.
    Stapled(ocsp::Checked),
    /// Not stapled, and why (about another certificate, expired, malformed).
    Refused(String),
}

fn read(kind: &str, path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{kind} file {path:?}: cannot read: {e}"))
}

/// The current time in Unix seconds.
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Formats Unix seconds as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) use crate::observe::timefmt::unix_http_date as fmt_time;

/// Reads every PEM certificate in `path` (shared with upstream TLS, so both report alike).
pub(crate) use rampart_upstream::tls::read_certs;

/// Validity window of a DER certificate: (not_before, not_after) in Unix seconds.
pub(crate) fn validity(der: &[u8]) -> Result<(i64, i64), String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}

/// Fails when the certificate is expired or not yet valid.
fn check_validity(kind: &str, path: &str, der: &[u8], what: &str) -> Result<i64, String> {
    let (not_before, not_after) =
        validity(der).map_err(|e| format!("{kind} file {path:?}: {what}: {e}"))?;
    let now = now_unix();
    if now > not_after {
        return Err(format!(
            "{kind} file {path:?}: {what} expired on {}",
            fmt_time(not_after)
        ));
    }
    if now < not_before {
        return Err(format!(
            "{kind} file {path:?}: {what} is not valid before {}",
            fmt_time(not_before)
        ));
    }
    Ok(not_after)
}

/// Loads a certificate chain, its private key and an optional OCSP response, checking that the
/// key matches the certificate and that the certificate is currently valid.
pub(crate) fn load_certified_key(
    cert_path: &str,
    key_path: &str,
    ocsp_path: Option<&str>,
    provider: &CryptoProvider,
) -> Result<Loaded, String> {
    let chain = read_certs("certificate", cert_path)?;
    let key_bytes = read("key", key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
        format!("key file {key_path:?}: no usable private key (expected PEM PKCS#8, PKCS#1 or SEC1): {e}")
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("key file {key_path:?}: unsupported or invalid private key: {e}"))?;
    let mut certified = CertifiedKey::new(chain, signing);
    if let Err(e) = certified.keys_match() {
        return Err(match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                format!("key file {key_path:?} does not match the certificate in {cert_path:?}")
            }
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown) => {
                format!("key file {key_path:?}: cannot check that it matches {cert_path:?}")
            }
            other => format!("certificate file {cert_path:?}: {other}"),
        });
    }
    let leaf = certified.cert[0].as_ref();
    let not_after = check_validity("certificate", cert_path, leaf, "the certificate")?;
    let dns_names = dns_names(leaf);
    let staple = match ocsp_path {
        None => Staple::None,
        Some(path) => {
            let response = read_ocsp(path)?;
            let (_, cert) = X509Certificate::from_der(leaf)
                .map_err(|e| format!("certificate file {cert_path:?}: {e}"))?;
            let issuer = certified
                .cert
                .get(1)
                .and_then(|der| X509Certificate::from_der(der.as_ref()).ok())
                .map(|(_, c)| c);
            match ocsp::check(&response, &cert, issuer.as_ref(), now_unix()) {
                Ok(checked) => {
                    certified.ocsp = Some(response);
                    Staple::Stapled(checked)
                }
                Err(why) => Staple::Refused(format!(
                    "OCSP response file {path:?} is not stapled with the certificate in {cert_path:?}: {why}"
                )),
            }
        }
    };
    Ok(Loaded {
        key: Arc::new(certified),
        dns_names,
        not_after,
        staple,
    })
}

/// Reads a DER OCSP response (checked here only for being a plausible DER SEQUENCE; see
/// [`ocsp::check`]).
pub(crate) fn read_ocsp(path: &str) -> Result<Vec<u8>, String> {
    let bytes = read("OCSP response", path)?;
    if bytes.len() < 8 || bytes[0] != 0x30 {
        return Err(format!(
            "OCSP response file {path:?}: not a DER OCSP response (convert PEM or base64 to DER)"
        ));
    }
    Ok(bytes)
}

/// The DNS names (SANs) of a DER certificate, lowercase.
pub(crate) fn dns_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Subject (RFC 4514-like, `CN=alice, O=Example`) and SANs (`DNS:…, URI:…, IP:…, email:…`) of
/// a DER certificate.
pub(crate) fn subject_and_sans(der: &[u8]) -> (String, String) {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return (String::new(), String::new());
    };
    let subject = cert.subject().to_string();
    let mut sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => sans.push(format!("DNS:{d}")),
                GeneralName::URI(u) => sans.push(format!("URI:{u}")),
                GeneralName::RFC822Name(e) => sans.push(format!("email:{e}")),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.push(format!("IP:{ip}"));
                    }
                }
                _ => {}
            }
        }
    }
    (subject, sans.join(", "))
}

/// Reads a CA bundle into a root store; every certificate must parse and be currently valid.
pub(crate) fn load_roots(path: &str) -> Result<RootCertStore, String> {
    let certs = read_certs("CA", path)?;
    let mut roots = RootCertStore::empty();
    for (i, der) in certs.into_iter().enumerate() {
        check_validity("CA", path, der.as_ref(), &format!("certificate #{}", i + 1))?;
        roots
            .add(der)
            .map_err(|e| format!("CA file {path:?}: certificate #{}: {e}", i + 1))?;
    }
    Ok(roots)
}

/// Reads every PEM CRL in `path`.
pub(crate) fn load_crls(path: &str) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let bytes = read("CRL", path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CRL file {path:?}: invalid PEM: {e}"))?;
    if crls.is_empty() {
        return Err(format!(
            "CRL file {path:?}: no CRL found (expected PEM `BEGIN X509 CRL` blocks)"
        ));
    }
    Ok(crls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let err = load_certified_key(
            "/nonexistent/cert.pem",
            "/nonexistent/key.pem",
            None,
            &provider,
        )
        .err()
        .unwrap_or_default();
        assert!(
            err.contains("certificate file \"/nonexistent/cert.pem\": cannot read"),
            "{err}"
        );
        let err = load_roots("/nonexistent/ca.pem").err().unwrap_or_default();
        assert!(err.contains("CA file \"/nonexistent/ca.pem\""), "{err}");
    }
}

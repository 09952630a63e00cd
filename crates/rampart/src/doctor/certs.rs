//! Listener certificates: expiry of every certificate in the chain, chain order and
//! completeness, and whether the key belongs to the certificate.

use std::time::{SystemTime, UNIX_EPOCH};

use rampart_config::RawConfig;
use rampart_config::model::TlsCertificate;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{Finding, Severity};

const DAY: i64 = 86_400;
/// Expiring within this many days is a warning; within `INFO_DAYS`, worth knowing.
const WARN_DAYS: i64 = 14;
const INFO_DAYS: i64 = 30;

/// Checks every `[[listeners.tls.certificates]]` entry.
pub(super) fn check(raw: &RawConfig) -> Vec<Finding> {
    let upstream_cas = raw
        .upstreams
        .iter()
        .filter_map(|u| u.tls.as_ref()?.ca.as_ref())
        .map(|p| p.get().clone());
    let mut out = Vec::new();
    for l in &raw.listeners {
        let client_ca = l.tls.iter().filter_map(|t| t.client_ca.as_ref());
        let files: Vec<String> = client_ca
            .map(|p| p.get().clone())
            .chain(upstream_cas.clone())
            .collect();
        let private = private_cas(&files);
        for c in l.tls.iter().flat_map(|t| &t.certificates) {
            out.extend(check_one(l.name.get(), c, &private));
        }
    }
    out
}

/// A CA the config names (`client_ca`, an upstream's `ca`): its subject and its file.
struct PrivateCa {
    subject: String,
    file: String,
}

/// The subjects of every certificate in the CA files the config names; unreadable files are
/// reported by the config checks, not here.
fn private_cas(files: &[String]) -> Vec<PrivateCa> {
    let mut out = Vec::new();
    for file in files {
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        for der in CertificateDer::pem_slice_iter(&bytes).flatten() {
            if let Ok((_, cert)) = X509Certificate::from_der(&der) {
                out.push(PrivateCa {
                    subject: cert.subject().to_string(),
                    file: file.clone(),
                });
            }
        }
    }
    out
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn check_one(listener: &str, c: &TlsCertificate, private: &[PrivateCa]) -> Vec<Finding> {
    let path = c.cert.get();
    let subject = format!("listener {listener} certificate {path}");
    let chain = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            CertificateDer::pem_slice_iter(&b)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("invalid PEM: {e}"))
        }) {
        Ok(chain) if !chain.is_empty() => chain,
        Ok(_) => {
            return vec![
                Finding::new(
                    "certificate",
                    Severity::Error,
                    subject,
                    "no PEM certificate in the file",
                )
                .fix("the file must hold the leaf certificate followed by its intermediates"),
            ];
        }
        Err(e) => {
            return vec![Finding::new(
                "certificate",
                Severity::Error,
                subject,
                format!("cannot read: {e}"),
            )];
        }
    };
    let parsed: Vec<_> = chain
        .iter()
        .map(|d| X509Certificate::from_der(d).map(|(_, c)| c))
        .collect();
    let mut out = Vec::new();
    let mut certs = Vec::new();
    for (i, p) in parsed.into_iter().enumerate() {
        match p {
            Ok(cert) => certs.push(cert),
            Err(e) => {
                out.push(Finding::new(
                    "certificate",
                    Severity::Error,
                    subject.clone(),
                    format!("certificate {i} in the chain is not valid X.509: {e}"),
                ));
                return out;
            }
        }
    }
    for (i, cert) in certs.iter().enumerate() {
        out.push(expiry(&subject, i, cert));
    }
    out.push(chain_order(&subject, &certs, private));
    out.push(key_matches(&subject, c.key.get(), chain));
    out
}

fn expiry(subject: &str, i: usize, cert: &X509Certificate<'_>) -> Finding {
    let what = if i == 0 {
        "leaf".to_owned()
    } else {
        format!("chain certificate {i}")
    };
    let name = cert.subject().to_string();
    let v = cert.validity();
    let (not_before, not_after) = (v.not_before.timestamp(), v.not_after.timestamp());
    let now = now_unix();
    let days = (not_after - now) / DAY;
    let renew = "renew it (ACME client, or your CA) and replace the file; Rampart reloads certificate files when they change";
    if now > not_after {
        Finding::new(
            "certificate",
            Severity::Error,
            subject,
            format!(
                "{what} ({name}) expired {} days ago, on {}",
                (now - not_after) / DAY,
                v.not_after
            ),
        )
        .fix(renew)
    } else if now < not_before {
        Finding::new(
            "certificate",
            Severity::Error,
            subject,
            format!("{what} ({name}) is not valid before {}", v.not_before),
        )
        .fix("check the clock of this machine and of the CA")
    } else if days < WARN_DAYS {
        Finding::new(
            "certificate",
            Severity::Warning,
            subject,
            format!("{what} ({name}) expires in {days} days, on {}", v.not_after),
        )
        .fix(renew)
    } else if days < INFO_DAYS {
        Finding::new(
            "certificate",
            Severity::Info,
            subject,
            format!("{what} ({name}) expires in {days} days"),
        )
    } else {
        Finding::new(
            "certificate",
            Severity::Ok,
            subject,
            format!("{what} ({name}) valid for {days} more days"),
        )
    }
}

/// Each certificate must be issued by the next one. A CA-issued leaf alone is complete when its
/// issuer is a private CA the config names (its clients are given that CA); otherwise public
/// clients may lack the intermediate.
fn chain_order(subject: &str, certs: &[X509Certificate<'_>], private: &[PrivateCa]) -> Finding {
    for (i, pair) in certs.windows(2).enumerate() {
        if pair[0].issuer() != pair[1].subject() {
            return Finding::new(
                "certificate",
                Severity::Warning,
                subject,
                format!("chain certificate {} ({}) did not issue certificate {i} (issued by {})", i + 1, pair[1].subject(), pair[0].issuer()),
            )
            .fix("order the file as leaf first, then each issuer in turn; drop unrelated certificates");
        }
    }
    let Some(last) = certs.last() else {
        return Finding::new("certificate", Severity::Error, subject, "empty chain");
    };
    if certs.len() == 1 && last.issuer() != last.subject() {
        let issuer = last.issuer().to_string();
        if let Some(ca) = private.iter().find(|ca| ca.subject == issuer) {
            return Finding::new(
                "certificate",
                Severity::Ok,
                subject,
                format!(
                    "issued directly by the private CA {issuer} (in {}); its clients are given that CA, so the leaf alone is complete",
                    ca.file
                ),
            );
        }
        return Finding::new(
            "certificate",
            Severity::Warning,
            subject,
            format!(
                "only the leaf is present; its issuer ({issuer}) is not in the file: public clients (browsers, \
                 curl with the system trust store) that do not have that intermediate cached fail to verify"
            ),
        )
        .fix("for a public CA, use its \"fullchain\" file (leaf then intermediates); for a private CA whose certificate every client is given, nothing is missing (doctor recognises it when the config names it, as `client_ca` or an upstream's `ca`)");
    }
    Finding::new(
        "certificate",
        Severity::Ok,
        subject,
        format!("chain of {} in order", certs.len()),
    )
}

fn key_matches(subject: &str, key_path: &str, chain: Vec<CertificateDer<'static>>) -> Finding {
    let key = match PrivateKeyDer::from_pem_file(key_path) {
        Ok(k) => k,
        Err(e) => {
            return Finding::new(
                "certificate",
                Severity::Error,
                subject,
                format!("key {key_path}: cannot read a PEM private key: {e}"),
            );
        }
    };
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = match provider.key_provider.load_private_key(key) {
        Ok(k) => k,
        Err(e) => {
            return Finding::new(
                "certificate",
                Severity::Error,
                subject,
                format!("key {key_path}: unsupported key: {e}"),
            );
        }
    };
    match CertifiedKey::new(chain, signing).keys_match() {
        Ok(()) => Finding::new(
            "certificate",
            Severity::Ok,
            subject,
            format!("key {key_path} matches the certificate"),
        ),
        Err(e) => Finding::new(
            "certificate",
            Severity::Error,
            subject,
            format!("key {key_path} does not belong to the certificate: {e}"),
        )
        .fix("pair each certificate with the key it was issued for"),
    }
}

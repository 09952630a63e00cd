//! OCSP stapling checked against the certificate: what a real rustls client receives stapled
//! before and after a certificate swap, and `rampart check` refusing a response that belongs to
//! another certificate or has expired.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use rampart_testkit::{OcspStatus, TestGateway, TestPki};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::reload::{metrics, series, wait_until};
use super::{get, https};

/// Verifies like rustls' WebPKI verifier and keeps the OCSP response the server stapled.
#[derive(Debug)]
struct Capture {
    inner: Arc<WebPkiServerVerifier>,
    stapled: Mutex<Vec<u8>>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.stapled.lock().unwrap() = ocsp_response.to_vec();
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// One full handshake with `gw`; the served leaf certificate and the stapled response.
fn handshake(gw: &TestGateway, pki: &TestPki) -> (CertificateDer<'static>, Vec<u8>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let capture = Arc::new(Capture {
        inner: WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .unwrap(),
        stapled: Mutex::new(Vec::new()),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&capture) as Arc<_>)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    let (_, conn) = https(
        gw.addr("https"),
        &Arc::new(config),
        "o.test",
        &get("o.test", "/"),
    )
    .unwrap();
    let leaf = conn.peer_certificates().unwrap()[0].clone().into_owned();
    let stapled = capture.stapled.lock().unwrap().clone();
    (leaf, stapled)
}

fn config(cert: &str, key: &str, ocsp: &str) -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[[listeners]]\nname = \"https\"\nbind = \"127.0.0.1:0\"\n\
         [[listeners.tls.certificates]]\ncert = {cert:?}\nkey = {key:?}\nocsp = {ocsp:?}\n\
         [[routes]]\nname = \"echo\"\necho = true\n"
    )
}

#[test]
fn after_a_certificate_swap_the_old_response_is_not_stapled_and_the_new_one_is() {
    let pki = TestPki::new();
    let first = pki.server("stapled", &["o.test"]);
    let ocsp_path = pki.path("stapled.ocsp.der");
    let first_ocsp = pki.ocsp_response(&first, OcspStatus::Good, 3600);
    std::fs::write(&ocsp_path, &first_ocsp).unwrap();
    let gw = TestGateway::builder(config(&first.cert, &first.key, &ocsp_path)).start();
    let (leaf, stapled) = handshake(&gw, &pki);
    assert_eq!(leaf, first.der);
    assert_eq!(stapled, first_ocsp);

    // A new certificate; the OCSP file still holds the old certificate's response.
    let second = pki.server("swapped", &["o.test"]);
    std::fs::copy(&second.key, &first.key).unwrap();
    std::fs::copy(&second.cert, &first.cert).unwrap();
    wait_until("the new certificate", || {
        handshake(&gw, &pki).0 == second.der
    });
    let (_, stapled) = handshake(&gw, &pki);
    assert!(
        stapled.is_empty(),
        "the old certificate's response is still stapled"
    );
    assert!(gw.tls_stats().ocsp_refused >= 1, "{:?}", gw.tls_stats());
    let text = metrics(&gw);
    assert!(
        series(&text, "rampart_tls_ocsp_refused_total").unwrap_or(0) >= 1,
        "{text}"
    );

    // Its own response arrives: it is stapled.
    let second_ocsp = pki.ocsp_response(&second, OcspStatus::Good, 3600);
    std::fs::write(&ocsp_path, &second_ocsp).unwrap();
    wait_until("the new response", || handshake(&gw, &pki).1 == second_ocsp);

    // An expired response for the same certificate keeps the one in service.
    let refused = gw.tls_stats().ocsp_refused;
    std::fs::write(
        &ocsp_path,
        pki.ocsp_response(&second, OcspStatus::Good, -60),
    )
    .unwrap();
    wait_until("the expired response to be refused", || {
        gw.tls_stats().ocsp_refused > refused
    });
    assert_eq!(handshake(&gw, &pki).1, second_ocsp);

    // A revoked response is stapled (clients must learn it), with an error in the log.
    let revoked = pki.ocsp_response(&second, OcspStatus::Revoked, 3600);
    std::fs::write(&ocsp_path, &revoked).unwrap();
    wait_until("the revoked response", || handshake(&gw, &pki).1 == revoked);
}

fn check(config: &str, dir: &std::path::Path) -> (bool, String) {
    let path = dir.join("rampart.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["check", "-c", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn rampart_check_refuses_a_response_for_another_certificate_or_an_expired_one() {
    let pki = TestPki::new();
    let cert = pki.server("checked", &["o.test"]);
    let other = pki.server("other", &["o.test"]);
    let ocsp_path = pki.path("checked.ocsp.der");
    let text = config(&cert.cert, &cert.key, &ocsp_path);

    std::fs::write(&ocsp_path, pki.ocsp_response(&cert, OcspStatus::Good, 3600)).unwrap();
    let (ok, out) = check(&text, pki.dir());
    assert!(ok, "{out}");

    std::fs::write(
        &ocsp_path,
        pki.ocsp_response(&other, OcspStatus::Good, 3600),
    )
    .unwrap();
    let (ok, out) = check(&text, pki.dir());
    assert!(!ok, "{out}");
    assert!(
        out.contains("certificates[0].ocsp")
            && out.contains(&format!("OCSP response file {ocsp_path:?} is not stapled"))
            && out.contains("it is for another certificate"),
        "{out}"
    );

    std::fs::write(&ocsp_path, pki.ocsp_response(&cert, OcspStatus::Good, -60)).unwrap();
    let (ok, out) = check(&text, pki.dir());
    assert!(!ok && out.contains("expired on"), "{out}");

    // Revoked: the config stands (the staple tells clients the truth), with a loud warning.
    std::fs::write(
        &ocsp_path,
        pki.ocsp_response(&cert, OcspStatus::Revoked, 3600),
    )
    .unwrap();
    let (ok, out) = check(&text, pki.dir());
    assert!(ok, "{out}");
    assert!(
        out.contains("warning: listeners[0].tls.certificates[0].ocsp") && out.contains("REVOKED"),
        "{out}"
    );
}

//! OCSP responses (RFC 6960) about certificates of a [`TestPki`], DER-encoded with yasna and
//! signed by the test CA, for stapling tests.

#![allow(clippy::expect_used)]

use rcgen::SigningKey as _;
use x509_parser::prelude::{FromDer, X509Certificate};
use yasna::models::{GeneralizedTime, ObjectIdentifier};
use yasna::{DERWriter, Tag};

use crate::certs::{CertFiles, TestPki};

/// What a test OCSP response says about its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspStatus {
    /// Not revoked.
    Good,
    /// Revoked an hour ago.
    Revoked,
}

fn time(offset_secs: i64) -> GeneralizedTime {
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs);
    GeneralizedTime::from_datetime(at.replace_nanosecond(0).expect("whole seconds"))
}

fn sha1(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

impl TestPki {
    /// A successful basic OCSP response about `cert` saying `status`, whose `nextUpdate` is
    /// `valid_for` seconds from now (negative: already expired).
    #[must_use]
    pub fn ocsp_response(&self, cert: &CertFiles, status: OcspStatus, valid_for: i64) -> Vec<u8> {
        let (_, leaf) = X509Certificate::from_der(cert.der.as_ref()).expect("leaf");
        let ca_der = self.ca_der();
        let (_, ca) = X509Certificate::from_der(ca_der.as_ref()).expect("CA");
        let name_hash = sha1(leaf.tbs_certificate.issuer.as_raw());
        let key_hash = sha1(&ca.public_key().subject_public_key.data);
        let serial = leaf.raw_serial().to_vec();
        let tbs = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                // responderID byKey [2]
                w.next()
                    .write_tagged(Tag::context(2), |w| w.write_bytes(&key_hash));
                w.next().write_generalized_time(&time(0));
                w.next().write_sequence(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_sequence(|w| {
                            w.next().write_sequence(|w| {
                                w.next().write_oid(&ObjectIdentifier::from_slice(&[
                                    1, 3, 14, 3, 2, 26,
                                ]));
                                w.next().write_null();
                            });
                            w.next().write_bytes(&name_hash);
                            w.next().write_bytes(&key_hash);
                            w.next().write_bigint_bytes(&serial, true);
                        });
                        write_status(w.next(), status);
                        w.next().write_generalized_time(&time(-60));
                        w.next().write_tagged(Tag::context(0), |w| {
                            w.write_generalized_time(&time(valid_for));
                        });
                    });
                });
            });
        });
        let signature = self.ca.key().sign(&tbs).expect("sign");
        let basic = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&tbs);
                w.next().write_sequence(|w| {
                    // ecdsa-with-SHA256: the test CA's key is ECDSA P-256.
                    w.next()
                        .write_oid(&ObjectIdentifier::from_slice(&[1, 2, 840, 10045, 4, 3, 2]));
                });
                w.next().write_bitvec_bytes(&signature, signature.len() * 8);
            });
        });
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_enum(0); // successful
                w.next().write_tagged(Tag::context(0), |w| {
                    w.write_sequence(|w| {
                        w.next().write_oid(&ObjectIdentifier::from_slice(&[
                            1, 3, 6, 1, 5, 5, 7, 48, 1, 1,
                        ]));
                        w.next().write_bytes(&basic);
                    });
                });
            });
        })
    }
}

fn write_status(w: DERWriter<'_>, status: OcspStatus) {
    match status {
        OcspStatus::Good => w.write_tagged_implicit(Tag::context(0), |w: DERWriter<'_>| {
            w.write_null();
        }),
        OcspStatus::Revoked => w.write_tagged_implicit(Tag::context(1), |w| {
            w.write_sequence(|w| w.next().write_generalized_time(&time(-3600)));
        }),
    }
}

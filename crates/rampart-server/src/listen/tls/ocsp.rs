//! Checking an OCSP response (RFC 6960) before it is stapled: it must be a successful basic
//! response about the certificate it is stapled with (the issuer's name and key hash and the
//! serial number of its CertID) and must not be past its `nextUpdate`. The DER is decoded with
//! asn1-rs (through x509-parser); the signature is the client's to verify.

use crate::observe::timefmt::unix_http_date;
use x509_parser::asn1_rs::{Any, Class, FromDer};
use x509_parser::prelude::{ASN1Time, X509Certificate};

/// What a response says about its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertStatus {
    /// Not revoked.
    Good,
    /// Revoked at this time (Unix seconds).
    Revoked(i64),
    /// The responder does not know the certificate.
    Unknown,
}

impl CertStatus {
    /// Lowercase name for logs.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Revoked(_) => "revoked",
            Self::Unknown => "unknown",
        }
    }
}

/// The facts of a response that matched its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The certificate's status.
    pub(crate) status: CertStatus,
    /// When the response stops being valid (Unix seconds), if it says.
    pub(crate) next_update: Option<i64>,
}

/// Logs a response put in service; a `revoked` one at `error`, for it makes clients refuse the
/// certificate.
pub(crate) fn log_stapled(listener: &str, cert: &str, checked: &Checked) {
    let next_update = checked
        .next_update
        .map_or_else(|| "-".to_owned(), unix_http_date);
    match checked.status {
        CertStatus::Revoked(at) => tracing::error!(
            listener,
            cert,
            revoked_at = %unix_http_date(at),
            "OCSP response says the certificate is REVOKED: clients that check the staple will refuse it; replace the certificate"
        ),
        status => {
            tracing::info!(listener, cert, status = status.name(), next_update = %next_update, "OCSP response stapled");
        }
    }
}

/// One `SingleResponse`.
struct Single<'a> {
    hash_oid: String,
    name_hash: &'a [u8],
    key_hash: &'a [u8],
    serial: &'a [u8],
    status: CertStatus,
    next_update: Option<i64>,
}

type Parsed<T> = Result<T, String>;

fn any(bytes: &[u8]) -> Parsed<(&[u8], Any<'_>)> {
    Any::from_der(bytes).map_err(|e| format!("not DER: {e}"))
}

/// The elements of a constructed value.
fn elements<'a>(value: &Any<'a>) -> Parsed<Vec<Any<'a>>> {
    let mut rest = value.data;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (next, item) = any(rest)?;
        out.push(item);
        rest = next;
    }
    Ok(out)
}

fn universal<'a>(value: &Any<'a>, tag: u32, what: &str) -> Parsed<&'a [u8]> {
    if value.class() == Class::Universal && value.tag().0 == tag {
        Ok(value.data)
    } else {
        Err(format!("malformed: expected {what}"))
    }
}

fn sequence<'a>(value: &Any<'a>, what: &str) -> Parsed<Vec<Any<'a>>> {
    universal(value, 16, what)?;
    elements(value)
}

fn context(value: &Any<'_>, tag: u32) -> bool {
    value.class() == Class::ContextSpecific && value.tag().0 == tag
}

fn time(value: &Any<'_>) -> Parsed<i64> {
    value
        .clone()
        .generalizedtime()
        .ok()
        .and_then(|t| t.utc_datetime().ok())
        .map(|t| ASN1Time::new(t).timestamp())
        .ok_or_else(|| "malformed: expected a GeneralizedTime".to_owned())
}

fn oid(value: &Any<'_>) -> Parsed<String> {
    value
        .clone()
        .oid()
        .map(|o| o.to_id_string())
        .map_err(|_| "malformed: expected an OID".to_owned())
}

/// The `SingleResponse`s of a DER `OCSPResponse`.
fn responses(der: &[u8]) -> Parsed<Vec<Single<'_>>> {
    let (_, top) = any(der)?;
    let top = sequence(&top, "an OCSPResponse SEQUENCE")?;
    let status = top.first().ok_or("malformed: empty OCSPResponse")?;
    match universal(status, 10, "a responseStatus")? {
        [0] => {}
        [code] => {
            let why = match code {
                1 => "malformedRequest",
                2 => "internalError",
                3 => "tryLater",
                5 => "sigRequired",
                6 => "unauthorized",
                _ => "an unknown status",
            };
            return Err(format!("the responder answered {why}, not a response"));
        }
        _ => return Err("malformed: bad responseStatus".to_owned()),
    }
    let bytes = top
        .get(1)
        .filter(|b| context(b, 0))
        .ok_or("malformed: no responseBytes")?;
    let bytes = elements(bytes)?;
    let bytes = sequence(
        bytes.first().ok_or("malformed: empty responseBytes")?,
        "ResponseBytes",
    )?;
    let [kind, body] = bytes.as_slice() else {
        return Err("malformed: ResponseBytes".to_owned());
    };
    if oid(kind)? != "1.3.6.1.5.5.7.48.1.1" {
        return Err("not a basic OCSP response".to_owned());
    }
    let (_, basic) = any(universal(body, 4, "an OCTET STRING response")?)?;
    let basic = sequence(&basic, "a BasicOCSPResponse")?;
    let tbs = sequence(
        basic.first().ok_or("malformed: empty BasicOCSPResponse")?,
        "ResponseData",
    )?;
    // version [0] (optional), responderID [1] or [2], producedAt, responses, extensions [1].
    let list = tbs
        .iter()
        .find(|e| e.class() == Class::Universal && e.tag().0 == 16)
        .ok_or("malformed: no responses")?;
    sequence(list, "responses")?.iter().map(single).collect()
}

fn single<'a>(value: &Any<'a>) -> Parsed<Single<'a>> {
    let parts = sequence(value, "a SingleResponse")?;
    let [cert_id, status, this_update, rest @ ..] = parts.as_slice() else {
        return Err("malformed: short SingleResponse".to_owned());
    };
    time(this_update)?;
    let id = sequence(cert_id, "a CertID")?;
    let [alg, name_hash, key_hash, serial] = id.as_slice() else {
        return Err("malformed: CertID".to_owned());
    };
    let alg = sequence(alg, "a hash AlgorithmIdentifier")?;
    let status = if context(status, 0) {
        CertStatus::Good
    } else if context(status, 1) {
        let (_, at) = any(status.data)?;
        CertStatus::Revoked(time(&at)?)
    } else {
        CertStatus::Unknown
    };
    let next_update = match rest.first().filter(|n| context(n, 0)) {
        Some(n) => Some(time(elements(n)?.first().ok_or("malformed: nextUpdate")?)?),
        None => None,
    };
    Ok(Single {
        hash_oid: oid(alg.first().ok_or("malformed: hash algorithm")?)?,
        name_hash: universal(name_hash, 4, "issuerNameHash")?,
        key_hash: universal(key_hash, 4, "issuerKeyHash")?,
        serial: universal(serial, 2, "a serialNumber")?,
        status,
        next_update,
    })
}

fn digest(oid: &str, data: &[u8]) -> Option<Vec<u8>> {
    let alg = match oid {
        "1.3.14.3.2.26" => &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        "2.16.840.1.101.3.4.2.1" => &aws_lc_rs::digest::SHA256,
        "2.16.840.1.101.3.4.2.2" => &aws_lc_rs::digest::SHA384,
        "2.16.840.1.101.3.4.2.3" => &aws_lc_rs::digest::SHA512,
        _ => return None,
    };
    Some(aws_lc_rs::digest::digest(alg, data).as_ref().to_vec())
}

fn strip_zeros(serial: &[u8]) -> &[u8] {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    &serial[start..]
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Checks the DER OCSP response `der` against the leaf certificate `leaf` (its issuer's key is
/// checked too when `issuer`, the next certificate of the chain, is given) at time `now`.
///
/// # Errors
/// Why the response must not be stapled: malformed, not successful, about another
/// certificate, or expired.
pub(crate) fn check(
    der: &[u8],
    leaf: &X509Certificate<'_>,
    issuer: Option<&X509Certificate<'_>>,
    now: i64,
) -> Result<Checked, String> {
    let subject = CertId {
        serial: strip_zeros(leaf.raw_serial()),
        issuer_name: leaf.tbs_certificate.issuer.as_raw(),
        issuer_key: issuer.map(|i| i.public_key().subject_public_key.data.as_ref()),
    };
    check_id(der, &subject, now).map_err(|e| {
        if e.starts_with("it is for another") {
            format!("{e}, issuer {}", leaf.issuer())
        } else {
            e
        }
    })
}

/// What identifies a certificate to OCSP.
struct CertId<'a> {
    serial: &'a [u8],
    issuer_name: &'a [u8],
    issuer_key: Option<&'a [u8]>,
}

fn check_id(der: &[u8], id: &CertId<'_>, now: i64) -> Result<Checked, String> {
    let singles = responses(der)?;
    let found = singles.iter().find(|s| {
        strip_zeros(s.serial) == id.serial
            && digest(&s.hash_oid, id.issuer_name).is_some_and(|h| h == s.name_hash)
            && id
                .issuer_key
                .is_none_or(|k| digest(&s.hash_oid, k).is_some_and(|h| h == s.key_hash))
    });
    let Some(found) = found else {
        let about: Vec<String> = singles.iter().map(|s| hex(strip_zeros(s.serial))).collect();
        return Err(format!(
            "it is for another certificate (serial {}), not for this one (serial {}",
            if about.is_empty() {
                "none".to_owned()
            } else {
                about.join(", ")
            },
            hex(id.serial),
        ) + ")");
    };
    if let Some(next) = found.next_update
        && next < now
    {
        return Err(format!(
            "it expired on {} (nextUpdate)",
            unix_http_date(next)
        ));
    }
    Ok(Checked {
        status: found.status,
        next_update: found.next_update,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_without_a_panic() {
        let id = CertId {
            serial: &[1, 2],
            issuer_name: b"issuer",
            issuer_key: None,
        };
        for bad in [
            &[][..],
            &[0x30, 0x00],
            &[0x30, 0x03, 0x0a, 0x01, 0x01],
            &[0x30, 0x81],
        ] {
            assert!(check_id(bad, &id, 0).is_err());
        }
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..500 {
            let mut bytes: Vec<u8> = vec![0x30, 0x82, 0x01, 0x00, 0x0a, 0x01, 0x00, 0xa0];
            bytes.extend((0..len % 120).map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            }));
            assert!(check_id(&bytes, &id, 0).is_err());
        }
    }

    #[test]
    fn an_unsuccessful_status_is_named() {
        let id = CertId {
            serial: &[1],
            issuer_name: b"issuer",
            issuer_key: None,
        };
        let e = check_id(&[0x30, 0x03, 0x0a, 0x01, 0x03], &id, 0).unwrap_err();
        assert!(e.contains("tryLater"), "{e}");
    }
}

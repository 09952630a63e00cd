//! Cookie-based sticky sessions. The cookie names a target by a stable id (a hash of its
//! `host:port`) and carries an HMAC-SHA256 tag over that id, so clients cannot steer requests
//! to a target of their choice. A missing, forged or stale cookie (its target gone or out)
//! falls back to the balancer, and the response sets a fresh cookie.

use std::time::Duration;

use aws_lc_rs::hmac;
use http::{HeaderMap, HeaderValue};

use super::hash::{cookie, stable_hash};

/// Bytes of the HMAC tag kept in the cookie (128 bits).
const TAG_LEN: usize = 16;

/// Compiled `[upstreams.sticky]`.
#[derive(Debug)]
pub(crate) struct Sticky {
    name: String,
    key: hmac::Key,
    /// `; Max-Age=N; Path=/; HttpOnly; SameSite=Lax` and friends.
    attributes: String,
}

impl Sticky {
    pub(crate) fn new(name: &str, secret: &str, max_age: Option<Duration>) -> Self {
        let mut attributes = String::from("; Path=/; HttpOnly; SameSite=Lax");
        if let Some(age) = max_age {
            attributes.push_str(&format!("; Max-Age={}", age.as_secs()));
        }
        Self {
            name: name.to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            attributes,
        }
    }

    /// The target id ([`target_id`]) the request's valid cookie names, if any.
    pub(crate) fn target(&self, headers: &HeaderMap) -> Option<u64> {
        let value = cookie(headers, &self.name)?;
        self.verify(value)
    }

    /// Checks `id.tag` and returns the id.
    fn verify(&self, value: &[u8]) -> Option<u64> {
        let text = std::str::from_utf8(value).ok()?;
        let (id_hex, tag_hex) = text.split_once('.')?;
        if id_hex.len() != 16 || tag_hex.len() != TAG_LEN * 2 {
            return None;
        }
        let id = u64::from_str_radix(id_hex, 16).ok()?;
        let expected = self.tag(id);
        let mut diff = 0u8;
        for (i, want) in expected.iter().enumerate() {
            let got = u8::from_str_radix(tag_hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
            diff |= got ^ want;
        }
        (diff == 0).then_some(id)
    }

    fn tag(&self, id: u64) -> [u8; TAG_LEN] {
        let full = hmac::sign(&self.key, &id.to_be_bytes());
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&full.as_ref()[..TAG_LEN]);
        out
    }

    /// The `Set-Cookie` value pinning a client to the target with this id.
    pub(crate) fn set_cookie(&self, id: u64) -> Option<HeaderValue> {
        let mut value = format!("{}={id:016x}.", self.name);
        for b in self.tag(id) {
            value.push_str(&format!("{b:02x}"));
        }
        value.push_str(&self.attributes);
        HeaderValue::from_str(&value).ok()
    }
}

/// The stable id a sticky cookie names a target by: a hash of its `host:port`, so a cookie
/// keeps its meaning across reloads and discovery updates while the target exists.
pub(crate) fn target_id(label: &str) -> u64 {
    stable_hash(label.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABELS: [&str; 3] = ["a:1", "b:2", "c:3"];

    fn sticky() -> Sticky {
        Sticky::new("aff", "0123456789abcdef-secret", None)
    }

    fn request_with(cookie: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(cookie) {
            headers.insert("cookie", v);
        }
        headers
    }

    fn cookie_pair(s: &Sticky, i: usize) -> String {
        let v = s.set_cookie(target_id(LABELS[i])).unwrap();
        v.to_str().unwrap().split(';').next().unwrap().to_owned()
    }

    #[test]
    fn a_signed_cookie_names_its_target() {
        let s = sticky();
        for (i, label) in LABELS.iter().enumerate() {
            assert_eq!(
                s.target(&request_with(&cookie_pair(&s, i))),
                Some(target_id(label))
            );
        }
        assert!(
            s.set_cookie(target_id(LABELS[0]))
                .unwrap()
                .to_str()
                .unwrap()
                .contains("HttpOnly")
        );
    }

    #[test]
    fn forged_or_foreign_cookies_are_ignored() {
        let s = sticky();
        let good = cookie_pair(&s, 1);
        let forged = format!("{}0", &good[..good.len() - 1]);
        let other_key = Sticky::new("aff", "another-secret-of-16b", None);
        for bad in [
            forged,
            cookie_pair(&other_key, 1),
            "aff=".to_owned(),
            "aff=zz.zz".to_owned(),
            "aff=\u{e9}".to_owned(),
            format!("aff={:016x}.{}", stable_hash(b"b:2"), "00".repeat(TAG_LEN)),
        ] {
            assert_eq!(s.target(&request_with(&bad)), None, "{bad}");
        }
    }
}

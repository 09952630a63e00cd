//! Request keys for consistent hashing, and the stable hash function: the same key maps to
//! the same target in every process and release (so several Rampart instances agree).

use std::net::IpAddr;

use http::Uri;
use http::header::{HeaderMap, HeaderName};

/// What part of the request `ring_hash` and `maglev` hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HashOn {
    /// The client IP (after trusted-proxy resolution).
    ClientIp,
    /// The request path (without the query).
    Path,
    /// The value of a header.
    Header(HeaderName),
    /// The value of a cookie.
    Cookie(String),
}

impl HashOn {
    /// Parses `client_ip`, `path`, `header:NAME` or `cookie:NAME`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            None if text == "client_ip" => Ok(Self::ClientIp),
            None if text == "path" => Ok(Self::Path),
            Some(("header", name)) => HeaderName::from_bytes(name.trim().as_bytes())
                .map(Self::Header)
                .map_err(|_| format!("{name:?} is not a valid header name")),
            Some(("cookie", name)) if !name.trim().is_empty() => {
                Ok(Self::Cookie(name.trim().to_owned()))
            }
            _ => Err(format!(
                "unknown hash key {text:?}: use \"client_ip\", \"path\", \"header:NAME\" or \"cookie:NAME\""
            )),
        }
    }

    /// The hash of this key for a request; `None` when the request lacks it.
    pub(crate) fn key(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        client_ip: Option<IpAddr>,
    ) -> Option<u64> {
        match self {
            Self::ClientIp => client_ip.map(|ip| match ip.to_canonical() {
                IpAddr::V4(v4) => stable_hash(&v4.octets()),
                IpAddr::V6(v6) => stable_hash(&v6.octets()),
            }),
            Self::Path => Some(stable_hash(uri.path().as_bytes())),
            Self::Header(name) => headers.get(name).map(|v| stable_hash(v.as_bytes())),
            Self::Cookie(name) => cookie(headers, name).map(stable_hash),
        }
    }
}

pub(crate) use rampart_core::hash::mix;
pub use rampart_core::hash::stable_hash;
pub(crate) use rampart_core::headers::cookie;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_refuse_unknown_forms() {
        assert_eq!(HashOn::parse("client_ip"), Ok(HashOn::ClientIp));
        assert_eq!(HashOn::parse("path"), Ok(HashOn::Path));
        assert!(matches!(
            HashOn::parse("header:x-user"),
            Ok(HashOn::Header(_))
        ));
        assert_eq!(
            HashOn::parse("cookie:sid"),
            Ok(HashOn::Cookie("sid".to_owned()))
        );
        for bad in ["", "ip", "header:", "header:bad name", "cookie:", "query:x"] {
            assert!(HashOn::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut req = HeaderMap::new();
        req.append("cookie", "a=1; sid=abc ;b=2".parse().unwrap());
        req.append("cookie", "c=3".parse().unwrap());
        assert_eq!(cookie(&req, "sid"), Some(&b"abc"[..]));
        assert_eq!(cookie(&req, "c"), Some(&b"3"[..]));
        assert_eq!(cookie(&req, "d"), None);
        let on = HashOn::Cookie("sid".to_owned());
        assert_eq!(
            on.key(&Uri::from_static("/"), &req, None),
            Some(stable_hash(b"abc"))
        );
    }

    #[test]
    fn the_hash_is_stable_across_builds() {
        // Fixed values: a change here would remap every consistent-hashing key in production.
        assert_eq!(stable_hash(b""), mix(0xcbf2_9ce4_8422_2325));
        assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
        assert_eq!(stable_hash(b"10.0.0.1"), stable_hash(b"10.0.0.1"));
    }
}

//! Request-smuggling defences: request shapes that are valid enough for hyper to parse but
//! that two HTTP implementations might read differently, refused with 400 before anything is
//! forwarded (the pipeline then closes an HTTP/1 connection).
//!
//! hyper (httparse) already refuses, while parsing the head: invalid methods and header
//! names, whitespace before a colon, obs-fold, NUL / bare CR and other control characters in
//! field values, `Content-Length` values that differ or are not numbers, and a
//! `Transfer-Encoding` whose final coding is not `chunked`; and, while reading a chunked body,
//! invalid chunk sizes, bare LF in chunk extensions and missing chunk CRLFs. The h2 crate refuses
//! malformed pseudo-headers, connection-specific header fields and field values with CR, LF or
//! NUL in HTTP/2 requests. What is left is checked here, without allocating.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Version};
use rampart_core::{ErrorKind, ProxyError};

/// Header fields that only describe one HTTP/1 connection; an HTTP/2 request carrying one is
/// malformed (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [header::HeaderName; 3] = [
    header::CONNECTION,
    header::UPGRADE,
    header::HeaderName::from_static("keep-alive"),
];

/// Refuses requests that are ambiguous to forward.
pub(crate) fn check<B>(req: &Request<B>) -> Result<(), ProxyError> {
    let fields = Fields::collect(req.headers())?;
    match req.version() {
        Version::HTTP_2 | Version::HTTP_3 => check_h2(&fields)?,
        version => check_h1(req, &fields, version)?,
    }
    if fields.hosts > 1 {
        return Err(ProxyError::new(
            ErrorKind::BadRequest,
            "more than one Host header",
        ));
    }
    check_host(req, fields.host)
}

fn framing(detail: &'static str) -> ProxyError {
    ProxyError::new(ErrorKind::AmbiguousFraming, detail)
}

fn invalid_header(detail: &'static str) -> ProxyError {
    ProxyError::new(ErrorKind::InvalidHeader, detail)
}

/// What one pass over the header fields found (comparing well-known names is cheap; a hash
/// lookup per name would cost more than the whole pass).
#[derive(Default)]
struct Fields<'a> {
    hosts: usize,
    host: Option<&'a HeaderValue>,
    transfer_encodings: usize,
    transfer_encoding: Option<&'a HeaderValue>,
    content_length: bool,
    /// HTTP/2 connection-specific fields, or a `TE` other than `trailers`.
    connection_specific: bool,
}

impl<'a> Fields<'a> {
    fn collect(headers: &'a HeaderMap) -> Result<Self, ProxyError> {
        let mut f = Self::default();
        let mut length: Option<&[u8]> = None;
        for (name, value) in headers {
            if *name == header::HOST {
                f.hosts += 1;
                f.host = Some(value);
            } else if *name == header::CONTENT_LENGTH {
                f.content_length = true;
                check_content_length(value, &mut length)?;
            } else if *name == header::TRANSFER_ENCODING {
                f.transfer_encodings += 1;
                f.transfer_encoding = Some(value);
                f.connection_specific = true;
            } else if *name == header::TE {
                f.connection_specific |= !value
                    .as_bytes()
                    .trim_ascii()
                    .eq_ignore_ascii_case(b"trailers");
            } else if CONNECTION_SPECIFIC.contains(name) || name.as_str() == "proxy-connection" {
                f.connection_specific = true;
            }
        }
        Ok(f)
    }
}

/// HTTP/1: one `Host` (on 1.1), and `Transfer-Encoding` only as exactly `chunked` on HTTP/1.1
/// without `Content-Length`.
fn check_h1<B>(req: &Request<B>, f: &Fields<'_>, version: Version) -> Result<(), ProxyError> {
    if let Some(te) = f.transfer_encoding {
        if version != Version::HTTP_11 {
            return Err(framing("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if f.transfer_encodings > 1 || !te.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked")
        {
            return Err(framing("Transfer-Encoding other than a single `chunked`"));
        }
        if f.content_length {
            return Err(framing("both Content-Length and Transfer-Encoding"));
        }
    }
    if version == Version::HTTP_11 && f.hosts == 0 && req.uri().authority().is_none() {
        return Err(ProxyError::new(
            ErrorKind::BadRequest,
            "HTTP/1.1 request without Host",
        ));
    }
    Ok(())
}

/// HTTP/2 and HTTP/3 requests become HTTP/1.1 upstream: connection-specific fields and any `TE`
/// other than `trailers` are malformed (RFC 9113 §8.2.2).
fn check_h2(f: &Fields<'_>) -> Result<(), ProxyError> {
    if f.connection_specific {
        return Err(invalid_header(
            "connection-specific header field or TE other than `trailers` in HTTP/2",
        ));
    }
    Ok(())
}

/// Every `Content-Length` value (fields and comma-separated list members) must be the same
/// decimal number.
fn check_content_length<'a>(
    value: &'a HeaderValue,
    seen: &mut Option<&'a [u8]>,
) -> Result<(), ProxyError> {
    for member in value.as_bytes().split(|b| *b == b',') {
        let member = member.trim_ascii();
        if member.is_empty() || member.len() > 19 || !member.iter().all(u8::is_ascii_digit) {
            return Err(framing("invalid Content-Length"));
        }
        match seen {
            Some(prev) if *prev != member => {
                return Err(framing("differing Content-Length values"));
            }
            _ => *seen = Some(member),
        }
    }
    Ok(())
}

/// The `Host` value must be an authority, and agree with an absolute-form target or HTTP/2
/// `:authority` when both are present.
fn check_host<B>(req: &Request<B>, host: Option<&HeaderValue>) -> Result<(), ProxyError> {
    let Some(host) = host else {
        return Ok(());
    };
    if !is_authority(host.as_bytes()) {
        return Err(invalid_header("invalid Host"));
    }
    if let Some(authority) = req.uri().authority()
        && !same_authority(authority.as_str().as_bytes(), host, req.uri().scheme_str())
    {
        return Err(ProxyError::new(
            ErrorKind::HostMismatch,
            "request target authority differs from Host",
        ));
    }
    Ok(())
}

/// `host[:port]` with RFC 3986 reg-name, IPv4 or bracketed IP-literal characters.
fn is_authority(value: &[u8]) -> bool {
    !value.is_empty()
        && value.iter().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'['
                        | b']'
                        | b'%'
                )
        })
}

/// Equal ignoring case and an explicit default port of the scheme.
fn same_authority(authority: &[u8], host: &HeaderValue, scheme: Option<&str>) -> bool {
    let default_port: &[u8] = match scheme {
        Some("https") => b":443",
        _ => b":80",
    };
    let strip = |a: &'_ [u8]| -> usize {
        if a.len() > default_port.len() && a.ends_with(default_port) {
            a.len() - default_port.len()
        } else {
            a.len()
        }
    };
    let host = host.as_bytes();
    authority[..strip(authority)].eq_ignore_ascii_case(&host[..strip(host)])
}

/// What the byte-level head scan saw (see [`crate::http::head_scan`]): `Content-Length` next to
/// `Transfer-Encoding` (hyper silently drops the length), or a bare LF line end.
pub(crate) fn check_head_flags(flags: u8) -> Result<(), ProxyError> {
    use crate::http::head_scan::{BARE_LF, CONTENT_LENGTH, TRANSFER_ENCODING};
    if flags & (CONTENT_LENGTH | TRANSFER_ENCODING) == CONTENT_LENGTH | TRANSFER_ENCODING {
        return Err(framing("both Content-Length and Transfer-Encoding"));
    }
    if flags & BARE_LF != 0 {
        return Err(invalid_header("bare LF line ending in the request head"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rampart_core::Body;

    use super::*;

    fn req(
        version: Version,
        uri: &str,
        headers: &[(&'static str, &'static [u8])],
    ) -> Request<Body> {
        let mut b = Request::builder().version(version).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, HeaderValue::from_bytes(v).unwrap());
        }
        b.body(Body::Empty).unwrap()
    }

    fn code(r: &Request<Body>) -> Option<&'static str> {
        check(r).err().map(|e| e.kind.code())
    }

    #[test]
    fn framing_rules() {
        let h11 = Version::HTTP_11;
        let ok = |h: &[(&'static str, &'static [u8])]| code(&req(h11, "/", h));
        assert_eq!(
            ok(&[("host", b"a"), ("transfer-encoding", b"chunked")]),
            None
        );
        assert_eq!(
            ok(&[("host", b"a"), ("transfer-encoding", b" Chunked ")]),
            None
        );
        assert_eq!(
            ok(&[
                ("host", b"a"),
                ("content-length", b"5"),
                ("content-length", b"5")
            ]),
            None
        );
        assert_eq!(ok(&[("host", b"a"), ("content-length", b"5, 5")]), None);
        for bad in [
            &[
                ("host", &b"a"[..]),
                ("transfer-encoding", b"chunked"),
                ("content-length", b"5"),
            ][..],
            &[("host", b"a"), ("transfer-encoding", b"chunked, chunked")],
            &[
                ("host", b"a"),
                ("transfer-encoding", b"chunked"),
                ("transfer-encoding", b"chunked"),
            ],
            &[("host", b"a"), ("transfer-encoding", b"gzip, chunked")],
            &[("host", b"a"), ("transfer-encoding", b"xchunked")],
            &[("host", b"a"), ("content-length", b"5, 6")],
            &[
                ("host", b"a"),
                ("content-length", b"5"),
                ("content-length", b"6"),
            ],
            &[("host", b"a"), ("content-length", b"+5")],
            &[("host", b"a"), ("content-length", b"")],
        ] {
            assert_eq!(ok(bad), Some("ambiguous_framing"), "{bad:?}");
        }
        assert_eq!(
            code(&req(
                Version::HTTP_10,
                "/",
                &[("transfer-encoding", b"chunked")]
            )),
            Some("ambiguous_framing")
        );
    }

    #[test]
    fn host_rules() {
        let h11 = Version::HTTP_11;
        assert_eq!(code(&req(h11, "/", &[])), Some("bad_request"));
        assert_eq!(
            code(&req(h11, "/", &[("host", b"a"), ("host", b"a")])),
            Some("bad_request")
        );
        assert_eq!(
            code(&req(h11, "/", &[("host", b"a b")])),
            Some("invalid_header")
        );
        assert_eq!(
            code(&req(h11, "/", &[("host", b"a/b")])),
            Some("invalid_header")
        );
        assert_eq!(code(&req(h11, "/", &[("host", b"[::1]:8080")])), None);
        assert_eq!(code(&req(h11, "http://a.example/", &[])), None);
        assert_eq!(
            code(&req(h11, "http://a.example/", &[("host", b"A.example:80")])),
            None
        );
        assert_eq!(
            code(&req(h11, "http://a.example:80/", &[("host", b"a.example")])),
            None
        );
        assert_eq!(
            code(&req(h11, "http://a.example/", &[("host", b"b.example")])),
            Some("host_mismatch")
        );
        assert_eq!(
            code(&req(
                h11,
                "http://a.example:8080/",
                &[("host", b"a.example")]
            )),
            Some("host_mismatch")
        );
    }

    #[test]
    fn http2_connection_specific_fields_are_refused() {
        let h2 = Version::HTTP_2;
        assert_eq!(
            code(&req(h2, "https://a.example/", &[("te", b"trailers")])),
            None
        );
        for (name, value) in [
            ("connection", &b"close"[..]),
            ("transfer-encoding", b"chunked"),
            ("upgrade", b"h2c"),
            ("keep-alive", b"5"),
            ("proxy-connection", b"x"),
            ("te", b"gzip"),
        ] {
            assert_eq!(
                code(&req(h2, "https://a.example/", &[(name, value)])),
                Some("invalid_header"),
                "{name}"
            );
        }
        assert_eq!(
            code(&req(h2, "https://a.example/", &[("host", b"b.example")])),
            Some("host_mismatch")
        );
    }
}

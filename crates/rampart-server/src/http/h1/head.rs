//! Parsing an HTTP/1.x request head (httparse) into an [`http::Request`], with what the
//! connection needs to know about it: how its body is framed, whether the connection stays
//! open after it, and whether the client waits for `100 Continue`.
//!
//! Strict where framing is at stake: `Content-Length` values that are not numbers or differ
//! are refused here (400). A `Transfer-Encoding` other than one `chunked` on HTTP/1.1 without
//! `Content-Length` is left to the front end's sanity check, which refuses it with its own
//! answer ([`Framing::Refused`]: no body is read and the connection closes after the answer).

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};

use crate::http::head_scan::{BARE_LF, CONTENT_LENGTH, TRANSFER_ENCODING};

/// Header fields parsed without a heap array; more, when the limit allows it, take one.
pub(crate) const INLINE_FIELDS: usize = 128;

/// Room in the map for the fields the proxy adds to a request (`X-Forwarded-*`, `Via`, ...).
const ADDED_ROOM: usize = 4;

/// What a request head may be, in fields and bytes, before it is refused unread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The most header fields parsed; more is answered 431.
    pub(crate) max_fields: usize,
    /// The most bytes a head may take; more is answered 431 (414 while the request line is
    /// still not complete).
    pub(crate) max_bytes: usize,
}

/// How the body after a head is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Framing the front end refuses: nothing after the head is read as a body, and the
    /// connection closes after the answer.
    Refused,
}

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) request: Request<()>,
    pub(crate) framing: Framing,
    /// The connection may carry another request after this one.
    pub(crate) keep_alive: bool,
    /// The client waits for `100 Continue` before it sends the body.
    pub(crate) expects_continue: bool,
    /// The client asks to switch protocols (`Connection: upgrade` with `Upgrade`).
    pub(crate) upgrade: bool,
    /// What the front end's checks need to know of the head's bytes (see
    /// [`crate::http::head_scan`]).
    pub(crate) flags: u8,
}

/// Why a head was refused before it became a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    /// Not HTTP/1.x, or framing that cannot be read safely: 400.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    /// Too many fields or too many bytes: 431.
    #[error("request head too large")]
    TooLarge,
    /// The request line alone exceeds the head's limit: 414.
    #[error("URI too long")]
    UriTooLong,
}

impl HeadError {
    /// The status the client is answered with.
    pub(crate) const fn status(self) -> u16 {
        match self {
            Self::Malformed(_) => 400,
            Self::TooLarge => 431,
            Self::UriTooLong => 414,
        }
    }
}

/// Where a field's name and value sit in the head: name start and end, value start and end.
type Span = [u32; 4];

/// What httparse found in a complete head, as offsets into it.
struct Scanned {
    len: usize,
    method: Method,
    version: Version,
    target: (u32, u32),
}

thread_local! {
    /// Where the fields of the head being parsed sit, kept per worker so that parsing
    /// neither allocates nor clears an array per request.
    static SPANS: std::cell::Cell<Vec<Span>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Parses a head from the front of `buf`, removing it (the body and anything pipelined stay).
/// `Ok(None)`: more bytes are needed.
pub(crate) fn parse(buf: &mut BytesMut, limits: Limits) -> Result<Option<Head>, HeadError> {
    let mut spans = SPANS.take();
    spans.clear();
    let parsed = parse_with(buf, limits, &mut spans);
    SPANS.set(spans);
    parsed
}

fn parse_with(
    buf: &mut BytesMut,
    limits: Limits,
    spans: &mut Vec<Span>,
) -> Result<Option<Head>, HeadError> {
    let Some(scanned) = scan(buf, limits, spans)? else {
        return Ok(None);
    };
    let head = buf.split_to(scanned.len).freeze();
    let slice = |(start, end): (u32, u32)| head.slice(start as usize..end as usize);
    let uri = Uri::from_maybe_shared(slice(scanned.target))
        .map_err(|_| HeadError::Malformed("invalid request target"))?;
    let mut map = HeaderMap::with_capacity(spans.len() + ADDED_ROOM);
    let mut facts = Facts::default();
    for &[name_start, name_end, value_start, value_end] in spans.iter() {
        let name = HeaderName::from_bytes(&head[name_start as usize..name_end as usize])
            .map_err(|_| HeadError::Malformed("invalid header name"))?;
        let value = parsed_value(slice((value_start, value_end)));
        facts.note(&name, &value)?;
        map.append(name, value);
    }
    let mut request = Request::new(());
    *request.method_mut() = scanned.method;
    *request.uri_mut() = uri;
    *request.version_mut() = scanned.version;
    *request.headers_mut() = map;
    Ok(Some(facts.into_head(request, &head)))
}

/// A field value httparse accepted, as a [`HeaderValue`].
///
/// Hot path: `HeaderValue::from_maybe_shared` would check every byte a second time (about 800
/// instructions per request in scenario a, measured with callgrind), so the value is built
/// unchecked, as rampart-upstream's response decoder does.
#[allow(unsafe_code)]
fn parsed_value(raw: Bytes) -> HeaderValue {
    // SAFETY: `from_maybe_shared_unchecked` requires every byte to be one `HeaderValue` accepts:
    // HTAB, 0x20..=0x7E or 0x80..=0xFF. `raw` is exactly a field value httparse returned from
    // `parse_request_with_uninit_headers` under the default `ParserConfig` (`scan` records its
    // offsets, `parse_with` slices the same bytes of the same buffer). That parser accepts in a
    // value only HTAB, 0x20..=0x7E and 0x80..=0xFF; CR, LF, NUL, other controls and DEL end the
    // parse with an error, and obsolete line folding is off by default. Both sets are the same,
    // and `every_byte_httparse_accepts_is_a_valid_header_value` checks them against each other
    // for all 256 bytes. Debug builds of `http` also verify the bytes here.
    unsafe { HeaderValue::from_maybe_shared_unchecked(raw) }
}

/// Runs httparse over `buf`; the fields' places go to `spans`.
fn scan(buf: &[u8], limits: Limits, spans: &mut Vec<Span>) -> Result<Option<Scanned>, HeadError> {
    let mut inline = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; INLINE_FIELDS];
    let mut heap = Vec::new();
    let fields: &mut [MaybeUninit<httparse::Header<'_>>] = if limits.max_fields > INLINE_FIELDS {
        heap.resize_with(limits.max_fields, MaybeUninit::uninit);
        &mut heap
    } else {
        &mut inline
    };
    let mut req = httparse::Request::new(&mut []);
    let parsed =
        httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, buf, fields);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_bytes => {
            return Err(if memchr::memchr(b'\n', buf).is_none() {
                HeadError::UriTooLong
            } else {
                HeadError::TooLarge
            });
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) if buf.starts_with(b"PRI * HTTP/2.0") => {
            return Err(HeadError::Malformed(
                "HTTP2 preface on an HTTP/1.1 connection",
            ));
        }
        Err(httparse::Error::Version) => return Err(HeadError::Malformed("invalid HTTP version")),
        Err(_) => return Err(HeadError::Malformed("invalid request line or header field")),
    };
    if len > limits.max_bytes || u32::try_from(len).is_err() {
        return Err(HeadError::TooLarge);
    }
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method"))?;
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let base = buf.as_ptr() as usize;
    // Every offset is within the head, whose length fits in u32 (checked above).
    #[allow(clippy::cast_possible_truncation)]
    let span = |s: &[u8]| {
        let start = (s.as_ptr() as usize).saturating_sub(base);
        (start as u32, (start + s.len()) as u32)
    };
    let target = span(req.path.unwrap_or("").as_bytes());
    spans.extend(req.headers.iter().map(|f| {
        let (name_start, name_end) = span(f.name.as_bytes());
        let (value_start, value_end) = span(f.value);
        [name_start, name_end, value_start, value_end]
    }));
    Ok(Some(Scanned {
        len,
        method,
        version,
        target,
    }))
}

/// What the framing and connection fields of a head say, gathered as the map is built.
#[derive(Debug, Default)]
struct Facts {
    length: Option<u64>,
    transfer_encodings: u8,
    chunked: bool,
    close: bool,
    keep_alive: bool,
    upgrade_token: bool,
    upgrade_field: bool,
    expects_continue: bool,
}

impl Facts {
    fn note(&mut self, name: &HeaderName, value: &HeaderValue) -> Result<(), HeadError> {
        if *name == header::CONTENT_LENGTH {
            for member in value.as_bytes().split(|b| *b == b',') {
                let n = parse_length(member.trim_ascii())
                    .ok_or(HeadError::Malformed("invalid Content-Length"))?;
                match self.length {
                    Some(prev) if prev != n => {
                        return Err(HeadError::Malformed("differing Content-Length values"));
                    }
                    _ => self.length = Some(n),
                }
            }
        } else if *name == header::TRANSFER_ENCODING {
            self.transfer_encodings = self.transfer_encodings.saturating_add(1);
            self.chunked = value
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"chunked");
        } else if *name == header::CONNECTION {
            for token in value.as_bytes().split(|b| *b == b',') {
                let token = token.trim_ascii();
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                self.upgrade_token |= token.eq_ignore_ascii_case(b"upgrade");
            }
        } else if *name == header::UPGRADE {
            self.upgrade_field = true;
        } else if *name == header::EXPECT {
            self.expects_continue = value.as_bytes().eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }

    fn into_head(self, request: Request<()>, head: &Bytes) -> Head {
        let version = request.version();
        let framing = match (self.transfer_encodings, self.length) {
            (0, None | Some(0)) => Framing::Empty,
            (0, Some(n)) => Framing::Length(n),
            (1, None) if self.chunked && version == Version::HTTP_11 => Framing::Chunked,
            _ => Framing::Refused,
        };
        let mut flags = 0;
        if self.length.is_some() {
            flags |= CONTENT_LENGTH;
        }
        if self.transfer_encodings > 0 {
            flags |= TRANSFER_ENCODING;
        }
        if has_bare_lf(head) {
            flags |= BARE_LF;
        }
        let keep_alive = framing != Framing::Refused
            && !self.close
            && (version == Version::HTTP_11 || self.keep_alive);
        Head {
            request,
            framing,
            keep_alive,
            expects_continue: self.expects_continue
                && version == Version::HTTP_11
                && framing != Framing::Empty,
            upgrade: self.upgrade_token && self.upgrade_field && version == Version::HTTP_11,
            flags,
        }
    }
}

/// A `Content-Length` member: 1 to 19 digits.
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

/// True when a line of `head` ends in LF without CR (httparse accepts it as a line end).
fn has_bare_lf(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', head).any(|i| i == 0 || head[i - 1] != b'\r')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const LIMITS: Limits = Limits {
        max_fields: INLINE_FIELDS,
        max_bytes: 8192,
    };

    fn parse_str(raw: &str) -> Result<Option<Head>, HeadError> {
        parse(&mut BytesMut::from(raw), LIMITS)
    }

    fn head(raw: &str) -> Head {
        parse_str(raw).unwrap().unwrap()
    }

    #[test]
    fn every_byte_httparse_accepts_is_a_valid_header_value() {
        for b in 0..=u8::MAX {
            let value = [b'a', b, b'z'];
            let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-V: ".to_vec();
            raw.extend_from_slice(&value);
            raw.extend_from_slice(b"\r\n\r\n");
            let valid = HeaderValue::from_bytes(&value).is_ok();
            match parse(&mut BytesMut::from(&raw[..]), LIMITS) {
                Ok(Some(h)) => {
                    assert!(valid, "httparse accepted byte {b:#04x}");
                    assert_eq!(h.request.headers()["x-v"].as_bytes(), value);
                }
                Ok(None) => panic!("a complete head needs no more bytes (byte {b:#04x})"),
                Err(_) => assert!(!valid, "httparse refused valid byte {b:#04x}"),
            }
        }
    }

    #[test]
    fn a_get_becomes_a_request_and_leaves_what_follows_in_the_buffer() {
        let mut buf =
            BytesMut::from("GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n\r\nGET /next");
        let h = parse(&mut buf, LIMITS).unwrap().unwrap();
        assert_eq!(h.request.method(), Method::GET);
        assert_eq!(h.request.uri(), "/a?b=1");
        assert_eq!(h.request.version(), Version::HTTP_11);
        assert_eq!(h.request.headers()["host"], "example.com");
        assert_eq!(h.request.headers()["x-a"], "1");
        assert_eq!(h.framing, Framing::Empty);
        assert!(h.keep_alive);
        assert_eq!(h.flags, 0);
        assert_eq!(&buf[..], b"GET /next");
    }

    #[test]
    fn partial_heads_ask_for_more() {
        assert!(
            parse_str("GET / HTTP/1.1\r\nHost: a\r\n")
                .unwrap()
                .is_none()
        );
        assert!(parse_str("GE").unwrap().is_none());
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n").keep_alive);
    }

    #[test]
    fn bodies_are_framed_by_length_or_chunked() {
        let h = head("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5));
        assert_eq!(h.flags, CONTENT_LENGTH);
        let h = head("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5));
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").framing,
            Framing::Empty
        );
    }

    #[test]
    fn framing_the_front_end_refuses_reads_no_body_and_closes() {
        for raw in [
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let h = head(raw);
            assert_eq!(h.framing, Framing::Refused, "{raw}");
            assert!(!h.keep_alive, "{raw}");
        }
    }

    #[test]
    fn unreadable_lengths_are_refused() {
        for raw in [
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3, 5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        ] {
            assert!(
                matches!(parse_str(raw), Err(HeadError::Malformed(_))),
                "{raw}"
            );
        }
    }

    #[test]
    fn garbage_is_malformed_and_oversized_heads_are_too_large() {
        for raw in [
            "GARBAGE\r\n\r\n",
            "GET /\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            assert!(
                matches!(parse_str(raw), Err(HeadError::Malformed(_))),
                "{raw}"
            );
        }
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(9000));
        assert_eq!(parse_str(&big).unwrap_err(), HeadError::TooLarge);
        let long = format!("GET /{}", "a".repeat(9000));
        assert_eq!(parse_str(&long).unwrap_err(), HeadError::UriTooLong);
        let many: String = (0..129).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse_str(&raw).unwrap_err(), HeadError::TooLarge);
    }

    #[test]
    fn more_fields_than_inline_parse_when_the_limit_allows() {
        let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let limits = Limits {
            max_fields: 300,
            max_bytes: 8192,
        };
        let h = parse(&mut BytesMut::from(raw.as_str()), limits)
            .unwrap()
            .unwrap();
        assert_eq!(h.request.headers().len(), 150);
    }

    #[test]
    fn bare_lf_continue_and_upgrade_are_noted() {
        assert_eq!(head("GET / HTTP/1.1\nHost: a\r\n\r\n").flags, BARE_LF);
        let h = head("PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
        assert!(h.expects_continue);
        let h = head("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
        assert!(h.upgrade);
        assert!(!head("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n").upgrade);
    }
}

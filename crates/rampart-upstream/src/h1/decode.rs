//! Parsing an upstream's response head and deciding how its body is framed (RFC 9112 §6.3).
//! Anything ambiguous is refused: a response Rampart cannot frame with certainty is a bad
//! response (502), never guessed at.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};

/// Most header fields accepted in an upstream response head.
const MAX_HEADERS: usize = 128;

/// Largest upstream response head accepted.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseFraming {
    /// No body (HEAD, 1xx, 204, 304, or `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) framing: ResponseFraming,
    /// The connection may carry another request once this response is read.
    pub(crate) keep_alive: bool,
}

/// Why a response head was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadResponse(pub(crate) &'static str);

/// Scratch space a connection keeps for parsing its response heads, so parsing allocates
/// nothing but the header map.
#[derive(Debug, Default)]
pub(crate) struct HeadScratch {
    /// Where the current head's fields sit.
    fields: Vec<Field>,
    /// The names of the previous head's fields by position, as received and as parsed (see
    /// [`field_name`]).
    names: Vec<(Vec<u8>, HeaderName)>,
}

/// Most field names remembered per connection.
const REMEMBERED_NAMES: usize = 32;

/// Room in a response's map for the fields added on the way to the client (`Via`,
/// `X-Request-ID`, a sticky-session `Set-Cookie`), so adding them does not grow it.
const ADDED_ROOM: usize = 3;

/// Parses a head from the front of `buf`, removing it. `Ok(None)`: more bytes are needed.
/// Interim (1xx) responses other than 101 are consumed and skipped.
pub(crate) fn parse_head(
    buf: &mut BytesMut,
    method: &Method,
    scratch: &mut HeadScratch,
) -> Result<Option<Head>, BadResponse> {
    loop {
        let fields = &mut scratch.fields;
        fields.clear();
        let Some((len, code, minor)) = parse_fields(buf, fields)? else {
            return Ok(None);
        };
        let status = StatusCode::from_u16(code).map_err(|_| BadResponse("invalid status code"))?;
        let version = if minor == 0 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        // The head's bytes become shared, so header values are slices of them, not copies.
        let head = buf.split_to(len).freeze();
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        let (map, facts) = header_map(&head, &scratch.fields, &mut scratch.names)?;
        let framing = body_framing(status, method, &map, &head, facts)?;
        let keep_alive = facts.keep_alive(version) && framing != ResponseFraming::UntilClose;
        return Ok(Some(Head {
            status,
            version,
            headers: map,
            framing,
            keep_alive,
        }));
    }
}

/// Drops complete interim responses (1xx other than 101) from the front of `buf` and tells
/// whether a final response has started: while a request body is still being sent, an interim
/// `100 Continue` means "go on", a final status means "stop sending".
pub(crate) fn final_response_started(buf: &mut BytesMut) -> bool {
    loop {
        if buf.len() < 12 {
            // Too short to see the status code yet.
            return false;
        }
        let informational = buf[9] == b'1' && !buf[9..12].eq(b"101");
        if !informational {
            return true;
        }
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            buf,
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(len)) => {
                let _ = buf.split_to(len);
            }
            Ok(httparse::Status::Partial) => return false,
            // Not HTTP: let the head parser report it.
            Err(_) => return true,
        }
    }
}

/// Where a header field's name and value sit in the head.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: (usize, usize),
    value: (usize, usize),
}

/// Runs httparse over `buf`: head length, status code and minor version; the fields are
/// recorded as offsets into `buf`.
fn parse_fields(
    buf: &[u8],
    fields: &mut Vec<Field>,
) -> Result<Option<(usize, u16, u8)>, BadResponse> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
            return Err(BadResponse("response head too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(BadResponse("too many response headers"));
        }
        Err(_) => return Err(BadResponse("malformed response head")),
    };
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| {
        let start = (s.as_ptr() as usize).saturating_sub(base);
        (start, start + s.len())
    };
    fields.extend(resp.headers.iter().map(|h| Field {
        name: offset(h.name.as_bytes()),
        value: offset(h.value),
    }));
    Ok(Some((
        len,
        resp.code.unwrap_or(0),
        resp.version.unwrap_or(1),
    )))
}

/// What the `Connection` header says, and which framing headers are present, gathered while
/// building the map (so framing needs no lookup for the headers a response does not have, nor
/// for a single `Content-Length`).
#[derive(Debug, Default, Clone, Copy)]
struct HeadFacts {
    close: bool,
    keep_alive: bool,
    transfer_encoding: bool,
    /// `Content-Length` fields seen (counting stops at 2: more than one means a map lookup).
    content_lengths: u8,
    /// Where the last `Content-Length` value sits in the head.
    content_length_at: (usize, usize),
}

impl HeadFacts {
    fn keep_alive(self, version: Version) -> bool {
        if version == Version::HTTP_10 {
            self.keep_alive && !self.close
        } else {
            !self.close
        }
    }
}

/// Builds the header map. `Connection` and `Keep-Alive` are consumed here when they carry only
/// connection options (`close`, `keep-alive`): they are hop-by-hop and never reach the client,
/// so leaving them out spares the later hop-by-hop pass (a `Connection` that names other
/// headers is kept for that pass to act on).
fn header_map(
    head: &Bytes,
    fields: &[Field],
    names: &mut Vec<(Vec<u8>, HeaderName)>,
) -> Result<(HeaderMap, HeadFacts), BadResponse> {
    let mut map = HeaderMap::with_capacity(fields.len() + ADDED_ROOM);
    let mut facts = HeadFacts::default();
    for (i, f) in fields.iter().enumerate() {
        let name = field_name(names, i, &head[f.name.0..f.name.1])?;
        let raw = head.slice(f.value.0..f.value.1);
        if name == header::CONNECTION && only_options(&raw, &mut facts) {
            continue;
        }
        if name.as_str() == "keep-alive" {
            continue;
        }
        facts.transfer_encoding |= name == header::TRANSFER_ENCODING;
        if name == header::CONTENT_LENGTH {
            facts.content_lengths = facts.content_lengths.saturating_add(1).min(2);
            facts.content_length_at = f.value;
        }
        map.append(name, parsed_value(raw));
    }
    Ok((map, facts))
}

/// A header value whose bytes httparse has already checked.
///
/// Hot path: `HeaderValue::from_maybe_shared` would check every byte a second time (about 800
/// instructions per response, measured with callgrind), so the value is built unchecked. This
/// is rampart-upstream's one `unsafe` block.
#[allow(unsafe_code)]
fn parsed_value(raw: Bytes) -> HeaderValue {
    // SAFETY: `from_maybe_shared_unchecked` requires every byte to be one `HeaderValue` accepts:
    // HTAB, 0x20..=0x7E or 0x80..=0xFF. `raw` is exactly a field value httparse returned from
    // `parse_response_with_uninit_headers` under the default `ParserConfig` (`parse_fields`
    // records its offsets, `parse_head` slices the same bytes). That parser accepts in a value
    // only HTAB, 0x20..=0x7E and 0x80..=0xFF; CR, LF, NUL, other controls and DEL end the
    // parse with an error, and obsolete line folding is off by default. Both sets are the
    // same, and `every_byte_httparse_accepts_is_a_valid_header_value` checks them against
    // each other for all 256 bytes. Debug builds of `http` also verify the bytes here.
    unsafe { HeaderValue::from_maybe_shared_unchecked(raw) }
}

/// The name of the field at position `i` of a head.
///
/// Hot path, hand-written instead of calling `HeaderName::from_bytes` for every field: an
/// upstream sends the same names in the same order response after response, so the name parsed
/// at this position last time is reused when the received bytes are exactly the same. That
/// skips the parse (about 150 instructions a field, measured with callgrind) and, for custom
/// names, an allocation. (Comparing up to ASCII case instead costs as much as the parse.)
fn field_name(
    names: &mut Vec<(Vec<u8>, HeaderName)>,
    i: usize,
    raw: &[u8],
) -> Result<HeaderName, BadResponse> {
    if let Some((known_raw, known)) = names.get(i)
        && known_raw.as_slice() == raw
    {
        return Ok(known.clone());
    }
    let name = HeaderName::from_bytes(raw).map_err(|_| BadResponse("invalid header name"))?;
    if let Some((slot_raw, slot)) = names.get_mut(i) {
        slot_raw.clear();
        slot_raw.extend_from_slice(raw);
        *slot = name.clone();
    } else if i == names.len() && i < REMEMBERED_NAMES {
        names.push((raw.to_vec(), name.clone()));
    }
    Ok(name)
}

/// True when a `Connection` value lists only `close` / `keep-alive`, recording them.
fn only_options(value: &[u8], options: &mut HeadFacts) -> bool {
    let mut only = true;
    for token in value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
    {
        if token.eq_ignore_ascii_case(b"close") {
            options.close = true;
        } else if token.eq_ignore_ascii_case(b"keep-alive") {
            options.keep_alive = true;
        } else {
            only = false;
        }
    }
    if !only {
        // Kept in the map: record the options it also carries.
        return false;
    }
    true
}

/// RFC 9112 §6.3, strictly: conflicting or invalid framing is refused. `head` holds the bytes
/// `present` points into.
fn body_framing(
    status: StatusCode,
    method: &Method,
    headers: &HeaderMap,
    head: &[u8],
    present: HeadFacts,
) -> Result<ResponseFraming, BadResponse> {
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(ResponseFraming::Empty);
    }
    if present.transfer_encoding {
        let te = headers.get_all(header::TRANSFER_ENCODING);
        if present.content_lengths > 0 {
            return Err(BadResponse("both Transfer-Encoding and Content-Length"));
        }
        let last = te
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .rfind(|t| !t.is_empty());
        return Ok(match last {
            Some(t) if t.eq_ignore_ascii_case(b"chunked") => ResponseFraming::Chunked,
            _ => ResponseFraming::UntilClose,
        });
    }
    let length = match present.content_lengths {
        0 => return Ok(ResponseFraming::UntilClose),
        1 => {
            let (start, end) = present.content_length_at;
            content_length(std::iter::once(&head[start..end]))?
        }
        _ => content_length(
            headers
                .get_all(header::CONTENT_LENGTH)
                .iter()
                .map(HeaderValue::as_bytes),
        )?,
    };
    Ok(match length {
        Some(0) => ResponseFraming::Empty,
        Some(n) => ResponseFraming::Length(n),
        None => ResponseFraming::UntilClose,
    })
}

/// The length the `Content-Length` field values agree on (a list of equal values counts as
/// one); different or invalid values are refused.
fn content_length<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Option<u64>, BadResponse> {
    let mut length = None;
    for value in values {
        for part in value.split(|b| *b == b',') {
            let n = parse_length(part.trim_ascii()).ok_or(BadResponse("invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(BadResponse("conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(length)
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, method: &Method) -> Result<Option<Head>, BadResponse> {
        let mut buf = BytesMut::from(raw.as_bytes());
        parse_head(&mut buf, method, &mut HeadScratch::default())
    }

    fn head(raw: &str) -> Head {
        parse(raw, &Method::GET).unwrap().unwrap()
    }

    #[test]
    fn a_content_length_response_is_framed_by_length_and_kept_alive() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello");
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.framing, ResponseFraming::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.headers["x-a"], "b");
    }

    #[test]
    fn names_remembered_from_the_previous_head_are_reused_only_when_they_match() {
        let mut scratch = HeadScratch::default();
        let mut parse_with = |raw: &str| {
            let mut buf = BytesMut::from(raw.as_bytes());
            parse_head(&mut buf, &Method::GET, &mut scratch)
                .unwrap()
                .unwrap()
        };
        let first = parse_with("HTTP/1.1 200 OK\r\nX-Tag: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(first.headers["x-tag"], "a");
        // Same names in another case, then a different name at the same position.
        let second = parse_with("HTTP/1.1 200 OK\r\nx-TAG: b\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(second.headers["x-tag"], "b");
        assert_eq!(second.headers["content-length"], "0");
        let third = parse_with("HTTP/1.1 200 OK\r\nX-Other: c\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(third.headers["x-other"], "c");
        assert!(third.headers.get("x-tag").is_none());
        let names: Vec<&str> = third.headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-other", "content-length"]);
        // A malformed name is refused even where a valid one was remembered.
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX Other: c\r\n\r\n"[..]);
        assert!(parse_head(&mut buf, &Method::GET, &mut scratch).is_err());
    }

    /// The proof obligation of [`parsed_value`]'s `unsafe`: a value byte httparse accepts is
    /// one `HeaderValue` accepts, for all 256 bytes (and the two refuse the same ones).
    #[test]
    fn every_byte_httparse_accepts_is_a_valid_header_value() {
        for b in 0..=u8::MAX {
            let value = [b'a', b, b'z'];
            let mut raw = b"HTTP/1.1 204 No Content\r\nX-V: ".to_vec();
            raw.extend_from_slice(&value);
            raw.extend_from_slice(b"\r\n\r\n");
            let mut buf = BytesMut::from(&raw[..]);
            let parsed = parse_head(&mut buf, &Method::GET, &mut HeadScratch::default());
            let valid = HeaderValue::from_bytes(&value).is_ok();
            match parsed {
                Ok(Some(head)) => {
                    assert!(valid, "httparse accepted byte {b:#04x}");
                    assert_eq!(head.headers["x-v"].as_bytes(), value);
                }
                Ok(None) => panic!("a complete head needs no more bytes (byte {b:#04x})"),
                Err(_) => assert!(!valid, "httparse refused valid byte {b:#04x}"),
            }
        }
    }

    #[test]
    fn the_head_is_removed_from_the_buffer_and_the_body_left() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..]);
        parse_head(&mut buf, &Method::GET, &mut HeadScratch::default())
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..], b"ok");
    }

    #[test]
    fn partial_heads_ask_for_more() {
        assert!(
            parse("HTTP/1.1 200 OK\r\nContent-Le", &Method::GET)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn interim_responses_do_not_count_as_an_early_answer() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]);
        assert!(!final_response_started(&mut buf));
        assert!(buf.is_empty());
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 413 Payload Too Large\r\n"[..]);
        assert!(final_response_started(&mut buf));
        assert!(buf.starts_with(b"HTTP/1.1 413"));
        let mut buf = BytesMut::from(&b"HTTP/1.1 10"[..]);
        assert!(!final_response_started(&mut buf));
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        assert!(final_response_started(&mut buf));
    }

    #[test]
    fn interim_responses_are_skipped() {
        let h = head(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(h.status, StatusCode::CREATED);
        assert_eq!(h.framing, ResponseFraming::Empty);
    }

    #[test]
    fn chunked_wins_only_as_the_final_coding() {
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").framing,
            ResponseFraming::Chunked
        );
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(h.framing, ResponseFraming::UntilClose);
        assert!(!h.keep_alive);
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        ] {
            assert!(parse(raw, &Method::GET).is_err(), "{raw:?}");
        }
        for agreeing in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\nContent-Length: 5\r\n\r\n",
        ] {
            assert_eq!(
                head(agreeing).framing,
                ResponseFraming::Length(5),
                "{agreeing:?}"
            );
        }
    }

    #[test]
    fn garbage_and_oversized_heads_are_refused() {
        assert!(parse("not http\r\n\r\n", &Method::GET).is_err());
        assert!(parse("HTTP/1.1 999x OK\r\n\r\n", &Method::GET).is_err());
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD_BYTES + 1));
        assert!(parse(&huge, &Method::GET).is_err());
        let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
        assert!(parse(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"), &Method::GET).is_err());
    }

    #[test]
    fn bodiless_responses_have_no_body_whatever_they_claim() {
        let h = parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            &Method::HEAD,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, ResponseFraming::Empty);
        assert_eq!(
            head("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n").framing,
            ResponseFraming::Empty
        );
        assert_eq!(
            head("HTTP/1.1 204 No Content\r\n\r\n").framing,
            ResponseFraming::Empty
        );
    }

    #[test]
    fn connection_options_are_consumed_but_listed_headers_kept_for_removal() {
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(h.headers.get("connection").is_none() && h.headers.get("keep-alive").is_none());
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: close, x-internal\r\nX-Internal: 1\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(h.headers["connection"], "close, x-internal");
        assert!(!h.keep_alive);
    }

    #[test]
    fn header_values_share_the_read_buffer() {
        let h = head("HTTP/1.1 200 OK\r\nX-A: one\r\nX-A: two\r\nContent-Length: 0\r\n\r\n");
        let values: Vec<_> = h.headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["one", "two"]);
    }

    #[test]
    fn connection_reuse_follows_version_and_connection_header() {
        assert!(
            !head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive
        );
        assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(
            head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
                .keep_alive
        );
        assert!(
            !head("HTTP/1.1 200 OK\r\n\r\n").keep_alive,
            "close-delimited"
        );
    }
}

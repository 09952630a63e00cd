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
    /// `headers` still holds a hop-by-hop field (`Transfer-Encoding`, `TE`, `Upgrade`,
    /// `Proxy-*`, or a `Connection` naming other fields) that the proxy must remove; when
    /// false the hop-by-hop pass over the map can be skipped.
    pub(crate) hop_by_hop: bool,
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
    /// The names of the previous head's fields by position, as received, as parsed and
    /// classified (see [`field_name`]).
    names: Vec<Remembered>,
}

/// A field name seen at some position of the previous head.
#[derive(Debug)]
struct Remembered {
    raw: Vec<u8>,
    name: HeaderName,
    kind: NameKind,
}

/// What a field name means to framing and forwarding, decided once per parsed name so the
/// fields of later heads need no name comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKind {
    Connection,
    KeepAlive,
    TransferEncoding,
    ContentLength,
    /// `TE`, `Upgrade`, `Proxy-Connection`, `Proxy-Authenticate`: hop-by-hop, left in the
    /// map for the proxy's hop-by-hop pass.
    OtherHopByHop,
    EndToEnd,
}

impl NameKind {
    fn of(name: &HeaderName) -> Self {
        if name == header::CONNECTION {
            Self::Connection
        } else if name == header::TRANSFER_ENCODING {
            Self::TransferEncoding
        } else if name == header::CONTENT_LENGTH {
            Self::ContentLength
        } else if name == header::TE
            || name == header::UPGRADE
            || name == header::PROXY_AUTHENTICATE
        {
            Self::OtherHopByHop
        } else {
            match name.as_str() {
                "keep-alive" => Self::KeepAlive,
                "proxy-connection" => Self::OtherHopByHop,
                _ => Self::EndToEnd,
            }
        }
    }
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
            hop_by_hop: facts.hop_by_hop,
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
    /// A hop-by-hop field stays in the map.
    hop_by_hop: bool,
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
/// headers is kept for that pass to act on, and [`Head::hop_by_hop`] says so).
fn header_map(
    head: &Bytes,
    fields: &[Field],
    names: &mut Vec<Remembered>,
) -> Result<(HeaderMap, HeadFacts), BadResponse> {
    let mut map = HeaderMap::with_capacity(fields.len() + ADDED_ROOM);
    let mut facts = HeadFacts::default();
    for (i, f) in fields.iter().enumerate() {
        let (name, kind) = field_name(names, i, &head[f.name.0..f.name.1])?;
        let value = &head[f.value.0..f.value.1];
        match kind {
            NameKind::EndToEnd => {}
            NameKind::Connection if only_options(value, &mut facts) => continue,
            NameKind::KeepAlive => continue,
            NameKind::ContentLength => {
                facts.content_lengths = facts.content_lengths.saturating_add(1).min(2);
                facts.content_length_at = f.value;
            }
            NameKind::TransferEncoding => {
                facts.transfer_encoding = true;
                facts.hop_by_hop = true;
            }
            NameKind::Connection | NameKind::OtherHopByHop => facts.hop_by_hop = true,
        }
        map.append(name, parsed_value(head.slice(f.value.0..f.value.1)));
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

/// The name of the field at position `i` of a head, and its [`NameKind`].
///
/// Hot path, hand-written instead of calling `HeaderName::from_bytes` for every field: an
/// upstream sends the same names in the same order response after response, so the name parsed
/// at this position last time is reused when the received bytes are exactly the same. That
/// skips the parse (about 150 instructions a field, measured with callgrind), the name
/// comparisons that classify it and, for custom names, an allocation. (Comparing up to ASCII
/// case instead costs as much as the parse.)
fn field_name(
    names: &mut Vec<Remembered>,
    i: usize,
    raw: &[u8],
) -> Result<(HeaderName, NameKind), BadResponse> {
    if let Some(known) = names.get(i)
        && known.raw.as_slice() == raw
    {
        return Ok((known.name.clone(), known.kind));
    }
    let name = HeaderName::from_bytes(raw).map_err(|_| BadResponse("invalid header name"))?;
    let kind = NameKind::of(&name);
    if let Some(slot) = names.get_mut(i) {
        slot.raw.clear();
        slot.raw.extend_from_slice(raw);
        slot.name = name.clone();
        slot.kind = kind;
    } else if i == names.len() && i < REMEMBERED_NAMES {
        names.push(Remembered {
            raw: raw.to_vec(),
            name: name.clone(),
            kind,
        });
    }
    Ok((name, kind))
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
mod tests;

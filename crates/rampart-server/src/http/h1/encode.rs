//! Writing a response head for an HTTP/1.x client: the status line, the response's fields,
//! the framing Rampart chooses from the body it will send (never a copied `Content-Length` or
//! `Transfer-Encoding` that might disagree with it), `Connection` when the connection closes
//! (or stays open for HTTP/1.0), and a `Date` formatted once per second per worker.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use http::header::{self, HeaderMap};
use http::{StatusCode, Version};

/// How the response body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body follows the head (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client, length unknown).
    UntilClose,
}

/// What the head depends on besides the response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exchange {
    /// The request was `HEAD`.
    pub(crate) head_request: bool,
    pub(crate) version: Version,
    /// The connection may carry another request after this one, as far as the request and
    /// the connection's state go.
    pub(crate) keep_alive: bool,
}

/// What is known of the body before it is sent: at its end already, or its exact length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyFacts {
    pub(crate) empty: bool,
    pub(crate) exact: Option<u64>,
}

/// Writes the head of a response to `exchange` into `out`; returns the body's framing and
/// whether the connection stays open after it.
pub(crate) fn encode_head(
    status: StatusCode,
    headers: &HeaderMap,
    body: BodyFacts,
    exchange: Exchange,
    out: &mut BytesMut,
) -> (Framing, bool) {
    let mut keep_alive = exchange.keep_alive && !says_close(headers);
    let bodiless = exchange.head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if bodiless {
        Framing::None
    } else if body.empty {
        Framing::Length(0)
    } else if let Some(n) = body.exact.or_else(|| declared_length(headers)) {
        Framing::Length(n)
    } else if exchange.version == Version::HTTP_11 {
        Framing::Chunked
    } else {
        keep_alive = false;
        Framing::UntilClose
    };
    // A HEAD or 304 answer may say how long the body would be; the others carry no length.
    let keep_length =
        framing == Framing::None && (exchange.head_request || status == StatusCode::NOT_MODIFIED);
    out.reserve(64 + headers.len() * 40);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut has_date = false;
    let mut has_connection = false;
    for (name, value) in headers {
        if *name == header::TRANSFER_ENCODING || (*name == header::CONTENT_LENGTH && !keep_length) {
            continue;
        }
        has_date |= *name == header::DATE;
        has_connection |= *name == header::CONNECTION;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // A HEAD answer says how long the body would be, when it is known and the map is silent.
    let head_length = match body.exact {
        Some(n)
            if exchange.head_request && n > 0 && !headers.contains_key(header::CONTENT_LENGTH) =>
        {
            Some(n)
        }
        _ => None,
    };
    if let Some(n) = head_length {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::None | Framing::UntilClose => {}
    }
    if !has_connection && status != StatusCode::SWITCHING_PROTOCOLS {
        if !keep_alive {
            out.extend_from_slice(b"connection: close\r\n");
        } else if exchange.version == Version::HTTP_10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        write_date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    (framing, keep_alive)
}

/// The response says the connection closes.
fn says_close(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// A single valid `Content-Length` in the map.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(header::CONTENT_LENGTH)?;
    value.to_str().ok()?.trim().parse().ok()
}

/// The line that starts a chunk of `len` bytes, into `out` (hex digits and CRLF); returns how
/// many bytes it took.
pub(crate) fn chunk_line(len: usize, out: &mut [u8; 18]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut count = 0;
    loop {
        digits[count] = HEX[n & 0xf];
        count += 1;
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    for (i, d) in digits[..count].iter().rev().enumerate() {
        out[i] = *d;
    }
    out[count] = b'\r';
    out[count + 1] = b'\n';
    count + 2
}

/// The end of a chunked body without trailers.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Writes the last chunk and `trailers` into `out`.
pub(crate) fn encode_trailers(trailers: &HeaderMap, out: &mut BytesMut) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The second the cached `Date` value is for, and the value.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Writes the current `Date` value (IMF-fixdate), formatted at most once a second.
fn write_date(out: &mut BytesMut) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                cached.1.copy_from_slice(text.as_bytes());
                cached.0 = second;
            } else {
                out.extend_from_slice(text.as_bytes());
                return;
            }
        }
        out.extend_from_slice(&cached.1);
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const KEEP: Exchange = Exchange {
        head_request: false,
        version: Version::HTTP_11,
        keep_alive: true,
    };

    fn head(
        status: u16,
        fields: &[(&str, &str)],
        body: BodyFacts,
        exchange: Exchange,
    ) -> (String, Framing, bool) {
        let mut map = HeaderMap::new();
        for (k, v) in fields {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let mut out = BytesMut::new();
        let status = StatusCode::from_u16(status).unwrap();
        let (framing, keep) = encode_head(status, &map, body, exchange, &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        // The date changes: check its shape and drop it.
        let (before, after) = text.split_once("date: ").unwrap();
        let (date, rest) = after.split_once("\r\n").unwrap();
        assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
        (format!("{before}{rest}"), framing, keep)
    }

    const SIZED: BodyFacts = BodyFacts {
        empty: false,
        exact: Some(5),
    };
    const STREAM: BodyFacts = BodyFacts {
        empty: false,
        exact: None,
    };

    #[test]
    fn a_sized_body_gets_its_own_length_whatever_the_map_says() {
        let (text, framing, keep) = head(
            200,
            &[("content-type", "text/plain"), ("content-length", "99")],
            SIZED,
            KEEP,
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n"
        );
        assert_eq!((framing, keep), (Framing::Length(5), true));
    }

    #[test]
    fn an_unknown_length_is_chunked_for_http_1_1_and_until_close_for_1_0() {
        let (text, framing, _) = head(200, &[("transfer-encoding", "gzip")], STREAM, KEEP);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(framing, Framing::Chunked);
        let old = Exchange {
            version: Version::HTTP_10,
            ..KEEP
        };
        let (text, framing, keep) = head(200, &[], STREAM, old);
        assert_eq!(text, "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n");
        assert_eq!((framing, keep), (Framing::UntilClose, false));
        let (text, _, keep) = head(200, &[], SIZED, old);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\n"
        );
        assert!(keep);
    }

    #[test]
    fn bodiless_answers_carry_no_framing_but_head_and_304_keep_their_length() {
        for status in [204, 101] {
            let (text, framing, _) = head(status, &[("content-length", "5")], SIZED, KEEP);
            assert!(!text.contains("content-length"), "{text}");
            assert_eq!(framing, Framing::None);
        }
        let to_head = Exchange {
            head_request: true,
            ..KEEP
        };
        let (text, framing, _) = head(200, &[("content-length", "5")], STREAM, to_head);
        assert_eq!(text, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
        assert_eq!(framing, Framing::None);
        let (text, _, _) = head(200, &[], SIZED, to_head);
        assert_eq!(text, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
        let (text, _, _) = head(304, &[("content-length", "5")], STREAM, KEEP);
        assert_eq!(
            text,
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n"
        );
    }

    #[test]
    fn closing_is_said_once() {
        let close = Exchange {
            keep_alive: false,
            ..KEEP
        };
        let (text, _, keep) = head(200, &[], SIZED, close);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n"
        );
        assert!(!keep);
        let (text, _, keep) = head(400, &[("connection", "close")], SIZED, KEEP);
        assert_eq!(
            text,
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 5\r\n\r\n"
        );
        assert!(!keep);
    }

    #[test]
    fn chunk_lines_are_hex() {
        let mut out = [0u8; 18];
        let n = chunk_line(0x1a2b, &mut out);
        assert_eq!(&out[..n], b"1a2b\r\n");
        let n = chunk_line(0, &mut out);
        assert_eq!(&out[..n], b"0\r\n");
        let n = chunk_line(usize::MAX, &mut out);
        assert_eq!(n, 18);
    }
}

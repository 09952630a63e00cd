//! Just enough HTTP/1.1 framing for the raw-TCP origins and the raw client.

/// Largest head (start line plus headers) the raw parsers accept.
pub(crate) const MAX_HEAD: usize = 1 << 20;

/// Longest chunk-size or trailer line accepted in a chunked body.
const MAX_LINE: usize = 8 * 1024;

/// Returns the length of the head including its final CRLFCRLF, once complete.
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// A parsed message head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The request or status line.
    pub(crate) start_line: String,
    /// Header fields in wire order, names as sent, values trimmed.
    pub(crate) headers: Vec<(String, String)>,
}

impl Head {
    /// All values of a header (case-insensitive name).
    pub(crate) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True if a comma-separated token header (e.g. `Connection`) carries `token`.
    pub(crate) fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// Parses a head (the bytes up to and including CRLFCRLF); lines without a colon are skipped.
pub(crate) fn parse_head(head: &[u8]) -> Head {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let start_line = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
        .collect();
    Head {
        start_line,
        headers,
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the connection closes (responses only).
    UntilClose,
    /// Conflicting or unparsable framing.
    Invalid,
}

/// Parses every `Content-Length` value; `Some(Err)` if they are invalid or disagree.
fn content_length(head: &Head) -> Option<Result<usize, ()>> {
    let mut found: Option<usize> = None;
    for v in head.values("content-length").flat_map(|v| v.split(',')) {
        let v = v.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Err(()));
        }
        let Ok(n) = v.parse::<usize>() else {
            return Some(Err(()));
        };
        match found {
            Some(prev) if prev != n => return Some(Err(())),
            _ => found = Some(n),
        }
    }
    found.map(Ok)
}

/// True if the last transfer coding is `chunked`; `None` without `Transfer-Encoding`.
fn chunked_last(head: &Head) -> Option<bool> {
    head.values("transfer-encoding").next()?;
    let last = head
        .values("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .last();
    Some(last.is_some_and(|c| c.eq_ignore_ascii_case("chunked")))
}

/// Body framing of a request (RFC 9112 §6.3).
pub(crate) fn request_framing(head: &Head) -> Framing {
    match chunked_last(head) {
        Some(true) => Framing::Chunked,
        Some(false) => Framing::Invalid,
        None => match content_length(head) {
            None | Some(Ok(0)) => Framing::Empty,
            Some(Ok(n)) => Framing::Length(n),
            Some(Err(())) => Framing::Invalid,
        },
    }
}

/// Body framing of a response with `status` to a request that was (or not) `HEAD`.
pub(crate) fn response_framing(head: &Head, status: u16, head_request: bool) -> Framing {
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Framing::Empty;
    }
    match chunked_last(head) {
        Some(true) => Framing::Chunked,
        Some(false) => Framing::UntilClose,
        None => match content_length(head) {
            Some(Ok(0)) => Framing::Empty,
            Some(Ok(n)) => Framing::Length(n),
            None | Some(Err(())) => Framing::UntilClose,
        },
    }
}

/// Position of the next CRLF in `buf`.
fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Parses a chunk-size line (without CRLF); extensions after `;` are ignored.
fn chunk_size(line: &[u8]) -> Option<usize> {
    let size = line.split(|&b| b == b';').next().unwrap_or_default();
    let size = size.trim_ascii();
    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let text = std::str::from_utf8(size).ok()?;
    usize::from_str_radix(text, 16).ok()
}

/// Walks a chunked body at the start of `buf`, calling `on_data` for each chunk's data.
///
/// Returns `Ok(Some(len))` with the length of the whole encoded body (trailers included) when
/// complete, `Ok(None)` when more bytes are needed, `Err(())` when malformed.
pub(crate) fn walk_chunked(
    buf: &[u8],
    mut on_data: impl FnMut(&[u8]),
) -> Result<Option<usize>, ()> {
    let mut pos = 0;
    loop {
        let Some(line_len) = find_crlf(&buf[pos..]) else {
            return if buf.len() - pos > MAX_LINE {
                Err(())
            } else {
                Ok(None)
            };
        };
        let size = chunk_size(&buf[pos..pos + line_len]).ok_or(())?;
        pos += line_len + 2;
        if size == 0 {
            loop {
                let Some(trailer_len) = find_crlf(&buf[pos..]) else {
                    return if buf.len() - pos > MAX_LINE {
                        Err(())
                    } else {
                        Ok(None)
                    };
                };
                pos += trailer_len + 2;
                if trailer_len == 0 {
                    return Ok(Some(pos));
                }
            }
        }
        let data_end = pos.checked_add(size).ok_or(())?;
        let chunk_end = data_end.checked_add(2).ok_or(())?;
        if buf.len() < chunk_end {
            return Ok(None);
        }
        if &buf[data_end..chunk_end] != b"\r\n" {
            return Err(());
        }
        on_data(&buf[pos..data_end]);
        pos = chunk_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_and_parse() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nx: 2\r\n\r\nrest";
        let end = find_head_end(raw).unwrap();
        assert_eq!(&raw[end..], b"rest");
        let head = parse_head(&raw[..end]);
        assert_eq!(head.start_line, "GET / HTTP/1.1");
        assert_eq!(head.values("x").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(request_framing(&head), Framing::Empty);
    }

    #[test]
    fn framing_rules() {
        let h = |s: &[u8]| parse_head(s);
        assert_eq!(
            request_framing(&h(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")),
            Framing::Length(5)
        );
        assert_eq!(
            request_framing(&h(b"POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n")),
            Framing::Invalid
        );
        assert_eq!(
            request_framing(&h(b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n")),
            Framing::Invalid
        );
        assert_eq!(
            request_framing(&h(
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            )),
            Framing::Chunked
        );
        assert_eq!(
            request_framing(&h(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")),
            Framing::Invalid
        );
        assert_eq!(
            response_framing(&h(b"HTTP/1.1 200 OK\r\n\r\n"), 200, false),
            Framing::UntilClose
        );
        assert_eq!(
            response_framing(
                &h(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"),
                200,
                true
            ),
            Framing::Empty
        );
        assert_eq!(
            response_framing(&h(b"HTTP/1.1 204 No\r\n\r\n"), 204, false),
            Framing::Empty
        );
    }

    #[test]
    fn chunked_walk() {
        let mut data = Vec::new();
        let body = b"5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let len = walk_chunked(body, |d| data.extend_from_slice(d))
            .unwrap()
            .unwrap();
        assert_eq!(&body[len..], b"NEXT");
        assert_eq!(data, b"hello!");
        assert_eq!(walk_chunked(b"5\r\nhel", |_| {}), Ok(None));
        assert_eq!(walk_chunked(b"0\r\n", |_| {}), Ok(None));
        assert_eq!(walk_chunked(b"zz\r\n", |_| {}), Err(()));
        assert_eq!(walk_chunked(b"+5\r\nhello\r\n", |_| {}), Err(()));
        assert_eq!(walk_chunked(b"2\r\nhello\r\n", |_| {}), Err(()));
    }
}

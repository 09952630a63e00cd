//! Decoding a chunked message body (RFC 9112 §7.1), request or response, incrementally, from the connection's read
//! buffer. Strict: chunk-size lines must end in CRLF, chunk data must be followed by CRLF,
//! sizes are bounded, trailer sections are parsed like header fields and bounded in size.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// Longest chunk-size line (size plus extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;

/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

/// Where the decoder is within the chunked stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailers,
    /// The body is complete.
    Done,
}

/// What the decoder produced from the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A piece of body data.
    Data(Bytes),
    /// The trailer fields (sent at the end, if any were present).
    Trailers(HeaderMap),
    /// The body is complete.
    End,
    /// More bytes are needed.
    NeedMore,
}

/// The chunked stream was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidChunk(pub &'static str);

impl std::fmt::Display for InvalidChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidChunk {}

/// An incremental chunked-body decoder.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub const fn new() -> Self {
        Self { state: State::Size }
    }

    /// Decodes as much of `buf` as possible, returning one item.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, InvalidChunk> {
        loop {
            match self.state {
                State::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        // The bound holds however the line arrived: in one read or in many.
                        if used > MAX_SIZE_LINE {
                            return Err(InvalidChunk("chunk-size line too long"));
                        }
                        if !is_clean_size_line(&buf[..used]) {
                            return Err(InvalidChunk("CR or LF inside a chunk-size line"));
                        }
                        let _ = buf.split_to(used);
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() > MAX_SIZE_LINE => {
                        return Err(InvalidChunk("chunk-size line too long"));
                    }
                    Ok(httparse::Status::Partial) => return Ok(Decoded::NeedMore),
                    Err(_) => return Err(InvalidChunk("invalid chunk size")),
                },
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(InvalidChunk("chunk data not followed by CRLF"));
                    }
                    let _ = buf.split_to(2);
                    self.state = State::Size;
                }
                State::Trailers => return self.trailers(buf),
                State::Done => return Ok(Decoded::End),
            }
        }
    }

    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Decoded, InvalidChunk> {
        if buf.starts_with(b"\r\n") {
            let _ = buf.split_to(2);
            self.state = State::Done;
            return Ok(Decoded::End);
        }
        let Some(end) = find(buf, b"\r\n\r\n") else {
            if buf.len() > MAX_TRAILERS {
                return Err(InvalidChunk("trailer section too large"));
            }
            return Ok(Decoded::NeedMore);
        };
        if end + 4 > MAX_TRAILERS {
            return Err(InvalidChunk("trailer section too large"));
        }
        let section = buf.split_to(end + 4);
        let mut map = HeaderMap::new();
        // Each field line ends in CRLF; the final split piece after the last LF is empty.
        for line in section[..end + 2]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let line = line
                .strip_suffix(b"\r")
                .ok_or(InvalidChunk("trailer line without CRLF"))?;
            let colon = line
                .iter()
                .position(|b| *b == b':')
                .ok_or(InvalidChunk("trailer without colon"))?;
            let name = HeaderName::from_bytes(&line[..colon])
                .map_err(|_| InvalidChunk("invalid trailer name"))?;
            let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii())
                .map_err(|_| InvalidChunk("invalid trailer value"))?;
            map.append(name, value);
        }
        self.state = State::Done;
        Ok(Decoded::Trailers(map))
    }
}

/// A chunk-size line ends in CRLF and has no other CR or LF (httparse lets a bare LF or CR
/// through inside chunk extensions, which another parser may read as the line's end).
fn is_clean_size_line(line: &[u8]) -> bool {
    line.strip_suffix(b"\r\n")
        .is_some_and(|rest| !rest.iter().any(|b| *b == b'\r' || *b == b'\n'))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and collects the body and trailers.
    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, Option<HeaderMap>), InvalidChunk> {
        let mut dec = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut trailers = None;
        let mut fed = 0;
        loop {
            match dec.decode(&mut buf)? {
                Decoded::Data(d) => body.extend_from_slice(&d),
                Decoded::Trailers(t) => trailers = Some(t),
                Decoded::End => return Ok((body, trailers)),
                Decoded::NeedMore => {
                    if fed >= input.len() {
                        return Err(InvalidChunk("truncated"));
                    }
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn a_chunked_body_decodes_whatever_the_read_sizes() {
        let input = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n";
        for step in [1, 2, 3, 7, 100] {
            let (body, trailers) = decode_all(input, step).unwrap();
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.", "step {step}");
            assert!(trailers.is_none());
        }
    }

    #[test]
    fn trailers_are_returned() {
        let (body, trailers) =
            decode_all(b"2\r\nok\r\n0\r\ngrpc-status: 0\r\nx-b: two\r\n\r\n", 3).unwrap();
        assert_eq!(body, b"ok");
        let t = trailers.unwrap();
        assert_eq!(t["grpc-status"], "0");
        assert_eq!(t["x-b"], "two");
    }

    #[test]
    fn malformed_streams_are_refused() {
        for bad in [
            &b"zz\r\nab\r\n0\r\n\r\n"[..],
            b"2\r\nabXY0\r\n\r\n",
            b"2\nab\r\n0\r\n\r\n",
            b"ffffffffffffffffff\r\n",
            b"0\r\nbad trailer\r\n\r\n",
            b"5;a\nb\r\nhello\r\n0\r\n\r\n",
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",
        ] {
            assert!(
                decode_all(bad, 4).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn endless_size_lines_and_trailers_are_bounded() {
        let long = format!("1;{}", "e".repeat(MAX_SIZE_LINE + 10));
        assert!(decode_all(long.as_bytes(), 1024).is_err());
        let trailers = format!("0\r\nx: {}", "v".repeat(MAX_TRAILERS + 10));
        assert!(decode_all(trailers.as_bytes(), 1024).is_err());
    }

    #[test]
    fn the_bounds_hold_when_a_line_or_trailer_section_arrives_in_one_read() {
        let long = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_SIZE_LINE));
        let trailers = format!("0\r\nx: {}\r\n\r\n", "v".repeat(MAX_TRAILERS));
        for input in [long, trailers] {
            for step in [1, 1000, input.len()] {
                assert!(decode_all(input.as_bytes(), step).is_err(), "step {step}");
            }
        }
    }

    #[test]
    fn truncated_streams_do_not_complete() {
        assert!(decode_all(b"4\r\nWi", 2).is_err());
    }
}

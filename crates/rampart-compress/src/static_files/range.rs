//! `Range: bytes=…` (RFC 9110 §14): parsing against a file's length, and the layout of a
//! `multipart/byteranges` answer.
//!
//! Overlapping or adjacent ranges are merged; more than [`MAX_RANGES`] ranges (after merging)
//! or a header that is not a byte-range set is ignored and the whole file sent, as the RFC
//! allows; a set of which no range is satisfiable is 416.

use bytes::Bytes;

/// Most ranges served in one multipart answer.
pub(crate) const MAX_RANGES: usize = 32;

/// A byte range: first byte and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteRange {
    pub(crate) start: u64,
    pub(crate) len: u64,
}

impl ByteRange {
    const fn end(self) -> u64 {
        self.start + self.len
    }

    /// `bytes a-b/len`.
    pub(crate) fn content_range(self, total: u64) -> String {
        format!("bytes {}-{}/{total}", self.start, self.end() - 1)
    }
}

/// What a `Range` header asks of a file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ranges {
    /// Send the whole file (no usable `Range`).
    Whole,
    /// These ranges, merged and in order.
    Parts(Vec<ByteRange>),
    /// 416.
    Unsatisfiable,
}

/// Parses `value` against a file of `total` bytes.
pub(crate) fn parse(value: &[u8], total: u64) -> Ranges {
    let Some(set) = value.trim_ascii().strip_prefix(b"bytes=") else {
        return Ranges::Whole;
    };
    let mut ranges = Vec::new();
    for spec in set.split(|b| *b == b',') {
        let spec = spec.trim_ascii();
        if spec.is_empty() {
            continue;
        }
        let Some(dash) = spec.iter().position(|b| *b == b'-') else {
            return Ranges::Whole;
        };
        let (first, last) = (&spec[..dash], &spec[dash + 1..]);
        let range = if first.is_empty() {
            // A suffix: the last N bytes.
            let Some(n) = number(last) else {
                return Ranges::Whole;
            };
            if n == 0 || total == 0 {
                continue;
            }
            let n = n.min(total);
            ByteRange {
                start: total - n,
                len: n,
            }
        } else {
            let Some(start) = number(first) else {
                return Ranges::Whole;
            };
            let end = if last.is_empty() {
                None
            } else if let Some(end) = number(last) {
                if end < start {
                    return Ranges::Whole;
                }
                Some(end)
            } else {
                return Ranges::Whole;
            };
            if start >= total {
                continue;
            }
            let end = end.map_or(total - 1, |e| e.min(total - 1));
            ByteRange {
                start,
                len: end - start + 1,
            }
        };
        ranges.push(range);
        if ranges.len() > MAX_RANGES * 4 {
            return Ranges::Whole;
        }
    }
    if ranges.is_empty() {
        return Ranges::Unsatisfiable;
    }
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end() => {
                last.len = last.len.max(r.end() - last.start);
            }
            _ => merged.push(r),
        }
    }
    if merged.len() > MAX_RANGES {
        return Ranges::Whole;
    }
    Ranges::Parts(merged)
}

fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A piece of a response body: literal bytes, or a range of the file.
#[derive(Debug, Clone)]
pub(crate) enum Segment {
    /// Bytes sent as they are (multipart headers and boundaries).
    Bytes(Bytes),
    /// Bytes of the file.
    File(ByteRange),
}

/// The segments of a `multipart/byteranges` body with `boundary`, and its exact length.
pub(crate) fn multipart(
    ranges: &[ByteRange],
    total: u64,
    content_type: &str,
    boundary: &str,
) -> (Vec<Segment>, u64) {
    let mut segments = Vec::with_capacity(ranges.len() * 2 + 1);
    let mut length = 0u64;
    for (i, range) in ranges.iter().enumerate() {
        let head = format!(
            "{}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
            if i == 0 { "" } else { "\r\n" },
            range.content_range(total)
        );
        length += head.len() as u64 + range.len;
        segments.push(Segment::Bytes(Bytes::from(head)));
        segments.push(Segment::File(*range));
    }
    let tail = format!("\r\n--{boundary}--\r\n");
    length += tail.len() as u64;
    segments.push(Segment::Bytes(Bytes::from(tail)));
    (segments, length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, len: u64) -> ByteRange {
        ByteRange { start, len }
    }

    #[test]
    fn single_and_suffix_ranges() {
        assert_eq!(parse(b"bytes=0-99", 1000), Ranges::Parts(vec![r(0, 100)]));
        assert_eq!(parse(b"bytes=900-", 1000), Ranges::Parts(vec![r(900, 100)]));
        assert_eq!(parse(b"bytes=-100", 1000), Ranges::Parts(vec![r(900, 100)]));
        assert_eq!(parse(b"bytes=-5000", 1000), Ranges::Parts(vec![r(0, 1000)]));
        assert_eq!(
            parse(b"bytes=990-5000", 1000),
            Ranges::Parts(vec![r(990, 10)])
        );
    }

    #[test]
    fn several_ranges_merge_when_they_touch() {
        assert_eq!(
            parse(b"bytes=0-9, 20-29", 100),
            Ranges::Parts(vec![r(0, 10), r(20, 10)])
        );
        assert_eq!(
            parse(b"bytes=0-9,5-19,20-29", 100),
            Ranges::Parts(vec![r(0, 30)])
        );
        assert_eq!(
            parse(b"bytes=50-59,0-9", 100),
            Ranges::Parts(vec![r(0, 10), r(50, 10)])
        );
    }

    #[test]
    fn unsatisfiable_and_ignored_headers() {
        assert_eq!(parse(b"bytes=1000-", 1000), Ranges::Unsatisfiable);
        assert_eq!(parse(b"bytes=-0", 1000), Ranges::Unsatisfiable);
        assert_eq!(parse(b"bytes=0-0", 0), Ranges::Unsatisfiable);
        assert_eq!(parse(b"bytes=1000-,2000-", 1000), Ranges::Unsatisfiable);
        for ignored in [
            &b"items=0-1"[..],
            b"bytes=5-1",
            b"bytes=a-b",
            b"bytes=1",
            b"bytes=99999999999999999999-",
        ] {
            assert_eq!(parse(ignored, 1000), Ranges::Whole, "{ignored:?}");
        }
        let many: String = (0..100)
            .map(|i| format!("{}-{},", i * 10, i * 10 + 1))
            .collect();
        assert_eq!(
            parse(format!("bytes={many}").as_bytes(), 10_000),
            Ranges::Whole
        );
    }

    #[test]
    fn multipart_length_is_exact() {
        let ranges = [r(0, 10), r(20, 5)];
        let (segments, length) = multipart(&ranges, 100, "text/plain", "b0und");
        let literal: u64 = segments
            .iter()
            .map(|s| match s {
                Segment::Bytes(b) => b.len() as u64,
                Segment::File(range) => range.len,
            })
            .sum();
        assert_eq!(literal, length);
        assert_eq!(segments.len(), 5);
    }
}

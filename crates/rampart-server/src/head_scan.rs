//! [`HeadScan`]: a byte-level look at an HTTP/1 request head as it arrives, for the two things
//! hyper's parser accepts but hides: bare LF line endings (httparse takes a lone `\n` as a line
//! end) and `Content-Length` sent together with `Transfer-Encoding` (hyper drops the length and
//! reads the body as chunked). Both are classic request-smuggling tools, so the pipeline refuses
//! such requests with 400.
//!
//! The scan is fed every byte the connection reads while a head is arriving, stops at the
//! blank line ending the head, and never allocates.

/// A line ended in LF without CR.
pub(crate) const BARE_LF: u8 = 1;
/// A `Content-Length` field was present.
pub(crate) const CONTENT_LENGTH: u8 = 2;
/// A `Transfer-Encoding` field was present.
pub(crate) const TRANSFER_ENCODING: u8 = 4;

const NAMES: [(&[u8], u8); 2] = [
    (b"content-length", CONTENT_LENGTH),
    (b"transfer-encoding", TRANSFER_ENCODING),
];
const ALL_CANDIDATES: u8 = 0b11;

/// Scan state for one request head.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadScan {
    flags: u8,
    /// Lines completed so far (0 while on the request line).
    lines: usize,
    /// Position in the current line.
    pos: usize,
    /// Field names the current line may still be (bit i: `NAMES[i]`).
    candidates: u8,
    prev_cr: bool,
    done: bool,
}

impl HeadScan {
    /// Starts over for a new head.
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }

    /// True once the blank line ending the head was seen.
    pub(crate) const fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds the next bytes of the connection; returns the flags found so far.
    pub(crate) fn feed(&mut self, data: &[u8]) -> u8 {
        let mut rest = data;
        while !self.done && !rest.is_empty() {
            // Fast path: a whole line starting here is examined at once.
            if self.pos == 0
                && !self.prev_cr
                && let Some(lf) = memchr::memchr(b'\n', rest)
            {
                self.line(&rest[..lf]);
                rest = &rest[lf + 1..];
                continue;
            }
            // A line split across reads: byte by byte until it ends.
            self.byte(rest[0]);
            rest = &rest[1..];
        }
        self.flags
    }

    /// A whole line (without its LF) that began at a line start.
    fn line(&mut self, line: &[u8]) {
        let content = match line.split_last() {
            Some((b'\r', content)) => content,
            _ => {
                self.flags |= BARE_LF;
                line
            }
        };
        if content.is_empty() && self.lines > 0 {
            self.done = true;
            return;
        }
        if self.lines > 0 {
            for (name, flag) in NAMES {
                if content.get(name.len()) == Some(&b':')
                    && content[..name.len()].eq_ignore_ascii_case(name)
                {
                    self.flags |= flag;
                }
            }
        }
        self.lines += 1;
        self.candidates = ALL_CANDIDATES;
    }

    fn byte(&mut self, b: u8) {
        match b {
            b'\n' => {
                if !self.prev_cr {
                    self.flags |= BARE_LF;
                }
                self.prev_cr = false;
                if self.pos == 0 && self.lines > 0 {
                    self.done = true;
                    return;
                }
                self.lines += 1;
                self.pos = 0;
                self.candidates = ALL_CANDIDATES;
            }
            b'\r' => self.prev_cr = true,
            _ => {
                self.prev_cr = false;
                if self.lines > 0 && self.candidates != 0 {
                    self.match_name(b.to_ascii_lowercase());
                }
                self.pos += 1;
            }
        }
    }

    fn match_name(&mut self, b: u8) {
        for (i, (name, flag)) in NAMES.iter().enumerate() {
            let bit = 1 << i;
            if self.candidates & bit == 0 {
                continue;
            }
            if b == b':' && self.pos == name.len() {
                self.flags |= flag;
                self.candidates = 0;
                return;
            }
            if name.get(self.pos) != Some(&b) {
                self.candidates &= !bit;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(parts: &[&[u8]]) -> (u8, bool) {
        let mut s = HeadScan::default();
        let mut flags = 0;
        for p in parts {
            flags = s.feed(p);
        }
        (flags, s.is_done())
    }

    #[test]
    fn clean_heads_have_no_flags() {
        assert_eq!(scan(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]), (0, true));
        assert_eq!(
            scan(&[b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\n\n"]),
            (CONTENT_LENGTH, true)
        );
        assert_eq!(
            scan(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"]),
            (TRANSFER_ENCODING, true)
        );
    }

    #[test]
    fn both_framing_fields_are_seen_in_any_case_and_split_anywhere() {
        let head = b"POST / HTTP/1.1\r\ncOnTeNt-LeNgTh: 4\r\nTRANSFER-ENCODING: chunked\r\n\r\n";
        for split in 0..head.len() {
            let (flags, done) = scan(&[&head[..split], &head[split..]]);
            assert_eq!(
                flags,
                CONTENT_LENGTH | TRANSFER_ENCODING,
                "split at {split}"
            );
            assert!(done);
        }
    }

    #[test]
    fn lookalike_names_and_values_do_not_count() {
        let (flags, _) = scan(&[b"GET /content-length: HTTP/1.1\r\nX-Content-Length: 1\r\nContent-Lengthy: 2\r\nA: transfer-encoding:\r\n\r\n"]);
        assert_eq!(flags, 0);
    }

    #[test]
    fn whole_reads_and_byte_by_byte_reads_agree() {
        let heads: [&[u8]; 5] = [
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\nbody",
            b"GET / HTTP/1.1\nHost: a\n\nX",
            b"GET / HTTP/1.1\r\nX: a\rb\r\ncontent-length:1\r\n\r\n",
            b"\r\nGET / HTTP/1.1\r\nTransfer-Encoding:x\r\n\r\n",
            b"GET / HTTP/1.1\r\ncontent-length : 1\r\n\n",
        ];
        for head in heads {
            let whole = scan(&[head]);
            let pieces: Vec<&[u8]> = head.chunks(1).collect();
            assert_eq!(scan(&pieces), whole, "{:?}", String::from_utf8_lossy(head));
            for split in 0..head.len() {
                assert_eq!(
                    scan(&[&head[..split], &head[split..]]),
                    whole,
                    "split {split}"
                );
            }
        }
    }

    #[test]
    fn bare_lf_is_flagged_and_the_body_is_not_scanned() {
        assert_eq!(scan(&[b"GET / HTTP/1.1\nHost: a\r\n\r\n"]).0, BARE_LF);
        assert_eq!(scan(&[b"GET / HTTP/1.1\r\nHost: a\r\n\n"]), (BARE_LF, true));
        assert_eq!(
            scan(&[b"GET / HTTP/1.1\r\n\r\nTransfer-Encoding: x\n"]),
            (0, true)
        );
    }
}

//! [`HeadScan`]: a byte-level look at an HTTP/1 request head as it arrives, for the two things
//! hyper's parser accepts but hides: bare LF line endings (httparse takes a lone `\n` as a line
//! end) and `Content-Length` sent together with `Transfer-Encoding` (hyper drops the length and
//! reads the body as chunked). Both are classic request-smuggling tools, so the pipeline refuses
//! such requests with 400.
//!
//! The scan also reads how the head frames the body that follows it (a length, or chunked), so
//! that [`crate::http::stream_scan`] can find where the next pipelined head begins. It stops at the
//! blank line ending the head and never allocates.

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

/// How a finished head says its message continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// A body of this many bytes (0 without a framing field), then the next head.
    Length(u64),
    /// A chunked body, then the next head.
    Chunked,
    /// Unknown: framing the scan cannot read (differing or malformed lengths, a length beside
    /// chunked). hyper or the pipeline refuse such heads and close the connection.
    Unknown,
}

/// The value of `Content-Length` lines as they are read: digits between optional whitespace,
/// or a comma-separated list of equal such values (which hyper accepts as one).
#[derive(Debug, Clone, Copy, Default)]
struct LengthValue {
    value: u64,
    digits: bool,
    after_digits: bool,
    bad: bool,
    /// The value of the list's earlier elements.
    earlier: Option<u64>,
}

impl LengthValue {
    fn push(&mut self, b: u8) {
        match b {
            b'0'..=b'9' if !self.after_digits => {
                self.digits = true;
                match self
                    .value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(b - b'0')))
                {
                    Some(v) => self.value = v,
                    None => self.bad = true,
                }
            }
            b' ' | b'\t' => self.after_digits = self.digits,
            b',' if self.digits && self.earlier.is_none_or(|v| v == self.value) => {
                *self = Self {
                    earlier: Some(self.value),
                    ..Self::default()
                };
            }
            _ => self.bad = true,
        }
    }

    fn get(self) -> Option<u64> {
        let agrees = self.earlier.is_none_or(|v| v == self.value);
        (self.digits && !self.bad && agrees).then_some(self.value)
    }
}

/// Scan state for one request head.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadScan {
    flags: u8,
    /// Lines completed so far (0 while on the request line; empty lines before it skipped).
    lines: usize,
    /// Position in the current line.
    pos: usize,
    /// Field names the current line may still be (bit i: `NAMES[i]`).
    candidates: u8,
    prev_cr: bool,
    done: bool,
    /// The `Content-Length` value being read on the current line, if it is one.
    reading_length: Option<LengthValue>,
    /// What the `Content-Length` lines so far say.
    length: Length,
}

/// What a head's `Content-Length` lines say.
#[derive(Debug, Clone, Copy, Default)]
enum Length {
    /// No such line.
    #[default]
    Absent,
    /// One value, however many lines repeat it.
    Known(u64),
    /// Not a number, or two lines that disagree.
    Unreadable,
}

impl HeadScan {
    /// True once the blank line ending the head was seen.
    pub(crate) const fn is_done(&self) -> bool {
        self.done
    }

    /// True while no byte of this head has arrived (blank lines before a request line do not
    /// count as its start).
    pub(crate) const fn is_untouched(&self) -> bool {
        self.lines == 0 && self.pos == 0 && !self.prev_cr
    }

    /// The smuggling flags found so far.
    pub(crate) const fn flags(&self) -> u8 {
        self.flags
    }

    /// How the message continues after this (finished) head.
    pub(crate) fn framing(&self) -> Framing {
        match (self.flags & TRANSFER_ENCODING != 0, self.length) {
            (true, Length::Absent) => Framing::Chunked,
            (false, Length::Absent) => Framing::Length(0),
            (false, Length::Known(n)) => Framing::Length(n),
            _ => Framing::Unknown,
        }
    }

    /// Feeds the next bytes of the connection; returns how many belong to this head (all of
    /// them until the blank line ending it is seen).
    pub(crate) fn feed(&mut self, data: &[u8]) -> usize {
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
        data.len() - rest.len()
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
        if content.is_empty() {
            self.done = self.lines > 0;
            return;
        }
        if self.lines > 0 {
            for (name, flag) in NAMES {
                if content.get(name.len()) == Some(&b':')
                    && content[..name.len()].eq_ignore_ascii_case(name)
                {
                    self.flags |= flag;
                    if flag == CONTENT_LENGTH {
                        let mut value = LengthValue::default();
                        content[name.len() + 1..]
                            .iter()
                            .for_each(|&b| value.push(b));
                        self.add_length(value);
                    }
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
                self.end_line();
            }
            _ => {
                // A CR not followed by LF is a byte of the line, as the whole-line path sees it.
                if self.prev_cr {
                    self.prev_cr = false;
                    self.content_byte(b'\r');
                }
                if b == b'\r' {
                    self.prev_cr = true;
                } else {
                    self.content_byte(b);
                }
            }
        }
    }

    /// A byte of a line (not its line end) fed byte by byte.
    fn content_byte(&mut self, b: u8) {
        if self.lines > 0 {
            if let Some(value) = &mut self.reading_length {
                value.push(b);
            } else if self.candidates != 0 {
                self.match_name(b.to_ascii_lowercase());
            }
        }
        self.pos += 1;
    }

    /// The end of a line fed byte by byte.
    fn end_line(&mut self) {
        if self.pos == 0 {
            self.done = self.lines > 0;
            return;
        }
        if let Some(value) = self.reading_length.take() {
            self.add_length(value);
        }
        self.lines += 1;
        self.pos = 0;
        self.candidates = ALL_CANDIDATES;
    }

    fn add_length(&mut self, value: LengthValue) {
        self.length = match (self.length, value.get()) {
            (Length::Absent, Some(n)) => Length::Known(n),
            (Length::Known(seen), Some(n)) if seen == n => Length::Known(n),
            _ => Length::Unreadable,
        };
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
                if *flag == CONTENT_LENGTH {
                    self.reading_length = Some(LengthValue::default());
                }
                return;
            }
            if name.get(self.pos) != Some(&b) {
                self.candidates &= !bit;
            }
        }
    }
}

/// Feeds `input` to `outcome` whole, byte by byte and split in two at every position;
/// asserts all agree and returns the outcome (for the scans' tests).
#[cfg(test)]
pub(crate) fn agree_on_every_split<T: PartialEq + std::fmt::Debug>(
    input: &[u8],
    outcome: impl Fn(&[&[u8]]) -> T,
) -> T {
    let what = String::from_utf8_lossy(input);
    let whole = outcome(&[input]);
    let pieces: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(outcome(&pieces), whole, "byte by byte: {what:?}");
    for split in 0..input.len() {
        assert_eq!(
            outcome(&[&input[..split], &input[split..]]),
            whole,
            "split at {split}: {what:?}"
        );
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(parts: &[&[u8]]) -> (u8, bool) {
        let mut s = HeadScan::default();
        for p in parts {
            s.feed(p);
        }
        (s.flags(), s.is_done())
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
            agree_on_every_split(head, scan);
        }
    }

    #[test]
    fn a_cr_not_before_lf_is_part_of_the_line_however_it_is_read() {
        for head in [
            b"POST / HTTP/1.1\r\nHost: a\r\r\nContent-Length: 2\r\n\r\n".as_slice(),
            b"POST / HTTP/1.1\r\nContent-Length\r: 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\r\n\r\n",
        ] {
            agree_on_every_split(head, framing);
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

    /// The framing of `head` fed in `parts`, and its flags.
    fn framing(parts: &[&[u8]]) -> (Framing, u8) {
        let mut s = HeadScan::default();
        for p in parts {
            s.feed(p);
        }
        assert!(s.is_done());
        (s.framing(), s.flags())
    }

    #[test]
    fn the_framing_is_read_alike_from_whole_lines_and_split_lines() {
        let cases: [(&[u8], Framing); 11] = [
            (
                b"POST / HTTP/1.1\r\nContent-Length: 4, 4,4\r\n\r\n",
                Framing::Length(4),
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 4, 5\r\n\r\n",
                Framing::Unknown,
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Framing::Length(0)),
            (
                b"\r\nPOST / HTTP/1.1\r\nContent-Length:  12 \r\n\r\n",
                Framing::Length(12),
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n",
                Framing::Length(3),
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Framing::Chunked,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
                Framing::Unknown,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r2\r\n\r\n",
                Framing::Unknown,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Framing::Unknown,
            ),
            (
                b"GET / HTTP/1.1\r\nUPGRADE: websocket\r\n\r\n",
                Framing::Length(0),
            ),
            (b"CONNECT a:1 HTTP/1.1\r\n\r\n", Framing::Length(0)),
        ];
        for (head, expected) in cases {
            let whole = agree_on_every_split(head, framing);
            assert_eq!(whole.0, expected, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn feed_stops_right_after_the_blank_line() {
        let mut s = HeadScan::default();
        assert_eq!(s.feed(b"GET / HTTP/1.1\r\nHost"), 20);
        assert_eq!(s.feed(b": a\r\n\r\nGET"), 7);
        assert!(s.is_done());
    }
}

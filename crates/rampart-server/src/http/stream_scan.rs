//! [`StreamScan`]: follows an HTTP/1 connection's request bytes head by head, skipping each
//! body by its framing, so that every head is scanned by [`HeadScan`], including heads that a
//! client pipelined behind another request in the same packet. Each finished head's flags go
//! into a [`HeadQueue`], which the pipeline reads in request order.
//!
//! Bodies are skipped, not scanned: a length is skipped in one step, a chunked body by reading
//! its chunk-size lines only. Where the framing cannot be followed (a length the scan cannot
//! read, chunk framing it does not understand), the scan stops until the connection's I/O
//! wrapper resyncs it at a request boundary. The scan is lenient where hyper may be: a byte
//! stream hyper refuses ends the connection anyway. A protocol switch needs no care here: once
//! a `101` is sent, the I/O wrapper no longer feeds the scan.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::http::head_scan::{Framing, HeadScan};

/// Where the scan is in the byte stream.
#[derive(Debug, Clone)]
enum Position {
    Head(HeadScan),
    Length(u64),
    Chunked(ChunkSkip),
    /// Lost: waits for [`StreamScan::resync`].
    Lost,
}

/// The scan of one connection's request stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamScan {
    at: Position,
}

impl Default for StreamScan {
    fn default() -> Self {
        Self {
            at: Position::Head(HeadScan::default()),
        }
    }
}

impl StreamScan {
    /// True once the scan lost track of the framing.
    #[cfg(test)]
    const fn is_lost(&self) -> bool {
        matches!(self.at, Position::Lost)
    }

    /// True when the bytes so far end exactly after a complete request (head and body), so
    /// an end of stream here cuts no request short.
    pub(crate) const fn between_requests(&self) -> bool {
        matches!(&self.at, Position::Head(head) if head.is_untouched())
    }

    /// The connection is at a request boundary (the first bytes after it went idle): a scan
    /// that lost track starts over here; one that kept track knows better and carries on.
    pub(crate) fn resync(&mut self) {
        if let Position::Lost = self.at {
            self.at = Position::Head(HeadScan::default());
        }
    }

    /// Feeds the next bytes the connection read; pushes the flags of every head finished in
    /// them.
    pub(crate) fn feed(&mut self, mut data: &[u8], queue: &HeadQueue) {
        while !data.is_empty() {
            let used = match &mut self.at {
                Position::Lost => return,
                Position::Head(head) => {
                    let used = head.feed(data);
                    if head.is_done() {
                        queue.push(head.flags());
                        self.at = match head.framing() {
                            Framing::Length(0) => Position::Head(HeadScan::default()),
                            Framing::Length(n) => Position::Length(n),
                            Framing::Chunked => Position::Chunked(ChunkSkip::default()),
                            Framing::Unknown => Position::Lost,
                        };
                    }
                    used
                }
                Position::Length(left) => {
                    let used = take_up_to(left, data.len());
                    if *left == 0 {
                        self.at = Position::Head(HeadScan::default());
                    }
                    used
                }
                Position::Chunked(chunks) => {
                    let (used, state) = chunks.feed(data);
                    match state {
                        ChunkState::More => {}
                        ChunkState::Done => self.at = Position::Head(HeadScan::default()),
                        ChunkState::Lost => self.at = Position::Lost,
                    }
                    used
                }
            };
            data = &data[used..];
        }
    }
}

/// Takes up to `available` bytes of the `left` still to skip; returns how many it took.
fn take_up_to(left: &mut u64, available: usize) -> usize {
    let n = usize::try_from(*left).map_or(available, |l| l.min(available));
    *left -= n as u64;
    n
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Chunk {
    /// In a chunk-size line's hex digits.
    #[default]
    Size,
    /// In a chunk extension, up to the line end.
    Extension,
    /// After the CR ending a chunk-size line.
    SizeLf,
    /// In chunk data.
    Data,
    /// After chunk data, before its line end.
    DataEnd,
    /// In the trailer section (`ChunkSkip::line_empty`: the current line is still empty).
    Trailer,
}

/// Skips a chunked body (RFC 9112 §7.1) by its size lines.
#[derive(Debug, Clone, Copy, Default)]
struct ChunkSkip {
    at: Chunk,
    size: u64,
    digits: bool,
    line_empty: bool,
}

enum ChunkState {
    More,
    Done,
    Lost,
}

impl ChunkSkip {
    /// Consumes what belongs to the body in `data`.
    fn feed(&mut self, data: &[u8]) -> (usize, ChunkState) {
        let mut i = 0;
        while i < data.len() {
            if self.at == Chunk::Data {
                i += take_up_to(&mut self.size, data.len() - i);
                if self.size == 0 {
                    self.at = Chunk::DataEnd;
                }
                continue;
            }
            let b = data[i];
            i += 1;
            match self.step(b) {
                ChunkState::More => {}
                end => return (i, end),
            }
        }
        (i, ChunkState::More)
    }

    fn step(&mut self, b: u8) -> ChunkState {
        match (self.at, b) {
            (Chunk::Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                let digit = u64::from(char::from(b).to_digit(16).unwrap_or(0));
                match self.size.checked_mul(16) {
                    Some(v) => self.size = v + digit,
                    None => return ChunkState::Lost,
                }
                self.digits = true;
            }
            (Chunk::Size, b';' | b' ' | b'\t') if self.digits => self.at = Chunk::Extension,
            (Chunk::Size, b'\r') if self.digits => self.at = Chunk::SizeLf,
            (Chunk::Size | Chunk::Extension | Chunk::SizeLf, b'\n') if self.digits => {
                return self.size_line_done();
            }
            (Chunk::DataEnd, b'\n') => *self = Self::default(),
            (Chunk::Trailer, b'\n') if self.line_empty => return ChunkState::Done,
            (Chunk::Trailer, b'\n') => self.line_empty = true,
            (Chunk::Extension, _) | (Chunk::DataEnd | Chunk::Trailer, b'\r') => {}
            (Chunk::Trailer, _) => self.line_empty = false,
            _ => return ChunkState::Lost,
        }
        ChunkState::More
    }

    fn size_line_done(&mut self) -> ChunkState {
        if self.size == 0 {
            self.at = Chunk::Trailer;
            self.line_empty = true;
        } else {
            self.at = Chunk::Data;
        }
        ChunkState::More
    }
}

/// The flags of heads scanned but not yet dispatched, oldest first: up to 15 entries of four
/// bits in one atomic word, the count in the top four bits. A client pipelining more than
/// that has every further head's flags added to the last entry, so a refused head is never
/// let through, at worst refused a few requests early.
#[derive(Debug, Default)]
pub(crate) struct HeadQueue(AtomicU64);

const ENTRY_BITS: u32 = 4;
const CAPACITY: u64 = 15;
const COUNT_SHIFT: u32 = 60;
const ENTRY_MASK: u64 = (1 << ENTRY_BITS) - 1;
const LAST_SLOT: u32 = (CAPACITY as u32 - 1) * ENTRY_BITS;

/// The entries of a queue word, without its count.
const fn entries(word: u64) -> u64 {
    word & !(u64::MAX << COUNT_SHIFT)
}

impl HeadQueue {
    /// Appends a finished head's flags.
    pub(crate) fn push(&self, flags: u8) {
        let flags = u64::from(flags) & ENTRY_MASK;
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let count = word >> COUNT_SHIFT;
                Some(if count < CAPACITY {
                    let slot = count as u32 * ENTRY_BITS;
                    ((count + 1) << COUNT_SHIFT) | entries(word) | flags << slot
                } else {
                    word | flags << LAST_SLOT
                })
            });
    }

    /// Takes the oldest head's flags (0 if none is queued: HTTP/2, or a lost scan).
    pub(crate) fn take(&self) -> u8 {
        let mut taken = 0;
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let count = word >> COUNT_SHIFT;
                if count == 0 {
                    return None;
                }
                taken = (word & ENTRY_MASK) as u8;
                Some(((count - 1) << COUNT_SHIFT) | entries(word) >> ENTRY_BITS)
            });
        taken
    }

    /// Takes the oldest head's flags, or `None` when none is queued (for the fuzz targets,
    /// which must tell an empty queue from a clean head).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn take_queued(&self) -> Option<u8> {
        (self.0.load(Ordering::Acquire) >> COUNT_SHIFT > 0).then(|| self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head_scan::{
        BARE_LF, CONTENT_LENGTH, TRANSFER_ENCODING, agree_on_every_split,
    };

    /// The flags `stream` queues, which must be the same however it is split into reads.
    fn queued(stream: &[u8]) -> Vec<u8> {
        agree_on_every_split(stream, |parts| {
            let queue = HeadQueue::default();
            let mut scan = StreamScan::default();
            parts.iter().for_each(|p| scan.feed(p, &queue));
            let mut out = Vec::new();
            while queue.0.load(Ordering::Relaxed) >> COUNT_SHIFT > 0 {
                out.push(queue.take());
            }
            out
        })
    }

    const BAD_NEXT: &[u8] = b"GET /b HTTP/1.1\nHost: a\n\n";

    #[test]
    fn heads_pipelined_after_bodiless_requests_are_each_scanned() {
        let stream = [b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n".as_slice(), BAD_NEXT].concat();
        assert_eq!(queued(&stream), [0, BARE_LF]);
    }

    #[test]
    fn a_length_body_is_skipped_even_when_it_looks_like_a_head() {
        let stream = [
            b"POST /a HTTP/1.1\r\nContent-Length: 25\r\n\r\n".as_slice(),
            BAD_NEXT,
            b"GET /c HTTP/1.1\r\n\r\n",
        ]
        .concat();
        assert_eq!(queued(&stream), [CONTENT_LENGTH, 0]);
    }

    #[test]
    fn a_chunked_body_with_extensions_and_trailers_is_skipped() {
        let stream = [
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
            b"3;x=\"a b\"\r\n\n\nx\r\n1A\r\n",
            &[b'\n'; 26],
            b"\r\n0\r\nTrailer: 1\r\n\r\n",
            BAD_NEXT,
        ]
        .concat();
        assert_eq!(queued(&stream), [TRANSFER_ENCODING, BARE_LF]);
    }

    #[test]
    fn smuggling_flags_stay_with_their_own_head() {
        let stream = [
            b"POST /a HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .as_slice(),
            b"GET /b HTTP/1.1\r\n\r\n",
        ]
        .concat();
        assert_eq!(queued(&stream), [CONTENT_LENGTH | TRANSFER_ENCODING]);
    }

    #[test]
    fn unreadable_lengths_stop_the_scan_until_restarted() {
        for (head, flags) in [
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n1".as_slice(),
                CONTENT_LENGTH,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n1",
                CONTENT_LENGTH,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                CONTENT_LENGTH,
            ),
        ] {
            let stream = [head, BAD_NEXT].concat();
            assert_eq!(
                queued(&stream),
                [flags],
                "{:?}",
                String::from_utf8_lossy(head)
            );
            let queue = HeadQueue::default();
            let mut scan = StreamScan::default();
            scan.feed(&stream, &queue);
            assert!(scan.is_lost());
            scan.resync();
            scan.feed(BAD_NEXT, &queue);
            assert_eq!((queue.take(), queue.take()), (flags, BARE_LF));
        }
    }

    #[test]
    fn repeated_equal_lengths_and_protocol_switch_requests_keep_the_scan() {
        // After a `101` the connection's I/O stops feeding the scan; until then, and when the
        // switch is refused, what follows an `Upgrade` or `CONNECT` head is the next head.
        let stream = [
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length:1 , 1\r\n\r\nx".as_slice(),
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            BAD_NEXT,
        ]
        .concat();
        assert_eq!(queued(&stream), [CONTENT_LENGTH, 0, 0, BARE_LF]);
    }

    #[test]
    fn broken_chunk_framing_stops_the_scan() {
        for body in [
            b"x\r\n".as_slice(),
            b"\r\n",
            b"3\r\nabcX",
            b"FFFFFFFFFFFFFFFFF\r\n",
        ] {
            let stream = [
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
                body,
                BAD_NEXT,
            ]
            .concat();
            assert_eq!(queued(&stream), [TRANSFER_ENCODING]);
        }
    }

    #[test]
    fn the_queue_is_first_in_first_out_and_overflow_only_makes_it_stricter() {
        let queue = HeadQueue::default();
        assert_eq!(queue.take(), 0);
        for i in 0..20u8 {
            queue.push(if i == 17 {
                BARE_LF
            } else {
                i % 2 * CONTENT_LENGTH
            });
        }
        let taken: Vec<u8> = (0..15).map(|_| queue.take()).collect();
        let expected: Vec<u8> = (0..14u8).map(|i| i % 2 * CONTENT_LENGTH).collect();
        assert_eq!(taken[..14], expected[..]);
        assert_eq!(taken[14], BARE_LF | CONTENT_LENGTH);
        assert_eq!(queue.take(), 0);
    }
}

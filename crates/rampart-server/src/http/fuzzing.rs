//! The front end's parsers under the fuzz targets (see [`crate::fuzzing`]): the HTTP/1.1
//! request-head parser and the byte-level head and stream scans.

use bytes::BytesMut;
use http::{HeaderMap, Request};

use crate::http::h1::{self, INLINE_FIELDS, Limits};
use crate::http::head_scan::{self, BARE_LF, HeadScan};
use crate::http::stream_scan::{HeadQueue, StreamScan};

/// What a parse of a request head gave, in a form two parses can be compared by.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    method: String,
    uri: http::Uri,
    version: http::Version,
    fields: Vec<(String, Vec<u8>)>,
    framing: h1::Framing,
    keep_alive: bool,
    expects_continue: bool,
    upgrade: bool,
}

impl Parsed {
    fn of(head: &h1::Head) -> Self {
        let r = &head.request;
        Self {
            method: r.method().as_str().to_owned(),
            uri: r.uri().clone(),
            version: r.version(),
            fields: fields(r.headers()),
            framing: head.framing,
            keep_alive: head.keep_alive,
            expects_continue: head.expects_continue,
            upgrade: head.upgrade,
        }
    }
}

fn fields(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    map.iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// The canonical HTTP/1.1 bytes of a parsed head: CRLF line ends, one space after each colon.
fn serialize(request: &Request<()>) -> Vec<u8> {
    let version = match request.version() {
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let mut out = format!("{} {} {version}\r\n", request.method(), request.uri()).into_bytes();
    for (name, value) in request.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Request heads: a refusal has a 400, 414 or 431 status; "need more" leaves the buffer
/// alone; a parsed head consumed a prefix no shorter prefix of which parses, and the
/// byte-level [`HeadScan`] finds the same head end, flags and framing in it. Re-serialised
/// canonically, a parsed head parses back to the same head.
pub fn request_head(data: &[u8]) {
    let limits = Limits {
        // Odd first bytes take the heap path for the field array.
        max_fields: if data.first().is_some_and(|b| b & 1 == 1) {
            INLINE_FIELDS + 72
        } else {
            INLINE_FIELDS
        },
        max_bytes: 8192,
    };
    let mut buf = BytesMut::from(data);
    let head = match h1::parse_head(&mut buf, limits) {
        Ok(Some(head)) => head,
        Ok(None) => {
            assert_eq!(
                buf.len(),
                data.len(),
                "need more bytes, yet bytes were taken"
            );
            assert!(data.len() <= limits.max_bytes, "an oversized head was kept");
            return;
        }
        Err(e) => {
            assert!(matches!(e.status(), 400 | 414 | 431), "{e}");
            return;
        }
    };
    let consumed = data.len() - buf.len();
    for cut in [consumed - 1, consumed / 2] {
        assert!(
            matches!(
                h1::parse_head(&mut BytesMut::from(&data[..cut]), limits),
                Ok(None)
            ),
            "a {cut}-byte prefix of a {consumed}-byte head"
        );
    }
    let mut scan = HeadScan::default();
    assert_eq!(
        scan.feed(data),
        consumed,
        "the scan ends the head elsewhere"
    );
    assert!(scan.is_done());
    assert_eq!(scan.flags(), head.flags, "the scan's flags");
    let scan_framing = scan.framing();
    match head.framing {
        h1::Framing::Empty => assert_eq!(scan_framing, head_scan::Framing::Length(0)),
        h1::Framing::Length(n) => assert_eq!(scan_framing, head_scan::Framing::Length(n)),
        h1::Framing::Chunked => assert_eq!(scan_framing, head_scan::Framing::Chunked),
        h1::Framing::Refused => {}
    }

    let canonical = serialize(&head.request);
    let roomy = Limits {
        max_fields: head.request.headers().len().max(INLINE_FIELDS),
        max_bytes: canonical.len(),
    };
    let mut again = BytesMut::from(&canonical[..]);
    let reparsed = match h1::parse_head(&mut again, roomy) {
        Ok(Some(reparsed)) => reparsed,
        other => panic!(
            "canonical form {:?} of a parsed head: {other:?}",
            String::from_utf8_lossy(&canonical)
        ),
    };
    assert!(
        again.is_empty(),
        "the canonical head was not read to its end"
    );
    assert_eq!(
        Parsed::of(&reparsed),
        Parsed::of(&head),
        "re-serialised as {:?}",
        String::from_utf8_lossy(&canonical)
    );
    assert_eq!(
        reparsed.flags,
        head.flags & !BARE_LF,
        "flags of the canonical form"
    );
}

/// What a stream scan queued and where it stands after `data` fed in reads of the given
/// sizes (cycled).
fn scan_in(data: &[u8], reads: &[usize]) -> (Vec<u8>, bool) {
    let queue = HeadQueue::default();
    let mut scan = StreamScan::default();
    let mut rest = data;
    let mut read = 0;
    let mut flags = Vec::new();
    while !rest.is_empty() {
        let size = reads[read % reads.len()].clamp(1, rest.len());
        read += 1;
        scan.feed(&rest[..size], &queue);
        rest = &rest[size..];
        // Taken as the pipeline takes them, so the queue never overflows.
        while let Some(f) = queue.take_queued() {
            flags.push(f);
        }
    }
    (flags, scan.between_requests())
}

/// The stream scan: the heads it finds, their flags, and whether the stream ends between
/// requests do not depend on how the bytes were split into reads.
pub fn stream_scan(data: &[u8]) {
    let whole = scan_in(data, &[data.len()]);
    assert_eq!(scan_in(data, &[1]), whole, "byte by byte");
    let sizes: Vec<usize> = data
        .iter()
        .take(8)
        .map(|b| usize::from(*b % 64) + 1)
        .collect();
    if !sizes.is_empty() {
        assert_eq!(scan_in(data, &sizes), whole, "in reads of {sizes:?}");
    }
}

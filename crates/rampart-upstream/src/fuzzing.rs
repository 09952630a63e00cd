//! Entry point for the upstream response fuzz target in `fuzz/` (cargo feature `fuzzing`, off
//! in the product build; also compiled for this crate's tests, which replay the seed corpus).

use bytes::BytesMut;
use http::Method;
use rampart_core::chunked::{ChunkedDecoder, Decoded};

use crate::h1::{
    BadResponse, Head, HeadScratch, ResponseFraming, final_response_started, parse_head,
};

/// A head as compared between parses: everything but the map's internal layout.
fn summary(parsed: &Result<Option<Head>, BadResponse>, left: usize) -> String {
    match parsed {
        Ok(Some(h)) => {
            let fields: Vec<(&str, &[u8])> = h
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes()))
                .collect();
            format!(
                "{} {:?} {:?} keep_alive={} hop_by_hop={} left={left} {fields:?}",
                h.status, h.version, h.framing, h.keep_alive, h.hop_by_hop
            )
        }
        Ok(None) => "need more".to_owned(),
        Err(e) => format!("refused: {}", e.0),
    }
}

/// Parses `data` as a response head to `method` with `scratch`; the summary and the bytes left.
fn parse(
    data: &[u8],
    method: &Method,
    scratch: &mut HeadScratch,
) -> (String, Option<Head>, BytesMut) {
    let mut buf = BytesMut::from(data);
    let parsed = parse_head(&mut buf, method, scratch);
    let summary = summary(&parsed, buf.len());
    (summary, parsed.ok().flatten(), buf)
}

/// Upstream response heads: the result is the same with a fresh scratch space, with one that
/// remembers the same head's names, and with one that remembers another head's names (the
/// name cache must never change what is parsed); a response to `HEAD` has no body; a strict
/// prefix of a head needs more bytes; a chunked body after the head decodes or is refused
/// without a panic.
pub fn upstream_response(data: &[u8]) {
    let mut scratch = HeadScratch::default();
    let (fresh, head, rest) = parse(data, &Method::GET, &mut scratch);
    let (again, _, _) = parse(data, &Method::GET, &mut scratch);
    assert_eq!(
        fresh, again,
        "the same head parsed again with remembered names"
    );
    let mut other = HeadScratch::default();
    let warm_up = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Tag: a\r\nConnection: keep-alive\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\nTE: x\r\n\r\n";
    let _ = parse(warm_up, &Method::GET, &mut other);
    let (warmed, _, _) = parse(data, &Method::GET, &mut other);
    assert_eq!(fresh, warmed, "parsed after another head's names");

    let (to_head, head_response, _) = parse(data, &Method::HEAD, &mut HeadScratch::default());
    if let Some(h) = head_response {
        assert_eq!(
            h.framing,
            ResponseFraming::Empty,
            "a response to HEAD: {to_head}"
        );
    }
    let _ = final_response_started(&mut BytesMut::from(data));

    let Some(head) = head else { return };
    let consumed = data.len() - rest.len();
    for cut in [consumed - 1, consumed / 2] {
        let (prefix, _, _) = parse(&data[..cut], &Method::GET, &mut HeadScratch::default());
        assert_eq!(
            prefix, "need more",
            "prefix of {cut} of a {consumed}-byte head"
        );
    }
    if head.framing == ResponseFraming::Chunked {
        let mut body = rest;
        let mut decoder = ChunkedDecoder::new();
        for _ in 0..=2 * body.len() + 2 {
            match decoder.decode(&mut body) {
                Ok(Decoded::Data(_) | Decoded::Trailers(_)) => {}
                Ok(Decoded::End | Decoded::NeedMore) | Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_upstream_response_corpus_passes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/upstream_response");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            super::upstream_response(&std::fs::read(&path).unwrap_or_else(|e| panic!("{e}")));
            seen += 1;
        }
        assert!(seen > 0, "no seeds in {}", dir.display());
    }
}

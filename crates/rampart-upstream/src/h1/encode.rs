//! Serializing a request head for an HTTP/1.1 upstream, canonically: one request line in
//! origin form, lowercase field names, one space after the colon, framing headers written by
//! Rampart from the body it will actually send (never copied from the client).

use bytes::BytesMut;
use http::{HeaderMap, Method, Request, header};

/// How the request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestFraming {
    /// No body bytes follow the head.
    Empty,
    /// Exactly this many bytes follow.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Framing for a body with the given end-of-stream flag and exact size hint.
pub(crate) fn framing(is_end_stream: bool, exact: Option<u64>) -> RequestFraming {
    match (is_end_stream, exact) {
        (true, _) | (false, Some(0)) => RequestFraming::Empty,
        (false, Some(n)) => RequestFraming::Length(n),
        (false, None) => RequestFraming::Chunked,
    }
}

/// Methods whose requests carry a body by definition: an empty one is sent as
/// `Content-Length: 0` so the upstream does not wait for one.
fn expects_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// Writes the head of `req` into `out`. The URI must be in origin form (the proxy handler has
/// made it so) and hop-by-hop headers already removed; `content-length` and
/// `transfer-encoding` from the client are never copied, the framing is Rampart's own. The
/// field lines the proxy added outside the map (`added`, see
/// [`AddedFields`](rampart_core::headers::AddedFields)) follow the map's fields.
pub(crate) fn encode_head<B>(
    req: &Request<B>,
    added: &[u8],
    framing: RequestFraming,
    out: &mut BytesMut,
) {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    out.reserve(64 + path.len() + estimate(req.headers()) + added.len());
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(added);
    match framing {
        RequestFraming::Empty if expects_body(req.method()) => {
            out.extend_from_slice(b"content-length: 0\r\n");
        }
        RequestFraming::Empty => {}
        RequestFraming::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        RequestFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

fn estimate(headers: &HeaderMap) -> usize {
    headers.len() * 48
}

/// The framing line that precedes a chunk of `len` bytes (`"1a2b\r\n"`).
pub(crate) fn chunk_header(len: usize, out: &mut BytesMut) {
    out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
}

/// The end of a chunked body (no trailers).
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::headers::AddedFields;

    fn head(req: &Request<()>, framing: RequestFraming) -> String {
        let mut out = BytesMut::new();
        encode_head(req, &[], framing, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn a_get_is_one_canonical_head_without_framing() {
        let req = Request::get("/a/b?c=1")
            .header("Host", "example.com")
            .header("X-Trace", "1")
            .body(())
            .unwrap();
        assert_eq!(
            head(&req, RequestFraming::Empty),
            "GET /a/b?c=1 HTTP/1.1\r\nhost: example.com\r\nx-trace: 1\r\n\r\n"
        );
    }

    #[test]
    fn added_fields_follow_the_maps_fields() {
        let mut added = AddedFields::with_capacity(32);
        added.push(&header::VIA, b"1.1 rampart");
        let req = Request::get("/")
            .header("Host", "example.com")
            .body(())
            .unwrap();
        let mut out = BytesMut::new();
        encode_head(&req, added.as_bytes(), RequestFraming::Empty, &mut out);
        assert_eq!(
            String::from_utf8(out.to_vec()).unwrap(),
            "GET / HTTP/1.1\r\nhost: example.com\r\nvia: 1.1 rampart\r\n\r\n"
        );
    }

    #[test]
    fn client_framing_headers_are_replaced_by_our_own() {
        let req = Request::post("/upload")
            .header("content-length", "999")
            .header("transfer-encoding", "gzip, chunked")
            .body(())
            .unwrap();
        assert_eq!(
            head(&req, RequestFraming::Length(5)),
            "POST /upload HTTP/1.1\r\ncontent-length: 5\r\n\r\n"
        );
        assert_eq!(
            head(&req, RequestFraming::Chunked),
            "POST /upload HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn an_empty_post_says_so() {
        let req = Request::post("/x").body(()).unwrap();
        assert_eq!(
            head(&req, RequestFraming::Empty),
            "POST /x HTTP/1.1\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn framing_follows_the_body() {
        assert_eq!(framing(true, Some(0)), RequestFraming::Empty);
        assert_eq!(framing(false, Some(0)), RequestFraming::Empty);
        assert_eq!(framing(false, Some(7)), RequestFraming::Length(7));
        assert_eq!(framing(false, None), RequestFraming::Chunked);
    }

    #[test]
    fn chunk_headers_are_hex() {
        let mut out = BytesMut::new();
        chunk_header(0x1a2b, &mut out);
        assert_eq!(&out[..], b"1a2b\r\n");
    }
}

//! The response for a found file: the precompressed sibling the client accepts, the
//! preconditions (304/412), the range (206, `multipart/byteranges`, 416), and the headers
//! (`Content-Type`, `ETag`, `Last-Modified`, `Cache-Control`, `Accept-Ranges`, `Vary`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use rampart_core::{Body, ErrorKind, ProxyError};

use super::conditional::{self, Verdict};
use super::fs::{Found, OpenFile};
use super::listing::{self, Entry};
use super::range::{self, ByteRange, Ranges, Segment};
use super::{StaticFiles, file_body};
use crate::negotiate::{Encoding, choose};

/// The precompressed codings looked for, in the server's order of preference.
const SIBLINGS: [Encoding; 3] = [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip];

/// Makes multipart boundaries differ between responses.
static BOUNDARY_COUNTER: AtomicU64 = AtomicU64::new(0);

impl StaticFiles {
    /// The response for `file`, found at `relative`.
    pub(super) async fn file(
        &self,
        req: &Parts,
        relative: &Path,
        file: Arc<OpenFile>,
    ) -> Result<Response<Body>, ProxyError> {
        let name = relative.file_name().map_or(&[][..], |n| n.as_bytes());
        let content_type = self.mime.of(name).to_owned();
        let (file, encoding) = if self.precompressed {
            self.sibling(&req.headers, relative)
                .await
                .map_or((file, None), |(f, e)| (f, Some(e)))
        } else {
            (file, None)
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, value(&file.etag));
        if let Some(modified) = &file.last_modified {
            headers.insert(header::LAST_MODIFIED, value(modified));
        }
        if let Some(cc) = &self.cache_control {
            headers.insert(header::CACHE_CONTROL, cc.clone());
        }
        if self.precompressed {
            headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        match conditional::evaluate(&req.headers, &file.etag, file.modified) {
            Verdict::Serve => {}
            Verdict::NotModified => return Ok(bare(StatusCode::NOT_MODIFIED, headers)),
            Verdict::Failed => {
                return Err(ProxyError::new(
                    ErrorKind::PreconditionFailed,
                    "a precondition of the request did not hold",
                ));
            }
        }
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(encoding) = encoding {
            headers.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(encoding.token()),
            );
        }
        let ranges = match req.headers.get(header::RANGE) {
            Some(asked)
                if req.method == Method::GET
                    && conditional::range_applies(&req.headers, &file.etag, file.modified) =>
            {
                range::parse(asked.as_bytes(), file.len)
            }
            _ => Ranges::Whole,
        };
        let whole = ByteRange {
            start: 0,
            len: file.len,
        };
        let (status, segments, length) = match ranges {
            Ranges::Whole => {
                headers.insert(header::CONTENT_TYPE, value(&content_type));
                (StatusCode::OK, vec![Segment::File(whole)], file.len)
            }
            Ranges::Unsatisfiable => {
                let mut extra = HeaderMap::new();
                extra.insert(
                    header::CONTENT_RANGE,
                    value(&format!("bytes */{}", file.len)),
                );
                return Err(ProxyError::new(
                    ErrorKind::RangeNotSatisfiable,
                    "no satisfiable range",
                )
                .with_headers(extra));
            }
            Ranges::Parts(parts) if parts.len() == 1 => {
                let part = parts[0];
                headers.insert(header::CONTENT_TYPE, value(&content_type));
                headers.insert(header::CONTENT_RANGE, value(&part.content_range(file.len)));
                (
                    StatusCode::PARTIAL_CONTENT,
                    vec![Segment::File(part)],
                    part.len,
                )
            }
            Ranges::Parts(parts) => {
                let boundary = format!(
                    "{:016x}{:08x}",
                    fastish_hash(&file.etag),
                    BOUNDARY_COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                let (segments, length) =
                    range::multipart(&parts, file.len, &content_type, &boundary);
                headers.insert(
                    header::CONTENT_TYPE,
                    value(&format!("multipart/byteranges; boundary={boundary}")),
                );
                (StatusCode::PARTIAL_CONTENT, segments, length)
            }
        };
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        let body = if req.method == Method::HEAD || length == 0 {
            Body::Empty
        } else if let Some(content) = &file.content {
            file_body::from_memory(content, &segments)
        } else {
            file_body::body(Arc::clone(&file.file), segments)
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        Ok(resp)
    }

    /// The precompressed sibling of `relative` the client prefers, among those that exist.
    async fn sibling(
        &self,
        headers: &HeaderMap,
        relative: &Path,
    ) -> Option<(Arc<OpenFile>, Encoding)> {
        let mut offered: Vec<Encoding> = SIBLINGS.to_vec();
        // Bounded: each turn removes one coding.
        while let Some(encoding) = choose(headers, &offered) {
            let mut name = OsString::from(relative.as_os_str());
            name.push(".");
            name.push(encoding.extension());
            if let Ok(Found::File(file)) = self.lookup(Path::new(&name)).await {
                return Some((file, encoding));
            }
            offered.retain(|e| *e != encoding);
        }
        None
    }
}

/// A listing of a directory shown as `shown`, as JSON or HTML by the request's `Accept`.
pub(super) fn listing(
    req: &Parts,
    shown: &str,
    entries: &[Entry],
    truncated: bool,
) -> Response<Body> {
    let accept = req
        .headers
        .get(header::ACCEPT)
        .map_or(&[][..], HeaderValue::as_bytes);
    let wants_json = contains(accept, b"application/json") && !contains(accept, b"text/html");
    let (text, content_type) = if wants_json {
        (listing::json(entries, truncated), "application/json")
    } else {
        (
            listing::html(shown, entries, truncated),
            "text/html; charset=utf-8",
        )
    };
    let length = text.len();
    let mut resp = Response::new(if req.method == Method::HEAD {
        Body::Empty
    } else {
        Body::full(text)
    });
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// A body-less answer (304) with `headers`.
fn bare(status: StatusCode, headers: HeaderMap) -> Response<Body> {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// A header value from text Rampart built (tags, dates, types checked at config load).
fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// FNV-1a, to vary multipart boundaries with the file.
fn fastish_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

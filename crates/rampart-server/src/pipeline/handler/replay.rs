//! Sending a proxied request a second time (a shadow copy, a fallback): its small body read
//! once and shared, and a copy of the request as prepared for the upstream, with the fields
//! Rampart adds in the copy's map.

use bytes::Bytes;
use http::Request;
use http::header::{self, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use rampart_core::{Body, ErrorKind, ProxyError};

/// The body of `req` when its length is known and at most `max` bytes: read here and put back
/// (as a buffer) for the request itself. `None` when it is larger or streamed (left as it is).
///
/// # Errors
/// The client's body failed while it was read.
pub(crate) async fn small_body(
    req: &mut Request<Body>,
    max: u64,
) -> Result<Option<Bytes>, ProxyError> {
    let length = if matches!(req.body(), Body::Empty) {
        Some(0)
    } else {
        req.headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    match length {
        Some(0) => Ok(Some(Bytes::new())),
        Some(len) if len <= max => {
            let collected = std::mem::take(req.body_mut())
                .collect()
                .await
                .map_err(|e| ProxyError::new(ErrorKind::ClientBodyError, e.to_string()))?
                .to_bytes();
            *req.body_mut() = Body::full(collected.clone());
            Ok(Some(collected))
        }
        _ => Ok(None),
    }
}

/// A copy of `req` (prepared for the upstream) with `body`; `added` holds the field lines the
/// HTTP/1.1 encoder adds to `req`, which go into the copy's map.
pub(crate) fn copy_of(req: &Request<Body>, added: &[u8], body: Bytes) -> Request<Body> {
    let mut copy = Request::new(Body::full(body));
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    let headers = copy.headers_mut();
    headers.clone_from(req.headers());
    for line in added.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.insert(name, value);
        }
    }
    copy
}

/// Appends `suffix` to the `Host` of `req`, before any port.
pub(crate) fn suffix_host(req: &mut Request<Body>, suffix: &str) {
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return;
    };
    let suffixed = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{name}{suffix}:{port}")
        }
        _ => format!("{host}{suffix}"),
    };
    if let Ok(value) = HeaderValue::from_str(&suffixed) {
        req.headers_mut().insert(header::HOST, value);
    }
}

//! Error responses, built in exactly one place and content-negotiated: JSON for API clients,
//! HTML for browsers, plain text otherwise, and a trailers-only gRPC status for gRPC requests.
//! They carry the request ID and reveal nothing internal.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Version};

use crate::body::Body;
use crate::error::ProxyError;

/// Formats Rampart can write an error in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// `application/json`
    Json,
    /// `text/html`
    Html,
    /// `text/plain`
    Text,
    /// A trailers-only gRPC response: HTTP 200, `application/grpc`, no body, and the failure
    /// in `grpc-status` and `grpc-message` (see [`grpc_status`]).
    Grpc,
}

impl ErrorFormat {
    const CANDIDATES: [(Self, &'static str, &'static str); 3] = [
        (Self::Text, "text", "plain"),
        (Self::Json, "application", "json"),
        (Self::Html, "text", "html"),
    ];

    /// Picks the format the `Accept` header prefers (highest q, then the most specific match,
    /// then plain text); plain text when absent or when nothing matches. A gRPC media type
    /// (what [`negotiation_header`] hands over for a gRPC request) picks [`Self::Grpc`].
    #[must_use]
    pub fn negotiate(accept: Option<&HeaderValue>) -> Self {
        let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
            return Self::Text;
        };
        if is_grpc_media_type(accept.as_bytes()) {
            return Self::Grpc;
        }
        let mut best = (0u32, 0u8, Self::Text);
        for (rank, (format, ty, sub)) in Self::CANDIDATES.iter().enumerate() {
            let Some((q, specificity)) = match_accept(accept, ty, sub) else {
                continue;
            };
            let key = (q, specificity);
            if key > (best.0, best.1) || (key == (best.0, best.1) && rank == 0) {
                best = (q, specificity, *format);
            }
        }
        if best.0 == 0 { Self::Text } else { best.2 }
    }
}

/// The q-value (in thousandths) of the most specific media range in `accept` matching
/// `ty/sub`, and how specific it is (2 exact, 1 `type/*`, 0 `*/*`).
fn match_accept(accept: &str, ty: &str, sub: &str) -> Option<(u32, u8)> {
    let mut found: Option<(u32, u8)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let (rt, rs) = media.split_once('/').unwrap_or((media, ""));
        let specificity = if rt.eq_ignore_ascii_case(ty)
            && (rs.eq_ignore_ascii_case(sub) || rs.ends_with(&format!("+{sub}")))
        {
            2
        } else if rt.eq_ignore_ascii_case(ty) && rs == "*" {
            1
        } else if rt == "*" && rs == "*" {
            0
        } else {
            continue;
        };
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .map_or(1000, |q| (q.clamp(0.0, 1.0) * 1000.0) as u32);
        if found.is_none_or(|(_, s)| specificity > s) {
            found = Some((q, specificity));
        }
    }
    found
}

/// `application/grpc`, alone or with a `+codec` suffix or parameters (not `grpc-web`, whose
/// clients are browsers behind a translating proxy).
fn is_grpc_media_type(value: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    value.len() >= GRPC.len()
        && value[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(value.get(GRPC.len()), None | Some(b'+' | b';' | b' '))
}

/// The request header that [`error_response`] negotiates on: for a gRPC request (HTTP/2 or
/// later with a `Content-Type` of `application/grpc`, `application/grpc+proto`, ...) its
/// `Content-Type`, so that failures reach gRPC clients as gRPC statuses; otherwise `Accept`.
/// HTTP/1 requests cost no extra lookup.
#[must_use]
pub fn negotiation_header(headers: &HeaderMap, version: Version) -> Option<&HeaderValue> {
    if version >= Version::HTTP_2
        && let Some(ct) = headers.get(header::CONTENT_TYPE)
        && is_grpc_media_type(ct.as_bytes())
    {
        return Some(ct);
    }
    headers.get(header::ACCEPT)
}

/// The gRPC status code a Rampart failure answered with HTTP `status` becomes, after gRPC's
/// HTTP-to-status mapping, sharpened where Rampart knows more: a timeout is
/// `DEADLINE_EXCEEDED` and a size or rate limit is `RESOURCE_EXHAUSTED`.
#[must_use]
pub const fn grpc_status(status: StatusCode) -> u8 {
    match status.as_u16() {
        // INTERNAL: the request was malformed in transit (not an application argument).
        400 | 415 | 500 => 13,
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 | 405 => 12,             // UNIMPLEMENTED: no route serves this method
        408 | 504 => 4,              // DEADLINE_EXCEEDED
        413 | 414 | 429 | 431 => 8,  // RESOURCE_EXHAUSTED
        421 | 425 | 502 | 503 => 14, // UNAVAILABLE: worth retrying, maybe elsewhere
        _ => 2,                      // UNKNOWN
    }
}

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// `message` percent-encoded as `grpc-message` wants: bytes outside printable ASCII, and
/// `%`, become `%XX`.
fn grpc_message(message: &str) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A trailers-only gRPC response for `status`: HTTP 200 with the status in the headers and an
/// empty body, so the whole answer is one HEADERS frame ending the stream.
fn grpc_error_response(status: StatusCode, message: &str) -> Response<Body> {
    let mut resp = Response::new(Body::Empty);
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(
        GRPC_STATUS.clone(),
        HeaderValue::from(u16::from(grpc_status(status))),
    );
    headers.insert(GRPC_MESSAGE.clone(), grpc_message(message));
    resp
}

/// The response for `err`, in the format `accept` prefers, carrying `request_id`.
#[must_use]
pub fn error_response(
    err: &ProxyError,
    request_id: &HeaderValue,
    accept: Option<&HeaderValue>,
) -> Response<Body> {
    let status = err.kind.status();
    let format = ErrorFormat::negotiate(accept);
    if format == ErrorFormat::Grpc {
        let mut resp = grpc_error_response(status, err.kind.public_message());
        add_error_headers(err, resp.headers_mut());
        return resp;
    }
    let body = render(
        format,
        status,
        err.kind.code(),
        err.kind.public_message(),
        request_id.to_str().unwrap_or(""),
    );
    let content_type = match format {
        ErrorFormat::Json => "application/json",
        ErrorFormat::Html => "text/html; charset=utf-8",
        ErrorFormat::Text | ErrorFormat::Grpc => "text/plain; charset=utf-8",
    };
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    add_error_headers(err, headers);
    resp
}

/// `Cache-Control: no-store` and the headers the failure itself asks for (`Allow`,
/// `Retry-After`, ...).
fn add_error_headers(err: &ProxyError, headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(allow) = &err.allow {
        headers.insert(header::ALLOW, allow.clone());
    }
    if let Some(extra) = &err.headers {
        for (name, value) in extra.iter() {
            headers.append(name.clone(), value.clone());
        }
    }
}

fn render(
    format: ErrorFormat,
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> String {
    let reason = status.canonical_reason().unwrap_or("Error");
    let n = status.as_u16();
    match format {
        ErrorFormat::Json => serde_json::json!({
            "error": { "status": n, "code": code, "message": message, "request_id": request_id }
        })
        .to_string(),
        ErrorFormat::Html => {
            let id = html_escape(request_id);
            format!(
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{n} {reason}</title></head>\n<body><h1>{n} {reason}</h1>\n<p>{message}</p>\n<p><small>Request ID: <code>{id}</code></small></p></body></html>\n"
            )
        }
        ErrorFormat::Text | ErrorFormat::Grpc => {
            format!("{n} {reason}: {message}\nRequest ID: {request_id}\n")
        }
    }
}

fn html_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn negotiate(accept: &'static str) -> ErrorFormat {
        ErrorFormat::negotiate(Some(&HeaderValue::from_static(accept)))
    }

    #[test]
    fn api_clients_get_json() {
        assert_eq!(negotiate("application/json"), ErrorFormat::Json);
        assert_eq!(negotiate("application/problem+json"), ErrorFormat::Json);
        assert_eq!(
            negotiate("text/html;q=0.5, application/json"),
            ErrorFormat::Json
        );
    }

    #[test]
    fn browsers_get_html() {
        assert_eq!(
            negotiate("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ErrorFormat::Html
        );
    }

    #[test]
    fn everything_else_gets_text() {
        assert_eq!(ErrorFormat::negotiate(None), ErrorFormat::Text);
        assert_eq!(negotiate("*/*"), ErrorFormat::Text);
        assert_eq!(negotiate("image/png"), ErrorFormat::Text);
        assert_eq!(negotiate("application/json;q=0"), ErrorFormat::Text);
        assert_eq!(negotiate("garbage;;;q=x"), ErrorFormat::Text);
    }

    #[test]
    fn error_bodies_carry_code_and_request_id_but_no_detail() {
        let err = ProxyError::new(ErrorKind::UpstreamConnect, "connect 10.0.0.7:8080: refused");
        let id = HeaderValue::from_static("req-42");
        let resp = error_response(
            &err,
            &id,
            Some(&HeaderValue::from_static("application/json")),
        );
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let Body::Full(Some(bytes)) = resp.body() else {
            panic!("expected a full body")
        };
        let text = std::str::from_utf8(bytes).unwrap();
        assert!(text.contains("\"request_id\":\"req-42\""), "{text}");
        assert!(text.contains("upstream_connect_failed"), "{text}");
        assert!(!text.contains("10.0.0.7"), "{text}");
    }

    #[test]
    fn html_bodies_escape_the_request_id() {
        let body = render(
            ErrorFormat::Html,
            StatusCode::NOT_FOUND,
            "no_route",
            "x",
            "<script>",
        );
        assert!(body.contains("&lt;script&gt;") && !body.contains("<script>"));
    }

    fn grpc_headers(content_type: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers
    }

    #[test]
    fn grpc_requests_over_http2_negotiate_on_their_content_type() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC+json",
            "application/grpc;charset=utf-8",
        ] {
            let headers = grpc_headers(ct);
            let hint = negotiation_header(&headers, Version::HTTP_2);
            assert_eq!(hint.map(HeaderValue::as_bytes), Some(ct.as_bytes()));
            assert_eq!(ErrorFormat::negotiate(hint), ErrorFormat::Grpc, "{ct}");
        }
        for (ct, version) in [
            ("application/grpc", Version::HTTP_11),
            ("application/grpc-web", Version::HTTP_2),
            ("application/grpcx", Version::HTTP_2),
            ("application/json", Version::HTTP_2),
        ] {
            let headers = grpc_headers(ct);
            let hint = negotiation_header(&headers, version);
            assert_eq!(
                ErrorFormat::negotiate(hint),
                ErrorFormat::Json,
                "{ct} over {version:?} negotiates on Accept"
            );
        }
    }

    #[test]
    fn grpc_errors_are_trailers_only_statuses() {
        let err = ProxyError::new(ErrorKind::UpstreamConnect, "connect 10.0.0.7:8080: refused");
        let ct = HeaderValue::from_static("application/grpc");
        let resp = error_response(&err, &HeaderValue::from_static("req-42"), Some(&ct));
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        assert_eq!(resp.headers()["grpc-status"], "14");
        assert_eq!(
            resp.headers()["grpc-message"],
            "The upstream service failed to answer."
        );
        assert!(
            matches!(resp.body(), Body::Empty),
            "trailers-only: no body, the HEADERS frame ends the stream"
        );
        let rendered = format!("{:?}", resp.headers());
        assert!(!rendered.contains("10.0.0.7"), "{rendered}");
    }

    #[test]
    fn grpc_errors_keep_the_headers_the_failure_asks_for() {
        let mut extra = HeaderMap::new();
        extra.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        let err = ProxyError::new(ErrorKind::RateLimited, "route api").with_headers(extra);
        let ct = HeaderValue::from_static("application/grpc+proto");
        let resp = error_response(&err, &HeaderValue::from_static("id"), Some(&ct));
        assert_eq!(resp.headers()["grpc-status"], "8");
        assert_eq!(resp.headers()["retry-after"], "3");
    }

    #[test]
    fn http_statuses_map_to_grpc_codes() {
        let cases = [
            (400, 13),
            (401, 16),
            (403, 7),
            (404, 12),
            (405, 12),
            (408, 4),
            (413, 8),
            (414, 8),
            (415, 13),
            (421, 14),
            (425, 14),
            (429, 8),
            (431, 8),
            (500, 13),
            (502, 14),
            (503, 14),
            (504, 4),
            (418, 2),
        ];
        for (http, grpc) in cases {
            let status = StatusCode::from_u16(http).unwrap();
            assert_eq!(grpc_status(status), grpc, "HTTP {http}");
        }
        // Every status a Rampart failure can have maps to a specific code, not UNKNOWN.
        let kinds = [
            ErrorKind::BadRequest,
            ErrorKind::NoRoute,
            ErrorKind::NoTarget,
            ErrorKind::UpstreamTimeout,
            ErrorKind::BodyTooLarge,
            ErrorKind::HeadersTooLarge,
            ErrorKind::IpDenied,
            ErrorKind::Internal,
        ];
        for kind in kinds {
            assert_ne!(grpc_status(kind.status()), 2, "{kind:?}");
        }
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(grpc_message("100% sure\n\u{e9}"), "100%25 sure%0A%C3%A9");
        assert_eq!(grpc_message("plain text."), "plain text.");
    }

    #[test]
    fn method_not_allowed_lists_allowed_methods() {
        let err = ProxyError::method_not_allowed(HeaderValue::from_static("GET, HEAD"));
        let resp = error_response(&err, &HeaderValue::from_static("id"), None);
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()["allow"], "GET, HEAD");
    }
}

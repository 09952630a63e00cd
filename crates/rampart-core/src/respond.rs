//! Error responses, built in exactly one place and content-negotiated: JSON for API clients,
//! HTML for browsers, plain text otherwise. They carry the request ID and reveal nothing
//! internal.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

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
}

impl ErrorFormat {
    const CANDIDATES: [(Self, &'static str, &'static str); 3] = [
        (Self::Text, "text", "plain"),
        (Self::Json, "application", "json"),
        (Self::Html, "text", "html"),
    ];

    /// Picks the format the `Accept` header prefers (highest q, then the most specific match,
    /// then plain text); plain text when absent or when nothing matches.
    #[must_use]
    pub fn negotiate(accept: Option<&HeaderValue>) -> Self {
        let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
            return Self::Text;
        };
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

/// The response for `err`, in the format `accept` prefers, carrying `request_id`.
#[must_use]
pub fn error_response(
    err: &ProxyError,
    request_id: &HeaderValue,
    accept: Option<&HeaderValue>,
) -> Response<Body> {
    let status = err.kind.status();
    let format = ErrorFormat::negotiate(accept);
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
        ErrorFormat::Text => "text/plain; charset=utf-8",
    };
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(allow) = &err.allow {
        headers.insert(header::ALLOW, allow.clone());
    }
    if let Some(extra) = &err.headers {
        for (name, value) in extra.iter() {
            headers.append(name.clone(), value.clone());
        }
    }
    resp
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
        ErrorFormat::Text => format!("{n} {reason}: {message}\nRequest ID: {request_id}\n"),
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

    #[test]
    fn method_not_allowed_lists_allowed_methods() {
        let err = ProxyError::method_not_allowed(HeaderValue::from_static("GET, HEAD"));
        let resp = error_response(&err, &HeaderValue::from_static("id"), None);
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()["allow"], "GET, HEAD");
    }
}

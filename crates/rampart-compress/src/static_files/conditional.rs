//! Conditional requests (RFC 9110 §13): `If-Match`, `If-Unmodified-Since`, `If-None-Match`,
//! `If-Modified-Since` evaluated in the order §13.2.2 gives, and `If-Range`.

use std::time::SystemTime;

use http::HeaderMap;
use http::header::{self, HeaderValue};

/// What the preconditions say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve the file.
    Serve,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// The verdict for a `GET`/`HEAD` of a file tagged `etag` (strong) and modified at `modified`.
pub(crate) fn evaluate(headers: &HeaderMap, etag: &str, modified: Option<SystemTime>) -> Verdict {
    if let Some(if_match) = headers.get(header::IF_MATCH) {
        if !list_matches(if_match, etag, true) {
            return Verdict::Failed;
        }
    } else if let Some(since) = date(headers.get(header::IF_UNMODIFIED_SINCE))
        && modified.is_none_or(|m| seconds(m) > since)
    {
        return Verdict::Failed;
    }
    if let Some(if_none_match) = headers.get(header::IF_NONE_MATCH) {
        if list_matches(if_none_match, etag, false) {
            return Verdict::NotModified;
        }
    } else if let Some(since) = date(headers.get(header::IF_MODIFIED_SINCE))
        && modified.is_some_and(|m| seconds(m) <= since)
    {
        return Verdict::NotModified;
    }
    Verdict::Serve
}

/// True when a `Range` may be honoured: no `If-Range`, or one that names this exact version
/// (a strong tag, or the exact `Last-Modified` date).
pub(crate) fn range_applies(headers: &HeaderMap, etag: &str, modified: Option<SystemTime>) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let bytes = value.as_bytes().trim_ascii();
    if bytes.starts_with(b"\"") {
        return bytes == etag.as_bytes();
    }
    if bytes.starts_with(b"W/") {
        return false;
    }
    match (date(Some(value)), modified) {
        (Some(date), Some(m)) => seconds(m) == date,
        _ => false,
    }
}

/// `*` or a comma-separated list of entity tags; `strong` compares as `If-Match` does.
fn list_matches(value: &HeaderValue, etag: &str, strong: bool) -> bool {
    let value = value.as_bytes().trim_ascii();
    if value == b"*" {
        return true;
    }
    let ours = etag.as_bytes();
    value.split(|b| *b == b',').any(|tag| {
        let tag = tag.trim_ascii();
        match tag.strip_prefix(b"W/") {
            Some(weak) => !strong && weak == ours,
            None => tag == ours,
        }
    })
}

/// An HTTP date as seconds since the epoch (invalid dates are ignored, as RFC 9110 asks).
fn date(value: Option<&HeaderValue>) -> Option<u64> {
    let text = value?.to_str().ok()?;
    let time = httpdate::parse_http_date(text).ok()?;
    Some(seconds(time))
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const TAG: &str = "\"abc-1\"";

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn http_date(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }

    #[test]
    fn if_none_match_wins_over_dates_and_compares_weakly() {
        let m = Some(at(1_000_000));
        assert_eq!(
            evaluate(&headers(&[("if-none-match", TAG)]), TAG, m),
            Verdict::NotModified
        );
        assert_eq!(
            evaluate(&headers(&[("if-none-match", "W/\"abc-1\"")]), TAG, m),
            Verdict::NotModified
        );
        assert_eq!(
            evaluate(&headers(&[("if-none-match", "\"x\", \"abc-1\"")]), TAG, m),
            Verdict::NotModified
        );
        assert_eq!(
            evaluate(&headers(&[("if-none-match", "*")]), TAG, m),
            Verdict::NotModified
        );
        // A non-matching tag ignores If-Modified-Since.
        let h = headers(&[
            ("if-none-match", "\"other\""),
            ("if-modified-since", &http_date(2_000_000)),
        ]);
        assert_eq!(evaluate(&h, TAG, m), Verdict::Serve);
    }

    #[test]
    fn dates_decide_without_tags() {
        let m = Some(at(1_000_000));
        let ims = |s| headers(&[("if-modified-since", &http_date(s))]);
        assert_eq!(evaluate(&ims(1_000_000), TAG, m), Verdict::NotModified);
        assert_eq!(evaluate(&ims(999_999), TAG, m), Verdict::Serve);
        assert_eq!(
            evaluate(&headers(&[("if-modified-since", "not a date")]), TAG, m),
            Verdict::Serve
        );
        let ius = |s| headers(&[("if-unmodified-since", &http_date(s))]);
        assert_eq!(evaluate(&ius(999_999), TAG, m), Verdict::Failed);
        assert_eq!(evaluate(&ius(1_000_000), TAG, m), Verdict::Serve);
    }

    #[test]
    fn if_match_is_strong() {
        let m = Some(at(1));
        assert_eq!(
            evaluate(&headers(&[("if-match", TAG)]), TAG, m),
            Verdict::Serve
        );
        assert_eq!(
            evaluate(&headers(&[("if-match", "W/\"abc-1\"")]), TAG, m),
            Verdict::Failed
        );
        assert_eq!(
            evaluate(&headers(&[("if-match", "\"nope\"")]), TAG, m),
            Verdict::Failed
        );
        assert_eq!(
            evaluate(&headers(&[("if-match", "*")]), TAG, m),
            Verdict::Serve
        );
    }

    #[test]
    fn if_range_needs_this_exact_version() {
        let m = Some(at(1_000_000));
        assert!(range_applies(&HeaderMap::new(), TAG, m));
        assert!(range_applies(&headers(&[("if-range", TAG)]), TAG, m));
        assert!(!range_applies(&headers(&[("if-range", "\"old\"")]), TAG, m));
        assert!(!range_applies(
            &headers(&[("if-range", "W/\"abc-1\"")]),
            TAG,
            m
        ));
        assert!(range_applies(
            &headers(&[("if-range", &http_date(1_000_000))]),
            TAG,
            m
        ));
        assert!(!range_applies(
            &headers(&[("if-range", &http_date(999_000))]),
            TAG,
            m
        ));
    }
}

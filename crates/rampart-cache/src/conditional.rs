//! A client's conditional request answered from a stored object (RFC 9110 §13.2.2):
//! `If-Match` / `If-Unmodified-Since` failing give 412, `If-None-Match` / `If-Modified-Since`
//! matching give 304.

use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use rampart_core::Body;

use crate::entry::Entry;

/// The conditional fields of a request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Conditionals {
    if_match: Option<HeaderValue>,
    if_none_match: Option<HeaderValue>,
    if_modified_since: Option<HeaderValue>,
    if_unmodified_since: Option<HeaderValue>,
}

/// What the preconditions decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send the object.
    Send,
    /// `304 Not Modified`.
    NotModified,
    /// `412 Precondition Failed`.
    Failed,
}

impl Conditionals {
    /// The conditional fields of `headers`; `None` when there are none (the common case).
    pub(crate) fn of(headers: &HeaderMap) -> Option<Self> {
        let c = Self {
            if_match: headers.get(header::IF_MATCH).cloned(),
            if_none_match: headers.get(header::IF_NONE_MATCH).cloned(),
            if_modified_since: headers.get(header::IF_MODIFIED_SINCE).cloned(),
            if_unmodified_since: headers.get(header::IF_UNMODIFIED_SINCE).cloned(),
        };
        let any = c.if_match.is_some()
            || c.if_none_match.is_some()
            || c.if_modified_since.is_some()
            || c.if_unmodified_since.is_some();
        any.then_some(c)
    }

    /// Evaluates these preconditions against a stored response's fields.
    pub(crate) fn decide(&self, stored: &HeaderMap) -> Decision {
        let etag = stored.get(header::ETAG);
        let modified = stored
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        if let Some(list) = &self.if_match {
            if !tag_list_matches(list, etag, true) {
                return Decision::Failed;
            }
        } else if let Some(since) = date(self.if_unmodified_since.as_ref())
            && modified.is_none_or(|m| m > since)
        {
            return Decision::Failed;
        }
        if let Some(list) = &self.if_none_match {
            if tag_list_matches(list, etag, false) {
                return Decision::NotModified;
            }
        } else if let Some(since) = date(self.if_modified_since.as_ref())
            && modified.is_some_and(|m| m <= since)
        {
            return Decision::NotModified;
        }
        Decision::Send
    }
}

fn date(value: Option<&HeaderValue>) -> Option<SystemTime> {
    httpdate::parse_http_date(value?.to_str().ok()?).ok()
}

/// True when the entity-tag list `list` (or `*`) matches `etag`; strong comparison refuses
/// weak tags on either side.
fn tag_list_matches(list: &HeaderValue, etag: Option<&HeaderValue>, strong: bool) -> bool {
    let Ok(list) = list.to_str() else {
        return false;
    };
    if list.trim() == "*" {
        return true;
    }
    let Some(etag) = etag.and_then(|e| e.to_str().ok()) else {
        return false;
    };
    let (ours_weak, ours) = split_tag(etag.trim());
    if strong && ours_weak {
        return false;
    }
    list.split(',').any(|t| {
        let (weak, opaque) = split_tag(t.trim());
        !(strong && weak) && opaque == ours && !opaque.is_empty()
    })
}

/// `W/"x"` → (true, `"x"`).
fn split_tag(tag: &str) -> (bool, &str) {
    match tag.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, tag),
    }
}

/// The answer `decision` calls for, from `entry` at `now`; `None` to send the object.
pub(crate) fn answer(decision: Decision, entry: &Entry, now: SystemTime) -> Option<Response<Body>> {
    match decision {
        Decision::Send => None,
        Decision::Failed => {
            let mut resp = Response::new(Body::Empty);
            *resp.status_mut() = StatusCode::PRECONDITION_FAILED;
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            Some(resp)
        }
        Decision::NotModified => {
            let mut resp = Response::new(Body::Empty);
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            for name in [
                header::CACHE_CONTROL,
                header::CONTENT_LOCATION,
                header::DATE,
                header::ETAG,
                header::EXPIRES,
                header::VARY,
                header::LAST_MODIFIED,
            ] {
                for value in entry.headers.get_all(&name) {
                    resp.headers_mut().append(name.clone(), value.clone());
                }
            }
            resp.headers_mut()
                .insert(header::AGE, HeaderValue::from(entry.age(now)));
            Some(resp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(etag: &str, modified: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ETAG, etag.parse().unwrap());
        h.insert(header::LAST_MODIFIED, modified.parse().unwrap());
        h
    }

    fn conditionals(name: header::HeaderName, value: &str) -> Conditionals {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        Conditionals::of(&h).unwrap()
    }

    const MODIFIED: &str = "Mon, 07 Dec 2026 10:00:00 GMT";

    #[test]
    fn if_none_match_compares_weakly() {
        let h = stored("W/\"a\"", MODIFIED);
        let c = conditionals(header::IF_NONE_MATCH, "\"b\", \"a\"");
        assert_eq!(c.decide(&h), Decision::NotModified);
        let c = conditionals(header::IF_NONE_MATCH, "\"b\"");
        assert_eq!(c.decide(&h), Decision::Send);
    }

    #[test]
    fn if_match_compares_strongly() {
        let c = conditionals(header::IF_MATCH, "\"a\"");
        assert_eq!(c.decide(&stored("W/\"a\"", MODIFIED)), Decision::Failed);
        assert_eq!(c.decide(&stored("\"a\"", MODIFIED)), Decision::Send);
    }

    #[test]
    fn dates_decide_without_tags() {
        let h = stored("\"a\"", MODIFIED);
        let later = "Tue, 08 Dec 2026 10:00:00 GMT";
        let earlier = "Sun, 06 Dec 2026 10:00:00 GMT";
        assert_eq!(
            conditionals(header::IF_MODIFIED_SINCE, later).decide(&h),
            Decision::NotModified
        );
        assert_eq!(
            conditionals(header::IF_MODIFIED_SINCE, earlier).decide(&h),
            Decision::Send
        );
        assert_eq!(
            conditionals(header::IF_UNMODIFIED_SINCE, earlier).decide(&h),
            Decision::Failed
        );
        assert_eq!(
            conditionals(header::IF_MODIFIED_SINCE, "garbage").decide(&h),
            Decision::Send
        );
    }
}

//! [`Entry`]: one stored response, with what RFC 9111 needs to reuse it: its age when it
//! arrived (§4.2.3), its freshness lifetime (§4.2.1, heuristics in §4.2.2 only where allowed),
//! the request header values it was selected by (`Vary`, §4.1), and the stale windows
//! (`stale-while-revalidate`, `stale-if-error`, RFC 5861).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use rampart_core::Body;

use crate::directives::{
    MAX_DELTA, RequestDirectives, ResponseDirectives, SURROGATE_CONTROL, delta_seconds,
};

/// Bytes counted for one object beyond its body and header bytes (the entry, its maps).
pub(crate) const OBJECT_OVERHEAD: usize = 512;

/// Longest heuristic freshness: a tenth of the time since `Last-Modified`, at most a day.
const HEURISTIC_CAP: u64 = 24 * 3600;

/// Statuses that may be given heuristic freshness (RFC 9110 §15.1).
const HEURISTIC_STATUSES: [u16; 12] = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// What the route adds to a response's own freshness information.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Defaults {
    /// Freshness for responses without any (`default_ttl`).
    pub(crate) ttl: Option<u64>,
    /// `stale-while-revalidate` for responses that do not say.
    pub(crate) stale_while_revalidate: u64,
    /// `stale-if-error` for responses that do not say.
    pub(crate) stale_if_error: u64,
}

/// One stored response.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) status: StatusCode,
    /// The stored header fields (hop-by-hop fields removed).
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// The request's values of the response's `Vary` fields (lowercase names).
    pub(crate) vary: Box<[(HeaderName, Option<String>)]>,
    /// The request's values of the route's key headers and cookies.
    pub(crate) extra_key: Box<str>,
    /// When the response arrived (or was last revalidated).
    pub(crate) response_time: SystemTime,
    /// `corrected_initial_age`, in seconds.
    pub(crate) initial_age: u64,
    /// Freshness lifetime, in seconds.
    pub(crate) lifetime: u64,
    pub(crate) directives: ResponseDirectives,
    /// `stale-while-revalidate` window in seconds (0: none).
    pub(crate) stale_while_revalidate: u64,
    /// `stale-if-error` window in seconds (0: none).
    pub(crate) stale_if_error: u64,
    /// `Surrogate-Key` tags, for purging.
    pub(crate) tags: Box<[Box<str>]>,
    /// Bytes counted against the store's bound.
    pub(crate) size: u32,
}

/// How a request may use an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// Fresh for this request.
    Fresh,
    /// Stale, but the request accepts it (`max-stale`).
    Stale,
    /// Stale within `stale-while-revalidate`: serve it and refresh it behind.
    StaleWhileRevalidate,
    /// Needs a revalidation (or a new response).
    Revalidate,
}

impl Entry {
    /// Builds an entry from a response head and its whole body. `request_time` is when the
    /// request was sent, `response_time` when the response arrived.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        status: StatusCode,
        mut headers: HeaderMap,
        body: Bytes,
        vary: Box<[(HeaderName, Option<String>)]>,
        extra_key: Box<str>,
        request_time: SystemTime,
        response_time: SystemTime,
        defaults: Defaults,
    ) -> Self {
        strip_hop_by_hop(&mut headers);
        let directives = ResponseDirectives::parse(&headers);
        let lifetime = lifetime(status, &headers, &directives, response_time, defaults.ttl);
        let initial_age = initial_age(&headers, request_time, response_time);
        let tags = headers
            .get_all("surrogate-key")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(str::split_ascii_whitespace)
            .map(Box::from)
            .collect();
        let header_bytes: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        let size = body.len() + header_bytes + extra_key.len() + OBJECT_OVERHEAD;
        Self {
            status,
            headers,
            body,
            vary,
            extra_key,
            response_time,
            initial_age,
            lifetime,
            stale_while_revalidate: directives
                .stale_while_revalidate
                .unwrap_or(defaults.stale_while_revalidate),
            stale_if_error: directives.stale_if_error.unwrap_or(defaults.stale_if_error),
            directives,
            tags,
            size: u32::try_from(size).unwrap_or(u32::MAX),
        }
    }

    /// This entry updated by a `304 Not Modified` (RFC 9111 §4.3.4): the 304's fields replace
    /// the stored ones (but for framing fields and those describing the stored body, such as
    /// its `ETag`), and the age starts again.
    pub(crate) fn refreshed(
        &self,
        not_modified: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
        defaults: Defaults,
    ) -> Self {
        let mut headers = self.headers.clone();
        for name in not_modified.keys() {
            if matches!(
                name.as_str(),
                "content-length"
                    | "content-encoding"
                    | "transfer-encoding"
                    | "content-range"
                    | "content-md5"
                    | "etag"
            ) {
                continue;
            }
            headers.remove(name);
            for value in not_modified.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        Self::new(
            self.status,
            headers,
            self.body.clone(),
            self.vary.clone(),
            self.extra_key.clone(),
            request_time,
            response_time,
            defaults,
        )
    }

    /// `current_age` at `now`, in seconds.
    pub(crate) fn age(&self, now: SystemTime) -> u64 {
        let resident = now
            .duration_since(self.response_time)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        self.initial_age.saturating_add(resident).min(MAX_DELTA)
    }

    /// Seconds past its freshness lifetime at `now` (0 while fresh).
    pub(crate) fn staleness(&self, now: SystemTime) -> u64 {
        self.age(now).saturating_sub(self.lifetime)
    }

    /// How a request with directives `req` may use this entry at `now`.
    pub(crate) fn reuse(&self, req: &RequestDirectives, now: SystemTime) -> Reuse {
        let age = self.age(now);
        if self.directives.no_cache || req.no_cache {
            return Reuse::Revalidate;
        }
        if req.max_age.is_some_and(|max| age > max) {
            return Reuse::Revalidate;
        }
        if req
            .min_fresh
            .is_some_and(|min| self.lifetime < age.saturating_add(min))
        {
            return Reuse::Revalidate;
        }
        if age < self.lifetime {
            return Reuse::Fresh;
        }
        if self.directives.revalidate_when_stale() {
            return Reuse::Revalidate;
        }
        let staleness = age - self.lifetime;
        match req.max_stale {
            Some(None) => return Reuse::Stale,
            Some(Some(max)) if staleness <= max => return Reuse::Stale,
            _ => {}
        }
        if staleness < self.stale_while_revalidate {
            Reuse::StaleWhileRevalidate
        } else {
            Reuse::Revalidate
        }
    }

    /// True when this stale entry may stand in for a failed upstream at `now`.
    pub(crate) fn usable_on_error(&self, now: SystemTime) -> bool {
        !self.directives.revalidate_when_stale() && self.staleness(now) < self.stale_if_error
    }

    /// The validators to revalidate this entry with: its `ETag` and `Last-Modified`.
    pub(crate) fn validators(&self) -> (Option<&HeaderValue>, Option<&HeaderValue>) {
        (
            self.headers.get(header::ETAG),
            self.headers.get(header::LAST_MODIFIED),
        )
    }

    /// True when `request` has the header values this entry was selected by.
    pub(crate) fn matches(&self, request: &HeaderMap, extra_key: &str) -> bool {
        *self.extra_key == *extra_key
            && self
                .vary
                .iter()
                .all(|(name, value)| combined(request, name).as_deref() == value.as_deref())
    }

    /// The response a client gets from this entry at `now` (without a body for `HEAD`).
    pub(crate) fn response(&self, now: SystemTime, head: bool) -> Response<Body> {
        let body = if head {
            Body::Empty
        } else {
            Body::full(self.body.clone())
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers.clone();
        resp.headers_mut().remove(SURROGATE_CONTROL);
        resp.headers_mut()
            .insert(header::AGE, HeaderValue::from(self.age(now)));
        if head {
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        }
        resp
    }
}

/// The values of `name` in `headers` joined by `, `, with whitespace around each list member
/// removed; `None` when absent.
pub(crate) fn combined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for value in headers.get_all(name) {
        let text = String::from_utf8_lossy(value.as_bytes());
        for member in text.split(',') {
            let s = out.get_or_insert_with(String::new);
            if !s.is_empty() {
                s.push_str(", ");
            }
            s.push_str(member.trim());
        }
    }
    out
}

/// The `Vary` field names of a response (lowercase); `None` for `Vary: *`, which no request
/// can match.
pub(crate) fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for value in headers.get_all(header::VARY) {
        for member in value.to_str().unwrap_or("*").split(',') {
            let member = member.trim();
            if member == "*" {
                return None;
            }
            if member.is_empty() {
                continue;
            }
            match HeaderName::from_bytes(member.as_bytes()) {
                Ok(name) if !names.contains(&name) => names.push(name),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
    Some(names)
}

/// Removes the connection-specific fields (RFC 9110 §7.6.1) and those `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

fn date_of(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let value = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(value).ok()
}

fn seconds_between(earlier: SystemTime, later: SystemTime) -> u64 {
    later
        .duration_since(earlier)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// True when a response without explicit freshness may be given some (RFC 9111 §4.2.2):
/// a status cacheable by default, or `public`.
pub(crate) fn heuristic_allowed(status: StatusCode, d: &ResponseDirectives) -> bool {
    HEURISTIC_STATUSES.contains(&status.as_u16()) || d.public
}

/// The freshness lifetime of a response (RFC 9111 §4.2.1); heuristic freshness (or the
/// route's default) only where [`heuristic_allowed`].
pub(crate) fn lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    d: &ResponseDirectives,
    response_time: SystemTime,
    default_ttl: Option<u64>,
) -> u64 {
    if d.invalid_freshness {
        return 0;
    }
    if let Some(s) = d.s_maxage {
        return s;
    }
    if let Some(m) = d.max_age {
        return m;
    }
    let date = date_of(headers, &header::DATE).unwrap_or(response_time);
    if headers.contains_key(header::EXPIRES) {
        let mut all = headers.get_all(header::EXPIRES).iter();
        let one = all.next().and_then(|v| v.to_str().ok());
        if all.next().is_some() {
            return 0;
        }
        return one
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .map_or(0, |expires| seconds_between(date, expires));
    }
    if heuristic_allowed(status, d) {
        if let Some(ttl) = default_ttl {
            return ttl;
        }
        if let Some(modified) = date_of(headers, &header::LAST_MODIFIED) {
            return (seconds_between(modified, date) / 10).min(HEURISTIC_CAP);
        }
    }
    0
}

/// The `Age` value: `Some(0)` without one, `None` when it is not one delta-seconds value
/// (several, negative, fractional, with a suffix), which makes the response stale.
fn age_value(headers: &HeaderMap) -> Option<u64> {
    let mut all = headers.get_all(header::AGE).iter();
    let Some(first) = all.next() else {
        return Some(0);
    };
    if all.next().is_some() {
        return None;
    }
    let text = first.to_str().ok()?.trim();
    if text.starts_with('"') {
        return None;
    }
    delta_seconds(text)
}

/// `corrected_initial_age` (RFC 9111 §4.2.3), in seconds; [`MAX_DELTA`] for an invalid `Age`.
fn initial_age(headers: &HeaderMap, request_time: SystemTime, response_time: SystemTime) -> u64 {
    let Some(age_value) = age_value(headers) else {
        return MAX_DELTA;
    };
    let apparent =
        date_of(headers, &header::DATE).map_or(0, |date| seconds_between(date, response_time));
    let delay = seconds_between(request_time, response_time);
    apparent.max(age_value.saturating_add(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(headers: &[(&str, &str)], status: u16) -> Entry {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let now = SystemTime::now();
        Entry::new(
            StatusCode::from_u16(status).unwrap(),
            map,
            Bytes::from_static(b"body"),
            Box::new([]),
            "".into(),
            now,
            now,
            Defaults::default(),
        )
    }

    #[test]
    fn s_maxage_wins_over_max_age_and_expires() {
        let e = entry(
            &[
                ("cache-control", "max-age=10, s-maxage=20"),
                ("expires", "0"),
            ],
            200,
        );
        assert_eq!(e.lifetime, 20);
    }

    #[test]
    fn an_invalid_expires_is_already_stale() {
        assert_eq!(entry(&[("expires", "0")], 200).lifetime, 0);
    }

    #[test]
    fn heuristic_freshness_only_for_allowed_statuses_and_capped() {
        let old = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(100 * 24 * 3600));
        assert_eq!(
            entry(&[("last-modified", &old)], 200).lifetime,
            HEURISTIC_CAP
        );
        assert_eq!(entry(&[("last-modified", &old)], 302).lifetime, 0);
        assert_eq!(
            entry(&[("last-modified", &old), ("cache-control", "public")], 302).lifetime,
            HEURISTIC_CAP
        );
    }

    #[test]
    fn age_counts_the_upstream_age() {
        let e = entry(&[("age", "30"), ("cache-control", "max-age=60")], 200);
        assert_eq!(e.age(SystemTime::now()), 30);
        assert_eq!(
            e.reuse(&RequestDirectives::default(), SystemTime::now()),
            Reuse::Fresh
        );
        let old = RequestDirectives {
            max_age: Some(10),
            ..RequestDirectives::default()
        };
        assert_eq!(e.reuse(&old, SystemTime::now()), Reuse::Revalidate);
    }

    #[test]
    fn an_invalid_or_repeated_age_makes_the_response_stale() {
        for age in ["abc", "-1", "1.5", "7200;x=1", "0, 0"] {
            let e = entry(&[("age", age), ("cache-control", "max-age=3600")], 200);
            assert_eq!(
                e.reuse(&RequestDirectives::default(), SystemTime::now()),
                Reuse::Revalidate,
                "{age}"
            );
        }
        let twice = entry(
            &[
                ("age", "0"),
                ("age", "0"),
                ("cache-control", "max-age=3600"),
            ],
            200,
        );
        assert!(twice.staleness(SystemTime::now()) > 0);
    }

    #[test]
    fn must_revalidate_refuses_max_stale() {
        let e = entry(&[("cache-control", "max-age=0, must-revalidate")], 200);
        let any = RequestDirectives {
            max_stale: Some(None),
            ..RequestDirectives::default()
        };
        assert_eq!(e.reuse(&any, SystemTime::now()), Reuse::Revalidate);
        let lax = entry(&[("cache-control", "max-age=0")], 200);
        assert_eq!(lax.reuse(&any, SystemTime::now()), Reuse::Stale);
    }

    #[test]
    fn vary_star_matches_nothing_and_names_are_deduplicated() {
        let mut h = HeaderMap::new();
        h.append(header::VARY, HeaderValue::from_static("Accept, accept"));
        assert_eq!(vary_names(&h).unwrap().len(), 1);
        h.append(header::VARY, HeaderValue::from_static("*"));
        assert!(vary_names(&h).is_none());
    }

    #[test]
    fn hop_by_hop_fields_are_not_stored() {
        let e = entry(
            &[
                ("connection", "x-private"),
                ("x-private", "1"),
                ("x-kept", "1"),
            ],
            200,
        );
        assert!(e.headers.get("x-private").is_none());
        assert!(e.headers.get("x-kept").is_some());
    }
}

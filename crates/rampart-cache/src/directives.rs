//! `Cache-Control` as a shared cache reads it (RFC 9111 §5.2): the response directives that
//! decide storing and freshness, and the request directives that decide reuse. Parsing never
//! fails: unknown directives are ignored, a repeated directive keeps its first value, and a
//! freshness directive whose argument is not a number makes the response stale (§4.2.1).

use http::HeaderMap;
use http::header::{self, HeaderValue};

/// The response field with directives for gateway caches only (W3C Edge Architecture); it is
/// not passed on to clients.
pub(crate) const SURROGATE_CONTROL: &str = "surrogate-control";

/// The largest delta-seconds value kept; larger ones are read as this (RFC 9111 §1.2.2).
pub(crate) const MAX_DELTA: u64 = 1 << 31;

/// A response's `Cache-Control`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ResponseDirectives {
    pub(crate) no_store: bool,
    /// `no-cache`, qualified or not: every reuse needs a revalidation.
    pub(crate) no_cache: bool,
    /// `private`, qualified or not: a shared cache does not store it.
    pub(crate) private: bool,
    pub(crate) public: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) proxy_revalidate: bool,
    /// `must-understand`: store only statuses whose caching rules are known.
    pub(crate) must_understand: bool,
    pub(crate) max_age: Option<u64>,
    pub(crate) s_maxage: Option<u64>,
    pub(crate) stale_while_revalidate: Option<u64>,
    pub(crate) stale_if_error: Option<u64>,
    /// A freshness directive had an argument that is not delta-seconds.
    pub(crate) invalid_freshness: bool,
}

impl ResponseDirectives {
    /// Reads every `Surrogate-Control` field of `headers`, which speaks to gateway caches and
    /// takes precedence, or else every `Cache-Control` field (and `Pragma: no-cache` when
    /// there is none).
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut d = Self::default();
        let mut any = false;
        let field = if headers.contains_key(SURROGATE_CONTROL) {
            SURROGATE_CONTROL
        } else {
            header::CACHE_CONTROL.as_str()
        };
        for value in headers.get_all(field) {
            any = true;
            for (name, arg) in directives(value) {
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => d.no_store = true,
                    "no-cache" => d.no_cache = true,
                    "private" => d.private = true,
                    "public" => d.public = true,
                    "must-revalidate" => d.must_revalidate = true,
                    "proxy-revalidate" => d.proxy_revalidate = true,
                    "must-understand" => d.must_understand = true,
                    "max-age" => first(&mut d.max_age, arg, &mut d.invalid_freshness),
                    "s-maxage" => first(&mut d.s_maxage, arg, &mut d.invalid_freshness),
                    "stale-while-revalidate" => {
                        let mut ignored = false;
                        first(&mut d.stale_while_revalidate, arg, &mut ignored);
                    }
                    "stale-if-error" => {
                        let mut ignored = false;
                        first(&mut d.stale_if_error, arg, &mut ignored);
                    }
                    _ => {}
                }
            }
        }
        if !any && pragma_no_cache(headers) {
            d.no_cache = true;
        }
        d
    }

    /// A stale response may not be served without revalidation (`must-revalidate`,
    /// `proxy-revalidate`, or `s-maxage`, which implies it for a shared cache).
    pub(crate) const fn revalidate_when_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some()
    }
}

/// A request's `Cache-Control`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RequestDirectives {
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) max_age: Option<u64>,
    /// `max-stale`: `Some(None)` accepts any staleness, `Some(Some(n))` up to `n` seconds.
    pub(crate) max_stale: Option<Option<u64>>,
    pub(crate) min_fresh: Option<u64>,
    pub(crate) only_if_cached: bool,
}

impl RequestDirectives {
    /// Reads every `Cache-Control` field of `headers` (and `Pragma: no-cache` when there is
    /// none).
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut d = Self::default();
        let mut any = false;
        let mut invalid = false;
        for value in headers.get_all(header::CACHE_CONTROL) {
            any = true;
            for (name, arg) in directives(value) {
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => d.no_store = true,
                    "no-cache" => d.no_cache = true,
                    "only-if-cached" => d.only_if_cached = true,
                    "max-age" => first(&mut d.max_age, arg, &mut invalid),
                    "min-fresh" => first(&mut d.min_fresh, arg, &mut invalid),
                    "max-stale" if d.max_stale.is_none() => {
                        d.max_stale = Some(arg.and_then(delta_seconds));
                    }
                    _ => {}
                }
            }
        }
        if !any && pragma_no_cache(headers) {
            d.no_cache = true;
        }
        d
    }
}

/// Keeps the first value of a directive; an argument that is not delta-seconds sets `invalid`.
fn first(slot: &mut Option<u64>, arg: Option<&str>, invalid: &mut bool) {
    if slot.is_some() {
        return;
    }
    match arg.and_then(delta_seconds) {
        Some(n) => *slot = Some(n),
        None => *invalid = true,
    }
}

/// `delta-seconds` (digits only, quoted or not), capped at [`MAX_DELTA`].
pub(crate) fn delta_seconds(text: &str) -> Option<u64> {
    let text = text.trim_matches('"');
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().map_or(MAX_DELTA, |n| n.min(MAX_DELTA)))
}

fn pragma_no_cache(headers: &HeaderMap) -> bool {
    headers.get_all(header::PRAGMA).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("no-cache"))
        })
    })
}

/// The directives of one field value: `name` or `name=arg` separated by commas, where an
/// argument may be a quoted string holding commas. Values that are not text are skipped.
fn directives(value: &HeaderValue) -> impl Iterator<Item = (&str, Option<&str>)> {
    let text = value.to_str().unwrap_or("");
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().filter_map(|part| {
        let part = part.trim();
        if part.is_empty() {
            return None;
        }
        Some(match part.split_once('=') {
            Some((name, arg)) => (name.trim(), Some(arg.trim())),
            None => (part, None),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(value: &str) -> ResponseDirectives {
        let mut h = HeaderMap::new();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
        ResponseDirectives::parse(&h)
    }

    #[test]
    fn response_directives_parse_in_any_case_with_quotes() {
        let d = response(r#"Public, MAX-AGE="60", s-maxage=30, no-cache="set-cookie, x""#);
        assert!(d.public && d.no_cache);
        assert_eq!((d.max_age, d.s_maxage), (Some(60), Some(30)));
        assert!(!d.invalid_freshness);
    }

    #[test]
    fn malformed_values_make_the_response_stale_and_never_fail() {
        let d = response("max-age=abc, ,,=, max-age=10, stale-if-error=x");
        assert!(d.invalid_freshness);
        assert_eq!(d.max_age, Some(10));
        assert_eq!(d.stale_if_error, None);
        assert_eq!(
            response("max-age=99999999999999999999").max_age,
            Some(MAX_DELTA)
        );
        assert_eq!(response("max-age=-1").max_age, None);
    }

    #[test]
    fn surrogate_control_takes_precedence() {
        let mut h = HeaderMap::new();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(SURROGATE_CONTROL, HeaderValue::from_static("max-age=60"));
        let d = ResponseDirectives::parse(&h);
        assert!(!d.no_store);
        assert_eq!(d.max_age, Some(60));
    }

    #[test]
    fn the_first_of_repeated_directives_wins() {
        assert_eq!(response("max-age=5, max-age=100").max_age, Some(5));
    }

    #[test]
    fn pragma_counts_only_without_cache_control() {
        let mut h = HeaderMap::new();
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        assert!(RequestDirectives::parse(&h).no_cache);
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        assert!(!RequestDirectives::parse(&h).no_cache);
    }

    #[test]
    fn max_stale_with_and_without_a_value() {
        let mut h = HeaderMap::new();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-stale"));
        assert_eq!(RequestDirectives::parse(&h).max_stale, Some(None));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-stale=7"),
        );
        assert_eq!(RequestDirectives::parse(&h).max_stale, Some(Some(7)));
    }
}

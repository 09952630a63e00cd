//! Host patterns from config and the request's host, normalized for comparison: lower case, no
//! port, no trailing dot.

use std::fmt;

/// One host pattern of a route, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum HostPattern {
    /// `api.example.com`: this name exactly.
    Exact(String),
    /// `*.example.com`, stored as the suffix `example.com`: one or more labels before it.
    Wildcard(String),
    /// `*`: any host, and requests without one.
    Any,
}

impl HostPattern {
    /// Parses a pattern as written in config (already validated; never panics on bad input).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        rampart_config::syntax::check_host_pattern(text)?;
        if text == "*" {
            return Ok(Self::Any);
        }
        let lower = text.to_ascii_lowercase();
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        match name.strip_prefix("*.") {
            Some(suffix) => Ok(Self::Wildcard(suffix.to_owned())),
            None => Ok(Self::Exact(name.to_owned())),
        }
    }

    /// Number of labels of a wildcard's fixed part (`*.a.example.com` → 3).
    pub(crate) fn wildcard_labels(suffix: &str) -> usize {
        suffix.split('.').count()
    }

    /// Whether `host` (normalized, see [`normalize`]) matches.
    pub(crate) fn matches(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (Self::Any, _) => true,
            (_, None) => false,
            (Self::Exact(name), Some(h)) => name == h,
            (Self::Wildcard(suffix), Some(h)) => {
                h.len() > suffix.len() + 1
                    && h.ends_with(suffix.as_str())
                    && h.as_bytes()[h.len() - suffix.len() - 1] == b'.'
            }
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Wildcard(suffix) => write!(f, "*.{suffix}"),
            Self::Any => f.write_str("*"),
        }
    }
}

/// Size of the stack buffer used to lower-case a request host (longer hosts allocate; a valid
/// DNS name has at most 253 characters).
const STACK_HOST: usize = 256;

/// A request host, lower-cased without allocating when it fits on the stack.
#[allow(clippy::large_enum_variant, reason = "the stack buffer is the point: it avoids a heap allocation per request")]
pub(crate) enum HostBuf<'a> {
    /// The request's own text (already lower case).
    Borrowed(&'a str),
    /// Lower-cased into a stack buffer.
    Stack([u8; STACK_HOST], usize),
    /// Lower-cased on the heap (very long hosts only).
    Heap(String),
}

impl HostBuf<'_> {
    /// The normalized host.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Borrowed(s) => s,
            // Lower-casing ASCII letters keeps UTF-8 valid, so this never fails; an empty host
            // (which matches only any-host routes) is the safe answer if it ever did.
            Self::Stack(buf, len) => std::str::from_utf8(&buf[..*len]).unwrap_or(""),
            Self::Heap(s) => s,
        }
    }
}

/// Strips user info, port and one trailing dot from a `Host` / `:authority` value and lower-cases
/// it. Returns `None` for an empty host.
pub(crate) fn normalize(raw: &str) -> Option<HostBuf<'_>> {
    let host = strip_port(raw.rsplit_once('@').map_or(raw, |(_, h)| h));
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(HostBuf::Borrowed(host));
    }
    if host.len() <= STACK_HOST {
        let mut buf = [0u8; STACK_HOST];
        buf[..host.len()].copy_from_slice(host.as_bytes());
        buf[..host.len()].make_ascii_lowercase();
        return Some(HostBuf::Stack(buf, host.len()));
    }
    Some(HostBuf::Heap(host.to_ascii_lowercase()))
}

/// `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`; anything else unchanged.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// The suffixes of `host` after each dot, longest first: `a.b.c` → `b.c`, `c` (a leading dot
/// starts no suffix: the label before it would be empty).
pub(crate) fn dot_suffixes(host: &str) -> impl Iterator<Item = &str> {
    host.match_indices('.').filter(|(i, _)| *i > 0).map(move |(i, _)| &host[i + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Option<String> {
        normalize(s).map(|h| h.as_str().to_owned())
    }

    #[test]
    fn normalizing_strips_port_case_and_trailing_dot() {
        assert_eq!(norm("API.Example.COM:8443").as_deref(), Some("api.example.com"));
        assert_eq!(norm("api.example.com.").as_deref(), Some("api.example.com"));
        assert_eq!(norm("api.example.com.:80").as_deref(), Some("api.example.com"));
        assert_eq!(norm("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(norm("user@Host:1").as_deref(), Some("host"));
        assert_eq!(norm("127.0.0.1:80").as_deref(), Some("127.0.0.1"));
        assert_eq!(norm(""), None);
        assert_eq!(norm(":80"), None);
    }

    #[test]
    fn lowercase_hosts_are_borrowed_and_long_mixed_case_hosts_still_normalize() {
        assert!(matches!(normalize("api.example.com"), Some(HostBuf::Borrowed(_))));
        assert!(matches!(normalize("Api.example.com"), Some(HostBuf::Stack(..))));
        let long = format!("{}.Example.com", "A".repeat(300));
        let h = normalize(&long).map(|h| h.as_str().to_owned());
        assert_eq!(h, Some(format!("{}.example.com", "a".repeat(300))));
    }

    #[test]
    fn patterns_parse_and_normalize() {
        assert_eq!(HostPattern::parse("*"), Ok(HostPattern::Any));
        assert_eq!(HostPattern::parse("API.example.com."), Ok(HostPattern::Exact("api.example.com".into())));
        assert_eq!(HostPattern::parse("*.Example.com"), Ok(HostPattern::Wildcard("example.com".into())));
        assert!(HostPattern::parse("a.*.com").is_err());
        assert!(HostPattern::parse("example.com:80").is_err());
    }

    #[test]
    fn wildcard_needs_at_least_one_label_before_the_suffix() {
        let w = HostPattern::Wildcard("example.com".into());
        assert!(w.matches(Some("a.example.com")));
        assert!(w.matches(Some("a.b.example.com")));
        assert!(!w.matches(Some("example.com")));
        assert!(!w.matches(Some(".example.com")));
        assert!(!w.matches(Some("aexample.com")));
        assert!(!w.matches(None));
    }

    #[test]
    fn dot_suffixes_walk_from_longest_to_shortest() {
        let s: Vec<&str> = dot_suffixes("a.b.example.com").collect();
        assert_eq!(s, ["b.example.com", "example.com", "com"]);
        assert_eq!(dot_suffixes("localhost").count(), 0);
        let s: Vec<&str> = dot_suffixes(".example.com").collect();
        assert_eq!(s, ["com"]);
    }
}

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

/// Calls `f` with the request host normalized: port and one trailing dot removed, lower-cased;
/// `None` when empty. Lower-case hosts are passed through as they are; others are lower-cased in
/// a stack buffer (on the heap only beyond 256 bytes). User info (`user@host`) is not valid in a
/// `Host` header or `:authority` and is not removed: such a host matches only any-host routes.
#[inline]
pub(crate) fn with_normalized<R>(raw: &str, f: impl FnOnce(Option<&str>) -> R) -> R {
    let host = strip(raw);
    if host.is_empty() {
        return f(None);
    }
    // No early exit, so the compiler can vectorize the scan.
    if !host
        .bytes()
        .fold(false, |upper, b| upper | b.is_ascii_uppercase())
    {
        return f(Some(host));
    }
    if host.len() <= STACK_HOST {
        let mut buf = [0u8; STACK_HOST];
        let lower = &mut buf[..host.len()];
        lower.copy_from_slice(host.as_bytes());
        lower.make_ascii_lowercase();
        // Lower-casing ASCII letters keeps UTF-8 valid, so this never fails; no host (which
        // matches only any-host routes) is the safe answer if it ever did.
        return f(std::str::from_utf8(lower).ok());
    }
    f(Some(&host.to_ascii_lowercase()))
}

/// Strips the port and one trailing dot: `Example.com.:8080` → `Example.com`, `[::1]:80` →
/// `[::1]`. Looks only at the end of the text in the common case.
#[inline]
fn strip(raw: &str) -> &str {
    let bytes = raw.as_bytes();
    let digits = bytes
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let colon = bytes.len() - digits;
    let host = match colon.checked_sub(1) {
        Some(at) if bytes.get(at) == Some(&b':') => {
            let name = &raw[..at];
            // A bare IPv6 address (`fe80::1`, not valid in a Host header) has no port to strip.
            if name.ends_with(']') || !name.contains(':') {
                name
            } else {
                raw
            }
        }
        _ => raw,
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// Bit for wildcard suffixes of `labels` labels in a [`for_each_wildcard_suffix`] mask (all
/// counts from 63 up share the last bit).
pub(crate) const fn label_bit(labels: usize) -> u64 {
    1 << if labels < 63 { labels } else { 63 }
}

/// Calls `f` with each suffix of `host` after a dot, longest first (`a.b.c` → `b.c`, `c`),
/// skipping suffixes whose label count is not in `mask` (see [`label_bit`]). A leading dot
/// starts no suffix: the label before it would be empty.
#[inline]
pub(crate) fn for_each_wildcard_suffix(host: &str, mask: u64, mut f: impl FnMut(&str)) {
    let bytes = host.as_bytes();
    let mut labels = bytes.iter().filter(|&&b| b == b'.').count();
    // Bits 1..=labels: the label counts a suffix of this host can have.
    let possible = if labels >= 63 {
        u64::MAX
    } else {
        (1u64 << (labels + 1)) - 2
    };
    if mask & possible == 0 {
        return;
    }
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'.' {
            if i > 0 && mask & label_bit(labels) != 0 {
                f(&host[i + 1..]);
            }
            labels = labels.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Option<String> {
        with_normalized(s, |h| h.map(str::to_owned))
    }

    #[test]
    fn normalizing_strips_port_case_and_trailing_dot() {
        assert_eq!(
            norm("API.Example.COM:8443").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(norm("api.example.com.").as_deref(), Some("api.example.com"));
        assert_eq!(
            norm("api.example.com.:80").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(norm("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(
            norm("user@Host:1").as_deref(),
            Some("user@host"),
            "user info is not a host"
        );
        assert_eq!(norm("host:").as_deref(), Some("host"), "empty port");
        assert_eq!(norm("127.0.0.1:80").as_deref(), Some("127.0.0.1"));
        assert_eq!(norm(""), None);
        assert_eq!(norm(":80"), None);
        assert_eq!(
            norm("host:8x").as_deref(),
            Some("host:8x"),
            "not a port: left alone"
        );
        assert_eq!(
            norm("fe80::1").as_deref(),
            Some("fe80::1"),
            "bare v6: left alone"
        );
    }

    #[test]
    fn lowercase_hosts_are_passed_through_and_long_mixed_case_hosts_still_normalize() {
        let raw = "api.example.com:80";
        let borrowed = with_normalized(raw, |h| h.map(|h| std::ptr::eq(h.as_ptr(), raw.as_ptr())));
        assert_eq!(
            borrowed,
            Some(true),
            "an already lower-case host is not copied"
        );
        let long = format!("{}.Example.com", "A".repeat(300));
        assert_eq!(
            norm(&long),
            Some(format!("{}.example.com", "a".repeat(300)))
        );
        let fits = format!("{}.COM", "B".repeat(250));
        assert_eq!(norm(&fits), Some(format!("{}.com", "b".repeat(250))));
    }

    #[test]
    fn patterns_parse_and_normalize() {
        assert_eq!(HostPattern::parse("*"), Ok(HostPattern::Any));
        assert_eq!(
            HostPattern::parse("API.example.com."),
            Ok(HostPattern::Exact("api.example.com".into()))
        );
        assert_eq!(
            HostPattern::parse("*.Example.com"),
            Ok(HostPattern::Wildcard("example.com".into()))
        );
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

    fn suffixes(host: &str, mask: u64) -> Vec<String> {
        let mut v = Vec::new();
        for_each_wildcard_suffix(host, mask, |s| v.push(s.to_owned()));
        v
    }

    #[test]
    fn wildcard_suffixes_walk_from_longest_to_shortest() {
        assert_eq!(
            suffixes("a.b.example.com", u64::MAX),
            ["b.example.com", "example.com", "com"]
        );
        assert!(suffixes("localhost", u64::MAX).is_empty());
        assert_eq!(suffixes(".example.com", u64::MAX), ["com"]);
    }

    #[test]
    fn wildcard_suffixes_skip_label_counts_no_pattern_has() {
        assert_eq!(suffixes("a.b.example.com", label_bit(2)), ["example.com"]);
        assert_eq!(
            suffixes("a.b.example.com", label_bit(3) | label_bit(1)),
            ["b.example.com", "com"]
        );
        let deep = format!("x.{}", vec!["l"; 70].join("."));
        // Suffixes of 70 down to 63 labels all share the last bit.
        assert_eq!(suffixes(&deep, label_bit(70)).len(), 8);
    }
}

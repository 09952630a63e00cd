//! Syntax checks for the small languages inside config strings: names, tokens, host patterns,
//! paths, path templates, upstream targets.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// An upstream target as written in config, after parsing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An IP literal and port; no DNS needed.
    Addr(SocketAddr),
    /// A DNS name and port, resolved when connecting.
    Host(String, u16),
    /// A Unix domain socket (`unix:/run/app.sock`).
    Unix(PathBuf),
}

/// True for RFC 9110 tokens (method names, header names).
#[must_use]
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// True for names of listeners, upstreams and routes: 1–64 of `[A-Za-z0-9_.-]`.
#[must_use]
pub fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// True for header values without control characters (tab allowed).
#[must_use]
pub fn is_header_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Longest Unix socket path (`sun_path` holds 108 bytes with the terminating NUL).
const MAX_UNIX_PATH: usize = 107;

/// Parses `host:port`, `1.2.3.4:port`, `[::1]:port` or `unix:/absolute/path`.
///
/// # Errors
/// Explains what is wrong with `text`.
pub fn parse_target(text: &str) -> Result<Target, String> {
    let expected = || {
        format!(
            "invalid target {text:?}: expected \"host:port\", \"10.0.0.1:8080\" or \"[::1]:8080\""
        )
    };
    if let Some(path) = text.strip_prefix("unix:") {
        if !path.starts_with('/') || path.len() > MAX_UNIX_PATH || path.contains('\0') {
            return Err(format!(
                "invalid target {text:?}: a Unix socket is \"unix:/absolute/path\" of at most {MAX_UNIX_PATH} bytes"
            ));
        }
        return Ok(Target::Unix(PathBuf::from(path)));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return if addr.port() == 0 {
            Err(format!("invalid target {text:?}: port 0"))
        } else {
            Ok(Target::Addr(addr))
        };
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(expected)?;
    let port: u16 = port.parse().map_err(|_| expected())?;
    if port == 0 {
        return Err(format!("invalid target {text:?}: port 0"));
    }
    if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
        return Err(expected());
    }
    check_dns_name(host).map_err(|m| format!("invalid target {text:?}: {m}"))?;
    Ok(Target::Host(host.to_ascii_lowercase(), port))
}

/// A DNS server as `ip` (port 53) or `ip:port` (`[v6]:port` for IPv6 with a port).
#[must_use]
pub fn parse_dns_server(text: &str) -> Option<SocketAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    text.parse::<SocketAddr>().ok().filter(|a| a.port() != 0)
}

/// Checks a DNS name (labels of letters, digits, `-` and `_`; an optional final dot).
///
/// # Errors
/// Explains what is wrong.
pub fn check_dns_name(host: &str) -> Result<(), String> {
    if host.is_empty() || host.len() > 253 {
        return Err("a host name must have 1 to 253 characters".to_owned());
    }
    for label in host.trim_end_matches('.').split('.') {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("invalid host name label {label:?}"));
        }
    }
    Ok(())
}

/// Checks a route host pattern: `example.com`, `*.example.com`, or `*` (any host).
///
/// # Errors
/// Explains what is wrong.
pub fn check_host_pattern(pattern: &str) -> Result<(), String> {
    if pattern == "*" {
        return Ok(());
    }
    if pattern.contains(':') {
        return Err(format!(
            "invalid host {pattern:?}: hosts are matched without the port; remove it"
        ));
    }
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    if name.contains('*') {
        return Err(format!(
            "invalid host {pattern:?}: `*` is allowed only as the whole first label, as in \"*.example.com\""
        ));
    }
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    check_dns_name(name).map_err(|m| format!("invalid host {pattern:?}: {m}"))
}

/// Checks an `authority` (`host` or `host:port`) used as a rewritten Host header.
///
/// # Errors
/// Explains what is wrong.
pub fn check_authority(text: &str) -> Result<(), String> {
    if text.parse::<SocketAddr>().is_ok() || text.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let host = match text.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => text,
    };
    check_dns_name(host).map_err(|m| format!("invalid host {text:?}: {m}"))
}

/// Checks a literal path: starts with `/`, no spaces, `?`, `#` or control characters.
///
/// # Errors
/// Explains what is wrong.
pub fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("invalid path {path:?}: must start with `/`"));
    }
    if let Some(c) = path
        .chars()
        .find(|c| c.is_control() || matches!(c, ' ' | '?' | '#'))
    {
        return Err(format!(
            "invalid path {path:?}: {c:?} is not allowed in a path"
        ));
    }
    Ok(())
}

/// Checks a path template: segments are literals, `{name}`, or a final `{*name}`.
///
/// # Errors
/// Explains what is wrong.
pub fn check_template(template: &str) -> Result<(), String> {
    check_path(template)?;
    let segments: Vec<&str> = template[1..].split('/').collect();
    let mut names = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            if seg.contains(['{', '}']) {
                return Err(format!(
                    "invalid template {template:?}: `{{…}}` must be a whole segment, as in \"/users/{{id}}\""
                ));
            }
            continue;
        };
        let (catch_all, name) = match inner.strip_prefix('*') {
            Some(n) => (true, n),
            None => (false, inner),
        };
        if catch_all && i + 1 != segments.len() {
            return Err(format!(
                "invalid template {template:?}: `{{*{name}}}` must be the last segment"
            ));
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "invalid template {template:?}: parameter names use letters, digits and `_`"
            ));
        }
        if names.contains(&name) {
            return Err(format!(
                "invalid template {template:?}: parameter `{name}` appears twice"
            ));
        }
        names.push(name);
    }
    Ok(())
}

/// Checks that `$1`/`${name}` references in a regex replacement exist in the pattern.
///
/// # Errors
/// Names the first reference to a capture group the pattern does not have.
pub fn check_capture_refs(pattern: &regex::Regex, replacement: &str) -> Result<(), String> {
    let names: Vec<&str> = pattern.capture_names().flatten().collect();
    let groups = pattern.captures_len();
    let mut rest = replacement;
    while let Some(pos) = rest.find('$') {
        rest = &rest[pos + 1..];
        if let Some(tail) = rest.strip_prefix('$') {
            rest = tail;
            continue;
        }
        let (name, tail) = match rest.strip_prefix('{') {
            Some(t) => match t.find('}') {
                Some(end) => (&t[..end], &t[end + 1..]),
                None => return Err(format!("unterminated `${{` in {replacement:?}")),
            },
            None => {
                let n = rest
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count();
                (&rest[..n], &rest[n..])
            }
        };
        rest = tail;
        let known = match name.parse::<usize>() {
            Ok(i) => i < groups,
            Err(_) => names.contains(&name),
        };
        if !known && !name.is_empty() {
            return Err(format!(
                "replacement refers to capture `{name}`, which the pattern does not have"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_accept_ips_names_and_bracketed_v6() {
        assert_eq!(
            parse_target("127.0.0.1:80"),
            Ok(Target::Addr("127.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(
            parse_target("[::1]:8080"),
            Ok(Target::Addr("[::1]:8080".parse().unwrap()))
        );
        assert_eq!(
            parse_target("App.internal:3000"),
            Ok(Target::Host("app.internal".into(), 3000))
        );
    }

    #[test]
    fn unix_socket_targets_need_an_absolute_short_path() {
        assert_eq!(
            parse_target("unix:/run/app.sock"),
            Ok(Target::Unix(PathBuf::from("/run/app.sock")))
        );
        for bad in ["unix:", "unix:run/app.sock", "unix:/a\0b"] {
            assert!(parse_target(bad).is_err(), "{bad:?}");
        }
        assert!(parse_target(&format!("unix:/{}", "a".repeat(MAX_UNIX_PATH))).is_err());
    }

    #[test]
    fn targets_without_port_or_with_bad_host_are_rejected() {
        for bad in [
            "localhost",
            "host:0",
            "host:99999",
            ":80",
            "bad host:80",
            "::1:80",
            "-x.com:80",
            "http://x:80",
        ] {
            assert!(parse_target(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn host_patterns() {
        for ok in [
            "example.com",
            "*.example.com",
            "*",
            "127.0.0.1",
            "a_b.internal",
        ] {
            assert!(check_host_pattern(ok).is_ok(), "{ok:?}");
        }
        for bad in ["ex*ample.com", "*.*.com", "example.com:80", "", "a..b"] {
            assert!(check_host_pattern(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn templates() {
        assert!(check_template("/users/{id}/posts/{post_id}").is_ok());
        assert!(check_template("/files/{*rest}").is_ok());
        assert!(check_template("/{*rest}/x").is_err());
        assert!(check_template("/users/{id}{x}").is_err());
        assert!(check_template("/users/{}").is_err());
        assert!(check_template("/a/{id}/b/{id}").is_err());
        assert!(check_template("users").is_err());
    }

    #[test]
    fn paths() {
        assert!(check_path("/api/v1").is_ok());
        assert!(check_path("api").is_err());
        assert!(check_path("/a b").is_err());
        assert!(check_path("/a?b").is_err());
    }

    #[test]
    fn capture_references_must_exist() {
        let re = regex::Regex::new("^/old/(?P<rest>.*)$").unwrap();
        assert!(check_capture_refs(&re, "/new/$1").is_ok());
        assert!(check_capture_refs(&re, "/new/${rest}").is_ok());
        assert!(check_capture_refs(&re, "/cost/$$5").is_ok());
        assert!(check_capture_refs(&re, "/new/$2").is_err());
        assert!(check_capture_refs(&re, "/new/${nope}").is_err());
    }

    #[test]
    fn tokens_and_names() {
        assert!(is_token("GET") && is_token("x-custom-header"));
        assert!(!is_token("bad header") && !is_token(""));
        assert!(is_name("api-v1.main_route") && !is_name("has space") && !is_name(""));
        assert!(is_header_value("ok value\t") && !is_header_value("bad\r\nvalue"));
    }
}

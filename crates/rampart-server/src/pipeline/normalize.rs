//! Request path normalization, done once before routing so that routes, rewrites, logs and the
//! upstream all see the same path (`/api/%2e%2e/admin` must not slip past a `/api` route).
//!
//! Rules: percent-encoded unreserved characters are decoded, other percent-encodings get
//! uppercase hex (`%2f` → `%2F`, which stays encoded and never becomes a separator); `.` and
//! `..` segments are resolved (RFC 3986 §5.2.4); a path that climbs above the root, an invalid
//! percent-encoding and an encoded NUL are refused.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathError {
    /// `%` not followed by two hex digits.
    BadPercentEncoding,
    /// `%00`.
    EncodedNul,
    /// More `..` segments than there are segments to remove.
    AboveRoot,
    /// The path does not start with `/`.
    NotAbsolute,
}

impl PathError {
    /// Detail for logs.
    pub(crate) const fn detail(self) -> &'static str {
        match self {
            Self::BadPercentEncoding => "invalid percent-encoding in path",
            Self::EncodedNul => "encoded NUL in path",
            Self::AboveRoot => "path climbs above the root",
            Self::NotAbsolute => "path is not absolute",
        }
    }
}

/// The normalized form of `path` (borrowed when it is already normal, the common case).
pub(crate) fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return if path == "*" {
            Ok(Cow::Borrowed(path))
        } else {
            Err(PathError::NotAbsolute)
        };
    }
    let needs_decode = path.contains('%');
    let needs_dots = has_dot_segment(path);
    if !needs_decode && !needs_dots {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = if needs_decode {
        decode_unreserved(path)?
    } else {
        path.to_owned()
    };
    if !has_dot_segment(&decoded) {
        return Ok(Cow::Owned(decoded));
    }
    remove_dot_segments(&decoded).map(Cow::Owned)
}

/// True when a segment of `path` (which starts with `/`) is `.` or `..`. Runs on every
/// request: it looks only at the dots memchr finds that start a segment, not at every segment.
fn has_dot_segment(path: &str) -> bool {
    let bytes = path.as_bytes();
    memchr::memchr_iter(b'.', bytes).any(|at| {
        at > 0
            && bytes[at - 1] == b'/'
            && matches!(
                &bytes[at + 1..],
                [] | [b'/', ..] | [b'.'] | [b'.', b'/', ..]
            )
    })
}

fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            // Copied byte by byte: multi-byte UTF-8 sequences pass through intact.
            out.push(b);
            i += 1;
            continue;
        }
        let hi = bytes
            .get(i + 1)
            .and_then(|c| hex(*c))
            .ok_or(PathError::BadPercentEncoding)?;
        let lo = bytes
            .get(i + 2)
            .and_then(|c| hex(*c))
            .ok_or(PathError::BadPercentEncoding)?;
        let value = hi << 4 | lo;
        if value == 0 {
            return Err(PathError::EncodedNul);
        }
        if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
            out.push(value);
        } else {
            out.extend_from_slice(&[
                b'%',
                b"0123456789ABCDEF"[usize::from(hi)],
                b"0123456789ABCDEF"[usize::from(lo)],
            ]);
        }
        i += 3;
    }
    String::from_utf8(out).map_err(|_| PathError::BadPercentEncoding)
}

const fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn remove_dot_segments(path: &str) -> Result<String, PathError> {
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path[1..].split('/').collect();
    let last = parts.len() - 1;
    let mut trailing_slash = false;
    for (i, seg) in parts.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                segments.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = i == last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize_path(p).map(Cow::into_owned)
    }

    #[test]
    fn normal_paths_are_borrowed_unchanged() {
        assert!(matches!(
            normalize_path("/api/v1/users"),
            Ok(Cow::Borrowed("/api/v1/users"))
        ));
        assert!(matches!(normalize_path("/"), Ok(Cow::Borrowed("/"))));
        assert!(matches!(
            normalize_path("/a/.well-known/x"),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn dot_segments_are_resolved() {
        assert_eq!(norm("/a/./b"), Ok("/a/b".to_owned()));
        assert_eq!(norm("/a/b/../c"), Ok("/a/c".to_owned()));
        assert_eq!(norm("/a/b/.."), Ok("/a/".to_owned()));
        assert_eq!(norm("/a/."), Ok("/a/".to_owned()));
        assert_eq!(norm("/a/.."), Ok("/".to_owned()));
    }

    #[test]
    fn encoded_dots_are_resolved_too() {
        assert_eq!(norm("/api/%2e%2e/admin"), Ok("/admin".to_owned()));
        assert_eq!(norm("/api/%2E/x"), Ok("/api/x".to_owned()));
    }

    #[test]
    fn climbing_above_root_is_refused() {
        assert_eq!(norm("/.."), Err(PathError::AboveRoot));
        assert_eq!(norm("/a/../../etc/passwd"), Err(PathError::AboveRoot));
        assert_eq!(norm("/%2e%2e/x"), Err(PathError::AboveRoot));
    }

    #[test]
    fn unreserved_characters_are_decoded_and_reserved_stay_encoded() {
        assert_eq!(norm("/%7Euser/%41bc"), Ok("/~user/Abc".to_owned()));
        assert_eq!(norm("/a%2fb"), Ok("/a%2Fb".to_owned()));
        assert_eq!(norm("/a%20b"), Ok("/a%20b".to_owned()));
    }

    #[test]
    fn bad_encodings_and_nul_are_refused() {
        assert_eq!(norm("/a%zz"), Err(PathError::BadPercentEncoding));
        assert_eq!(norm("/a%4"), Err(PathError::BadPercentEncoding));
        assert_eq!(norm("/a%00b"), Err(PathError::EncodedNul));
        assert_eq!(norm("relative"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn dot_segments_are_told_from_names_with_dots() {
        for path in [
            "/.", "/..", "/a/./b", "/a/../b", "/a/.", "/a/..", "/./", "/../",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in [
            "/",
            "/1k.html",
            "/.well-known/x",
            "/a/...",
            "/a/..b",
            "/a./b",
            "/a/b.",
        ] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }

    #[test]
    fn asterisk_form_is_allowed() {
        assert_eq!(norm("*"), Ok("*".to_owned()));
    }
}

//! From a request path to a path under the root: percent-decoding and the refusals that keep
//! a request inside the root before the filesystem is touched.
//!
//! Refused as a bad request: an invalid percent-encoding, an encoded `/` or `\` (a separator
//! the router never saw), a NUL, a backslash, and `.` or `..` segments (the pipeline resolves
//! them before routing; one seen here was smuggled in encoded). Hidden names (a segment that
//! starts with `.`, other than a leading `.well-known`) are refused as not found unless the
//! route serves them.

/// Why a request path cannot name a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathRefusal {
    /// Malformed or an attempt to leave the root: 400.
    Bad(&'static str),
    /// A hidden name on a route that does not serve them: 404.
    Hidden,
}

/// The decoded segments of a request path (which starts with `/`), joined by `/` without a
/// leading one: `/a/b%20c/` gives `a/b c/`. A trailing `/` is kept (it asks for a directory).
pub(crate) fn decode(path: &str, hidden: bool) -> Result<Vec<u8>, PathRefusal> {
    let raw = path.strip_prefix('/').unwrap_or(path).as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut segment_start = 0;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        match b {
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .ok_or(PathRefusal::Bad("truncated percent-encoding"))?;
                let byte = (hex_value(hex[0]), hex_value(hex[1]));
                let (Some(hi), Some(lo)) = byte else {
                    return Err(PathRefusal::Bad("invalid percent-encoding"));
                };
                let byte = hi << 4 | lo;
                match byte {
                    b'/' | b'\\' => return Err(PathRefusal::Bad("encoded path separator")),
                    0 => return Err(PathRefusal::Bad("encoded NUL")),
                    _ => out.push(byte),
                }
                i += 3;
            }
            b'\\' => return Err(PathRefusal::Bad("backslash in path")),
            0 => return Err(PathRefusal::Bad("NUL in path")),
            b'/' => {
                check_segment(&out[segment_start..], segment_start == 0, hidden)?;
                out.push(b'/');
                segment_start = out.len();
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    check_segment(&out[segment_start..], segment_start == 0, hidden)?;
    Ok(out)
}

/// Refuses `.`, `..`, empty inner segments (`a//b`) and hidden names.
fn check_segment(segment: &[u8], first: bool, hidden: bool) -> Result<(), PathRefusal> {
    match segment {
        b"." | b".." => Err(PathRefusal::Bad("dot segment in path")),
        b".well-known" if first => Ok(()),
        [b'.', ..] if !hidden => Err(PathRefusal::Hidden),
        _ => Ok(()),
    }
}

/// True when a path relative to the root (as the filesystem resolved it) has a hidden
/// component, `.well-known` at the top excepted.
pub(crate) fn has_hidden_component(relative: &std::path::Path) -> bool {
    relative.components().enumerate().any(|(i, c)| {
        let name = c.as_os_str().as_encoded_bytes();
        name.starts_with(b".") && !(i == 0 && name == b".well-known")
    })
}

const fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str) -> String {
        String::from_utf8(decode(path, false).unwrap()).unwrap()
    }

    #[test]
    fn paths_decode_to_segments_under_the_root() {
        assert_eq!(ok("/"), "");
        assert_eq!(ok("/index.html"), "index.html");
        assert_eq!(ok("/a/b%20c/"), "a/b c/");
        assert_eq!(ok("/caf%C3%A9.txt"), "café.txt");
        assert_eq!(ok("/.well-known/security.txt"), ".well-known/security.txt");
        assert_eq!(ok("/a.b/c..d"), "a.b/c..d");
    }

    #[test]
    fn escapes_are_refused() {
        for bad in [
            "/..",
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/etc",
            "/%2E%2E%2Fetc",
            "/a%2fb",
            "/a%5c..%5cb",
            "/a\\b",
            "/a%00b",
            "/a%zz",
            "/a%2",
            "/./a",
            "/a/.",
        ] {
            assert!(
                matches!(decode(bad, true), Err(PathRefusal::Bad(_))),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn hidden_names_are_refused_unless_served() {
        assert_eq!(decode("/.git/config", false), Err(PathRefusal::Hidden));
        assert_eq!(decode("/a/.env", false), Err(PathRefusal::Hidden));
        assert_eq!(decode("/a/.well-known/x", false), Err(PathRefusal::Hidden));
        assert!(decode("/.git/config", true).is_ok());
        assert!(has_hidden_component(std::path::Path::new("a/.secret/b")));
        assert!(!has_hidden_component(std::path::Path::new(".well-known/b")));
    }
}

//! [`TypeList`]: which `Content-Type`s a route compresses.
//!
//! An entry is `type/subtype` (exact) or `type/*`. A wildcard never matches
//! `text/event-stream`: server-sent events are compressed only when listed by name.

/// The compressible content types of a route.
#[derive(Debug, Clone, Default)]
pub struct TypeList {
    exact: Vec<Box<str>>,
    prefixes: Vec<Box<str>>,
}

/// Server-sent events: a stream whose events must reach the client as they are written.
const EVENT_STREAM: &str = "text/event-stream";

impl TypeList {
    /// Compiles `entries`.
    ///
    /// # Errors
    /// The entry that is not `type/subtype` or `type/*`, with why.
    pub fn new<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, (usize, String)> {
        let mut list = Self::default();
        for (i, entry) in entries.into_iter().enumerate() {
            let lower = entry.trim().to_ascii_lowercase();
            let Some((kind, sub)) = lower.split_once('/') else {
                return Err((
                    i,
                    format!("{entry:?} is not a media type (`type/subtype` or `type/*`)"),
                ));
            };
            let token = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
            };
            if !token(kind) || !(sub == "*" || token(sub)) {
                return Err((
                    i,
                    format!("{entry:?} is not a media type (`type/subtype` or `type/*`)"),
                ));
            }
            if sub == "*" {
                list.prefixes.push(format!("{kind}/").into());
            } else {
                list.exact.push(lower.into());
            }
        }
        Ok(list)
    }

    /// True when a response with this `Content-Type` value is compressed.
    #[must_use]
    pub fn matches(&self, content_type: &[u8]) -> bool {
        let essence = content_type
            .split(|b| *b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let Ok(essence) = std::str::from_utf8(essence) else {
            return false;
        };
        if self.exact.iter().any(|t| t.eq_ignore_ascii_case(essence)) {
            return true;
        }
        if essence.eq_ignore_ascii_case(EVENT_STREAM) {
            return false;
        }
        self.prefixes.iter().any(|p| {
            essence.len() > p.len()
                && essence.is_char_boundary(p.len())
                && essence[..p.len()].eq_ignore_ascii_case(p)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_types_wildcards_and_parameters() {
        let list = TypeList::new(["text/*", "application/json", "image/svg+xml"]).unwrap();
        assert!(list.matches(b"text/html; charset=utf-8"));
        assert!(list.matches(b"TEXT/CSS"));
        assert!(list.matches(b"application/json"));
        assert!(list.matches(b" image/svg+xml ;x=y"));
        assert!(!list.matches(b"application/jsonp"));
        assert!(!list.matches(b"image/png"));
        assert!(!list.matches(b"text/"));
        assert!(!list.matches(b""));
        assert!(!list.matches(b"\xff\xfe"));
    }

    #[test]
    fn event_streams_only_by_name() {
        let wild = TypeList::new(["text/*"]).unwrap();
        assert!(!wild.matches(b"text/event-stream"));
        let named = TypeList::new(["text/event-stream"]).unwrap();
        assert!(named.matches(b"text/event-stream; charset=utf-8"));
    }

    #[test]
    fn bad_entries_are_refused_with_their_index() {
        assert_eq!(TypeList::new(["text/html", "html"]).unwrap_err().0, 1);
        assert!(TypeList::new(["*/*"]).is_err());
        assert!(TypeList::new(["text/ html"]).is_err());
    }
}

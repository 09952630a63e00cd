//! Path predicates: exact, prefix on segment boundaries, templates, regular expressions.

use std::fmt;

use regex::Regex;

/// The path predicate of one route.
#[derive(Debug, Clone)]
pub(crate) enum PathMatch {
    /// No path key: every path.
    Any,
    /// `path`: this path exactly.
    Exact(String),
    /// `path_prefix`: this path and below, on segment boundaries.
    Prefix(String),
    /// `path_template`: `{param}` segments and an optional final `{*rest}`.
    Template(Template),
    /// `path_regex`: paths the expression finds a match in.
    Regex(Regex),
}

impl PathMatch {
    /// Whether `path` satisfies the predicate.
    pub(crate) fn matches(&self, path: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(p) => p == path,
            Self::Prefix(p) => prefix_matches(p, path),
            Self::Template(t) => t.matches(path),
            Self::Regex(r) => r.is_match(path),
        }
    }

    /// A canonical form for detecting identical routes (`{id}` and `{user}` are the same).
    pub(crate) fn signature(&self) -> String {
        match self {
            Self::Any => "any".to_owned(),
            Self::Exact(p) => format!("exact {p}"),
            Self::Prefix(p) => format!("prefix {p}"),
            Self::Template(t) => format!("template {}", t.key()),
            Self::Regex(r) => format!("regex {}", r.as_str()),
        }
    }
}

impl fmt::Display for PathMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any path"),
            Self::Exact(p) => write!(f, "exact {p:?}"),
            Self::Prefix(p) => write!(f, "prefix {p:?}"),
            Self::Template(t) => write!(f, "template {:?}", t.source),
            Self::Regex(r) => write!(f, "regex {:?}", r.as_str()),
        }
    }
}

/// Whether prefix `prefix` covers `path` on a segment boundary: `/api` covers `/api`, `/api/`
/// and `/api/x` but not `/apix`; `/api/` covers `/api/` and below but not `/api`.
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with('/')
            || path.len() == prefix.len()
            || path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// Calls `f` with every prefix of `path` that a `path_prefix` could equal and still cover
/// `path`, longest first: the whole path, then for each `/` from the right the text up to and
/// including it and the text before it. Prefixes longer than `max_len` are skipped (the walk
/// starts at that length). No allocation.
#[inline]
pub(crate) fn for_each_boundary_prefix(path: &str, max_len: usize, mut f: impl FnMut(&str)) {
    if path.len() <= max_len {
        f(path);
    }
    // A plain byte loop: paths are short, and memrchr's set-up costs more than it saves here.
    let bytes = path.as_bytes();
    let mut i = bytes.len().min(max_len.saturating_add(1));
    while i > 0 {
        i -= 1;
        if bytes.get(i) == Some(&b'/') {
            if i + 1 < bytes.len() && i < max_len {
                f(&path[..=i]);
            }
            if i > 0 {
                f(&path[..i]);
            }
        }
    }
}

/// The text every match of `pattern` starts with, when the pattern makes it plain: `^`
/// followed by characters that stand for themselves (letters, digits, `/`, `-`, `_`, ...), in a
/// pattern without alternation. Conservative: `None` whenever in doubt (leading flags, a class
/// or escape right after `^`), and it only ever serves as a quick reason to skip the regex.
pub(crate) fn literal_prefix(pattern: &str) -> Option<String> {
    let rest = pattern.strip_prefix('^')?;
    if pattern.contains('|') {
        return None;
    }
    let plain = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '/' | '-' | '_' | '~' | '%' | '=' | ',' | ';' | ':' | '@' | '!' | '&' | '\''
            )
    };
    let mut literal: String = rest.chars().take_while(|&c| plain(c)).collect();
    // A quantifier after the run applies to its last character, which is then optional.
    if rest[literal.len()..].starts_with(['?', '*', '{', '+']) {
        literal.pop();
    }
    (!literal.is_empty()).then_some(literal)
}

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seg {
    /// Literal text; the segment must equal it.
    Lit(String),
    /// `{name}`: any non-empty segment.
    Param,
}

/// A parsed path template.
///
/// Matching rule: a literal segment must be equal, `{param}` takes one non-empty segment, and a
/// final `{*rest}` takes whatever remains, including nothing: `/files/{*rest}` matches
/// `/files`, `/files/` and `/files/a/b` (matchit alone would need at least one character after
/// `/files/`; the router registers the two shorter forms itself).
#[derive(Debug, Clone)]
pub(crate) struct Template {
    source: String,
    segs: Vec<Seg>,
    catch_all: bool,
}

impl Template {
    /// Parses a template as written in config.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        rampart_config::syntax::check_template(text)?;
        let rest = text.strip_prefix('/').unwrap_or(text);
        let mut segs = Vec::new();
        let mut catch_all = false;
        for part in rest.split('/') {
            match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(inner) if inner.starts_with('*') => catch_all = true,
                Some(_) => segs.push(Seg::Param),
                None => segs.push(Seg::Lit(part.to_owned())),
            }
        }
        Ok(Self {
            source: text.to_owned(),
            segs,
            catch_all,
        })
    }

    /// The template as written.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Number of literal segments.
    pub(crate) fn literals(&self) -> usize {
        self.segs
            .iter()
            .filter(|s| matches!(s, Seg::Lit(_)))
            .count()
    }

    /// Number of parameters, the catch-all included.
    pub(crate) fn params(&self) -> usize {
        self.segs.iter().filter(|s| matches!(s, Seg::Param)).count() + usize::from(self.catch_all)
    }

    /// Whether the template ends in `{*rest}`.
    pub(crate) fn is_catch_all(&self) -> bool {
        self.catch_all
    }

    /// The matchit route for this template, with parameters renamed after their position
    /// (`{p1}`) so that templates of the same shape share one key.
    pub(crate) fn key(&self) -> String {
        let mut key = String::from("/");
        for (i, seg) in self.segs.iter().enumerate() {
            if i > 0 {
                key.push('/');
            }
            match seg {
                Seg::Lit(lit) => key.push_str(&lit.replace('{', "{{").replace('}', "}}")),
                Seg::Param => key.push_str(&format!("{{p{i}}}")),
            }
        }
        if self.catch_all {
            key.push_str(if self.segs.is_empty() {
                "{*rest}"
            } else {
                "/{*rest}"
            });
        }
        key
    }

    /// For a catch-all template, the templates matching what matchit's `{*rest}` does not (an
    /// empty rest): `/files/{*rest}` → `/files` and `/files/`; `/{*rest}` → `/`.
    pub(crate) fn empty_rest_forms(&self) -> Vec<Self> {
        if !self.catch_all {
            return Vec::new();
        }
        let bare = |segs: Vec<Seg>| Self {
            source: self.source.clone(),
            segs,
            catch_all: false,
        };
        if self.segs.is_empty() {
            return vec![bare(vec![Seg::Lit(String::new())])];
        }
        let mut slash = self.segs.clone();
        slash.push(Seg::Lit(String::new()));
        vec![bare(self.segs.clone()), bare(slash)]
    }

    /// Whether `path` matches (see the type's documentation for the rule). No allocation.
    pub(crate) fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = rest.split('/');
        for seg in &self.segs {
            let Some(part) = parts.next() else {
                return false;
            };
            let ok = match seg {
                Seg::Lit(lit) => part == lit,
                Seg::Param => !part.is_empty(),
            };
            if !ok {
                return false;
            }
        }
        self.catch_all || parts.next().is_none()
    }

    /// Whether some path matches both templates.
    pub(crate) fn overlaps(&self, other: &Self) -> bool {
        let compatible = self.segs.iter().zip(&other.segs).all(|pair| match pair {
            (Seg::Lit(a), Seg::Lit(b)) => a == b,
            (Seg::Lit(l), Seg::Param) | (Seg::Param, Seg::Lit(l)) => !l.is_empty(),
            (Seg::Param, Seg::Param) => true,
        });
        let (a, b) = (self.segs.len(), other.segs.len());
        compatible
            && match (self.catch_all, other.catch_all) {
                (false, false) => a == b,
                (true, false) => b >= a,
                (false, true) => a >= b,
                (true, true) => true,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Template {
        Template::parse(s).unwrap()
    }

    #[test]
    fn prefix_matches_on_segment_boundaries_only() {
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/"));
        assert!(prefix_matches("/api", "/api/x/y"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(!prefix_matches("/api", "/ap"));
        assert!(prefix_matches("/api/", "/api/"));
        assert!(prefix_matches("/api/", "/api/x"));
        assert!(!prefix_matches("/api/", "/api"));
        assert!(prefix_matches("/", "/anything"));
    }

    #[test]
    fn boundary_prefixes_are_listed_longest_first_and_cover_every_matching_prefix() {
        let walk = |path: &str, max: usize| {
            let mut seen = Vec::new();
            for_each_boundary_prefix(path, max, |p| seen.push(p.to_owned()));
            seen
        };
        assert_eq!(
            walk("/api/v1/users", 100),
            ["/api/v1/users", "/api/v1/", "/api/v1", "/api/", "/api", "/"]
        );
        assert_eq!(walk("/a/", 100), ["/a/", "/a", "/"]);
        assert_eq!(walk("/api/v1/users", 7), ["/api/v1", "/api/", "/api", "/"]);
        assert_eq!(walk("/api/v1/users", 5), ["/api/", "/api", "/"]);
        assert_eq!(walk("/api/v1/users", 0), Vec::<String>::new());
        // Every listed prefix really matches, and every matching prefix up to the limit is listed.
        for path in ["/api/v1/users", "/a/", "/", "/x//y", "/api/v1/"] {
            for max in 0..=path.len() + 1 {
                let listed = walk(path, max);
                for end in 0..=path.len() {
                    let candidate = &path[..end];
                    assert_eq!(
                        listed.iter().any(|l| l == candidate),
                        !candidate.is_empty() && end <= max && prefix_matches(candidate, path),
                        "{candidate:?} of {path:?} up to {max}"
                    );
                }
            }
        }
    }

    #[test]
    fn template_params_take_one_non_empty_segment() {
        let users = t("/users/{id}");
        assert!(users.matches("/users/42"));
        assert!(!users.matches("/users/"));
        assert!(!users.matches("/users"));
        assert!(!users.matches("/users/42/posts"));
        let trailing = t("/users/{id}/");
        assert!(trailing.matches("/users/42/"));
        assert!(!trailing.matches("/users/42"));
    }

    #[test]
    fn catch_all_also_matches_an_empty_rest() {
        let files = t("/files/{*rest}");
        for ok in ["/files", "/files/", "/files/a", "/files/a/b/c"] {
            assert!(files.matches(ok), "{ok}");
        }
        for bad in ["/filesx", "/file", "/", "files/a"] {
            assert!(!files.matches(bad), "{bad}");
        }
        assert!(t("/{*rest}").matches("/"));
        assert!(t("/{*rest}").matches("/a/b"));
    }

    #[test]
    fn keys_name_params_by_position_so_same_shapes_share_a_key() {
        assert_eq!(
            t("/users/{id}/posts/{post}").key(),
            "/users/{p1}/posts/{p3}"
        );
        assert_eq!(
            t("/users/{uid}/posts/{x}").key(),
            t("/users/{id}/posts/{post}").key()
        );
        assert_eq!(t("/files/{*path}").key(), "/files/{*rest}");
        assert_eq!(t("/{*path}").key(), "/{*rest}");
        assert_eq!(t("/").key(), "/");
        let forms: Vec<String> = t("/files/{*p}")
            .empty_rest_forms()
            .iter()
            .map(Template::key)
            .collect();
        assert_eq!(forms, ["/files", "/files/"]);
        let forms: Vec<String> = t("/{*p}")
            .empty_rest_forms()
            .iter()
            .map(Template::key)
            .collect();
        assert_eq!(forms, ["/"]);
    }

    #[test]
    fn overlap_is_symmetric_and_agrees_with_a_witness_path() {
        let templates = [
            "/users/{id}",
            "/users/me",
            "/users/{id}/posts",
            "/{a}/{b}",
            "/files/{*r}",
            "/{*r}",
            "/users/",
            "/files",
            "/files/",
            "/a/{x}/c",
            "/a/b/{*r}",
            "/{a}",
        ];
        let paths = [
            "/users/42",
            "/users/me",
            "/users/me/posts",
            "/users/",
            "/files",
            "/files/",
            "/files/x/y",
            "/a/b/c",
            "/a/b",
            "/x",
            "/",
            "/users",
        ];
        for a in templates {
            for b in templates {
                let (ta, tb) = (t(a), t(b));
                assert_eq!(ta.overlaps(&tb), tb.overlaps(&ta), "{a} {b}");
                let witness = paths.iter().any(|p| ta.matches(p) && tb.matches(p));
                if witness {
                    assert!(
                        ta.overlaps(&tb),
                        "{a} and {b} both match a path but do not overlap"
                    );
                }
            }
        }
        assert!(!t("/users/{id}").overlaps(&t("/users/")));
        assert!(!t("/users/{id}").overlaps(&t("/files/{*r}")));
        assert!(t("/a/{x}/c").overlaps(&t("/a/b/{*r}")));
    }

    #[test]
    fn literal_prefixes_are_extracted_only_when_certain() {
        let cases = [
            ("^/re7/[0-9]+$", Some("/re7/")),
            ("^/api(/v1)?", Some("/api")),
            ("^/ab*", Some("/a")),
            ("^/ab?c", Some("/a")),
            ("^/a{2}", Some("/")),
            ("^/a+", Some("/")),
            ("^/a\\d", Some("/a")),
            ("^/a.b", Some("/a")),
            ("^/a|^/b", None),
            ("(?i)^/abc", None),
            ("/abc", None),
            ("^[a]", None),
            ("^", None),
        ];
        for (pattern, expected) in cases {
            assert_eq!(literal_prefix(pattern).as_deref(), expected, "{pattern}");
            // Whatever is extracted really is required.
            if let Some(prefix) = literal_prefix(pattern) {
                let re = Regex::new(pattern).unwrap();
                for path in [
                    "/re7/1", "/api", "/api/v1", "/a", "/abbb", "/ac", "/aa", "/a1", "/axb", "/b",
                ] {
                    if re.is_match(path) {
                        assert!(
                            path.starts_with(&prefix),
                            "{pattern} matched {path} without {prefix}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn counts_literals_and_params() {
        let x = t("/a/{x}/c/{*r}");
        assert_eq!((x.literals(), x.params(), x.is_catch_all()), (2, 2, true));
    }
}

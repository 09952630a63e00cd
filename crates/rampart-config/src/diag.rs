//! Config errors that point at the text: `file:line:col`, the key path, what was expected.

use std::fmt;
use std::ops::Range;

/// One problem found in a config: where, which key, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Byte range in the config text, when the problem has a location.
    pub span: Option<Range<usize>>,
    /// Key path such as `routes[2].upstream` (empty for the document as a whole).
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// A problem at `span` under key `path`.
    pub fn new(
        span: Option<Range<usize>>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        // Values built in code (not read from a file) carry the empty span 0..0.
        let span = span.filter(|s| !s.is_empty() || s.start != 0);
        Self {
            span,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Every problem found in one config source, rendered with file, line, column and a snippet.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    origin: String,
    text: String,
    errors: Vec<ConfigError>,
}

impl Diagnostics {
    /// Wraps `errors` found in `text`, which was read from `origin` (a file name).
    #[must_use]
    pub fn new(origin: &str, text: &str, mut errors: Vec<ConfigError>) -> Self {
        errors.sort_by_key(|e| e.span.as_ref().map_or(usize::MAX, |s| s.start));
        errors.dedup();
        Self {
            origin: origin.to_owned(),
            text: text.to_owned(),
            errors,
        }
    }

    /// A single problem that is not tied to a place in the text (for example an unreadable file).
    #[must_use]
    pub fn single(origin: &str, message: impl Into<String>) -> Self {
        Self::new(origin, "", vec![ConfigError::new(None, "", message)])
    }

    /// The problems, in the order they appear in the text.
    #[must_use]
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// The file (or other origin) the config came from.
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// 1-based line and column of a byte offset in the config text.
    #[must_use]
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }

    fn render_one(&self, f: &mut fmt::Formatter<'_>, err: &ConfigError) -> fmt::Result {
        let what = if err.path.is_empty() {
            err.message.clone()
        } else {
            format!("{}: {}", err.path, err.message)
        };
        let Some(span) = err.span.clone() else {
            return writeln!(f, "{}: error: {what}", self.origin);
        };
        let (line, col) = self.line_col(span.start);
        writeln!(f, "{}:{line}:{col}: error: {what}", self.origin)?;
        let Some(source_line) = self.text.lines().nth(line - 1) else {
            return Ok(());
        };
        let gutter = line.to_string().len();
        let width = span
            .len()
            .clamp(1, source_line.len().saturating_sub(col - 1).max(1));
        writeln!(f, "{:gutter$} |", "")?;
        writeln!(f, "{line} | {source_line}")?;
        writeln!(
            f,
            "{:gutter$} | {:pad$}{}",
            "",
            "",
            "^".repeat(width),
            pad = col - 1
        )
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for err in &self.errors {
            self.render_one(f, err)?;
        }
        let n = self.errors.len();
        write!(
            f,
            "{}: {n} error{} found",
            self.origin,
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}

/// 1-based line and column (in characters) of byte `offset` in `text`.
#[must_use]
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The candidate closest to `word` by edit distance, when it is close enough to be a likely typo.
#[must_use]
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 11), (2, 6));
        assert_eq!(line_col(text, 999), (3, 1));
    }

    #[test]
    fn rendering_names_file_line_column_path_and_snippet() {
        let text = "[server]\nworkers = \"x\"\n";
        let d = Diagnostics::new(
            "rampart.toml",
            text,
            vec![ConfigError::new(
                Some(19..22),
                "server.workers",
                "expected an integer",
            )],
        );
        let out = d.to_string();
        assert!(
            out.starts_with("rampart.toml:2:11: error: server.workers: expected an integer"),
            "{out}"
        );
        assert!(out.contains("2 | workers = \"x\""), "{out}");
        assert!(out.contains("^^^"), "{out}");
        assert!(out.ends_with("1 error found"), "{out}");
    }

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(suggest("upstrem", ["upstream", "routes"]), Some("upstream"));
        assert_eq!(suggest("zzz", ["upstream", "routes"]), None);
    }
}

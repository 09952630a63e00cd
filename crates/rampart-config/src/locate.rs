//! Pointing an error at the key it is about: a check that only had the item's `name` at hand
//! (values such as durations and numbers carry no position) names the key in its path, and the
//! key's value is found in the document here.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use crate::diag::ConfigError;

/// Moves each error whose span lies outside the value of the key its path names (or that has
/// no span) onto that value, when the key is written in `text`.
pub(crate) fn point_at_keys(text: &str, errors: &mut [ConfigError]) {
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        return;
    }
    let root = document.into_inner();
    for error in errors {
        let Some((key_start, span)) = value_span(&root, &error.path) else {
            continue;
        };
        // Already on the key or its value (an unknown key points at the key itself).
        let inside = error
            .span
            .as_ref()
            .is_some_and(|s| s.start >= key_start.min(span.start) && s.end <= span.end);
        if !inside && !span.is_empty() {
            error.span = Some(span);
        }
    }
}

/// The span of the value of the key at `path` (`upstreams[1].retry.max_retries`), if written.
/// Paths of whole items (`routes[2]`) and sections (`server`) are not looked up: their errors
/// point at what identifies them. Returns where the key starts, and the value's span.
fn value_span(root: &DeTable<'_>, path: &str) -> Option<(usize, Range<usize>)> {
    if !path.contains('.') || path.ends_with(']') {
        return None;
    }
    let mut table = Some(root);
    let mut span = None;
    for part in path.split('.') {
        let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
        let (written_key, mut node) = table?.get_key_value(key)?;
        let key_start = written_key.span().start;
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let i: usize = index.trim_end_matches(']').parse().ok()?;
            let DeValue::Array(items) = node.get_ref() else {
                return None;
            };
            node = items.get(i)?;
        }
        span = Some((key_start, node.span()));
        table = match node.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    span
}

#[cfg(test)]
mod tests {
    use crate::load_errors;

    #[test]
    fn a_duration_checked_after_reading_points_at_its_key() {
        let text = "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\n\n[[upstreams]]\nname = \"app\"\ntargets = [\"127.0.0.1:1\"]\nconnect_timeout = \"0s\"\n";
        let out = load_errors(text);
        assert!(
            out.contains("t.toml:8:19: error: upstreams[0].connect_timeout"),
            "{out}"
        );
        assert!(out.contains("8 | connect_timeout = \"0s\""), "{out}");
    }

    #[test]
    fn a_settings_check_gets_a_position() {
        let out = load_errors(
            "[server]\nworkers = 5000\n\n[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\n",
        );
        assert!(out.contains("t.toml:2:11: error: server.workers"), "{out}");
    }
}

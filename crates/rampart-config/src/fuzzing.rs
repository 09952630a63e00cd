//! Entry point for the config fuzz target in `fuzz/` (cargo feature `fuzzing`, off in the
//! product build; also compiled for this crate's tests, which replay the seed corpus).

use crate::{ConfigError, load_str_with_env};

/// Loads arbitrary text as a config: it either loads or gives errors, never a panic; the
/// errors point inside the text and render; loading is deterministic.
pub fn config_load(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Some variables are defined (and one is empty), so both `${VAR}` paths run.
    let env = |name: &str| match name.as_bytes().first() {
        Some(b'E') => Some(String::new()),
        Some(b'A'..=b'M') => Some(format!("value-of-{name}")),
        _ => None,
    };
    let first = load_str_with_env(text, "fuzz.toml", &env);
    let again = load_str_with_env(text, "fuzz.toml", &env);
    match (first, again) {
        (Ok(a), Ok(b)) => {
            assert!(
                crate::same_as_written(a.raw(), b.raw()),
                "loading is not deterministic"
            );
        }
        (Err(a), Err(b)) => {
            assert!(!a.errors().is_empty(), "an error without a problem");
            a.errors().iter().for_each(|e| check_error(text, e));
            let rendered = a.to_string();
            assert_eq!(rendered, b.to_string(), "errors are not deterministic");
            assert!(rendered.contains("fuzz.toml"), "{rendered}");
        }
        (a, b) => panic!(
            "loaded once and not again: {:?} / {:?}",
            a.is_ok(),
            b.is_ok()
        ),
    }
}

fn check_error(text: &str, err: &ConfigError) {
    assert!(
        !err.message.is_empty(),
        "an error without a message: {err:?}"
    );
    if let Some(span) = &err.span {
        assert!(
            span.start <= span.end && span.end <= text.len(),
            "span {span:?} outside a {}-byte text: {err:?}",
            text.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_config_load_corpus_passes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config_load");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            super::config_load(&std::fs::read(&path).unwrap_or_else(|e| panic!("{e}")));
            seen += 1;
        }
        assert!(seen > 0, "no seeds in {}", dir.display());
    }
}

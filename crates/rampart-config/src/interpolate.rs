//! `${VAR}` interpolation in config strings, for secrets and per-environment values.
//!
//! `${VAR}` is replaced by the variable's value and refused when it is undefined;
//! `${VAR:-fallback}` uses `fallback` when `VAR` is undefined or empty; `$${` writes a literal
//! `${`. Only string values are interpolated, never keys.

use std::borrow::Cow;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::ConfigError;

/// Looks up an environment variable by name.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Interpolates every string value in `table`, collecting one error per undefined variable.
pub(crate) fn interpolate_table(
    table: &mut DeTable<'_>,
    path: &str,
    env: EnvLookup<'_>,
    errors: &mut Vec<ConfigError>,
) {
    for (key, value) in table.iter_mut() {
        let child = join_key(path, key.get_ref());
        interpolate_value(value, &child, env, errors);
    }
}

fn interpolate_value(
    value: &mut Spanned<DeValue<'_>>,
    path: &str,
    env: EnvLookup<'_>,
    errors: &mut Vec<ConfigError>,
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) => {
            if s.contains('$') {
                match expand(s, env) {
                    Ok(expanded) => *s = Cow::Owned(expanded),
                    Err(msg) => errors.push(ConfigError::new(Some(span), path, msg)),
                }
            }
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{path}[{i}]"), env, errors);
            }
        }
        DeValue::Table(table) => interpolate_table(table, path, env, errors),
        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) | DeValue::Datetime(_) => {}
    }
}

fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Expands `${VAR}`, `${VAR:-fallback}` and `$${` in `text`.
///
/// # Errors
/// Names the first undefined variable or malformed reference.
pub fn expand(text: &str, env: EnvLookup<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail.find('}').ok_or_else(|| {
                format!("unterminated variable reference in {text:?}: expected `${{NAME}}`")
            })?;
            out.push_str(&resolve(&tail[..end], env)?);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(reference: &str, env: EnvLookup<'_>) -> Result<String, String> {
    let (name, fallback) = match reference.split_once(":-") {
        Some((name, fallback)) => (name, Some(fallback)),
        None => (reference, None),
    };
    let valid = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if !valid {
        return Err(format!(
            "invalid variable name {name:?}: expected letters, digits and `_`, as in `${{DB_PASSWORD}}`"
        ));
    }
    match (env(name), fallback) {
        (Some(v), Some(f)) if v.is_empty() => Ok(f.to_owned()),
        (Some(v), _) => Ok(v),
        (None, Some(f)) => Ok(f.to_owned()),
        (None, None) => Err(format!(
            "environment variable {name} is not set (write `${{{name}:-default}}` for a fallback)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced() {
        assert_eq!(
            expand("Bearer ${TOKEN}", &env),
            Ok("Bearer s3cret".to_owned())
        );
        assert_eq!(
            expand("${TOKEN}${TOKEN}", &env),
            Ok("s3crets3cret".to_owned())
        );
    }

    #[test]
    fn undefined_variables_are_refused() {
        let err = expand("${NOPE}", &env).unwrap_err();
        assert!(err.contains("NOPE is not set"), "{err}");
    }

    #[test]
    fn fallbacks_apply_to_unset_and_empty() {
        assert_eq!(expand("${NOPE:-x}", &env), Ok("x".to_owned()));
        assert_eq!(expand("${EMPTY:-y}", &env), Ok("y".to_owned()));
        assert_eq!(expand("${TOKEN:-z}", &env), Ok("s3cret".to_owned()));
    }

    #[test]
    fn escapes_and_lone_dollars_are_literal() {
        assert_eq!(expand("$${TOKEN}", &env), Ok("${TOKEN}".to_owned()));
        assert_eq!(expand("cost: $5", &env), Ok("cost: $5".to_owned()));
    }

    #[test]
    fn malformed_references_are_refused() {
        assert!(expand("${TOKEN", &env).is_err());
        assert!(expand("${}", &env).is_err());
        assert!(expand("${1A}", &env).is_err());
        assert!(expand("${A-B}", &env).is_err());
    }
}

//! serde's deserialization messages in the words of a config file: "expected a list of strings,
//! found \"GET\"" rather than "invalid type: string \"GET\", expected a sequence".

use serde_json::Value;

use crate::diag::suggest;

/// Rewrites one of serde's messages about the key at `path` (such as `routes[0].methods`);
/// `schema` is the config's JSON Schema, used to name what a list holds.
pub(crate) fn friendly(message: &str, path: &str, schema: &Value) -> String {
    if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        let expected = expected_words(expected, path, schema);
        return format!("expected {expected}, found {}", found_words(found));
    }
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        return format!("missing key `{field}`");
    }
    with_suggestion(message)
}

/// Adds a "did you mean" hint to serde's unknown-field and unknown-variant messages, which
/// speak of keys and values.
fn with_suggestion(message: &str) -> String {
    let message = message
        .replacen("unknown field `", "unknown key `", 1)
        .replacen("unknown variant `", "unknown value `", 1);
    let Some(rest) = message
        .strip_prefix("unknown key `")
        .or_else(|| message.strip_prefix("unknown value `"))
    else {
        return message;
    };
    let Some((word, expected)) = rest.split_once('`') else {
        return message;
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match suggest(word, candidates) {
        Some(hint) => format!("{message} (did you mean `{hint}`?)"),
        None => message,
    }
}

/// What serde says it found (`string "GET"`, `integer `1``, `sequence`) as a config value.
fn found_words(found: &str) -> String {
    let quoted = |s: &str| s.trim_matches('`').to_owned();
    if let Some(s) = found.strip_prefix("string ") {
        return s.to_owned();
    }
    for prefix in ["integer ", "floating point ", "boolean ", "character "] {
        if let Some(v) = found.strip_prefix(prefix) {
            return quoted(v);
        }
    }
    match found {
        "sequence" => "a list".to_owned(),
        "map" => "a table".to_owned(),
        "unit value" | "unit" => "nothing".to_owned(),
        other => other.to_owned(),
    }
}

/// serde's description of the expected type, in config words; a type's own description (such
/// as "a duration such as \"30s\"") is kept.
fn expected_words(expected: &str, path: &str, schema: &Value) -> String {
    match expected {
        "a sequence" => schema_at(schema, path)
            .and_then(|s| describe(schema, s))
            .unwrap_or_else(|| "a list".to_owned()),
        "a map" => "a table".to_owned(),
        "a boolean" => "`true` or `false`".to_owned(),
        "a borrowed string" | "a string" | "a character" => "a string".to_owned(),
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number of at least 0".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        other if other.starts_with("struct ") => "a table".to_owned(),
        other => other.to_owned(),
    }
}

/// The schema of the key at `path` (`routes[0].headers[1].name`), following `$ref`s.
fn schema_at<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = root;
    for part in path.split('.') {
        let (key, indexes) = part.split_once('[').map_or((part, ""), |(k, i)| (k, i));
        if !key.is_empty() {
            node = resolve(root, node)?.get("properties")?.get(key)?;
        }
        for _ in indexes.split('[').filter(|s| !s.is_empty()) {
            node = resolve(root, node)?.get("items")?;
        }
    }
    Some(node)
}

/// Follows `$ref` and unwraps `anyOf [T, null]` (how an optional key is described).
fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> Option<&'a Value> {
    for _ in 0..8 {
        if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            let name = reference.strip_prefix("#/$defs/")?;
            node = root.get("$defs")?.get(name)?;
        } else if let Some(options) = node.get("anyOf").and_then(Value::as_array) {
            let mut real = options
                .iter()
                .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"));
            node = real.next()?;
            if real.next().is_some() {
                return Some(node);
            }
        } else {
            return Some(node);
        }
    }
    Some(node)
}

fn type_name(node: &Value) -> Option<&str> {
    match node.get("type")? {
        Value::String(s) => Some(s),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        _ => None,
    }
}

/// "a list of strings", "a table", "a whole number".
fn describe(root: &Value, node: &Value) -> Option<String> {
    let node = resolve(root, node)?;
    Some(match type_name(node)? {
        "array" => {
            let items = node.get("items").and_then(|i| resolve(root, i));
            let what = match items.and_then(type_name) {
                Some("string") => "strings",
                Some("integer") => "whole numbers",
                Some("object") => "tables",
                Some("boolean") => "`true`/`false` values",
                _ => "values",
            };
            format!("a list of {what}")
        }
        "string" => "a string".to_owned(),
        "integer" => "a whole number".to_owned(),
        "boolean" => "`true` or `false`".to_owned(),
        "object" => "a table".to_owned(),
        "number" => "a number".to_owned(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        crate::json_schema()
    }

    #[test]
    fn a_string_where_a_list_of_strings_goes() {
        let m = friendly(
            "invalid type: string \"GET\", expected a sequence",
            "routes[0].methods",
            &schema(),
        );
        assert_eq!(m, "expected a list of strings, found \"GET\"");
    }

    #[test]
    fn integers_booleans_and_tables_in_config_words() {
        let s = schema();
        assert_eq!(
            friendly(
                "invalid type: string \"high\", expected i32",
                "routes[0].priority",
                &s
            ),
            "expected a whole number, found \"high\""
        );
        assert_eq!(
            friendly(
                "invalid type: integer `1`, expected a boolean",
                "routes[0].echo",
                &s
            ),
            "expected `true` or `false`, found 1"
        );
        assert_eq!(
            friendly(
                "invalid type: sequence, expected struct Rewrite",
                "routes[0].rewrite",
                &s
            ),
            "expected a table, found a list"
        );
    }

    #[test]
    fn a_types_own_description_is_kept() {
        let m = friendly(
            "invalid type: integer `30`, expected a duration such as \"30s\"",
            "upstreams[0].connect_timeout",
            &schema(),
        );
        assert_eq!(m, "expected a duration such as \"30s\", found 30");
    }

    #[test]
    fn unknown_values_get_a_suggestion() {
        let m = friendly(
            "unknown variant `requird`, expected one of `none`, `optional`, `required`",
            "listeners[0].tls.client_auth",
            &schema(),
        );
        assert_eq!(
            m,
            "unknown value `requird`, expected one of `none`, `optional`, `required` (did you mean `required`?)"
        );
    }

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let m = friendly(
            "unknown field `upstrem`, expected one of `name`, `upstream`",
            "routes[0].upstrem",
            &schema(),
        );
        assert_eq!(
            m,
            "unknown key `upstrem`, expected one of `name`, `upstream` (did you mean `upstream`?)"
        );
    }
}

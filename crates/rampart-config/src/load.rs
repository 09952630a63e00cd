//! Reading a config: TOML text → spanned document → `${VAR}` interpolation → raw structs, one
//! section and one list item at a time so that every broken item is reported, not just the first.

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::{ConfigError, suggest};
use crate::interpolate::{EnvLookup, interpolate_table};
use crate::model::{RawConfig, SECTIONS};

/// The outcome of reading a config: what could be deserialized, and what could not.
pub(crate) struct Parsed {
    /// Every item that deserialized (items with errors are left out).
    pub raw: RawConfig,
    /// Problems found so far.
    pub errors: Vec<ConfigError>,
    /// Sections in which an item failed to deserialize: references into them cannot be checked.
    pub incomplete: Vec<&'static str>,
    /// For each list section, the index in the file of every item kept in `raw`.
    pub positions: Positions,
}

/// Where the items of each list section stood in the file, so that messages name the right
/// index even when an earlier item was left out.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    /// File index of each entry of `raw.listeners`.
    pub listeners: Vec<usize>,
    /// File index of each entry of `raw.upstreams`.
    pub upstreams: Vec<usize>,
    /// File index of each entry of `raw.routes`.
    pub routes: Vec<usize>,
}

impl Positions {
    /// `section[n]` with the item's index in the file.
    pub(crate) fn item(&self, section: &str, i: usize) -> String {
        let list = match section {
            "listeners" => &self.listeners,
            "upstreams" => &self.upstreams,
            _ => &self.routes,
        };
        format!("{section}[{}]", list.get(i).copied().unwrap_or(i))
    }
}

/// Parses and deserializes `text`. A syntax error stops there; otherwise every item that can be
/// deserialized is, so that validation can still report problems in the others.
pub(crate) fn parse_raw(text: &str, env: EnvLookup<'_>) -> Result<Parsed, Vec<ConfigError>> {
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        return Err(syntax_errors
            .into_iter()
            .map(|e| ConfigError::new(e.span(), "", format!("invalid TOML: {}", e.message())))
            .collect());
    }
    let mut errors = Vec::new();
    let mut table = document.into_inner();
    interpolate_table(&mut table, "", env, &mut errors);
    let mut incomplete = Vec::new();
    let mut positions = Positions::default();
    let raw = deserialize_sections(table, &mut errors, &mut incomplete, &mut positions);
    Ok(Parsed {
        raw,
        errors,
        incomplete,
        positions,
    })
}

fn deserialize_sections(
    table: DeTable<'_>,
    errors: &mut Vec<ConfigError>,
    incomplete: &mut Vec<&'static str>,
    positions: &mut Positions,
) -> RawConfig {
    let mut raw = RawConfig::default();
    for (key, value) in table {
        let name = key.get_ref().as_ref();
        let before = errors.len();
        match name {
            "server" => set(&mut raw.server, deserialize(value, name, errors)),
            "log" => set(&mut raw.log, deserialize(value, name, errors)),
            "access_log" => set(&mut raw.access_log, deserialize(value, name, errors)),
            "limits" => set(&mut raw.limits, deserialize(value, name, errors)),
            "timeouts" => set(&mut raw.timeouts, deserialize(value, name, errors)),
            "client_ip" => set(&mut raw.client_ip, deserialize(value, name, errors)),
            "geoip" => set(&mut raw.geoip, deserialize(value, name, errors)),
            "http2" => set(&mut raw.http2, deserialize(value, name, errors)),
            "listeners" => {
                (raw.listeners, positions.listeners) = deserialize_list(value, name, errors);
            }
            "upstreams" => {
                (raw.upstreams, positions.upstreams) = deserialize_list(value, name, errors);
            }
            "routes" => (raw.routes, positions.routes) = deserialize_list(value, name, errors),
            "rate_limits" => set(&mut raw.rate_limits, deserialize(value, name, errors)),
            "redis" => raw.redis = deserialize(value, name, errors),
            "tracing" => set(&mut raw.tracing, deserialize(value, name, errors)),
            "audit_log" => set(&mut raw.audit_log, deserialize(value, name, errors)),
            "admin" => raw.admin = deserialize(value, name, errors),
            "reload" => set(&mut raw.reload, deserialize(value, name, errors)),
            other => errors.push(unknown_key(key.span(), "", other, SECTIONS)),
        }
        if errors.len() > before
            && let Some(section) = SECTIONS.iter().find(|s| **s == name)
        {
            incomplete.push(section);
        }
    }
    raw
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// Deserializes each element of an array of tables on its own, so a broken element does not
/// hide errors in the next one. Returns the elements that deserialized and their file indexes.
fn deserialize_list<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    name: &str,
    errors: &mut Vec<ConfigError>,
) -> (Vec<T>, Vec<usize>) {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| Some((deserialize(item, &format!("{name}[{i}]"), errors)?, i)))
            .unzip(),
        other => {
            errors.push(ConfigError::new(
                Some(span),
                name,
                format!(
                    "expected an array of tables (`[[{name}]]`), found {}",
                    other.type_str()
                ),
            ));
            (Vec::new(), Vec::new())
        }
    }
}

fn deserialize<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    prefix: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    let whole = value.span();
    let deserializer = toml::de::ValueDeserializer::from(value);
    match serde_path_to_error::deserialize(deserializer) {
        Ok(v) => Some(v),
        Err(err) => {
            let inner_path = err
                .path()
                .to_string()
                .replace(".$__serde_spanned_private_value", "");
            let path = if inner_path == "." || inner_path.is_empty() {
                prefix.to_owned()
            } else if inner_path.starts_with('[') {
                format!("{prefix}{inner_path}")
            } else {
                format!("{prefix}.{inner_path}")
            };
            let inner = err.into_inner();
            let message = improve_message(inner.message());
            errors.push(ConfigError::new(
                inner.span().or(Some(whole)),
                path,
                message,
            ));
            None
        }
    }
}

/// Adds a "did you mean" hint to serde's unknown-field and unknown-variant messages.
fn improve_message(message: &str) -> String {
    let Some(rest) = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))
    else {
        return message.to_owned();
    };
    let Some((word, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match suggest(word, candidates) {
        Some(hint) => format!("{message} (did you mean `{hint}`?)"),
        None => message.to_owned(),
    }
}

fn unknown_key(span: std::ops::Range<usize>, path: &str, key: &str, known: &[&str]) -> ConfigError {
    let list = known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let hint = suggest(key, known.iter().copied())
        .map(|h| format!(" (did you mean `{h}`?)"))
        .unwrap_or_default();
    ConfigError::new(
        Some(span),
        path,
        format!("unknown section `{key}`, expected one of {list}{hint}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_messages_get_a_suggestion() {
        let m = improve_message("unknown field `upstrem`, expected one of `name`, `upstream`");
        assert!(m.ends_with("(did you mean `upstream`?)"), "{m}");
    }
}

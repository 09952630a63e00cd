//! Reading a config: TOML text → spanned document → `${VAR}` interpolation → raw structs, one
//! section and one list item at a time so that every broken item is reported, not just the first.

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use serde_path_to_error::Segment;

use crate::diag::{ConfigError, suggest};
use crate::interpolate::{EnvLookup, interpolate_table};
use crate::messages::friendly;
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
    /// Paths of keys that were wrong and set aside so that the rest of their item could be read;
    /// later checks must not report them (or their item as a whole) again.
    pub repaired: Vec<String>,
}

impl Parsed {
    /// False for a problem that follows from a key set aside while reading: a check of that key,
    /// or of the item it belongs to as a whole.
    pub(crate) fn is_new(&self, error: &ConfigError) -> bool {
        !self.repaired.iter().any(|key| {
            let item = key.rsplit_once('.').map_or("", |(item, _)| item);
            error.path == *item
                || error
                    .path
                    .strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }
}

/// How many items of list section `name` were read, for the sections read item by item.
fn section_len(raw: &RawConfig, name: &str) -> Option<usize> {
    match name {
        "listeners" => Some(raw.listeners.len()),
        "upstreams" => Some(raw.upstreams.len()),
        "routes" => Some(raw.routes.len()),
        _ => None,
    }
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
    let mut repaired = Vec::new();
    let raw = deserialize_sections(
        table,
        &mut errors,
        &mut incomplete,
        &mut positions,
        &mut repaired,
    );
    Ok(Parsed {
        raw,
        errors,
        incomplete,
        positions,
        repaired,
    })
}

fn deserialize_sections(
    table: DeTable<'_>,
    errors: &mut Vec<ConfigError>,
    incomplete: &mut Vec<&'static str>,
    positions: &mut Positions,
    repaired: &mut Vec<String>,
) -> RawConfig {
    let mut raw = RawConfig::default();
    for (key, value) in table {
        let name = key.get_ref().as_ref();
        let before = errors.len();
        let repaired_before = repaired.len();
        let file_len = match value.get_ref() {
            DeValue::Array(items) => items.len(),
            _ => 0,
        };
        match name {
            "server" => set(&mut raw.server, deserialize(value, name, errors, repaired)),
            "log" => set(&mut raw.log, deserialize(value, name, errors, repaired)),
            "access_log" => set(
                &mut raw.access_log,
                deserialize(value, name, errors, repaired),
            ),
            "limits" => set(&mut raw.limits, deserialize(value, name, errors, repaired)),
            "timeouts" => set(
                &mut raw.timeouts,
                deserialize(value, name, errors, repaired),
            ),
            "client_ip" => set(
                &mut raw.client_ip,
                deserialize(value, name, errors, repaired),
            ),
            "geoip" => set(&mut raw.geoip, deserialize(value, name, errors, repaired)),
            "http2" => set(&mut raw.http2, deserialize(value, name, errors, repaired)),
            "listeners" => {
                (raw.listeners, positions.listeners) =
                    deserialize_list(value, name, errors, repaired);
            }
            "upstreams" => {
                (raw.upstreams, positions.upstreams) =
                    deserialize_list(value, name, errors, repaired);
            }
            "routes" => {
                (raw.routes, positions.routes) = deserialize_list(value, name, errors, repaired);
            }
            "rate_limits" => set(
                &mut raw.rate_limits,
                deserialize(value, name, errors, repaired),
            ),
            "redis" => raw.redis = deserialize(value, name, errors, repaired),
            "auth" => set(&mut raw.auth, deserialize(value, name, errors, repaired)),
            "tracing" => set(&mut raw.tracing, deserialize(value, name, errors, repaired)),
            "audit_log" => set(
                &mut raw.audit_log,
                deserialize(value, name, errors, repaired),
            ),
            "admin" => raw.admin = deserialize(value, name, errors, repaired),
            "reload" => set(&mut raw.reload, deserialize(value, name, errors, repaired)),
            "cache" => set(&mut raw.cache, deserialize(value, name, errors, repaired)),
            other => errors.push(unknown_key(key.span(), "", other, SECTIONS)),
        }
        // A section is incomplete when an item had to be left out, not when a key was set aside.
        let dropped = errors.len() > before && repaired.len() == repaired_before
            || section_len(&raw, name).is_some_and(|read| read < file_len);
        if dropped && let Some(section) = SECTIONS.iter().find(|s| **s == name) {
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
    repaired: &mut Vec<String>,
) -> (Vec<T>, Vec<usize>) {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let item = deserialize(item, &format!("{name}[{i}]"), errors, repaired)?;
                Some((item, i))
            })
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

/// How many keys of one item may be set aside before giving up on it.
const MAX_REPAIRS: usize = 32;

/// Deserializes one section or list item. When a key is wrong (unknown, or of the wrong type),
/// the error is recorded, the key is set aside and the rest of the item is read again, so that
/// every broken key of the item is reported and the item still takes part in later checks
/// (its path is then recorded in `repaired`). `None` when the item cannot be read at all.
fn deserialize<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    prefix: &str,
    errors: &mut Vec<ConfigError>,
    repaired: &mut Vec<String>,
) -> Option<T> {
    let whole = value.span();
    let mut value = value;
    let mut removed = Vec::new();
    for _ in 0..MAX_REPAIRS {
        let deserializer = toml::de::ValueDeserializer::from(value.clone());
        let err = match serde_path_to_error::deserialize(deserializer) {
            Ok(v) => {
                repaired.extend(removed);
                return Some(v);
            }
            Err(err) => err,
        };
        let segments: Vec<String> = err
            .path()
            .iter()
            .filter_map(|segment| match segment {
                Segment::Map { key } if key == "$__serde_spanned_private_value" => None,
                Segment::Map { key } => Some(format!(".{key}")),
                Segment::Seq { index } => Some(format!("[{index}]")),
                Segment::Enum { .. } | Segment::Unknown => None,
            })
            .collect();
        let path = format!("{prefix}{}", segments.concat());
        let inner = err.into_inner();
        let missing = inner
            .message()
            .strip_prefix("missing field `")
            .and_then(|r| r.strip_suffix('`'))
            .map(|field| format!("{path}.{field}"));
        // A required key that was set aside for being wrong is not missing on top of that.
        if !missing.as_ref().is_some_and(|m| removed.contains(m)) {
            let message = friendly(inner.message(), &path, schema());
            errors.push(ConfigError::new(
                inner.span().or_else(|| Some(whole.clone())),
                path.clone(),
                message,
            ));
        }
        if missing.is_some() || !remove_at(&mut value, &segments) {
            return None;
        }
        removed.push(path);
    }
    None
}

/// The config's JSON Schema, built once, for naming expected types in messages.
fn schema() -> &'static serde_json::Value {
    static SCHEMA: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(crate::json_schema)
}

/// Removes the key at `segments` (`.server`, `.headers`, `[0]`, `.value`) from `value`; a
/// wrong list element takes its whole list with it, so that later elements keep their index.
/// False when there is nothing to remove there.
fn remove_at(value: &mut Spanned<DeValue<'_>>, segments: &[String]) -> bool {
    let keep = segments
        .iter()
        .rposition(|s| s.starts_with('.'))
        .map_or(0, |i| i + 1);
    let Some((last, parents)) = segments[..keep].split_last() else {
        return false;
    };
    let mut node = value.get_mut();
    for segment in parents {
        node = match (node, segment.strip_prefix('.')) {
            (DeValue::Table(table), Some(key)) => match table.get_mut(key) {
                Some(child) => child.get_mut(),
                None => return false,
            },
            (DeValue::Array(items), None) => {
                let index = segment.trim_matches(['[', ']']).parse::<usize>().ok();
                match index.and_then(|i| items.get_mut(i)) {
                    Some(child) => child.get_mut(),
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    match (node, last.strip_prefix('.')) {
        (DeValue::Table(table), Some(key)) => table.remove(key).is_some(),
        _ => false,
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

//! [`Pattern`]: a regular expression compiled when the config is read, so a bad one is a config
//! error with a location rather than a failure later.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A compiled regular expression (Rust `regex` syntax, linear-time matching).
#[derive(Clone)]
pub struct Pattern(regex::Regex);

/// Regexes from config may not compile to more than this many bytes (guards against huge
/// automata from patterns like `a{1000}{1000}`).
const MAX_COMPILED_SIZE: usize = 4 << 20;

impl Pattern {
    /// Compiles `source`.
    ///
    /// # Errors
    /// Returns the regex engine's explanation when `source` is not a valid pattern.
    pub fn new(source: &str) -> Result<Self, String> {
        regex::RegexBuilder::new(source)
            .size_limit(MAX_COMPILED_SIZE)
            .build()
            .map(Self)
            .map_err(|e| format!("invalid regular expression {source:?}: {e}"))
    }

    /// The compiled regex.
    #[must_use]
    pub const fn regex(&self) -> &regex::Regex {
        &self.0
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.0.as_str())
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Self::new(&source).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl JsonSchema for Pattern {
    fn schema_name() -> Cow<'static, str> {
        "Regex".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "regex",
            "description": "A regular expression (Rust regex syntax; matching is linear-time)."
        })
    }
}

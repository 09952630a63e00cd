//! `compress`: a route's opt-in to response compression (gzip, brotli, zstd), with the
//! algorithms in the server's order of preference, the content types, a minimum size and a
//! level per algorithm.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::Located;
use crate::units::ByteSize;

/// A response content coding Rampart can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
pub enum CompressAlgorithm {
    /// `zstd` (RFC 8878).
    #[serde(rename = "zstd")]
    Zstd,
    /// `br`, brotli (RFC 7932).
    #[serde(rename = "br")]
    Brotli,
    /// `gzip` (RFC 1952).
    #[serde(rename = "gzip")]
    Gzip,
}

/// `compress = true`, or a table: responses of the listed types are compressed with the best
/// algorithm the client accepts (its q-values first, then the order of `algorithms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compress {
    /// Compress at all (`compress = false` turns it off).
    pub enabled: bool,
    /// The algorithms offered, in the server's order of preference.
    pub algorithms: Vec<Located<CompressAlgorithm>>,
    /// Content types compressed: `type/subtype` exactly, or `type/*`.
    pub types: Vec<Located<String>>,
    /// Responses with a smaller `Content-Length` are sent as they are.
    pub min_size: Located<ByteSize>,
    /// The level of each algorithm.
    pub levels: CompressLevels,
}

/// `levels = { gzip = 6, br = 4, zstd = 3 }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompressLevels {
    /// gzip level, 1 (fastest) to 9 (smallest); default 6.
    #[serde(default = "default_gzip_level")]
    pub gzip: Located<u32>,
    /// brotli quality, 0 (fastest) to 11 (smallest); default 4.
    #[serde(default = "default_brotli_level")]
    pub br: Located<u32>,
    /// zstd level, 1 (fastest) to 19 (smallest); default 3.
    #[serde(default = "default_zstd_level")]
    pub zstd: Located<u32>,
}

impl Default for CompressLevels {
    fn default() -> Self {
        Self {
            gzip: default_gzip_level(),
            br: default_brotli_level(),
            zstd: default_zstd_level(),
        }
    }
}

/// The content types compressed when `types` is not given.
pub const DEFAULT_COMPRESS_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/ld+json",
    "application/manifest+json",
    "application/problem+json",
    "application/wasm",
    "image/svg+xml",
    "font/ttf",
    "font/otf",
];

impl Default for Compress {
    fn default() -> Self {
        Self {
            enabled: true,
            algorithms: default_algorithms(),
            types: default_types(),
            min_size: default_min_size(),
            levels: CompressLevels::default(),
        }
    }
}

/// The table form of `compress`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CompressTable {
    /// Algorithms offered, in the server's order of preference (default
    /// `["zstd", "br", "gzip"]`).
    #[serde(default = "default_algorithms")]
    algorithms: Vec<Located<CompressAlgorithm>>,
    /// Content types compressed (`type/subtype` or `type/*`; default: text, JSON, JavaScript,
    /// XML, SVG, WebAssembly and fonts).
    #[serde(default = "default_types")]
    types: Vec<Located<String>>,
    /// Smallest `Content-Length` compressed (default `"1KiB"`).
    #[serde(default = "default_min_size")]
    min_size: Located<ByteSize>,
    /// Level of each algorithm.
    #[serde(default)]
    levels: CompressLevels,
}

fn default_algorithms() -> Vec<Located<CompressAlgorithm>> {
    [
        CompressAlgorithm::Zstd,
        CompressAlgorithm::Brotli,
        CompressAlgorithm::Gzip,
    ]
    .into_iter()
    .map(Located::new)
    .collect()
}

fn default_types() -> Vec<Located<String>> {
    DEFAULT_COMPRESS_TYPES
        .iter()
        .map(|t| Located::new((*t).to_owned()))
        .collect()
}

const fn default_min_size() -> Located<ByteSize> {
    Located::new(ByteSize::kib(1))
}

const fn default_gzip_level() -> Located<u32> {
    Located::new(6)
}

const fn default_brotli_level() -> Located<u32> {
    Located::new(4)
}

const fn default_zstd_level() -> Located<u32> {
    Located::new(3)
}

impl<'de> Deserialize<'de> for Compress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoolOrTable;

        impl<'de> Visitor<'de> for BoolOrTable {
            type Value = Compress;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false, or a table with algorithms, types, min_size and levels")
            }

            fn visit_bool<E: de::Error>(self, enabled: bool) -> Result<Compress, E> {
                Ok(Compress {
                    enabled,
                    ..Compress::default()
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Compress, A::Error> {
                let table = CompressTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Compress {
                    enabled: true,
                    algorithms: table.algorithms,
                    types: table.types,
                    min_size: table.min_size,
                    levels: table.levels,
                })
            }
        }

        deserializer.deserialize_any(BoolOrTable)
    }
}

impl JsonSchema for Compress {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Compress".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let table = generator.subschema_for::<CompressTable>();
        json_schema!({
            "description": "Compress responses (gzip, br, zstd): true, or a table with the algorithms, types, minimum size and levels.",
            "anyOf": [{ "type": "boolean" }, table]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        compress: Compress,
    }

    fn parse(text: &str) -> Result<Compress, String> {
        toml::from_str::<Holder>(text)
            .map(|h| h.compress)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn true_false_and_tables_parse() {
        assert_eq!(parse("compress = true").unwrap(), Compress::default());
        assert!(!parse("compress = false").unwrap().enabled);
        let c = parse(
            r#"compress = { algorithms = ["gzip", "br"], min_size = "10B", levels = { gzip = 9 } }"#,
        )
        .unwrap();
        assert!(c.enabled);
        assert_eq!(
            c.algorithms.iter().map(|a| **a).collect::<Vec<_>>(),
            [CompressAlgorithm::Gzip, CompressAlgorithm::Brotli]
        );
        assert_eq!(c.min_size.get().get(), 10);
        assert_eq!(*c.levels.gzip.get(), 9);
        assert_eq!(*c.levels.br.get(), 4);
        assert_eq!(c.types.len(), DEFAULT_COMPRESS_TYPES.len());
    }

    #[test]
    fn unknown_keys_algorithms_and_types_are_refused() {
        assert!(
            parse("compress = { level = 1 }")
                .unwrap_err()
                .contains("level")
        );
        assert!(
            parse(r#"compress = { algorithms = ["deflate"] }"#)
                .unwrap_err()
                .contains("deflate")
        );
        assert!(
            parse(r#"compress = "gzip""#)
                .unwrap_err()
                .contains("true, false, or a table")
        );
    }
}

//! `decompress`: a route's opt-in to request-body decompression, and its caps.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::Located;
use crate::units::ByteSize;

/// `decompress = true`, or `decompress = { max_size = "10MiB", max_ratio = 100 }`: request
/// bodies with a `Content-Encoding` are decompressed on their way to the upstream, within
/// these caps. `false` (or leaving it out) forwards them as they came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decompress {
    /// Decompress at all (`decompress = false` turns it off).
    pub enabled: bool,
    /// Most decompressed bytes of one body (default 10 MiB).
    pub max_size: Located<ByteSize>,
    /// Most decompressed bytes per compressed byte, once past the first 64 KiB (default 100).
    pub max_ratio: Located<u64>,
}

impl Default for Decompress {
    fn default() -> Self {
        Self {
            enabled: true,
            max_size: default_max_size(),
            max_ratio: default_max_ratio(),
        }
    }
}

/// The table form of `decompress`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DecompressTable {
    /// Most decompressed bytes of one body (default `"10MiB"`).
    #[serde(default = "default_max_size")]
    max_size: Located<ByteSize>,
    /// Most decompressed bytes per compressed byte, once past the first 64 KiB (default 100).
    #[serde(default = "default_max_ratio")]
    max_ratio: Located<u64>,
}

const fn default_max_size() -> Located<ByteSize> {
    Located::new(ByteSize::mib(10))
}

const fn default_max_ratio() -> Located<u64> {
    Located::new(100)
}

impl<'de> Deserialize<'de> for Decompress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoolOrTable;

        impl<'de> Visitor<'de> for BoolOrTable {
            type Value = Decompress;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false, or a table with max_size and max_ratio")
            }

            fn visit_bool<E: de::Error>(self, enabled: bool) -> Result<Decompress, E> {
                Ok(Decompress {
                    enabled,
                    ..Decompress::default()
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Decompress, A::Error> {
                let table =
                    DecompressTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Decompress {
                    enabled: true,
                    max_size: table.max_size,
                    max_ratio: table.max_ratio,
                })
            }
        }

        deserializer.deserialize_any(BoolOrTable)
    }
}

impl JsonSchema for Decompress {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Decompress".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let table = generator.subschema_for::<DecompressTable>();
        json_schema!({
            "description": "Decompress request bodies on their way to the upstream: true, or a table with the caps.",
            "anyOf": [{ "type": "boolean" }, table]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        decompress: Decompress,
    }

    fn parse(text: &str) -> Result<Decompress, String> {
        toml::from_str::<Holder>(text)
            .map(|h| h.decompress)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn true_false_and_tables_parse() {
        assert_eq!(parse("decompress = true").unwrap(), Decompress::default());
        assert!(!parse("decompress = false").unwrap().enabled);
        let d = parse(r#"decompress = { max_size = "1MiB", max_ratio = 20 }"#).unwrap();
        assert!(d.enabled);
        assert_eq!(d.max_size.get().get(), 1 << 20);
        assert_eq!(*d.max_ratio.get(), 20);
        assert_eq!(*parse("decompress = {}").unwrap().max_ratio.get(), 100);
    }

    #[test]
    fn unknown_keys_and_other_types_are_refused() {
        assert!(
            parse("decompress = { max_sise = 1 }")
                .unwrap_err()
                .contains("max_sise")
        );
        assert!(
            parse(r#"decompress = "gzip""#)
                .unwrap_err()
                .contains("true, false, or a table")
        );
    }
}

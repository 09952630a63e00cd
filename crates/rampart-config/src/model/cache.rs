//! `[cache]` (the shared response store: its size, the status header, who may `PURGE`) and a
//! route's `cache` (turns the store on for the route, with the route's rules).

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::units::{ByteSize, HumanDuration};
use crate::{Cidr, Located};

/// `[cache]`: the in-memory response store every route with `cache` shares.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// Most bytes the store holds (bodies, headers and a fixed overhead per object).
    #[serde(default = "default_max_size")]
    pub max_size: Located<ByteSize>,
    /// Name of the response header that tells how the cache served a request (`""`: none).
    #[serde(default = "default_status_header")]
    pub status_header: Located<String>,
    /// Client networks whose `PURGE` requests remove an object; empty: `PURGE` is not
    /// handled by the cache.
    #[serde(default)]
    pub purge_allow: Vec<Located<Cidr>>,
}

impl Default for CacheSection {
    fn default() -> Self {
        Self {
            max_size: default_max_size(),
            status_header: default_status_header(),
            purge_allow: Vec::new(),
        }
    }
}

const fn default_max_size() -> Located<ByteSize> {
    Located::new(ByteSize::mib(64))
}

fn default_status_header() -> Located<String> {
    Located::new("X-Cache".to_owned())
}

/// A route's `cache`: `true`, or a table of the route's rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteCache {
    /// Cache this route at all (`cache = false` turns it off).
    pub enabled: bool,
    /// The route's rules.
    pub rules: CacheRules,
}

/// The rules of a route's cache.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheRules {
    /// Freshness given to cacheable responses that carry none (no `max-age`, `s-maxage` or
    /// `Expires`); absent: such responses get only heuristic freshness where allowed.
    #[serde(default)]
    pub default_ttl: Option<Located<HumanDuration>>,
    /// Largest body stored; a larger one streams through without being stored.
    #[serde(default = "default_max_object_size")]
    pub max_object_size: Located<ByteSize>,
    /// Statuses that may be stored (default: every final status but 206 and 304).
    #[serde(default)]
    pub statuses: Vec<Located<u16>>,
    /// Request headers whose values become part of the cache key.
    #[serde(default)]
    pub key_headers: Vec<Located<String>>,
    /// Cookies whose values become part of the cache key.
    #[serde(default)]
    pub key_cookies: Vec<Located<String>>,
    /// Query parameters left out of the cache key (`"*"`: the whole query).
    #[serde(default)]
    pub ignore_query: Vec<Located<String>>,
    /// Requests carrying any of these headers skip the cache (neither served nor stored).
    #[serde(default)]
    pub bypass_headers: Vec<Located<String>>,
    /// Requests carrying any of these cookies skip the cache.
    #[serde(default)]
    pub bypass_cookies: Vec<Located<String>>,
    /// Paths ending in these extensions (without the dot) skip the cache.
    #[serde(default)]
    pub exclude_extensions: Vec<Located<String>>,
    /// Paths under these prefixes (on segment boundaries) skip the cache.
    #[serde(default)]
    pub exclude_paths: Vec<Located<String>>,
    /// How long a stale object may be served while one request refreshes it in the
    /// background, for responses that do not say (`stale-while-revalidate`).
    #[serde(default)]
    pub stale_while_revalidate: Option<Located<HumanDuration>>,
    /// How long a stale object may be served when the upstream fails, for responses that do
    /// not say (`stale-if-error`).
    #[serde(default)]
    pub stale_if_error: Option<Located<HumanDuration>>,
    /// Concurrent misses for one object wait for the first one's response instead of each
    /// going upstream.
    #[serde(default = "yes")]
    pub collapse: bool,
    /// Longest wait for the first request's response before a waiting request goes upstream
    /// itself.
    #[serde(default = "default_collapse_timeout")]
    pub collapse_timeout: Located<HumanDuration>,
}

impl Default for CacheRules {
    fn default() -> Self {
        Self {
            default_ttl: None,
            max_object_size: default_max_object_size(),
            statuses: Vec::new(),
            key_headers: Vec::new(),
            key_cookies: Vec::new(),
            ignore_query: Vec::new(),
            bypass_headers: Vec::new(),
            bypass_cookies: Vec::new(),
            exclude_extensions: Vec::new(),
            exclude_paths: Vec::new(),
            stale_while_revalidate: None,
            stale_if_error: None,
            collapse: true,
            collapse_timeout: default_collapse_timeout(),
        }
    }
}

const fn yes() -> bool {
    true
}

const fn default_max_object_size() -> Located<ByteSize> {
    Located::new(ByteSize::mib(8))
}

const fn default_collapse_timeout() -> Located<HumanDuration> {
    Located::new(HumanDuration::secs(5))
}

impl<'de> Deserialize<'de> for RouteCache {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoolOrTable;

        impl<'de> Visitor<'de> for BoolOrTable {
            type Value = RouteCache;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false, or a table of cache rules")
            }

            fn visit_bool<E: de::Error>(self, enabled: bool) -> Result<RouteCache, E> {
                Ok(RouteCache {
                    enabled,
                    rules: CacheRules::default(),
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RouteCache, A::Error> {
                let rules = CacheRules::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RouteCache {
                    enabled: true,
                    rules,
                })
            }
        }

        deserializer.deserialize_any(BoolOrTable)
    }
}

impl JsonSchema for RouteCache {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RouteCache".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let table = generator.subschema_for::<CacheRules>();
        json_schema!({
            "description": "Cache this route's responses: true, or a table of cache rules.",
            "anyOf": [{ "type": "boolean" }, table]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        cache: RouteCache,
    }

    fn parse(text: &str) -> Result<RouteCache, String> {
        toml::from_str::<Holder>(text)
            .map(|h| h.cache)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn true_false_and_tables_parse() {
        let on = parse("cache = true").unwrap();
        assert!(on.enabled);
        assert_eq!(on.rules, CacheRules::default());
        assert!(!parse("cache = false").unwrap().enabled);
        let table =
            parse(r#"cache = { default_ttl = "10s", key_headers = ["x-tenant"] }"#).unwrap();
        assert!(table.enabled);
        assert_eq!(table.rules.key_headers.len(), 1);
        assert!(table.rules.collapse);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse("cache = { ttl = 1 }").unwrap_err().contains("ttl"));
        assert!(
            parse(r#"cache = "yes""#)
                .unwrap_err()
                .contains("true, false, or a table")
        );
    }
}

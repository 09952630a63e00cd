//! Rampart's configuration: the TOML file as raw serde structs, validation that reports every
//! problem with `file:line:col` and key path, defaults, the JSON Schema, and the embedded
//! default config.
//!
//! This crate is pure: no I/O beyond reading the config file, no async runtime, no HTTP stack.
//! It must not depend on any other Rampart crate.

#![forbid(unsafe_code)]

mod cidr;
mod diag;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod interpolate;
mod load;
mod locate;
mod located;
mod messages;
pub mod model;
mod pattern;
pub mod syntax;
pub mod units;
mod validate;
mod validate_balance;
mod validate_discovery;
mod validate_gates;
mod validate_http3;
mod validate_observability;
mod validate_security;
mod validate_tls;

use std::path::Path;
use std::sync::Arc;

pub use cidr::Cidr;
pub use diag::{ConfigError, Diagnostics, line_col, suggest};
pub use interpolate::{EnvLookup, expand};
pub use located::Located;
pub use model::RawConfig;
pub use pattern::Pattern;
pub use units::{ByteSize, HumanDuration};
pub use validate_observability::split_endpoint;
pub use validate_tls::normalize_fingerprint;

/// True when two pieces of config are the same as written (compared as JSON, so spans and
/// formatting do not count): what a reload uses to decide which state it may keep.
#[must_use]
pub fn same_as_written<T: serde::Serialize>(a: &T, b: &T) -> bool {
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The config Rampart runs when started without one (`rampart config default` prints it).
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// Name under which the embedded default config appears in messages.
pub const DEFAULT_ORIGIN: &str = "<embedded default config>";

/// A config that parsed and passed validation, with the text it came from (kept so that later
/// stages, such as compiling routes, can point at the text too).
#[derive(Debug, Clone)]
pub struct Config {
    raw: RawConfig,
    source: Arc<Source>,
}

/// The text of a config and where it came from.
#[derive(Debug)]
pub struct Source {
    /// File name (or another description of where the text came from).
    pub origin: String,
    /// The config text as read, before interpolation.
    pub text: String,
}

impl Config {
    /// The validated settings.
    #[must_use]
    pub const fn raw(&self) -> &RawConfig {
        &self.raw
    }

    /// The text the config was read from.
    #[must_use]
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Renders `errors` found after validation (for example while compiling) against this
    /// config's text.
    #[must_use]
    pub fn diagnostics(&self, errors: Vec<ConfigError>) -> Diagnostics {
        Diagnostics::new(&self.source.origin, &self.source.text, errors)
    }
}

/// The diagnostics of loading `text` without environment variables, or `""` when it loads.
#[cfg(test)]
pub(crate) fn load_errors(text: &str) -> String {
    load_str_with_env(text, "t.toml", &|_| None)
        .err()
        .map(|d| d.to_string())
        .unwrap_or_default()
}

/// Parses and validates config `text` read from `origin`, looking up `${VAR}`s with `env`.
///
/// # Errors
/// Every problem found: syntax, unknown keys, wrong types, bad values, broken references.
pub fn load_str_with_env(
    text: &str,
    origin: &str,
    env: EnvLookup<'_>,
) -> Result<Config, Diagnostics> {
    let parsed =
        load::parse_raw(text, env).map_err(|errors| Diagnostics::new(origin, text, errors))?;
    let mut checks = validate::validate(&parsed.raw, &parsed.incomplete, &parsed.positions);
    checks.extend(validate_security::validate(&parsed.raw, &parsed.positions));
    checks.extend(validate_balance::validate(&parsed.raw, &parsed.positions));
    checks.extend(validate_discovery::validate(&parsed.raw, &parsed.positions));
    checks.extend(validate_observability::validate(&parsed.raw));
    checks.extend(validate_http3::validate(&parsed.raw, &parsed.positions));
    checks.extend(validate_tls::validate(
        &parsed.raw,
        &parsed.incomplete,
        &parsed.positions,
    ));
    checks.extend(validate_gates::validate(
        &parsed.raw,
        &parsed.incomplete,
        &parsed.positions,
    ));
    checks.retain(|e| parsed.is_new(e));
    // Reading errors point where serde stopped; checks may only have had the item's name.
    if !checks.is_empty() {
        locate::point_at_keys(text, &mut checks);
    }
    let mut errors = parsed.errors;
    errors.extend(checks);
    if !errors.is_empty() {
        return Err(Diagnostics::new(origin, text, errors));
    }
    let raw = parsed.raw;
    Ok(Config {
        raw,
        source: Arc::new(Source {
            origin: origin.to_owned(),
            text: text.to_owned(),
        }),
    })
}

/// Parses and validates config `text`, looking up `${VAR}`s in the process environment.
///
/// # Errors
/// Every problem found; see [`load_str_with_env`].
pub fn load_str(text: &str, origin: &str) -> Result<Config, Diagnostics> {
    load_str_with_env(text, origin, &|name| std::env::var(name).ok())
}

/// Reads, parses and validates the config file at `path`.
///
/// # Errors
/// The file cannot be read, or any problem [`load_str`] reports.
pub fn load_file(path: &Path) -> Result<Config, Diagnostics> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Diagnostics::single(&origin, format!("cannot read config file: {e}")))?;
    load_str(&text, &origin)
}

/// Parses and validates the embedded default config.
///
/// # Errors
/// Only if the embedded default is broken (a test guards against that).
pub fn load_default() -> Result<Config, Diagnostics> {
    load_str(DEFAULT_CONFIG, DEFAULT_ORIGIN)
}

/// The JSON Schema (draft 2020-12) of the config file, for editor completion and validation.
#[must_use]
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<RawConfig>();
    schema.to_value()
}

#[cfg(test)]
mod default_config_tests {
    #[test]
    fn the_default_config_answers_exactly_slash_with_an_html_page() {
        let config = crate::load_default().unwrap();
        let welcome: Vec<_> = config
            .raw()
            .routes
            .iter()
            .filter(|r| r.path.as_ref().is_some_and(|p| p.as_str() == "/"))
            .collect();
        assert_eq!(welcome.len(), 1, "one route for exactly `/`");
        let route = welcome[0];
        assert!(route.path_prefix.is_none() && route.path_template.is_none());
        assert!(route.path_regex.is_none() && route.hosts.is_empty());
        let respond = route.respond.as_ref().expect("`/` answers with `respond`");
        assert_eq!(*respond.status.get(), 200);
        assert!(
            respond.content_type.starts_with("text/html"),
            "{}",
            respond.content_type
        );
        assert!(respond.body.contains("Rampart"), "{}", respond.body);
        assert!(respond.body.starts_with("<!doctype html>"));
        assert!(!respond.body.contains("<script"), "no JavaScript");
    }
}

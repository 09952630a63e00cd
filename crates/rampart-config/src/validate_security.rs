//! Checks of the security sections that serde alone cannot express: country codes, rules that
//! need a GeoIP database, header names, and limits that must be positive. The GeoIP files are
//! not opened here (no I/O in this crate): compiling the config reads and verifies them.

use crate::Located;
use crate::diag::ConfigError;
use crate::load::Positions;
use crate::model::{AccessRules, RawConfig};
use crate::syntax;

/// Every problem with the security settings in `raw`.
pub(crate) fn validate(raw: &RawConfig, positions: &Positions) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let geo = &raw.geoip;
    let dbs = Databases {
        country: geo.country_db.is_some(),
        asn: geo.asn_db.is_some(),
    };
    if let Some(name) = &geo.country_header {
        if !syntax::is_token(name) {
            errors.push(at(
                name,
                "geoip.country_header",
                format!("invalid header name {:?}", name.get()),
            ));
        } else if !dbs.country {
            errors.push(at(
                name,
                "geoip.country_header",
                "needs `geoip.country_db` to know the country",
            ));
        }
    }
    for (key, path) in [("country_db", &geo.country_db), ("asn_db", &geo.asn_db)] {
        if let Some(path) = path
            && path.trim().is_empty()
        {
            errors.push(at(path, format!("geoip.{key}"), "must not be empty"));
        }
    }
    let h2 = &raw.http2;
    if h2.max_concurrent_streams == 0 {
        errors.push(plain("http2.max_concurrent_streams", "must be at least 1"));
    }
    if h2.max_pending_accept_reset_streams == 0 {
        errors.push(plain(
            "http2.max_pending_accept_reset_streams",
            "must be at least 1",
        ));
    }
    if h2.max_local_error_reset_streams == 0 {
        errors.push(plain(
            "http2.max_local_error_reset_streams",
            "must be at least 1",
        ));
    }
    if raw.timeouts.body_grace.get().is_zero() {
        errors.push(plain("timeouts.body_grace", "must be greater than 0s"));
    }
    for (i, l) in raw.listeners.iter().enumerate() {
        let path = positions.item("listeners", i);
        if let Some(pp) = &l.proxy_protocol
            && pp.from.is_empty()
        {
            errors.push(at(
                &l.name,
                format!("{path}.proxy_protocol.from"),
                "list the load balancers' addresses (an empty list would accept the header from nobody)",
            ));
        }
        if let Some(access) = &l.access {
            access_rules(&mut errors, &format!("{path}.access"), access, dbs);
        }
    }
    for (i, r) in raw.routes.iter().enumerate() {
        if let Some(access) = &r.access {
            let path = format!("{}.access", positions.item("routes", i));
            access_rules(&mut errors, &path, access, dbs);
        }
    }
    errors
}

/// Which GeoIP databases are configured.
#[derive(Clone, Copy)]
struct Databases {
    country: bool,
    asn: bool,
}

fn access_rules(errors: &mut Vec<ConfigError>, path: &str, rules: &AccessRules, dbs: Databases) {
    for (key, list) in [
        ("allow_countries", &rules.allow_countries),
        ("deny_countries", &rules.deny_countries),
    ] {
        for (i, code) in list.iter().enumerate() {
            if !is_country_code(code) {
                errors.push(at(
                    code,
                    format!("{path}.{key}[{i}]"),
                    format!(
                        "invalid country code {:?}: expected two capital letters (ISO 3166-1 alpha-2), such as \"DE\"",
                        code.get()
                    ),
                ));
            }
        }
        if let Some(first) = list.first()
            && !dbs.country
        {
            errors.push(at(
                first,
                format!("{path}.{key}"),
                "country rules need `geoip.country_db`",
            ));
        }
    }
    for (key, list) in [
        ("allow_asns", &rules.allow_asns),
        ("deny_asns", &rules.deny_asns),
    ] {
        if let Some(first) = list.first()
            && !dbs.asn
        {
            errors.push(at(
                first,
                format!("{path}.{key}"),
                "ASN rules need `geoip.asn_db`",
            ));
        }
    }
}

fn is_country_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

fn at<T>(value: &Located<T>, path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(Some(value.span()), path, message)
}

fn plain(path: &str, message: &str) -> ConfigError {
    ConfigError::new(None, path, message)
}

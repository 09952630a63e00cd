//! Checks of the rate-limit, Redis, header and CORS settings that serde alone cannot express:
//! references between routes and policies, rates the limiter can represent, header names that
//! would break message framing, and CORS origins.

use std::collections::HashMap;
use std::time::Duration;

use crate::Located;
use crate::diag::{ConfigError, suggest};
use crate::load::Positions;
use crate::model::{
    Cors, Decompress, HeaderEdits, KeyPart, OriginPattern, RateLimitPolicy, RateLimitStore,
    RawConfig, RedisFailure, RedisSection, SecurityHeaders,
};
use crate::syntax;

/// Largest `burst` (and `requests`) a policy may use.
const MAX_BURST: u64 = 1_000_000_000;

/// Headers that frame or route a message: editing them could desynchronise Rampart and the
/// upstream (request smuggling) or break the connection.
const FRAMING_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// `Referrer-Policy` tokens (W3C Referrer Policy §3).
const REFERRER_POLICIES: &[&str] = &[
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
];

/// Every problem with rate limits, `[redis]`, header edits, security headers and CORS.
pub(crate) fn validate(
    raw: &RawConfig,
    incomplete: &[&str],
    positions: &Positions,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, p) in raw.rate_limits.iter().enumerate() {
        let path = format!("rate_limits[{i}]");
        if let Some(first) = names.insert(p.name.as_str(), i) {
            errors.push(at(
                &p.name,
                format!("{path}.name"),
                format!(
                    "duplicate name {:?}: already used by rate_limits[{first}]",
                    p.name.get()
                ),
            ));
        }
        policy(&mut errors, &path, p, raw.redis.is_some());
    }
    if let Some(redis) = &raw.redis {
        redis_section(&mut errors, redis, &raw.rate_limits, incomplete);
    }
    let check_refs = !incomplete.contains(&"rate_limits");
    for (i, r) in raw.routes.iter().enumerate() {
        let path = positions.item("routes", i);
        if check_refs {
            route_policies(&mut errors, &path, &r.rate_limits, &raw.rate_limits);
        }
        if let Some(h) = &r.security_headers {
            security_headers(&mut errors, &format!("{path}.security_headers"), h);
        }
        if let Some(e) = &r.request_headers {
            header_edits(&mut errors, &format!("{path}.request_headers"), e, true);
        }
        if let Some(e) = &r.response_headers {
            header_edits(&mut errors, &format!("{path}.response_headers"), e, false);
        }
        if let Some(c) = &r.cors {
            cors(&mut errors, &format!("{path}.cors"), c, &r.name);
        }
        if let Some(d) = &r.decompress {
            decompress(&mut errors, &format!("{path}.decompress"), d);
        }
    }
    errors
}

fn decompress(errors: &mut Vec<ConfigError>, path: &str, d: &Decompress) {
    if d.max_size.get().get() == 0 {
        errors.push(at(
            &d.max_size,
            format!("{path}.max_size"),
            "must be at least 1 byte",
        ));
    }
    if *d.max_ratio.get() == 0 {
        errors.push(at(
            &d.max_ratio,
            format!("{path}.max_ratio"),
            "must be at least 1",
        ));
    }
}

fn at<T>(value: &Located<T>, path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(Some(value.span()), path, message)
}

fn policy(errors: &mut Vec<ConfigError>, path: &str, p: &RateLimitPolicy, has_redis: bool) {
    if !syntax::is_name(&p.name) {
        errors.push(at(
            &p.name,
            format!("{path}.name"),
            format!(
                "invalid name {:?}: expected 1 to 64 letters, digits, `-`, `_` or `.`",
                p.name.get()
            ),
        ));
    }
    rate(errors, path, &p.requests, &p.per, p.burst.as_ref());
    if p.key.is_empty() {
        errors.push(at(
            &p.name,
            format!("{path}.key"),
            "must name at least one key part",
        ));
    }
    let mut seen = Vec::new();
    for (i, part) in p.key.iter().enumerate() {
        match KeyPart::parse(part) {
            Ok(k) if seen.contains(&k) => errors.push(at(
                part,
                format!("{path}.key[{i}]"),
                format!("{:?} is listed twice", part.get()),
            )),
            Ok(k) => seen.push(k),
            Err(msg) => errors.push(at(part, format!("{path}.key[{i}]"), msg)),
        }
    }
    match p.store {
        RateLimitStore::Redis if !has_redis => errors.push(at(
            &p.name,
            format!("{path}.store"),
            "`store = \"redis\"` needs a `[redis]` section with the server's `url`",
        )),
        RateLimitStore::Redis => {}
        RateLimitStore::Local => {
            if let Some(on_error) = &p.on_redis_error {
                errors.push(at(
                    on_error,
                    format!("{path}.on_redis_error"),
                    "applies only to policies with `store = \"redis\"`",
                ));
            }
            if p.fallback.is_some() {
                errors.push(at(
                    &p.name,
                    format!("{path}.fallback"),
                    "applies only to policies with `store = \"redis\"`",
                ));
            }
        }
    }
    if let (Some(on_error), Some(_)) = (&p.on_redis_error, &p.fallback)
        && *on_error.get() != RedisFailure::Local
    {
        errors.push(at(
            on_error,
            format!("{path}.fallback"),
            "a fallback limit is used only with `on_redis_error = \"local\"`",
        ));
    }
    if let Some(f) = &p.fallback {
        rate(
            errors,
            &format!("{path}.fallback"),
            &f.requests,
            &f.per,
            f.burst.as_ref(),
        );
    }
}

/// The limiter counts in microseconds: one request may not cost less than 1 µs of the period.
fn rate(
    errors: &mut Vec<ConfigError>,
    path: &str,
    requests: &Located<u64>,
    per: &Located<crate::HumanDuration>,
    burst: Option<&Located<u64>>,
) {
    let per_us = per.get().get().as_micros();
    if *requests.get() == 0 || *requests.get() > MAX_BURST {
        errors.push(at(
            requests,
            format!("{path}.requests"),
            format!("must be between 1 and {MAX_BURST}"),
        ));
    } else if per_us < u128::from(*requests.get()) {
        errors.push(at(
            per,
            format!("{path}.per"),
            format!(
                "{} requests per {} is more than one per microsecond, the limiter's resolution",
                requests.get(),
                per.get()
            ),
        ));
    }
    if per.get().get() > Duration::from_secs(366 * 86_400) {
        errors.push(at(per, format!("{path}.per"), "must be at most 366d"));
    }
    if let Some(b) = burst
        && (*b.get() == 0 || *b.get() > MAX_BURST)
    {
        errors.push(at(
            b,
            format!("{path}.burst"),
            format!("must be between 1 and {MAX_BURST}"),
        ));
    }
}

fn redis_section(
    errors: &mut Vec<ConfigError>,
    redis: &RedisSection,
    policies: &[RateLimitPolicy],
    incomplete: &[&str],
) {
    let url = redis.url.get();
    let host = url
        .strip_prefix("redis://")
        .map(|rest| rest.rsplit('@').next().unwrap_or(rest))
        .map(|rest| rest.split('/').next().unwrap_or(rest));
    match host {
        None => errors.push(at(
            &redis.url,
            "redis.url",
            "expected \"redis://host:port\" (optionally \"redis://user:password@host:port/db\")",
        )),
        Some("") => errors.push(at(&redis.url, "redis.url", "the URL names no host")),
        Some(_) => {}
    }
    for (key, d) in [
        ("timeout", &redis.timeout),
        ("retry_interval", &redis.retry_interval),
    ] {
        if d.get().get().is_zero() {
            errors.push(at(d, format!("redis.{key}"), "must be greater than 0s"));
        }
    }
    if redis.timeout.get().get() > Duration::from_secs(10) {
        errors.push(at(
            &redis.timeout,
            "redis.timeout",
            "must be at most 10s: requests wait this long when Redis is slow",
        ));
    }
    if !syntax::is_header_value(&redis.key_prefix) {
        errors.push(ConfigError::new(
            None,
            "redis.key_prefix",
            "may not contain control characters",
        ));
    }
    let used = policies.iter().any(|p| p.store == RateLimitStore::Redis);
    if !used && !incomplete.contains(&"rate_limits") {
        errors.push(at(
            &redis.url,
            "redis",
            "no rate-limit policy has `store = \"redis\"`: remove `[redis]` or use it",
        ));
    }
}

fn route_policies(
    errors: &mut Vec<ConfigError>,
    path: &str,
    refs: &[Located<String>],
    policies: &[RateLimitPolicy],
) {
    let defined: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
    for (i, name) in refs.iter().enumerate() {
        let key = format!("{path}.rate_limits[{i}]");
        match policies.iter().find(|p| p.name.as_str() == name.as_str()) {
            None => {
                let hint = suggest(name, defined.iter().copied())
                    .map(|h| format!(" (did you mean {h:?}?)"))
                    .unwrap_or_default();
                errors.push(at(
                    name,
                    key,
                    format!("unknown rate-limit policy {:?}{hint}", name.get()),
                ));
            }
            Some(p) if p.all_routes => errors.push(at(
                name,
                key,
                format!(
                    "{:?} has `all_routes = true` and applies here already",
                    name.get()
                ),
            )),
            Some(_) if refs[..i].contains(name) => {
                errors.push(at(name, key, format!("{:?} is listed twice", name.get())));
            }
            Some(_) => {}
        }
    }
}

fn security_headers(errors: &mut Vec<ConfigError>, path: &str, h: &SecurityHeaders) {
    if let Some(hsts) = &h.hsts
        && hsts.preload
        && (!hsts.include_subdomains || hsts.max_age.get().get() < Duration::from_secs(31_536_000))
    {
        errors.push(at(
            &hsts.max_age,
            format!("{path}.hsts.preload"),
            "preload lists require `include_subdomains = true` and a `max_age` of at least 365d",
        ));
    }
    if let Some(f) = &h.frame_options
        && !["DENY", "SAMEORIGIN"].contains(&f.to_ascii_uppercase().as_str())
    {
        errors.push(at(
            f,
            format!("{path}.frame_options"),
            format!(
                "invalid value {:?}: expected \"DENY\" or \"SAMEORIGIN\"",
                f.get()
            ),
        ));
    }
    if let Some(r) = &h.referrer_policy {
        let tokens: Vec<&str> = r.split(',').map(str::trim).collect();
        if let Some(bad) = tokens.iter().find(|t| !REFERRER_POLICIES.contains(t)) {
            errors.push(at(
                r,
                format!("{path}.referrer_policy"),
                format!(
                    "unknown policy {bad:?}: expected one of {}",
                    REFERRER_POLICIES.join(", ")
                ),
            ));
        }
    }
    for (key, v) in [
        ("permissions_policy", &h.permissions_policy),
        ("content_security_policy", &h.content_security_policy),
    ] {
        if let Some(v) = v
            && (v.trim().is_empty() || !syntax::is_header_value(v))
        {
            errors.push(at(
                v,
                format!("{path}.{key}"),
                "must be a non-empty header value without control characters",
            ));
        }
    }
}

fn header_edits(errors: &mut Vec<ConfigError>, path: &str, e: &HeaderEdits, request: bool) {
    let forbidden = |name: &str| {
        let lower = name.to_ascii_lowercase();
        FRAMING_HEADERS.contains(&lower.as_str()) || (request && lower == "host")
    };
    let why = if request {
        "it frames or routes the message (use `rewrite.host` for Host)"
    } else {
        "it frames the message"
    };
    for (i, name) in e.remove.iter().enumerate() {
        if !syntax::is_token(name) {
            errors.push(at(
                name,
                format!("{path}.remove[{i}]"),
                format!("invalid header name {:?}", name.get()),
            ));
        } else if forbidden(name) {
            errors.push(at(
                name,
                format!("{path}.remove[{i}]"),
                format!("{:?} cannot be edited: {why}", name.get()),
            ));
        }
    }
    for (op, map) in [("set", &e.set), ("add", &e.add)] {
        for (name, value) in map {
            let key = format!("{path}.{op}.{name}");
            if !syntax::is_token(name) {
                errors.push(at(value, key, format!("invalid header name {name:?}")));
            } else if forbidden(name) {
                errors.push(at(value, key, format!("{name:?} cannot be edited: {why}")));
            } else if !syntax::is_header_value(value) {
                errors.push(at(
                    value,
                    key,
                    "header values may not contain control characters",
                ));
            }
        }
    }
}

fn cors(errors: &mut Vec<ConfigError>, path: &str, c: &Cors, route: &Located<String>) {
    if c.allow_origins.is_empty() && c.allow_origin_regex.is_empty() {
        errors.push(at(
            route,
            format!("{path}.allow_origins"),
            "a CORS policy needs `allow_origins` or `allow_origin_regex`",
        ));
    }
    let mut any = false;
    for (i, o) in c.allow_origins.iter().enumerate() {
        match OriginPattern::parse(o) {
            Ok(OriginPattern::Any) => any = true,
            Ok(_) => {}
            Err(msg) => errors.push(at(o, format!("{path}.allow_origins[{i}]"), msg)),
        }
    }
    if any && (c.allow_origins.len() > 1 || !c.allow_origin_regex.is_empty()) {
        errors.push(at(
            route,
            format!("{path}.allow_origins"),
            "\"*\" allows every origin: list no other origins or patterns with it",
        ));
    }
    if any && c.allow_credentials {
        errors.push(at(
            route,
            format!("{path}.allow_credentials"),
            "credentials cannot be allowed for every origin (\"*\"): list the trusted origins",
        ));
    }
    for (i, m) in c.allow_methods.iter().enumerate() {
        if !syntax::is_token(m) || m.chars().any(|ch| ch.is_ascii_lowercase()) {
            errors.push(at(
                m,
                format!("{path}.allow_methods[{i}]"),
                format!(
                    "invalid method {:?}: expected an upper-case token such as \"PUT\"",
                    m.get()
                ),
            ));
        }
    }
    for (key, list) in [
        ("allow_headers", &c.allow_headers),
        ("expose_headers", &c.expose_headers),
    ] {
        for (i, h) in list.iter().enumerate() {
            if !syntax::is_token(h) {
                errors.push(at(
                    h,
                    format!("{path}.{key}[{i}]"),
                    format!("invalid header name {:?}", h.get()),
                ));
            } else if h.as_str() == "*" && list.len() > 1 {
                errors.push(at(
                    h,
                    format!("{path}.{key}[{i}]"),
                    "\"*\" covers every header: list nothing else",
                ));
            }
        }
    }
    if c.allow_credentials && c.expose_headers.iter().any(|h| h.as_str() == "*") {
        errors.push(at(
            route,
            format!("{path}.expose_headers"),
            "browsers ignore \"*\" with credentials: list the headers to expose",
        ));
    }
}

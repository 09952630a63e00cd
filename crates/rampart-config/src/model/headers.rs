//! Per-route header policies: security headers, request and response header edits, and CORS.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;
use crate::{Located, Pattern};

/// `security_headers`: response headers that tell browsers to be careful. Every header is off
/// unless configured.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityHeaders {
    /// `Strict-Transport-Security`, sent on HTTPS responses only unless `force = true`.
    #[serde(default)]
    pub hsts: Option<SecurityHsts>,
    /// `X-Content-Type-Options: nosniff`.
    #[serde(default)]
    pub content_type_options: bool,
    /// `X-Frame-Options`: `"DENY"` or `"SAMEORIGIN"`.
    #[serde(default)]
    pub frame_options: Option<Located<String>>,
    /// `Referrer-Policy`, such as `"strict-origin-when-cross-origin"`.
    #[serde(default)]
    pub referrer_policy: Option<Located<String>>,
    /// `Permissions-Policy`, such as `"geolocation=(), camera=()"`.
    #[serde(default)]
    pub permissions_policy: Option<Located<String>>,
    /// `Content-Security-Policy`, such as `"default-src 'self'"`.
    #[serde(default)]
    pub content_security_policy: Option<Located<String>>,
    /// Remove `Server`, `X-Powered-By`, `X-AspNet-Version` and `X-AspNetMvc-Version` from
    /// responses.
    #[serde(default)]
    pub hide_server_headers: bool,
    /// Keep a value the upstream already set for one of these headers instead of replacing it.
    #[serde(default)]
    pub keep_upstream: bool,
}

/// `hsts = { max_age = "365d", include_subdomains = true }` for one route (overrides the
/// listener's `tls.hsts`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityHsts {
    /// `max-age`, rounded down to whole seconds (default one year).
    #[serde(default = "default_hsts_max_age")]
    pub max_age: Located<HumanDuration>,
    /// Add `includeSubDomains`.
    #[serde(default)]
    pub include_subdomains: bool,
    /// Add `preload` (needs `include_subdomains` and a `max_age` of at least 365 days).
    #[serde(default)]
    pub preload: bool,
    /// Send it on plain-HTTP responses too (for TLS ended by a proxy in front of Rampart).
    #[serde(default)]
    pub force: bool,
}

/// `request_headers` / `response_headers`: removed first, then set (replacing), then added.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderEdits {
    /// Header names to remove.
    #[serde(default)]
    pub remove: Vec<Located<String>>,
    /// Headers to set, replacing any value already there.
    #[serde(default)]
    pub set: BTreeMap<String, Located<String>>,
    /// Headers to add, next to any value already there.
    #[serde(default)]
    pub add: BTreeMap<String, Located<String>>,
}

/// `cors`: which cross-origin browser requests may read this route's responses.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Exact origins (`"https://app.example.com"`), wildcard subdomains
    /// (`"https://*.example.com"`), or `"*"` for any origin.
    #[serde(default)]
    pub allow_origins: Vec<Located<String>>,
    /// Origins matching one of these regular expressions (anchor them with `^…$`).
    #[serde(default)]
    pub allow_origin_regex: Vec<Located<Pattern>>,
    /// Methods a preflight may ask for.
    #[serde(default = "default_cors_methods")]
    pub allow_methods: Vec<Located<String>>,
    /// Request headers a preflight may ask for (`["*"]`: any).
    #[serde(default)]
    pub allow_headers: Vec<Located<String>>,
    /// Response headers the browser may show to scripts.
    #[serde(default)]
    pub expose_headers: Vec<Located<String>>,
    /// Send `Access-Control-Allow-Credentials: true` (cookies and HTTP auth).
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer.
    #[serde(default)]
    pub max_age: Option<HumanDuration>,
}

fn default_hsts_max_age() -> Located<HumanDuration> {
    Located::new(HumanDuration::secs(31_536_000))
}

fn default_cors_methods() -> Vec<Located<String>> {
    ["GET", "HEAD", "POST"]
        .into_iter()
        .map(|m| Located::new(m.to_owned()))
        .collect()
}

/// An entry of `cors.allow_origins`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// `*`: any origin.
    Any,
    /// An exact serialized origin such as `https://app.example.com:8443` (lower-cased), or
    /// `null`.
    Exact(String),
    /// `scheme://*.domain[:port]`: any subdomain, one or more labels deep. `suffix` starts
    /// with the dot: `.example.com:8443`.
    Subdomains {
        /// `https`, `http`, ...
        scheme: String,
        /// `.example.com` plus `:port` when one is given.
        suffix: String,
    },
}

impl OriginPattern {
    /// Parses `*`, `null`, `https://host[:port]` or `https://*.domain[:port]`.
    ///
    /// # Errors
    /// Explains the accepted forms.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "invalid origin {text:?}: {why}; expected \"https://app.example.com\", \"https://*.example.com\" or \"*\""
            )
        };
        if text == "*" {
            return Ok(Self::Any);
        }
        if text == "null" {
            return Ok(Self::Exact(text.to_owned()));
        }
        let lower = text.to_ascii_lowercase();
        let (scheme, rest) = lower.split_once("://").ok_or_else(|| bad("no scheme"))?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(bad("invalid scheme"));
        }
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err(bad("an origin has no path (remove the trailing `/`)"));
        }
        let (host, port) = split_port(rest).ok_or_else(|| bad("invalid port"))?;
        let (wildcard, domain) = match host.strip_prefix("*.") {
            Some(d) => (true, d),
            None => (false, host),
        };
        let valid_host = !domain.is_empty()
            && (domain.starts_with('[')
                || domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)))
            && !domain.starts_with('.')
            && !domain.contains("..");
        if !valid_host || domain.contains('*') {
            return Err(bad("invalid host"));
        }
        if wildcard {
            let suffix = match port {
                Some(p) => format!(".{domain}:{p}"),
                None => format!(".{domain}"),
            };
            return Ok(Self::Subdomains {
                scheme: scheme.to_owned(),
                suffix,
            });
        }
        Ok(Self::Exact(lower))
    }
}

/// Splits `host[:port]` (with `[v6]` hosts); `None` when the port is not 1–5 digits.
fn split_port(authority: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')? + 1;
        match &authority[end..] {
            "" => (&authority[..end], None),
            rest => (&authority[..end], Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    match port {
        Some(p) if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) => None,
        _ => Some((host, port)),
    }
}

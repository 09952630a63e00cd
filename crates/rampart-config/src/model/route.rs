//! `[[routes]]`: which requests a route takes (predicates), what it does (handler), and the
//! rewrites on the way.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::auth::RouteAuth;
use crate::model::balance::RouteRetry;
use crate::model::cache::RouteCache;
use crate::model::compress::Compress;
use crate::model::decompress::Decompress;
use crate::model::headers::{Cors, HeaderEdits, SecurityHeaders};
use crate::model::security::AccessRules;
use crate::model::static_files::StaticFiles;
use crate::model::tls::ClientCertRequirement;
use crate::model::traffic::{Fallback, Fault, Mirror, Split};
use crate::units::{ByteSize, HumanDuration};
use crate::{Located, Pattern};

/// One route: predicates that select requests, exactly one handler, optional rewrites.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Unique name, used in logs, metrics and `rampart explain`.
    pub name: Located<String>,
    /// Overrides specificity: a higher priority wins over any lower one.
    #[serde(default)]
    pub priority: i32,
    /// Listeners this route serves (default: all).
    #[serde(default)]
    pub listeners: Vec<Located<String>>,
    /// Host names: exact (`api.example.com`) or wildcard (`*.example.com`); default: any host.
    #[serde(default)]
    pub hosts: Vec<Located<String>>,
    /// Matches exactly this path.
    #[serde(default)]
    pub path: Option<Located<String>>,
    /// Matches this path and everything below it, on segment boundaries (`/api` matches `/api`
    /// and `/api/x`, not `/apix`; a prefix ending in `/` matches only below it).
    #[serde(default)]
    pub path_prefix: Option<Located<String>>,
    /// Matches a template with `{param}` segments and an optional trailing `{*rest}`.
    #[serde(default)]
    pub path_template: Option<Located<String>>,
    /// Matches paths this regular expression finds a match in (anchor it with `^…$`).
    #[serde(default)]
    pub path_regex: Option<Located<Pattern>>,
    /// Request methods this route takes (default: any); others fall through to other routes.
    #[serde(default)]
    pub methods: Vec<Located<String>>,
    /// Header predicates, all of which must hold.
    #[serde(default)]
    pub headers: Vec<HeaderMatch>,
    /// Query-parameter predicates, all of which must hold.
    #[serde(default)]
    pub query: Vec<QueryMatch>,
    /// Methods allowed once the route matched; others get 405 with an `Allow` header.
    #[serde(default)]
    pub allow_methods: Vec<Located<String>>,
    /// Handler: forward to this upstream.
    #[serde(default)]
    pub upstream: Option<Located<String>>,
    /// Handler: answer with a redirect.
    #[serde(default)]
    pub redirect: Option<Redirect>,
    /// Handler: answer with a fixed response.
    #[serde(default)]
    pub respond: Option<Respond>,
    /// Handler: answer with a JSON description of the request (method, path, headers, client).
    #[serde(default)]
    pub echo: bool,
    /// Handler: serve files from a directory.
    #[serde(default, rename = "static")]
    pub static_files: Option<StaticFiles>,
    /// Path and host rewrites applied before forwarding.
    #[serde(default)]
    pub rewrite: Option<Rewrite>,
    /// Overrides `limits.max_body_size` for this route.
    #[serde(default)]
    pub max_body_size: Option<ByteSize>,
    /// Decompress request bodies with a `Content-Encoding` on their way to the upstream (and
    /// to the stages that read bodies), within size and ratio caps. Off by default.
    #[serde(default)]
    pub decompress: Option<Decompress>,
    /// Compress responses (gzip, brotli, zstd) for clients that accept it. Off by default.
    #[serde(default)]
    pub compress: Option<Compress>,
    /// Overrides the upstream's `request_timeout` for this route.
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Retry overrides for this route (`max_retries`, `non_idempotent`, `per_try_timeout`).
    #[serde(default)]
    pub retry: Option<RouteRetry>,
    /// Who may use this route: IP networks, countries, autonomous systems (403 otherwise).
    #[serde(default)]
    pub access: Option<AccessRules>,
    /// Names of `[[rate_limits]]` policies applied to this route, in order.
    #[serde(default)]
    pub rate_limits: Vec<Located<String>>,
    /// Cross-origin (CORS) policy; preflights are answered by Rampart.
    #[serde(default)]
    pub cors: Option<Cors>,
    /// Security headers added to every response of this route, errors included.
    #[serde(default)]
    pub security_headers: Option<SecurityHeaders>,
    /// Edits to the request headers before the handler.
    #[serde(default)]
    pub request_headers: Option<HeaderEdits>,
    /// Edits to the response headers, errors included.
    #[serde(default)]
    pub response_headers: Option<HeaderEdits>,
    /// Only clients whose verified TLS certificate matches may use this route (403 otherwise).
    #[serde(default)]
    pub client_cert: Option<Located<ClientCertRequirement>>,
    /// Sends a share of the requests to other upstreams (canaries), sticky per user.
    #[serde(default)]
    pub split: Option<Split>,
    /// Injected delays and aborts, for testing.
    #[serde(default)]
    pub fault: Option<Fault>,
    /// A copy of a share of the proxied requests to a shadow upstream.
    #[serde(default)]
    pub mirror: Option<Mirror>,
    /// Another upstream for requests the route's own cannot serve.
    #[serde(default)]
    pub fallback: Option<Fallback>,
    /// Store and serve this route's responses from the shared cache (RFC 9111). Off by
    /// default.
    #[serde(default)]
    pub cache: Option<RouteCache>,
    /// Who may use this route: credentials checked by `[auth]` providers (401/403 otherwise).
    #[serde(default)]
    pub auth: Option<RouteAuth>,
}

/// A header predicate: `value` (exact), `regex`, or neither (the header must be present);
/// `present = false` requires it to be absent.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header name (case-insensitive).
    pub name: Located<String>,
    /// The value must equal this exactly.
    #[serde(default)]
    pub value: Option<String>,
    /// The value must match this regular expression.
    #[serde(default)]
    pub regex: Option<Pattern>,
    /// `false`: the header must be absent.
    #[serde(default = "yes")]
    pub present: bool,
}

/// A query-parameter predicate, with the same forms as [`HeaderMatch`].
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryMatch {
    /// Parameter name (case-sensitive, after percent-decoding).
    pub name: Located<String>,
    /// The (decoded) value must equal this exactly.
    #[serde(default)]
    pub value: Option<String>,
    /// The (decoded) value must match this regular expression.
    #[serde(default)]
    pub regex: Option<Pattern>,
    /// `false`: the parameter must be absent.
    #[serde(default = "yes")]
    pub present: bool,
}

const fn yes() -> bool {
    true
}

/// A redirect answer. `to` may use `{scheme}`, `{host}`, `{path}`, `{query}` (with its `?`) and
/// `{request_uri}` (path and query).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    /// Target URL or path, with optional placeholders.
    pub to: Located<String>,
    /// 301, 302, 303, 307 or 308.
    #[serde(default = "default_redirect_status")]
    pub status: Located<u16>,
}

const fn default_redirect_status() -> Located<u16> {
    Located::new(302)
}

/// A fixed answer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Respond {
    /// Status code (100–599).
    #[serde(default = "default_respond_status")]
    pub status: Located<u16>,
    /// Response body.
    #[serde(default)]
    pub body: String,
    /// `Content-Type` of the body.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Extra response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

const fn default_respond_status() -> Located<u16> {
    Located::new(200)
}

fn default_content_type() -> String {
    "text/plain; charset=utf-8".to_owned()
}

/// Rewrites applied before forwarding: at most one path rewrite, and optionally the Host.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// Remove this leading path (`/api/users` → `/users` for `/api`).
    #[serde(default)]
    pub strip_prefix: Option<Located<String>>,
    /// Replace a leading path with another.
    #[serde(default)]
    pub replace_prefix: Option<PrefixReplace>,
    /// Replace the path using a regular expression with `$1`/`$name` captures.
    #[serde(default)]
    pub path_regex: Option<RegexRewrite>,
    /// Send this `Host` to the upstream instead of the client's.
    #[serde(default)]
    pub host: Option<Located<String>>,
}

/// `replace_prefix = { from = "/v1", to = "/v2" }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefixReplace {
    /// Leading path to replace (on a segment boundary).
    pub from: Located<String>,
    /// What to put instead.
    pub to: Located<String>,
}

/// `path_regex = { pattern = "^/old/(.*)$", replace = "/new/$1" }`. Named captures are written
/// `$name`, or `$${name}` (config strings treat `${…}` as an environment variable).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegexRewrite {
    /// Pattern searched in the path.
    pub pattern: Pattern,
    /// Replacement, with `$1`, `$name` or `$${name}` for captures.
    pub replace: Located<String>,
}

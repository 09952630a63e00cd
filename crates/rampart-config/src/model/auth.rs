//! `[auth]`: named authentication providers (`[[auth.jwt]]`, `[[auth.api_keys]]`,
//! `[[auth.basic]]`) that routes
//! refer to from their `auth` table.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Located;
use crate::units::{ByteSize, HumanDuration};

/// `[auth]`: the providers routes may use.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// JSON Web Token providers.
    #[serde(default)]
    pub jwt: Vec<JwtProvider>,
    /// API key sets.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyProvider>,
    /// Basic authentication against htpasswd files.
    #[serde(default)]
    pub basic: Vec<BasicProvider>,
}

/// `[[auth.basic]]`: user names and password hashes from an htpasswd file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicProvider {
    /// Unique name among all providers, referenced by routes' `auth.providers`.
    pub name: Located<String>,
    /// The htpasswd file: `user:hash` lines with bcrypt (`$2y$`, `$2b$`, `$2a$`) or argon2
    /// (`$argon2id$`, `$argon2i$`) hashes.
    pub htpasswd: Located<String>,
    /// How long a verified user name and password is remembered (by hash) before it is
    /// checked again; 0 checks every request.
    #[serde(default = "default_basic_cache")]
    pub cache: Located<HumanDuration>,
}

fn default_basic_cache() -> Located<HumanDuration> {
    Located::new(HumanDuration::secs(60))
}

/// A JWT signing algorithm a provider accepts (`none` is never one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 (shared secret).
    HS256,
    /// HMAC with SHA-384 (shared secret).
    HS384,
    /// HMAC with SHA-512 (shared secret).
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

/// `[[auth.jwt]]`: validates bearer tokens signed by one issuer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtProvider {
    /// Unique name among all providers, referenced by routes' `auth.providers`.
    pub name: Located<String>,
    /// The algorithms tokens may be signed with; all of one family (HMAC, RSA, EC or EdDSA)
    /// matching the key.
    pub algorithms: Vec<Located<JwtAlgorithm>>,
    /// Verification keys from this JWKS URL (https, or http on loopback), cached.
    #[serde(default)]
    pub jwks_url: Option<Located<String>>,
    /// CA certificates (PEM) trusted for `jwks_url` instead of the system store.
    #[serde(default)]
    pub jwks_ca: Option<Located<String>>,
    /// Longest a JWKS fetch may take.
    #[serde(default = "default_jwks_timeout")]
    pub jwks_timeout: Located<HumanDuration>,
    /// How long a fetched key set is used when the response has no `Cache-Control: max-age`.
    #[serde(default = "default_jwks_cache")]
    pub jwks_cache: Located<HumanDuration>,
    /// Fewest time between two fetches (an unknown `kid` or a failed fetch waits this long
    /// before the next).
    #[serde(default = "default_jwks_min_refresh")]
    pub jwks_min_refresh: Located<HumanDuration>,
    /// A public key (PEM: RSA, EC or Ed25519) from this file.
    #[serde(default)]
    pub key_file: Option<Located<String>>,
    /// The HMAC secret is the value of this environment variable.
    #[serde(default)]
    pub secret_env: Option<Located<String>>,
    /// Accepted `iss` values (any of them); empty: not checked.
    #[serde(default)]
    pub issuers: Vec<String>,
    /// Accepted `aud` values (a token naming any of them passes); empty: not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    #[serde(default = "default_leeway")]
    pub leeway: Located<HumanDuration>,
    /// Claims every token must carry (`exp` is always required).
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Claim values every token must have.
    #[serde(default)]
    pub claims: Vec<ClaimRule>,
    /// Where the token is read from, in order: `header` (`Authorization: Bearer`),
    /// `header:NAME`, `cookie:NAME`, `query:NAME`.
    #[serde(default = "default_token_sources")]
    pub token_from: Vec<Located<String>>,
    /// Longer tokens are refused without being decoded.
    #[serde(default = "default_max_token_size")]
    pub max_token_size: ByteSize,
    /// Verified tokens remembered (by hash, until `exp`) so that repeats skip the signature
    /// check; 0 turns the cache off.
    #[serde(default = "default_cache_size")]
    pub cache_size: u64,
}

fn default_jwks_timeout() -> Located<HumanDuration> {
    Located::new(HumanDuration::secs(5))
}

fn default_jwks_cache() -> Located<HumanDuration> {
    Located::new(HumanDuration::secs(300))
}

fn default_jwks_min_refresh() -> Located<HumanDuration> {
    Located::new(HumanDuration::secs(30))
}

fn default_leeway() -> Located<HumanDuration> {
    Located::new(HumanDuration::secs(60))
}

fn default_token_sources() -> Vec<Located<String>> {
    vec![Located::new("header".to_owned())]
}

const fn default_max_token_size() -> ByteSize {
    ByteSize::kib(8)
}

const fn default_cache_size() -> u64 {
    10_000
}

/// `[[auth.api_keys]]`: a set of named API keys, stored as SHA-256 hashes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyProvider {
    /// Unique name among all providers, referenced by routes' `auth.providers`.
    pub name: Located<String>,
    /// Where the key is read from, in order: `header:NAME`, `cookie:NAME`,
    /// `query:NAME`.
    #[serde(default = "default_api_key_sources")]
    pub key_from: Vec<Located<String>>,
    /// The keys.
    #[serde(default)]
    pub keys: Vec<ApiKey>,
}

fn default_api_key_sources() -> Vec<Located<String>> {
    vec![Located::new("header:x-api-key".to_owned())]
}

/// One API key.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// The key's name: the principal's subject, shown in logs.
    pub name: Located<String>,
    /// SHA-256 of the key, 64 hex digits.
    pub sha256: Located<String>,
    /// Scopes the key grants (the principal's `scope` claim).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A claim requirement: `value` (equal), `one_of` (equal to one), or `contains` (an array
/// claim holding it, or a space-separated string claim with it as one word); with none of
/// these, the claim must be present.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRule {
    /// Claim name; dots reach into objects (`realm_access.roles`).
    pub name: Located<String>,
    /// The claim must equal this.
    #[serde(default)]
    pub value: Option<String>,
    /// The claim must equal one of these.
    #[serde(default)]
    pub one_of: Vec<String>,
    /// The claim must contain this.
    #[serde(default)]
    pub contains: Option<String>,
}

/// A route's `auth`: who may use it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteAuth {
    /// Providers tried in order; the first that accepts the request's credentials wins.
    pub providers: Vec<Located<String>>,
    /// Claims the principal must have, or the request gets 403.
    #[serde(default)]
    pub claims: Vec<ClaimRule>,
    /// Upstream request headers set from claims (`{ "X-User" = "sub" }`); copies the client
    /// sent are always removed.
    #[serde(default)]
    pub headers: BTreeMap<String, Located<String>>,
    /// The realm in `WWW-Authenticate`.
    #[serde(default = "default_realm")]
    pub realm: String,
}

fn default_realm() -> String {
    "rampart".to_owned()
}

//! [`Principal`]: who a request authenticated as, set by an authentication stage and read by
//! later stages (rate-limit keys, header mapping) and by the access log.

use std::sync::Arc;

use serde_json::{Map, Value};

/// An authenticated client: the result of a route's authentication.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who it is: the token's `sub`, the API key's name, the Basic user name.
    pub subject: Arc<str>,
    /// How it authenticated: `jwt`, `api_key`, `basic`.
    pub method: &'static str,
    /// The provider that accepted the credentials (its config name).
    pub provider: Arc<str>,
    /// The key that vouched for it: the JWT's `kid`, or the API key's name.
    pub key_name: Option<Arc<str>>,
    /// The claims: a token's payload; for API keys and Basic, `sub` (and `scope`).
    pub claims: Arc<Map<String, Value>>,
}

impl Principal {
    /// The claim at `path`, where dots reach into objects (`realm_access.roles`).
    #[must_use]
    pub fn claim(&self, path: &str) -> Option<&Value> {
        claim_at(&self.claims, path)
    }
}

/// The claim at `path` of `claims`, where dots reach into objects; a name that itself holds a
/// dot is found whole first.
#[must_use]
pub fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    match claims.get(head)? {
        Value::Object(inner) => claim_at(inner, rest),
        _ => None,
    }
}

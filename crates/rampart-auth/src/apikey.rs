//! API key providers: a key presented in a header, cookie or query parameter is accepted when
//! its SHA-256 equals one of the configured hashes. Only hashes are kept; each presented key is
//! hashed once and compared with every stored hash in constant time, without stopping at the
//! first match, so the comparison reveals nothing about which bytes or which key matched.

use std::sync::Arc;

use rampart_config::model::ApiKeyProvider;
use rampart_core::Principal;
use serde_json::{Map, Value};

use crate::cache::{TokenHash, token_hash};
use crate::jwt::Verdict;
use crate::token::Source;

/// One stored key and the principal it gives.
struct StoredKey {
    hash: TokenHash,
    principal: Arc<Principal>,
}

/// One compiled `[[auth.api_keys]]` provider.
pub(crate) struct ApiKeys {
    pub(crate) name: Arc<str>,
    pub(crate) sources: Vec<Source>,
    keys: Vec<StoredKey>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("name", &self.name)
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// 64 hex digits as 32 bytes.
fn parse_hash(hex: &str) -> Option<TokenHash> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |b: u8| char::from(b).to_digit(16);
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let hi = digit(pair[0])?;
        let lo = digit(pair[1])?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

impl ApiKeys {
    /// Compiles `p`.
    ///
    /// # Errors
    /// The key path below the provider, its span, and a message: a bad source, a hash that is
    /// not 64 hex digits, two keys of one name or hash.
    pub(crate) fn new(
        p: &ApiKeyProvider,
    ) -> Result<Self, (String, std::ops::Range<usize>, String)> {
        let mut sources = Vec::new();
        for (i, s) in p.key_from.iter().enumerate() {
            sources.push(
                Source::parse(s.get(), false)
                    .map_err(|m| (format!("key_from[{i}]"), s.span(), m))?,
            );
        }
        let mut keys: Vec<StoredKey> = Vec::new();
        for (i, k) in p.keys.iter().enumerate() {
            let hash = parse_hash(k.sha256.get()).ok_or_else(|| {
                (
                    format!("keys[{i}].sha256"),
                    k.sha256.span(),
                    "expected the key's SHA-256 as 64 hex digits (`printf %s KEY | sha256sum`)"
                        .to_owned(),
                )
            })?;
            if keys
                .iter()
                .any(|s| s.hash == hash || &*s.principal.subject == k.name.as_str())
            {
                return Err((
                    format!("keys[{i}]"),
                    k.name.span(),
                    "two keys share this name or hash".to_owned(),
                ));
            }
            let name: Arc<str> = Arc::from(k.name.as_str());
            let mut claims = Map::new();
            claims.insert("sub".to_owned(), Value::String(k.name.get().clone()));
            claims.insert("scope".to_owned(), Value::String(k.scopes.join(" ")));
            keys.push(StoredKey {
                hash,
                principal: Arc::new(Principal {
                    subject: Arc::clone(&name),
                    method: "api_key",
                    provider: Arc::from(p.name.as_str()),
                    key_name: Some(name),
                    claims: Arc::new(claims),
                }),
            });
        }
        Ok(Self {
            name: Arc::from(p.name.as_str()),
            sources,
            keys,
        })
    }

    /// Checks a presented key.
    pub(crate) fn verify(&self, presented: &str) -> Verdict {
        if presented.len() > 4096 {
            return Verdict::Reject("unknown API key");
        }
        let hash = token_hash(presented);
        let mut found: Option<&StoredKey> = None;
        for k in &self.keys {
            let same = aws_lc_rs::constant_time::verify_slices_are_equal(&k.hash, &hash).is_ok();
            if same {
                found = Some(k);
            }
        }
        match found {
            Some(k) => Verdict::Accept(Arc::clone(&k.principal)),
            None => Verdict::Reject("unknown API key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_parse_from_hex_only() {
        let h = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(parse_hash(h).unwrap(), token_hash("test"));
        assert_eq!(parse_hash(&h.to_uppercase()).unwrap(), token_hash("test"));
        assert!(parse_hash(&h[1..]).is_none());
        assert!(parse_hash(&h.replace('9', "g")).is_none());
    }
}

//! Basic authentication against an htpasswd file: bcrypt (`$2y$`, `$2b$`, `$2a$`) and argon2
//! (`$argon2id$`, `$argon2i$`) hashes; MD5 (`$apr1$`, `$1$`), SHA-1 (`{SHA}`), SHA-crypt and
//! DES crypt hashes are refused when the file is read. Hashes are checked on the blocking pool,
//! never on a worker's event loop; an unknown user costs the same hash check as a known one.
//! Verified credentials are remembered by SHA-256 for `cache`, so a client sending the same
//! header repeatedly is checked once per interval.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use rampart_config::model::BasicProvider;
use rampart_core::Principal;
use serde_json::{Map, Value};

use crate::cache::{VerifiedCache, token_hash};
use crate::jwt::Verdict;
use crate::token::Source;

/// Longest `Authorization: Basic` credential looked at.
const MAX_CREDENTIAL: usize = 1024;

/// One compiled `[[auth.basic]]` provider.
pub(crate) struct Basic {
    pub(crate) name: Arc<str>,
    pub(crate) sources: Vec<Source>,
    users: HashMap<String, Arc<str>>,
    /// A hash checked for unknown users, so they take as long as known ones.
    decoy: Option<Arc<str>>,
    cache: Option<VerifiedCache>,
    ttl: u64,
}

impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Basic")
            .field("name", &self.name)
            .field("users", &self.users.len())
            .finish()
    }
}

/// Why a hash is refused, when it is of a kind Rampart does not accept.
fn refused_kind(hash: &str) -> Option<&'static str> {
    if hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$") {
        return (hash.len() != 60).then_some("a malformed bcrypt");
    }
    if hash.starts_with("$argon2") {
        return argon2::PasswordHash::new(hash)
            .is_err()
            .then_some("a malformed argon2");
    }
    Some(if hash.starts_with("$apr1$") || hash.starts_with("$1$") {
        "MD5"
    } else if hash.starts_with("{SHA}") {
        "SHA-1"
    } else if hash.starts_with("$5$") || hash.starts_with("$6$") {
        "SHA-crypt"
    } else if hash.starts_with('$') {
        "an unknown"
    } else {
        "DES crypt (or plain text)"
    })
}

/// Checks `password` against `hash` (bcrypt or argon2).
fn check(hash: &str, password: &str) -> bool {
    if hash.starts_with("$argon2") {
        use argon2::PasswordVerifier as _;
        argon2::PasswordHash::new(hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    } else {
        bcrypt::verify(password, hash).unwrap_or(false)
    }
}

/// The user name and password of a Basic credential.
fn decode(credential: &str) -> Option<(String, String)> {
    if credential.len() > MAX_CREDENTIAL {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(credential)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

impl Basic {
    /// Reads `p`'s htpasswd file.
    ///
    /// # Errors
    /// An unreadable file, a malformed line or a refused hash kind, with the file's own
    /// `file:line:col` in the message.
    pub(crate) fn new(p: &BasicProvider) -> Result<Self, String> {
        let file = p.htpasswd.get();
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read htpasswd file {file:?}: {e}"))?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim_end();
            if trimmed.trim_start().is_empty() || trimmed.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, hash)) = trimmed.split_once(':') else {
                return Err(format!("{file}:{}:1: expected `user:hash`", i + 1));
            };
            if let Some(kind) = refused_kind(hash) {
                return Err(format!(
                    "{file}:{}:{}: user {user:?} has {kind} password hash, which Rampart refuses; rehash with bcrypt (`htpasswd -B`) or argon2",
                    i + 1,
                    user.len() + 2
                ));
            }
            if users.insert(user.to_owned(), Arc::from(hash)).is_some() {
                return Err(format!("{file}:{}:1: user {user:?} appears twice", i + 1));
            }
        }
        let decoy = users.values().next().cloned();
        let ttl = p.cache.get().get().as_secs();
        Ok(Self {
            name: Arc::from(p.name.as_str()),
            sources: vec![Source::Basic],
            users,
            decoy,
            cache: if ttl == 0 {
                None
            } else {
                VerifiedCache::new(10_000)
            },
            ttl,
        })
    }

    /// A credential verified recently, or `NeedKeys` to check its hash off the event loop.
    pub(crate) fn verify_cached(&self, credential: &str) -> Verdict {
        if credential.len() > MAX_CREDENTIAL {
            return Verdict::Reject("credentials too large");
        }
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(cache) = &self.cache
            && let Some(p) = cache.get(&token_hash(credential), now)
        {
            return Verdict::Accept(p);
        }
        Verdict::NeedKeys(0)
    }

    /// Checks the credential's password hash on the blocking pool.
    pub(crate) async fn verify(&self, credential: &str) -> Verdict {
        let Some((user, password)) = decode(credential) else {
            return Verdict::Reject("malformed credentials");
        };
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (Arc::clone(h), true),
            None => match &self.decoy {
                Some(d) => (Arc::clone(d), false),
                None => return Verdict::Reject("wrong user name or password"),
            },
        };
        let ok = tokio::task::spawn_blocking(move || check(&hash, &password))
            .await
            .unwrap_or(false);
        if !(ok && known) {
            return Verdict::Reject("wrong user name or password");
        }
        let mut claims = Map::new();
        claims.insert("sub".to_owned(), Value::String(user.clone()));
        let principal = Arc::new(Principal {
            subject: Arc::from(user),
            method: "basic",
            provider: Arc::clone(&self.name),
            key_name: None,
            claims: Arc::new(claims),
        });
        if let Some(cache) = &self.cache {
            let now = jsonwebtoken::get_current_timestamp();
            cache.insert(
                token_hash(credential),
                now + self.ttl,
                now,
                Arc::clone(&principal),
            );
        }
        Verdict::Accept(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_hash_kinds_are_named_and_strong_ones_checked() {
        assert_eq!(refused_kind("$apr1$abc$def"), Some("MD5"));
        assert_eq!(
            refused_kind("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="),
            Some("SHA-1")
        );
        assert_eq!(
            refused_kind("rqXexS6ZhobKA"),
            Some("DES crypt (or plain text)")
        );
        let bcrypt = bcrypt::hash("secret", 4).unwrap();
        assert_eq!(refused_kind(&bcrypt), None);
        assert!(check(&bcrypt, "secret"));
        assert!(!check(&bcrypt, "Secret"));
        assert_eq!(decode("YWxpY2U6cDpx"), Some(("alice".into(), "p:q".into())));
        assert_eq!(decode("!!"), None);
    }
}

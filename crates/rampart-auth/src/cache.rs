//! [`VerifiedCache`]: tokens already verified, by SHA-256 of the token, until their `exp`.
//! A repeat of a token skips decoding and the signature check. Bounded: each of its shards
//! holds at most its share of `cache_size` entries; a full shard first drops expired entries,
//! then an arbitrary one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rampart_core::Principal;

/// Shards (locks) of a cache.
const SHARDS: usize = 16;

/// A token's SHA-256.
pub(crate) type TokenHash = [u8; 32];

/// The SHA-256 of `token`.
pub(crate) fn token_hash(token: &str) -> TokenHash {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// One shard: token hash → (expiry in Unix seconds, principal).
type Shard = Mutex<HashMap<TokenHash, (u64, Arc<Principal>)>>;

/// Verified tokens and the principals they gave.
#[derive(Debug)]
pub(crate) struct VerifiedCache {
    shards: Vec<Shard>,
    per_shard: usize,
}

impl VerifiedCache {
    /// A cache of at most about `size` entries (`None` for 0: no cache).
    pub(crate) fn new(size: u64) -> Option<Self> {
        if size == 0 {
            return None;
        }
        let per_shard = usize::try_from(size)
            .unwrap_or(usize::MAX)
            .div_ceil(SHARDS)
            .max(1);
        Some(Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
        })
    }

    fn shard(&self, hash: &TokenHash) -> &Shard {
        &self.shards[usize::from(hash[0]) % SHARDS]
    }

    /// The principal of a token verified before, while `now` (Unix seconds) is before its
    /// expiry.
    pub(crate) fn get(&self, hash: &TokenHash, now: u64) -> Option<Arc<Principal>> {
        let shard = self.shard(hash).lock().ok()?;
        let (until, principal) = shard.get(hash)?;
        (now < *until).then(|| Arc::clone(principal))
    }

    /// Remembers a verified token until `until` (Unix seconds).
    pub(crate) fn insert(&self, hash: TokenHash, until: u64, now: u64, principal: Arc<Principal>) {
        let Ok(mut shard) = self.shard(&hash).lock() else {
            return;
        };
        if shard.len() >= self.per_shard {
            shard.retain(|_, (u, _)| *u > now);
            if shard.len() >= self.per_shard
                && let Some(victim) = shard.keys().next().copied()
            {
                shard.remove(&victim);
            }
        }
        shard.insert(hash, (until, principal));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Arc<Principal> {
        Arc::new(Principal {
            subject: "u".into(),
            method: "jwt",
            provider: "p".into(),
            key_name: None,
            claims: Arc::default(),
        })
    }

    #[test]
    fn entries_end_at_expiry_and_the_cache_stays_bounded() {
        let cache = VerifiedCache::new(16).unwrap();
        let h = token_hash("a.b.c");
        cache.insert(h, 100, 10, principal());
        assert!(cache.get(&h, 99).is_some());
        assert!(cache.get(&h, 100).is_none());
        assert!(cache.get(&token_hash("a.b.d"), 10).is_none());
        for i in 0..10_000 {
            cache.insert(token_hash(&format!("t{i}")), 1000, 10, principal());
        }
        let total: usize = cache.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= 16, "{total}");
        assert!(VerifiedCache::new(0).is_none());
    }
}

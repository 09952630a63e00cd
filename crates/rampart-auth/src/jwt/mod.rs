//! JWT providers: a token is accepted when its `alg` is one the provider pins, a key of that
//! algorithm's family verifies its signature, `exp`/`nbf`/`iat` hold within the leeway, and
//! `iss`, `aud` and the required claims are as configured.

pub(crate) mod jwks;
pub(crate) mod keys;

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind as JwtError;
use jsonwebtoken::{Algorithm, Validation};
use rampart_config::model::{JwtAlgorithm, JwtProvider};
use rampart_core::Principal;
use serde_json::{Map, Value};

use crate::cache::{VerifiedCache, token_hash};
use crate::claims::ClaimMatcher;
use crate::token::Source;
use jwks::Jwks;
use keys::{KeySet, Lookup};

/// The algorithm of a config name.
pub(crate) const fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// Where a provider's keys come from.
pub(crate) enum Keys {
    /// A key file or a secret, read when the config was compiled.
    Fixed(Arc<KeySet>),
    /// A JWKS URL, fetched and cached.
    Jwks(Arc<Jwks>),
}

/// What checking one request's token found.
pub(crate) enum Verdict {
    /// The token is good.
    Accept(Arc<Principal>),
    /// The request carries no token where this provider looks.
    Absent,
    /// The token is refused, for this reason (safe to show: it never quotes the token).
    Reject(&'static str),
    /// The check must wait: keys to fetch first (generation of the set seen), or a password
    /// hash to check off the event loop.
    NeedKeys(u64),
}

/// One compiled `[[auth.jwt]]` provider.
pub(crate) struct Jwt {
    pub(crate) name: Arc<str>,
    /// One validation per pinned algorithm.
    validations: Vec<(Algorithm, Validation)>,
    pub(crate) keys: Keys,
    leeway: u64,
    pub(crate) sources: Vec<Source>,
    max_token: usize,
    required: Vec<String>,
    rules: Vec<ClaimMatcher>,
    cache: Option<VerifiedCache>,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt").field("name", &self.name).finish()
    }
}

/// The current Unix time in seconds.
fn unix_now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// A refusal reason for a validation failure.
fn reason(e: &JwtError) -> &'static str {
    match e {
        JwtError::ExpiredSignature => "token expired",
        JwtError::ImmatureSignature => "token not yet valid",
        JwtError::InvalidAudience => "wrong audience",
        JwtError::InvalidIssuer => "wrong issuer",
        JwtError::MissingRequiredClaim(_) => "missing claim",
        JwtError::InvalidSignature => "bad signature",
        JwtError::InvalidAlgorithm => "algorithm not allowed",
        _ => "malformed token",
    }
}

impl Jwt {
    /// Compiles `p` with its `keys`.
    ///
    /// # Errors
    /// A message for a bad token source or claim rule, with the key path below the provider.
    pub(crate) fn new(p: &JwtProvider, keys: Keys) -> Result<Self, (String, String)> {
        let leeway = p.leeway.get().get().as_secs();
        let validations = p
            .algorithms
            .iter()
            .map(|a| {
                let alg = algorithm(*a.get());
                let mut v = Validation::new(alg);
                v.leeway = leeway;
                v.validate_nbf = true;
                v.validate_exp = true;
                v.required_spec_claims = std::iter::once("exp".to_owned()).collect();
                if p.audiences.is_empty() {
                    v.validate_aud = false;
                } else {
                    v.set_audience(&p.audiences);
                }
                if !p.issuers.is_empty() {
                    v.set_issuer(&p.issuers);
                }
                (alg, v)
            })
            .collect();
        let mut sources = Vec::new();
        for (i, s) in p.token_from.iter().enumerate() {
            sources
                .push(Source::parse(s.get(), true).map_err(|m| (format!("token_from[{i}]"), m))?);
        }
        let mut rules = Vec::new();
        for (i, r) in p.claims.iter().enumerate() {
            rules.push(ClaimMatcher::new(r).map_err(|m| (format!("claims[{i}]"), m))?);
        }
        Ok(Self {
            name: Arc::from(p.name.as_str()),
            validations,
            keys,
            leeway,
            sources,
            max_token: usize::try_from(p.max_token_size.get()).unwrap_or(usize::MAX),
            required: p.required_claims.clone(),
            rules,
            cache: VerifiedCache::new(p.cache_size),
        })
    }

    /// The key set to check with now, or the generation to refresh from.
    fn key_set(&self) -> Result<Arc<KeySet>, u64> {
        match &self.keys {
            Keys::Fixed(set) => Ok(Arc::clone(set)),
            Keys::Jwks(jwks) => match jwks.current() {
                (Some(set), _) => Ok(set),
                (None, generation) => Err(generation),
            },
        }
    }

    /// Checks `token` against the keys at hand.
    pub(crate) fn verify(&self, token: &str) -> Verdict {
        if token.len() > self.max_token {
            return Verdict::Reject("token too large");
        }
        let now = unix_now();
        let hash = self.cache.as_ref().map(|c| (c, token_hash(token)));
        if let Some((cache, hash)) = &hash
            && let Some(p) = cache.get(hash, now)
        {
            return Verdict::Accept(p);
        }
        let set = match self.key_set() {
            Ok(set) => set,
            Err(generation) => return self.need_keys(generation, "signing keys unavailable"),
        };
        match self.verify_with(token, &set, now) {
            Ok((principal, exp)) => {
                if let Some((cache, hash)) = hash {
                    cache.insert(hash, exp, now, Arc::clone(&principal));
                }
                Verdict::Accept(principal)
            }
            Err(Failure::UnknownKid) => {
                let generation = match &self.keys {
                    Keys::Jwks(jwks) => jwks.current().1,
                    Keys::Fixed(_) => 0,
                };
                self.need_keys(generation, "unknown key")
            }
            Err(Failure::Refused(why)) => Verdict::Reject(why),
        }
    }

    /// A token that needs keys not at hand: fetch them when a fetch is allowed now.
    fn need_keys(&self, generation: u64, otherwise: &'static str) -> Verdict {
        match &self.keys {
            Keys::Jwks(jwks) if jwks.may_fetch() => Verdict::NeedKeys(generation),
            _ => Verdict::Reject(otherwise),
        }
    }

    /// Checks `token` with `set` after the keys were fetched again: no further fetch.
    pub(crate) fn verify_after_fetch(&self, token: &str, set: Option<&KeySet>) -> Verdict {
        let Some(set) = set else {
            return Verdict::Reject("signing keys unavailable");
        };
        let now = unix_now();
        match self.verify_with(token, set, now) {
            Ok((principal, exp)) => {
                if let Some(cache) = &self.cache {
                    cache.insert(token_hash(token), exp, now, Arc::clone(&principal));
                }
                Verdict::Accept(principal)
            }
            Err(Failure::UnknownKid) => Verdict::Reject("unknown key"),
            Err(Failure::Refused(why)) => Verdict::Reject(why),
        }
    }

    fn verify_with(
        &self,
        token: &str,
        set: &KeySet,
        now: u64,
    ) -> Result<(Arc<Principal>, u64), Failure> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| Failure::Refused("malformed token"))?;
        let Some((alg, validation)) = self.validations.iter().find(|(a, _)| *a == header.alg)
        else {
            return Err(Failure::Refused("algorithm not allowed"));
        };
        let candidates = match set.lookup(header.kid.as_deref(), *alg) {
            Lookup::Found(keys) => keys,
            Lookup::UnknownKid => return Err(Failure::UnknownKid),
            Lookup::NoKey => return Err(Failure::Refused("no key for this algorithm")),
        };
        let mut last = "bad signature";
        let mut claims = None;
        for key in &candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
                Ok(data) => {
                    // The key's published `kid`, or for a key file the `kid` the (now
                    // verified) token names.
                    claims = Some((data.claims, key.kid.as_deref().or(header.kid.as_deref())));
                    break;
                }
                Err(e) => {
                    last = reason(e.kind());
                    if last != "bad signature" {
                        break;
                    }
                }
            }
        }
        let Some((claims, kid)) = claims else {
            return Err(Failure::Refused(last));
        };
        self.check_claims(&claims, now)?;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(now);
        let subject = claims.get("sub").and_then(Value::as_str).unwrap_or("");
        let principal = Principal {
            subject: Arc::from(subject),
            method: "jwt",
            provider: Arc::clone(&self.name),
            key_name: kid.map(Arc::from),
            claims: Arc::new(claims),
        };
        Ok((Arc::new(principal), exp))
    }

    /// `iat`, the required claims and the provider's claim rules.
    fn check_claims(&self, claims: &Map<String, Value>, now: u64) -> Result<(), Failure> {
        match claims.get("iat") {
            None => {}
            Some(v) => match v.as_f64() {
                #[allow(clippy::cast_precision_loss)]
                Some(iat) if iat <= (now + self.leeway) as f64 => {}
                Some(_) => return Err(Failure::Refused("issued in the future")),
                None => return Err(Failure::Refused("malformed token")),
            },
        }
        if self
            .required
            .iter()
            .any(|name| rampart_core::principal::claim_at(claims, name).is_none())
        {
            return Err(Failure::Refused("missing claim"));
        }
        if !self.rules.iter().all(|r| r.matches(claims)) {
            return Err(Failure::Refused("claim requirement not met"));
        }
        Ok(())
    }
}

/// Why `verify_with` gave no principal.
enum Failure {
    /// The token names a `kid` the key set does not have.
    UnknownKid,
    /// The token is refused.
    Refused(&'static str),
}

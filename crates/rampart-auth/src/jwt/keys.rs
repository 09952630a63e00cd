//! Verification keys: one from a PEM file or a secret, or a set from a JWKS document. Each key
//! knows its algorithm family, so a token can only be checked with a key of the family its
//! `alg` names (an RSA public key is never used as an HMAC secret).

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// One verification key.
pub(crate) struct Key {
    /// The `kid` it is published under (JWKS), if any.
    pub(crate) kid: Option<String>,
    /// The one algorithm it may be used with, when the JWK names one (or its curve fixes it).
    pub(crate) alg: Option<Algorithm>,
    /// The key.
    pub(crate) key: DecodingKey,
}

impl Key {
    /// True when this key may check a token signed with `alg`.
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        self.key.family() == alg.family() && self.alg.is_none_or(|a| a == alg)
    }
}

/// The keys a provider checks tokens with.
#[derive(Default)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<Key>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| k.kid.as_deref().unwrap_or("-")))
            .finish()
    }
}

/// What looking a token's key up found.
pub(crate) enum Lookup<'a> {
    /// Keys to try, in order.
    Found(Vec<&'a Key>),
    /// The token names a `kid` the set does not have.
    UnknownKid,
    /// No key of the token's algorithm family.
    NoKey,
}

impl KeySet {
    /// The keys that may check a token with `kid` and `alg`.
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        let found: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| match (kid, k.kid.as_deref()) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) | (None, _) => true,
            })
            .filter(|k| k.fits(alg))
            .take(4)
            .collect();
        if !found.is_empty() {
            return Lookup::Found(found);
        }
        if kid.is_some() && self.keys.iter().all(|k| k.kid.as_deref() != kid) {
            Lookup::UnknownKid
        } else {
            Lookup::NoKey
        }
    }

    /// A set of one public key read from PEM text (RSA, EC or Ed25519, by what the PEM
    /// holds), for algorithms of `family`.
    ///
    /// # Errors
    /// Text that holds no key of that family.
    pub(crate) fn from_pem(pem: &[u8], alg: Algorithm) -> Result<Self, String> {
        use jsonwebtoken::AlgorithmFamily as F;
        let key = match alg.family() {
            F::Rsa => DecodingKey::from_rsa_pem(pem),
            F::Ec => DecodingKey::from_ec_pem(pem),
            F::Ed => DecodingKey::from_ed_pem(pem),
            F::Hmac => {
                return Err(
                    "HMAC algorithms take a secret (`secret_env`), not a key file".to_owned(),
                );
            }
        }
        .map_err(|e| format!("no {:?} public key in PEM: {e}", alg.family()))?;
        Ok(Self {
            keys: vec![Key {
                kid: None,
                alg: None,
                key,
            }],
        })
    }

    /// A set of one HMAC secret.
    pub(crate) fn from_secret(secret: &[u8]) -> Self {
        Self {
            keys: vec![Key {
                kid: None,
                alg: None,
                key: DecodingKey::from_secret(secret),
            }],
        }
    }

    /// The signature keys of a JWKS document. Keys for encryption, symmetric keys (a JWKS is
    /// public) and keys of unsupported types are skipped.
    ///
    /// # Errors
    /// A document that is not a JWKS, or holds no usable key.
    pub(crate) fn from_jwks(body: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
        let keys: Vec<Key> = doc
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
            .filter_map(|jwk| key_of(&jwk))
            .collect();
        if keys.is_empty() {
            return Err("the JWKS holds no usable signature key".to_owned());
        }
        Ok(Self { keys })
    }
}

/// The verification key of one JWK, when it is one Rampart may use.
fn key_of(jwk: &Jwk) -> Option<Key> {
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let named: Option<Algorithm> = match jwk.common.key_algorithm {
        Some(a) => Some(Algorithm::try_from(a).ok()?),
        None => None,
    };
    let curve_alg = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve != EllipticCurve::Ed25519 => return None,
        AlgorithmParameters::RSA(_) | AlgorithmParameters::OctetKeyPair(_) => None,
        _ => return None,
    };
    if let (Some(a), Some(b)) = (named, curve_alg)
        && a != b
    {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg: named.or(curve_alg),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_skips_symmetric_and_encryption_keys() {
        let doc = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"hs"},
            {"kty":"RSA","use":"enc","kid":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"weird","kid":"w"}
        ]}"#;
        let set = KeySet::from_jwks(doc).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert!(matches!(
            set.lookup(Some("ed"), Algorithm::EdDSA),
            Lookup::Found(_)
        ));
        assert!(matches!(
            set.lookup(Some("hs"), Algorithm::HS256),
            Lookup::UnknownKid
        ));
        assert!(matches!(
            set.lookup(Some("ed"), Algorithm::HS256),
            Lookup::NoKey
        ));
        assert!(KeySet::from_jwks(br#"{"keys":[]}"#).is_err());
        assert!(KeySet::from_jwks(b"<html>").is_err());
    }
}

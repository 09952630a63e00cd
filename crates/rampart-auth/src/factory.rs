//! [`AuthStages`]: compiles `[auth]` once per config (keys read, JWKS caches made) and puts an
//! [`AuthStage`] on each route with an `auth` table. A reload keeps a JWKS cache (and so its
//! key set and refresh task) whose URL and fetch settings did not change.

use std::collections::HashMap;
use std::sync::Arc;

use http::header::HeaderName;
use jsonwebtoken::AlgorithmFamily;
use rampart_config::model::{AuthSection, JwtProvider};
use rampart_config::{Config, ConfigError};
use rampart_core::{Prepared, Previous, RouteSpec, Stage, StageFactory};

use crate::apikey::ApiKeys;
use crate::basic::Basic;
use crate::claims::ClaimMatcher;
use crate::jwt::jwks::Jwks;
use crate::jwt::keys::KeySet;
use crate::jwt::{Jwt, Keys, algorithm};
use crate::stage::{AuthStage, Provider};

/// Shortest HMAC secret accepted, in bytes.
const MIN_SECRET: usize = 32;

/// What a JWKS cache is made from: a reload keeps the cache when this did not change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JwksSpec {
    url: String,
    ca: Option<String>,
    timeout_ms: u128,
    cache_ms: u128,
    min_refresh_ms: u128,
}

impl JwksSpec {
    fn of(p: &JwtProvider) -> Option<Self> {
        Some(Self {
            url: p.jwks_url.as_ref()?.get().clone(),
            ca: p.jwks_ca.as_ref().map(|c| c.get().clone()),
            timeout_ms: p.jwks_timeout.get().get().as_millis(),
            cache_ms: p.jwks_cache.get().get().as_millis(),
            min_refresh_ms: p.jwks_min_refresh.get().get().as_millis(),
        })
    }
}

/// The config's providers, compiled.
#[derive(Default)]
pub struct AuthProviders {
    by_name: HashMap<String, Arc<Provider>>,
    jwks: Vec<(JwksSpec, Arc<Jwks>)>,
}

impl std::fmt::Debug for AuthProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

fn err(span: Option<std::ops::Range<usize>>, path: String, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(span, path, msg.into())
}

/// The keys of one JWT provider, reusing `old`'s JWKS cache when its spec is unchanged.
fn jwt_keys(
    p: &JwtProvider,
    path: &str,
    old: &[(JwksSpec, Arc<Jwks>)],
    made: &mut Vec<(JwksSpec, Arc<Jwks>)>,
) -> Result<Keys, ConfigError> {
    let Some(first) = p.algorithms.first() else {
        return Err(err(
            Some(p.name.span()),
            format!("{path}.algorithms"),
            "name at least one algorithm; tokens signed otherwise (and `none`) are refused",
        ));
    };
    let family = algorithm(*first.get()).family();
    let mixed = p
        .algorithms
        .iter()
        .find(|a| algorithm(*a.get()).family() != family);
    let hmac = p
        .algorithms
        .iter()
        .find(|a| algorithm(*a.get()).family() == AlgorithmFamily::Hmac);
    if let Some(a) = mixed.filter(|_| p.jwks_url.is_none()) {
        return Err(err(
            Some(a.span()),
            format!("{path}.algorithms"),
            "with `key_file` or `secret_env`, all algorithms must be of the key's family (HMAC, RSA, EC or EdDSA)",
        ));
    }
    let given = usize::from(p.jwks_url.is_some())
        + usize::from(p.key_file.is_some())
        + usize::from(p.secret_env.is_some());
    if given != 1 {
        return Err(err(
            Some(p.name.span()),
            path.to_owned(),
            "give exactly one of `jwks_url`, `key_file`, `secret_env`",
        ));
    }
    if let Some(url) = &p.jwks_url {
        if let Some(a) = hmac {
            return Err(err(
                Some(a.span()),
                format!("{path}.algorithms"),
                "HMAC algorithms need a shared secret (`secret_env`); a JWKS publishes public keys",
            ));
        }
        let spec = JwksSpec::of(p).ok_or_else(|| err(None, path.to_owned(), "no JWKS URL"))?;
        if let Some((_, kept)) = old.iter().chain(made.iter()).find(|(s, _)| *s == spec) {
            let kept = Arc::clone(kept);
            made.push((spec, Arc::clone(&kept)));
            return Ok(Keys::Jwks(kept));
        }
        let jwks = Jwks::new(
            url.get(),
            p.jwks_ca.as_ref().map(|c| c.get().as_str()),
            p.jwks_timeout.get().get(),
            p.jwks_cache.get().get(),
            p.jwks_min_refresh.get().get(),
        )
        .map_err(|m| {
            let key = if m.starts_with("CA file") {
                "jwks_ca"
            } else {
                "jwks_url"
            };
            let span = if key == "jwks_ca" {
                p.jwks_ca.as_ref().map(rampart_config::Located::span)
            } else {
                Some(url.span())
            };
            err(span, format!("{path}.{key}"), m)
        })?;
        let jwks = Arc::new(jwks);
        made.push((spec, Arc::clone(&jwks)));
        return Ok(Keys::Jwks(jwks));
    }
    if let Some(file) = &p.key_file {
        let at = || (Some(file.span()), format!("{path}.key_file"));
        let pem = std::fs::read(file.get()).map_err(|e| {
            let (span, key) = at();
            err(
                span,
                key,
                format!("cannot read key file {:?}: {e}", file.get()),
            )
        })?;
        let set = KeySet::from_pem(&pem, algorithm(*first.get())).map_err(|m| {
            let (span, key) = at();
            err(span, key, format!("key file {:?}: {m}", file.get()))
        })?;
        return Ok(Keys::Fixed(Arc::new(set)));
    }
    let Some(var) = &p.secret_env else {
        return Err(err(Some(p.name.span()), path.to_owned(), "no key source"));
    };
    if family != AlgorithmFamily::Hmac {
        return Err(err(
            Some(var.span()),
            format!("{path}.secret_env"),
            "a secret serves HMAC algorithms (HS256, HS384, HS512) only; RSA, EC and EdDSA need `key_file` or `jwks_url`",
        ));
    }
    let secret = std::env::var(var.get()).map_err(|_| {
        err(
            Some(var.span()),
            format!("{path}.secret_env"),
            format!("environment variable {:?} is not set", var.get()),
        )
    })?;
    if secret.len() < MIN_SECRET {
        return Err(err(
            Some(var.span()),
            format!("{path}.secret_env"),
            format!(
                "the secret in {:?} is shorter than {MIN_SECRET} bytes; use a longer random secret",
                var.get()
            ),
        ));
    }
    Ok(Keys::Fixed(Arc::new(KeySet::from_secret(
        secret.as_bytes(),
    ))))
}

impl AuthProviders {
    /// Compiles `[auth]`, keeping JWKS caches of `old` whose spec did not change.
    ///
    /// # Errors
    /// Every provider that cannot be used, with spans.
    fn compile(auth: &AuthSection, old: Option<&Self>) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut out = Self::default();
        let old_jwks = old.map_or(&[][..], |o| o.jwks.as_slice());
        for (i, p) in auth.jwt.iter().enumerate() {
            let path = format!("auth.jwt[{i}]");
            if out.by_name.contains_key(p.name.as_str()) {
                errors.push(err(
                    Some(p.name.span()),
                    format!("{path}.name"),
                    format!("provider name {:?} is used twice", p.name.get()),
                ));
                continue;
            }
            let compiled = jwt_keys(p, &path, old_jwks, &mut out.jwks).and_then(|keys| {
                Jwt::new(p, keys)
                    .map_err(|(key, m)| err(Some(p.name.span()), format!("{path}.{key}"), m))
            });
            match compiled {
                Ok(jwt) => {
                    out.by_name
                        .insert(p.name.get().clone(), Arc::new(Provider::Jwt(jwt)));
                }
                Err(e) => errors.push(e),
            }
        }
        for (i, p) in auth.api_keys.iter().enumerate() {
            let path = format!("auth.api_keys[{i}]");
            if out.by_name.contains_key(p.name.as_str()) {
                errors.push(err(
                    Some(p.name.span()),
                    format!("{path}.name"),
                    format!("provider name {:?} is used twice", p.name.get()),
                ));
                continue;
            }
            match ApiKeys::new(p) {
                Ok(keys) => {
                    out.by_name
                        .insert(p.name.get().clone(), Arc::new(Provider::ApiKeys(keys)));
                }
                Err((key, span, m)) => errors.push(err(Some(span), format!("{path}.{key}"), m)),
            }
        }
        for (i, p) in auth.basic.iter().enumerate() {
            let path = format!("auth.basic[{i}]");
            if out.by_name.contains_key(p.name.as_str()) {
                errors.push(err(
                    Some(p.name.span()),
                    format!("{path}.name"),
                    format!("provider name {:?} is used twice", p.name.get()),
                ));
                continue;
            }
            match Basic::new(p) {
                Ok(basic) => {
                    out.by_name
                        .insert(p.name.get().clone(), Arc::new(Provider::Basic(basic)));
                }
                Err(m) => errors.push(err(Some(p.htpasswd.span()), format!("{path}.htpasswd"), m)),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

/// Builds each route's authentication stage from its `auth` table.
#[derive(Debug, Clone, Copy)]
pub struct AuthStages;

impl StageFactory for AuthStages {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn prepare(
        &self,
        config: &Config,
        previous: Option<Previous<'_>>,
    ) -> Result<Prepared, Vec<ConfigError>> {
        let old = previous.and_then(|p| p.prepared.get::<AuthProviders>());
        Ok(Prepared::new(AuthProviders::compile(
            &config.raw().auth,
            old,
        )?))
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        let Some(auth) = &route.route.auth else {
            return Ok(Vec::new());
        };
        let Some(all) = prepared.get::<AuthProviders>() else {
            return Ok(Vec::new());
        };
        let mut errors = Vec::new();
        if auth.providers.is_empty() {
            errors.push(route.error(None, "auth.providers", "name at least one provider"));
        }
        let mut providers = Vec::new();
        for (i, name) in auth.providers.iter().enumerate() {
            match all.by_name.get(name.as_str()) {
                Some(p) => providers.push(Arc::clone(p)),
                None => errors.push(route.error(
                    Some(name.span()),
                    &format!("auth.providers[{i}]"),
                    format!("unknown auth provider {:?}", name.get()),
                )),
            }
        }
        let mut rules = Vec::new();
        for (i, r) in auth.claims.iter().enumerate() {
            match ClaimMatcher::new(r) {
                Ok(m) => rules.push(m),
                Err(m) => {
                    errors.push(route.error(Some(r.name.span()), &format!("auth.claims[{i}]"), m));
                }
            }
        }
        let mut headers = Vec::new();
        for (name, claim) in &auth.headers {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(h)
                    if !matches!(
                        h.as_str(),
                        "host"
                            | "authorization"
                            | "content-length"
                            | "transfer-encoding"
                            | "connection"
                    ) =>
                {
                    headers.push((h, claim.get().clone()));
                }
                _ => errors.push(route.error(
                    Some(claim.span()),
                    &format!("auth.headers.{name}"),
                    format!("{name:?} cannot carry a claim: use another header name"),
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let stage = AuthStage::new(providers, rules, headers, &auth.realm)
            .map_err(|m| vec![route.error(None, "auth.realm", m)])?;
        Ok(vec![Box::new(stage)])
    }
}

//! [`AuthStage`]: a route's authentication. Its providers are tried in order and the first
//! that accepts the request's credentials gives the [`Principal`]; the route's claim rules
//! then decide whether that principal may use the route, and chosen claims become upstream
//! headers. Refusals are 401 with a `WWW-Authenticate` challenge (RFC 6750 error codes), 403
//! for a principal the route does not allow, 503 when keys cannot be fetched.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue, WWW_AUTHENTICATE};
use http::{HeaderMap, Request};
use rampart_core::{
    Body, ErrorKind, Flow, Phases, Principal, ProxyError, RequestCtx, Stage, StageFuture,
    StageResult,
};

use crate::apikey::ApiKeys;
use crate::basic::Basic;
use crate::claims::{ClaimMatcher, claim_text};
use crate::jwt::{Jwt, Keys, Verdict};
use crate::token::{Source, redacted, take_query};

/// A compiled provider of any kind.
#[derive(Debug)]
pub(crate) enum Provider {
    /// `[[auth.jwt]]`.
    Jwt(Jwt),
    /// `[[auth.api_keys]]`.
    ApiKeys(ApiKeys),
    /// `[[auth.basic]]`.
    Basic(Basic),
}

impl Provider {
    /// The provider's name.
    pub(crate) fn name(&self) -> &str {
        match self {
            Self::Jwt(j) => &j.name,
            Self::ApiKeys(k) => &k.name,
            Self::Basic(b) => &b.name,
        }
    }

    /// The places this provider reads credentials from.
    pub(crate) fn sources(&self) -> &[Source] {
        match self {
            Self::Jwt(j) => &j.sources,
            Self::ApiKeys(k) => &k.sources,
            Self::Basic(b) => &b.sources,
        }
    }

    /// The credential this provider finds in the request, if any.
    fn credential<'r>(
        &self,
        headers: &'r HeaderMap,
        taken: &'r [(String, String)],
    ) -> Option<&'r str> {
        self.sources().iter().find_map(|s| s.find(headers, taken))
    }

    /// Checks the request's credential with what is at hand.
    fn check(&self, headers: &HeaderMap, taken: &[(String, String)]) -> Verdict {
        let Some(credential) = self.credential(headers, taken) else {
            return Verdict::Absent;
        };
        match self {
            Self::Jwt(j) => j.verify(credential),
            Self::ApiKeys(k) => k.verify(credential),
            Self::Basic(b) => b.verify_cached(credential),
        }
    }

    /// Fetches the keys (when generation `seen` is still current), then checks again.
    async fn check_after_fetch(
        &self,
        seen: u64,
        headers: &HeaderMap,
        taken: &[(String, String)],
    ) -> Verdict {
        let Some(credential) = self.credential(headers, taken) else {
            return Verdict::Absent;
        };
        match self {
            Self::Jwt(j) => match &j.keys {
                Keys::Jwks(jwks) => {
                    let set = jwks.refresh(seen).await;
                    j.verify_after_fetch(credential, set.as_deref())
                }
                Keys::Fixed(_) => j.verify(credential),
            },
            Self::ApiKeys(k) => k.verify(credential),
            Self::Basic(b) => b.verify(credential).await,
        }
    }
}

/// What the providers said so far about a request they did not accept.
#[derive(Default, Clone, Copy)]
struct Refusal<'p> {
    /// The provider whose refusal is reported, and why: the first that refused, unless it
    /// only said the token's algorithm was not its own (then a later provider that did check
    /// the token says more).
    last: Option<(&'p str, &'static str)>,
}

impl<'p> Refusal<'p> {
    /// Notes that `provider` refused for `why`.
    fn note(&mut self, provider: &'p str, why: &'static str) {
        if self
            .last
            .is_none_or(|(_, before)| before == "algorithm not allowed")
        {
            self.last = Some((provider, why));
        }
    }
}

/// Checks a route's credentials.
pub struct AuthStage {
    providers: Vec<Arc<Provider>>,
    /// Query parameters any provider reads credentials from.
    query_names: Vec<String>,
    rules: Vec<ClaimMatcher>,
    headers: Vec<(HeaderName, String)>,
    realm: String,
    /// `Bearer` when a JWT provider is among the route's, else `Basic` when a Basic one is,
    /// else `ApiKey`.
    scheme: &'static str,
    challenge: HeaderValue,
}

impl std::fmt::Debug for AuthStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthStage")
            .field(
                "providers",
                &self.providers.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl AuthStage {
    /// A stage trying `providers` in order, then requiring `rules`, then setting `headers`
    /// from claims; `realm` goes into the challenge.
    ///
    /// # Errors
    /// A realm that cannot be a quoted string.
    pub(crate) fn new(
        providers: Vec<Arc<Provider>>,
        rules: Vec<ClaimMatcher>,
        headers: Vec<(HeaderName, String)>,
        realm: &str,
    ) -> Result<Self, String> {
        if realm.contains(['"', '\\']) || !realm.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err("the realm must be printable ASCII without `\"` or `\\`".to_owned());
        }
        let scheme = if providers.iter().any(|p| matches!(**p, Provider::Jwt(_))) {
            "Bearer"
        } else if providers.iter().any(|p| matches!(**p, Provider::Basic(_))) {
            "Basic"
        } else {
            "ApiKey"
        };
        let challenge = if scheme == "Basic" {
            format!("Basic realm=\"{realm}\", charset=\"UTF-8\"")
        } else {
            format!("{scheme} realm=\"{realm}\"")
        };
        let challenge = HeaderValue::from_str(&challenge).map_err(|e| e.to_string())?;
        let mut query_names: Vec<String> = Vec::new();
        for p in &providers {
            for s in p.sources() {
                if let Source::Query(name) = s
                    && !query_names.contains(name)
                {
                    query_names.push(name.clone());
                }
            }
        }
        Ok(Self {
            providers,
            query_names,
            rules,
            headers,
            realm: realm.to_owned(),
            scheme,
            challenge,
        })
    }

    /// Lets `principal` through when the route's rules allow it.
    fn admit(
        &self,
        req: &mut Request<Body>,
        ctx: &mut RequestCtx,
        principal: Arc<Principal>,
    ) -> StageResult {
        if !self.rules.iter().all(|r| r.matches(&principal.claims)) {
            let detail = format!(
                "auth: {:?} ({}) lacks a claim the route requires",
                &*principal.subject, principal.provider
            );
            ctx.principal = Some(principal);
            return Err(self.refusal(
                ErrorKind::AuthForbidden,
                detail,
                Some(("insufficient_scope", None)),
            ));
        }
        for (name, claim) in &self.headers {
            req.headers_mut().remove(name);
            if let Some(v) = principal.claim(claim)
                && let Ok(value) = HeaderValue::from_str(&claim_text(v))
            {
                req.headers_mut().insert(name.clone(), value);
            }
        }
        ctx.principal = Some(principal);
        Ok(Flow::Continue)
    }

    /// The answer to a request no provider accepted.
    fn refuse(&self, refusal: Refusal<'_>) -> StageResult {
        Err(match refusal.last {
            None => self.refusal(
                ErrorKind::Unauthenticated,
                "auth: no credentials".into(),
                None,
            ),
            Some((provider, why)) if why == "signing keys unavailable" => ProxyError::new(
                ErrorKind::AuthUnavailable,
                format!("auth: provider {provider:?}: {why}"),
            ),
            Some((provider, why)) => self.refusal(
                ErrorKind::Unauthenticated,
                format!("auth: provider {provider:?}: {why}"),
                Some(("invalid_token", Some(why))),
            ),
        })
    }

    /// A 401 or 403 with its challenge: `error` is the RFC 6750 code and description.
    fn refusal(
        &self,
        kind: ErrorKind,
        detail: String,
        error: Option<(&str, Option<&str>)>,
    ) -> ProxyError {
        let challenge = match error {
            None => self.challenge.clone(),
            Some(_) if self.scheme == "Basic" => self.challenge.clone(),
            Some((code, description)) => {
                let mut text =
                    format!("{} realm=\"{}\", error=\"{code}\"", self.scheme, self.realm);
                if let Some(d) = description {
                    text.push_str(&format!(", error_description=\"{d}\""));
                }
                HeaderValue::from_str(&text).unwrap_or_else(|_| self.challenge.clone())
            }
        };
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert(WWW_AUTHENTICATE, challenge);
        ProxyError::new(kind, detail).with_headers(headers)
    }

    /// Takes query credentials out of the URI sent upstream and out of the one logged.
    fn take_query_credentials(
        &self,
        req: &mut Request<Body>,
        ctx: &mut RequestCtx,
    ) -> Vec<(String, String)> {
        if self.query_names.is_empty() {
            return Vec::new();
        }
        let Some((stripped, taken)) = take_query(req.uri(), &self.query_names) else {
            return Vec::new();
        };
        if let Some(shown) = redacted(&ctx.uri, &self.query_names) {
            ctx.uri = shown;
        }
        *req.uri_mut() = stripped;
        taken
    }

    /// The providers from `start` on, fetching keys where they need them.
    async fn resolve_from(
        &self,
        start: usize,
        mut refusal: Refusal<'_>,
        req: &mut Request<Body>,
        ctx: &mut RequestCtx,
        taken: Vec<(String, String)>,
    ) -> StageResult {
        for p in &self.providers[start..] {
            let verdict = match p.check(req.headers(), &taken) {
                Verdict::NeedKeys(seen) => p.check_after_fetch(seen, req.headers(), &taken).await,
                other => other,
            };
            match verdict {
                Verdict::Accept(principal) => return self.admit(req, ctx, principal),
                Verdict::Reject(why) => refusal.note(p.name(), why),
                Verdict::Absent | Verdict::NeedKeys(_) => {}
            }
        }
        self.refuse(refusal)
    }
}

impl Stage for AuthStage {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        let taken = self.take_query_credentials(req, ctx);
        let mut refusal = Refusal::default();
        for (i, p) in self.providers.iter().enumerate() {
            match p.check(req.headers(), &taken) {
                Verdict::Accept(principal) => return self.admit(req, ctx, principal).into(),
                Verdict::Absent => {}
                Verdict::Reject(why) => refusal.note(p.name(), why),
                Verdict::NeedKeys(_) => {
                    return StageFuture::Pending(Box::pin(
                        self.resolve_from(i, refusal, req, ctx, taken),
                    ));
                }
            }
        }
        self.refuse(refusal).into()
    }
}

//! `split`: a share of a route's requests goes to other upstreams (a canary, a new version),
//! the rest to the route's own `upstream`. The choice is made once per request in the request
//! phase: an override (a header or cookie value naming an upstream) first, then the sticky
//! cookie, then the shares: by a hash of the sticky header's value when there is one, at
//! random otherwise. A sticky cookie is set on the response of a request that had none.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue, SET_COOKIE};
use http::{Request, Response};
use rampart_config::ConfigError;
use rampart_config::model::{Split, SplitOverride};
use rampart_core::{Body, Flow, Phases, RequestCtx, Stage, StageFuture};
use rampart_core::{Prepared, RouteSpec, StageFactory};

use rampart_core::hash::stable_hash;
use rampart_core::headers::cookie;

/// Shares are counted in basis points (1/100 of a percent) of this whole.
const WHOLE: u32 = 10_000;

/// One compiled `split`.
#[derive(Debug)]
pub struct SplitStage {
    primary: Arc<str>,
    /// The other upstreams with the exclusive upper bound of their share, cumulative: a
    /// request whose bucket is below a bound (and not below the one before) goes there.
    shares: Vec<(Arc<str>, u32)>,
    sticky_header: Option<HeaderName>,
    sticky_cookie: Option<String>,
    overrides: Vec<Override>,
}

#[derive(Debug)]
struct Override {
    from: Source,
    value: String,
    upstream: Arc<str>,
}

#[derive(Debug)]
enum Source {
    Header(HeaderName),
    Cookie(String),
}

/// What the request phase chose, for the upstream choice and the response.
#[derive(Debug, Clone)]
struct Chosen {
    upstream: Arc<str>,
    /// The sticky cookie is to be set: the request did not carry a valid one.
    set_cookie: bool,
}

impl SplitStage {
    /// The opaque tag a sticky cookie carries for `upstream`.
    fn tag(upstream: &str) -> String {
        format!("{:016x}", stable_hash(upstream.as_bytes()))
    }

    fn by_tag(&self, tag: &str) -> Option<&Arc<str>> {
        std::iter::once(&self.primary)
            .chain(self.shares.iter().map(|(name, _)| name))
            .find(|name| Self::tag(name) == tag)
    }

    fn by_bucket(&self, bucket: u32) -> &Arc<str> {
        self.shares
            .iter()
            .find(|(_, bound)| bucket < *bound)
            .map_or(&self.primary, |(name, _)| name)
    }

    fn choose(&self, req: &Request<Body>) -> Chosen {
        let headers = req.headers();
        let named = self.overrides.iter().find(|o| match &o.from {
            Source::Header(name) => headers
                .get(name)
                .is_some_and(|v| v.as_bytes() == o.value.as_bytes()),
            Source::Cookie(name) => cookie(headers, name) == Some(o.value.as_bytes()),
        });
        if let Some(o) = named {
            return Chosen {
                upstream: o.upstream.clone(),
                set_cookie: false,
            };
        }
        if let Some(name) = &self.sticky_cookie
            && let Some(upstream) = cookie(headers, name)
                .and_then(|tag| std::str::from_utf8(tag).ok())
                .and_then(|tag| self.by_tag(tag))
        {
            return Chosen {
                upstream: upstream.clone(),
                set_cookie: false,
            };
        }
        let bucket = self
            .sticky_header
            .as_ref()
            .and_then(|name| headers.get(name))
            .map_or_else(
                || fastrand::u32(0..WHOLE),
                |value| {
                    u32::try_from(stable_hash(value.as_bytes()) % u64::from(WHOLE)).unwrap_or(0)
                },
            );
        Chosen {
            upstream: self.by_bucket(bucket).clone(),
            set_cookie: self.sticky_cookie.is_some(),
        }
    }
}

impl Stage for SplitStage {
    fn name(&self) -> &'static str {
        "split"
    }

    fn phases(&self) -> Phases {
        let phases = Phases::REQUEST | Phases::UPSTREAM;
        if self.sticky_cookie.is_some() {
            phases | Phases::RESPONSE
        } else {
            phases
        }
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        let chosen = self.choose(req);
        ctx.extensions.insert(chosen);
        Ok(Flow::Continue).into()
    }

    fn choose_upstream(&self, _req: &Request<Body>, ctx: &RequestCtx) -> Option<Arc<str>> {
        ctx.extensions
            .get::<Chosen>()
            .filter(|chosen| chosen.upstream != self.primary)
            .map(|chosen| chosen.upstream.clone())
    }

    fn on_response(&self, resp: &mut Response<Body>, ctx: &mut RequestCtx) {
        let (Some(name), Some(chosen)) = (&self.sticky_cookie, ctx.extensions.get::<Chosen>())
        else {
            return;
        };
        if !chosen.set_cookie {
            return;
        }
        let secure = if ctx.conn.scheme == "https" {
            "; Secure"
        } else {
            ""
        };
        let line = format!(
            "{name}={}; Path=/; HttpOnly; SameSite=Lax{secure}",
            Self::tag(&chosen.upstream)
        );
        if let Ok(value) = HeaderValue::from_str(&line) {
            resp.headers_mut().append(SET_COOKIE, value);
        }
    }
}

/// Builds a route's [`SplitStage`] from its `split` table.
#[derive(Debug, Clone, Copy, Default)]
pub struct SplitStages;

impl StageFactory for SplitStages {
    fn name(&self) -> &'static str {
        "split"
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        _prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        let Some(split) = &route.route.split else {
            return Ok(Vec::new());
        };
        compile(route, split).map(|stage| vec![Box::new(stage) as Box<dyn Stage>])
    }
}

fn compile(route: &RouteSpec<'_>, split: &Split) -> Result<SplitStage, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let Some(primary) = &route.route.upstream else {
        return Err(vec![route.error(
            None,
            "split",
            "a split needs the route's own `upstream`, which gets the requests the split does not send elsewhere",
        )]);
    };
    let known = |name: &str| {
        route
            .config
            .raw()
            .upstreams
            .iter()
            .any(|u| u.name.as_str() == name)
    };
    let mut shares: Vec<(Arc<str>, u32)> = Vec::new();
    let mut total = 0_u32;
    for (i, backend) in split.backends.iter().enumerate() {
        let key = format!("split.backends[{i}]");
        let name = backend.upstream.as_str();
        if !known(name) {
            errors.push(route.error(
                Some(backend.upstream.span()),
                &format!("{key}.upstream"),
                format!("unknown upstream {name:?}"),
            ));
        } else if name == primary.as_str() || shares.iter().any(|(n, _)| &**n == name) {
            errors.push(route.error(Some(backend.upstream.span()), &format!("{key}.upstream"), format!("{name:?} is listed twice (the route's own upstream gets the rest without being listed)")));
        }
        let percent = *backend.percent.get();
        if !(0.0..=100.0).contains(&percent) {
            errors.push(route.error(
                Some(backend.percent.span()),
                &format!("{key}.percent"),
                format!("{percent} is not a share: expected 0 to 100"),
            ));
            continue;
        }
        // Rounded to basis points; the range check above keeps the cast in 0..=10000.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let points = (percent * 100.0).round() as u32;
        total += points;
        shares.push((Arc::from(name), total));
    }
    if total > WHOLE {
        errors.push(route.error(
            None,
            "split.backends",
            format!(
                "the shares add up to {}%, more than 100%",
                f64::from(total) / 100.0
            ),
        ));
    }
    let mut sticky_header = None;
    let mut sticky_cookie = None;
    if let Some(sticky) = &split.sticky {
        match (&sticky.header, &sticky.cookie) {
            (Some(header), None) => match HeaderName::from_bytes(header.as_bytes()) {
                Ok(name) => sticky_header = Some(name),
                Err(_) => errors.push(route.error(
                    Some(header.span()),
                    "split.sticky.header",
                    "not a valid header name",
                )),
            },
            (None, Some(name)) if is_token(name) => sticky_cookie = Some(name.get().clone()),
            (None, Some(name)) => errors.push(route.error(
                Some(name.span()),
                "split.sticky.cookie",
                "not a valid cookie name",
            )),
            _ => errors.push(route.error(
                None,
                "split.sticky",
                "give exactly one of `header` or `cookie`",
            )),
        }
    }
    let mut overrides = Vec::new();
    for (i, o) in split.overrides.iter().enumerate() {
        match compile_override(
            route,
            o,
            &format!("split.overrides[{i}]"),
            primary.as_str(),
            &shares,
        ) {
            Ok(o) => overrides.push(o),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(SplitStage {
        primary: Arc::from(primary.as_str()),
        shares,
        sticky_header,
        sticky_cookie,
        overrides,
    })
}

fn compile_override(
    route: &RouteSpec<'_>,
    o: &SplitOverride,
    key: &str,
    primary: &str,
    shares: &[(Arc<str>, u32)],
) -> Result<Override, ConfigError> {
    let from = match (&o.header, &o.cookie) {
        (Some(header), None) => {
            Source::Header(HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                route.error(
                    Some(header.span()),
                    &format!("{key}.header"),
                    "not a valid header name",
                )
            })?)
        }
        (None, Some(name)) if is_token(name) => Source::Cookie(name.get().clone()),
        (None, Some(name)) => {
            return Err(route.error(
                Some(name.span()),
                &format!("{key}.cookie"),
                "not a valid cookie name",
            ));
        }
        _ => {
            return Err(route.error(
                Some(o.upstream.span()),
                key,
                "give exactly one of `header` or `cookie`",
            ));
        }
    };
    let upstream = o.upstream.as_str();
    let target = std::iter::once(primary)
        .chain(shares.iter().map(|(name, _)| &**name))
        .find(|name| *name == upstream)
        .ok_or_else(|| {
            route.error(
                Some(o.upstream.span()),
                &format!("{key}.upstream"),
                format!(
                    "{upstream:?} is neither the route's upstream nor one of the split's backends"
                ),
            )
        })?;
    Ok(Override {
        from,
        value: o.value.clone(),
        upstream: Arc::from(target),
    })
}

/// A cookie name: an HTTP token (RFC 6265 §4.1.1).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(shares: &[(&str, u32)]) -> SplitStage {
        SplitStage {
            primary: Arc::from("v1"),
            shares: shares.iter().map(|(n, b)| (Arc::from(*n), *b)).collect(),
            sticky_header: Some(HeaderName::from_static("x-user")),
            sticky_cookie: None,
            overrides: vec![Override {
                from: Source::Header(HeaderName::from_static("x-canary")),
                value: "always".into(),
                upstream: Arc::from("v2"),
            }],
        }
    }

    fn request(headers: &[(&'static str, &'static str)]) -> Request<Body> {
        let mut req = Request::new(Body::Empty);
        for (name, value) in headers {
            req.headers_mut()
                .insert(*name, HeaderValue::from_static(value));
        }
        req
    }

    #[test]
    fn buckets_fall_into_the_cumulative_shares() {
        let s = stage(&[("v2", 500), ("v3", 1500)]);
        assert_eq!(&**s.by_bucket(0), "v2");
        assert_eq!(&**s.by_bucket(499), "v2");
        assert_eq!(&**s.by_bucket(500), "v3");
        assert_eq!(&**s.by_bucket(1499), "v3");
        assert_eq!(&**s.by_bucket(1500), "v1");
        assert_eq!(&**s.by_bucket(9999), "v1");
    }

    #[test]
    fn an_override_wins_and_a_sticky_header_always_gives_the_same_upstream() {
        let s = stage(&[("v2", 5000)]);
        let forced = s.choose(&request(&[("x-canary", "always"), ("x-user", "u1")]));
        assert_eq!(&*forced.upstream, "v2");
        let first = s.choose(&request(&[("x-user", "user-42")])).upstream;
        for _ in 0..20 {
            assert_eq!(s.choose(&request(&[("x-user", "user-42")])).upstream, first);
        }
    }

    #[test]
    fn a_cookie_tag_names_an_upstream_of_the_split_only() {
        let s = stage(&[("v2", 500)]);
        assert_eq!(s.by_tag(&SplitStage::tag("v2")).map(|n| &**n), Some("v2"));
        assert_eq!(s.by_tag(&SplitStage::tag("v1")).map(|n| &**n), Some("v1"));
        assert_eq!(s.by_tag(&SplitStage::tag("other")), None);
        assert_eq!(s.by_tag("not-a-tag"), None);
    }

    #[test]
    fn cookie_names_must_be_tokens() {
        assert!(is_token("rampart_split"));
        assert!(!is_token(""));
        assert!(!is_token("a b"));
        assert!(!is_token("a;b"));
    }
}

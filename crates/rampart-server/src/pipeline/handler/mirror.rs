//! Mirroring (shadow traffic): a copy of a share of a route's proxied requests goes to a
//! shadow upstream in a task of its own. The copy's answer is read to its end and dropped;
//! its latency and failures never reach the client, which gets the primary's answer as it
//! would without the mirror. A request body is copied only when it is small and its length is
//! known: it is read once and shared by the primary and the copy.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use rampart_config::model::{Mirror as MirrorConfig, TrafficCondition};
use rampart_config::{ConfigError, Located};
use rampart_core::headers::cookie;
use rampart_core::{Body, ProxyError, RequestCtx, RouteSpec};
use rampart_upstream::{ForwardOpts, UpstreamSet, forward_with};
use tokio::sync::Semaphore;

use super::replay::{copy_of, small_body, suffix_host};
use crate::observe::metrics::{MirrorCounts, MirrorMiss, Registry};

/// Shares are counted in basis points (1/100 of a percent) of this whole.
const WHOLE: u32 = 10_000;

/// A route's compiled `mirror`.
pub(crate) struct Mirror {
    set: Arc<UpstreamSet>,
    points: u32,
    only_if: Option<(Condition, String)>,
    timeout: Duration,
    slots: Arc<Semaphore>,
    max_body: u64,
    host_suffix: Option<String>,
    counts: Arc<MirrorCounts>,
}

enum Condition {
    Header(HeaderName),
    Cookie(String),
}

impl Mirror {
    /// Compiles route `spec`'s `mirror` table against the compiled upstream sets.
    pub(crate) fn new(
        config: &MirrorConfig,
        spec: &RouteSpec<'_>,
        sets: &std::collections::HashMap<String, Arc<UpstreamSet>>,
        metrics: &Registry,
    ) -> Result<Self, ConfigError> {
        let name = config.upstream.as_str();
        let set = sets.get(name).ok_or_else(|| {
            spec.error(
                Some(config.upstream.span()),
                "mirror.upstream",
                format!("unknown upstream {name:?}"),
            )
        })?;
        if spec.route.upstream.as_deref().map(String::as_str) == Some(name) {
            return Err(spec.error(
                Some(config.upstream.span()),
                "mirror.upstream",
                "the shadow upstream is the route's own upstream",
            ));
        }
        let percent = *config.percent.get();
        if !(0.0..=100.0).contains(&percent) {
            return Err(spec.error(
                Some(config.percent.span()),
                "mirror.percent",
                format!("{percent} is not a share: expected 0 to 100"),
            ));
        }
        // The range check keeps the cast in 0..=10000.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let points = (percent * 100.0).round() as u32;
        let max_concurrent = *config.max_concurrent.get();
        if max_concurrent == 0 {
            return Err(spec.error(
                Some(config.max_concurrent.span()),
                "mirror.max_concurrent",
                "must be at least 1",
            ));
        }
        let only_if = config
            .only_if
            .as_ref()
            .map(|c| condition(c, spec))
            .transpose()?;
        let host_suffix = config
            .host_suffix
            .as_ref()
            .map(|suffix| checked_suffix(suffix, spec))
            .transpose()?;
        Ok(Self {
            set: Arc::clone(set),
            points,
            only_if,
            timeout: config.timeout.get(),
            slots: Arc::new(Semaphore::new(max_concurrent as usize)),
            max_body: config.max_body.get(),
            host_suffix,
            counts: metrics.mirror(spec.route.name.as_str(), name),
        })
    }

    /// The shadow upstream's name.
    pub(crate) fn upstream(&self) -> &str {
        &self.set.name
    }

    fn wanted(&self, headers: &HeaderMap) -> bool {
        let chosen = self.points >= WHOLE || fastrand::u32(0..WHOLE) < self.points;
        chosen
            && self
                .only_if
                .as_ref()
                .is_none_or(|(from, value)| match from {
                    Condition::Header(name) => headers
                        .get(name)
                        .is_some_and(|v| v.as_bytes() == value.as_bytes()),
                    Condition::Cookie(name) => cookie(headers, name) == Some(value.as_bytes()),
                })
    }

    /// Sends a copy of `req` (prepared for the upstream; `added` holds the field lines the
    /// HTTP/1.1 encoder adds) when this request is one to mirror. A small body of known length
    /// is read here and put back for the primary.
    ///
    /// # Errors
    /// The client's body failed while it was read for the copy (the primary could not have
    /// been sent either).
    pub(crate) async fn copy(
        &self,
        req: &mut Request<Body>,
        added: &[u8],
        ctx: &RequestCtx,
    ) -> Result<(), ProxyError> {
        if !self.wanted(req.headers()) {
            return Ok(());
        }
        let Some(body) = small_body(req, self.max_body).await? else {
            self.counts.missed(MirrorMiss::Skipped);
            return Ok(());
        };
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            self.counts.missed(MirrorMiss::Dropped);
            return Ok(());
        };
        let mut copy = Box::new(copy_of(req, added, body));
        if let Some(suffix) = &self.host_suffix {
            suffix_host(&mut copy, suffix);
        }
        let set = Arc::clone(&self.set);
        let counts = Arc::clone(&self.counts);
        let (timeout, client_ip) = (self.timeout, ctx.client_ip);
        tokio::spawn(async move {
            let _slot = slot;
            let sent = tokio::time::timeout(timeout, async {
                let opts = ForwardOpts {
                    timeout,
                    upgrade: false,
                    client_ip: Some(client_ip),
                    route_retry: None,
                    added: &[],
                };
                let fwd = forward_with(&set, copy, &opts).await.map_err(|_| ())?;
                let status = fwd.response.status();
                // Read to the end, so the upstream connection goes back to its pool.
                let mut body = fwd.response.into_body();
                while let Some(frame) = body.frame().await {
                    frame.map_err(|_| ())?;
                }
                Ok::<StatusCode, ()>(status)
            })
            .await;
            match sent {
                Ok(Ok(status)) => counts.answered(status.as_u16()),
                Ok(Err(())) | Err(_) => counts.missed(MirrorMiss::Failed),
            }
        });
        Ok(())
    }
}

fn condition(
    c: &TrafficCondition,
    spec: &RouteSpec<'_>,
) -> Result<(Condition, String), ConfigError> {
    let from = match (&c.header, &c.cookie) {
        (Some(name), None) => HeaderName::from_bytes(name.as_bytes())
            .map(Condition::Header)
            .map_err(|_| {
                spec.error(
                    Some(name.span()),
                    "mirror.only_if.header",
                    "not a valid header name",
                )
            })?,
        (None, Some(name)) if !name.is_empty() && !name.contains([';', '=', ' ']) => {
            Condition::Cookie(name.get().clone())
        }
        (None, Some(name)) => {
            return Err(spec.error(
                Some(name.span()),
                "mirror.only_if.cookie",
                "not a valid cookie name",
            ));
        }
        _ => {
            return Err(spec.error(
                None,
                "mirror.only_if",
                "give exactly one of `header` or `cookie`",
            ));
        }
    };
    Ok((from, c.value.clone()))
}

fn checked_suffix(suffix: &Located<String>, spec: &RouteSpec<'_>) -> Result<String, ConfigError> {
    let fine = !suffix.is_empty()
        && suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if fine {
        Ok(suffix.get().clone())
    } else {
        Err(spec.error(
            Some(suffix.span()),
            "mirror.host_suffix",
            "a host suffix is letters, digits, `-` and `.`",
        ))
    }
}

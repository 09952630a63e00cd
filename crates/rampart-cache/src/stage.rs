//! [`CacheStage`], request side: finds the object a `GET` or `HEAD` asks for and answers
//! with it when it may be reused (a hit, a conditional answer, a stale object while it is
//! refreshed behind), or sends the request on with validators, after the request in flight
//! for the same object when there is one. Unsafe methods and `PURGE` are noted for the
//! response side ([`crate::respond`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use rampart_core::{
    Body, ErrorKind, Flow, ForwardBehind, Phases, ProxyError, RequestCtx, Stage, StageFuture,
};

use crate::conditional::{self, Conditionals, Decision};
use crate::directives::RequestDirectives;
use crate::entry::{Entry, Reuse};
use crate::flight::{self, Join, Leader};
use crate::rules::Rules;
use crate::store::{CacheStore, Purge};

/// The cache on one route.
pub struct CacheStage {
    pub(crate) store: CacheStore,
    pub(crate) rules: Arc<Rules>,
}

impl std::fmt::Debug for CacheStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheStage").finish_non_exhaustive()
    }
}

/// What the request side leaves for the response side, in the request's extensions.
pub(crate) enum State {
    /// The request skipped the cache.
    Bypass,
    /// An unsafe method: a success invalidates these objects (its URI, then `Location` and
    /// `Content-Location` on the same host, resolved by the response side).
    Invalidate {
        key: String,
        scheme: &'static str,
        host: String,
    },
    /// The request went upstream for an object.
    Miss(Box<Miss>),
}

/// [`State`] as the request's extensions hold it (they want `Clone`; a clone shares it).
#[derive(Clone)]
pub(crate) struct Carried(Arc<Mutex<Option<State>>>);

impl Carried {
    fn put(ctx: &mut RequestCtx, state: State) {
        ctx.extensions
            .insert(Self(Arc::new(Mutex::new(Some(state)))));
    }

    /// Takes the state out of `ctx`.
    pub(crate) fn take(ctx: &mut RequestCtx) -> Option<State> {
        let carried = ctx.extensions.remove::<Self>()?;
        let mut slot = carried
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.take()
    }
}

/// A request sent upstream for an object.
pub(crate) struct Miss {
    pub(crate) key: String,
    pub(crate) extra_key: Box<str>,
    /// The request's fields, for the values of the response's `Vary`.
    pub(crate) request_headers: HeaderMap,
    pub(crate) request_time: SystemTime,
    /// The response may be stored (a `GET` without `no-store`).
    pub(crate) storable: bool,
    pub(crate) authorized: bool,
    pub(crate) head: bool,
    /// The stored object this request revalidates, or may fall back to on an error.
    pub(crate) stale: Option<Arc<Entry>>,
    /// The request carries the stored object's validators, put there by the cache.
    pub(crate) revalidating: bool,
    /// The client's own conditionals, answered from the revalidated object.
    pub(crate) client: Option<Conditionals>,
    /// The in-flight slot other requests for this object wait on.
    pub(crate) leader: Option<Leader>,
    /// A refresh behind a stale answer: nobody reads this response.
    pub(crate) background: bool,
}

/// What looking an object up decided.
enum Step {
    Done(Flow),
    Wait(Arc<flight::Flight>),
}

impl Stage for CacheStage {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST | Phases::RESPONSE
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        let method = req.method();
        if method != Method::GET && method != Method::HEAD {
            return self.other_method(req, ctx).into();
        }
        if self.rules.bypassed(req) {
            self.store
                .counters()
                .bypassed
                .fetch_add(1, Ordering::Relaxed);
            ctx.cache = Some("BYPASS");
            Carried::put(ctx, State::Bypass);
            return Ok(Flow::Continue).into();
        }
        let key = self.key(req, ctx);
        let extra_key = self.rules.extra_key(req.headers());
        let directives = RequestDirectives::parse(req.headers());
        match self.look_up(req, ctx, &key, &extra_key, directives, true) {
            Step::Done(flow) => Ok(flow).into(),
            Step::Wait(in_flight) => StageFuture::Pending(Box::pin(async move {
                let limit = self.rules.collapse.unwrap_or_default();
                let released = flight::wait(&in_flight, limit).await;
                let step = self.look_up(req, ctx, &key, &extra_key, directives, false);
                let Step::Done(flow) = step else {
                    return Ok(Flow::Continue);
                };
                if released && matches!(flow, Flow::Respond { .. }) {
                    self.store
                        .counters()
                        .collapsed
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(flow)
            })),
        }
    }

    fn on_response(&self, resp: &mut Response<Body>, ctx: &mut RequestCtx) {
        let Some(state) = Carried::take(ctx) else {
            return;
        };
        self.complete(state, resp, ctx);
    }
}

impl CacheStage {
    /// The primary key of the object `req` asks for.
    fn key(&self, req: &Request<Body>, ctx: &RequestCtx) -> String {
        let host = ctx
            .host
            .as_ref()
            .or_else(|| req.headers().get(header::HOST))
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        self.rules.key(ctx.conn.scheme, host, req.uri())
    }

    /// `PURGE` from an allowed client, and the invalidation unsafe methods cause.
    fn other_method(&self, req: &Request<Body>, ctx: &mut RequestCtx) -> Result<Flow, ProxyError> {
        let method = req.method();
        if method.as_str() == "PURGE" && !self.rules.purge_allow.is_empty() {
            if !self
                .rules
                .purge_allow
                .iter()
                .any(|n| n.contains(ctx.client_ip))
            {
                return Err(ProxyError::new(
                    ErrorKind::IpDenied,
                    "PURGE from a client outside cache.purge_allow",
                ));
            }
            let key = self.key(req, ctx);
            let removed = self.store.purge(Purge::Key(&key));
            tracing::info!(key, removed, client = %ctx.client_ip, "cache purge");
            let status = if removed > 0 {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            let mut resp = Response::new(Body::full(format!("{{\"purged\":{removed}}}\n")));
            *resp.status_mut() = status;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Ok(Flow::respond(resp, "cache_purge"));
        }
        if !method.is_safe() {
            let key = self.key(req, ctx);
            let host = ctx
                .host
                .as_ref()
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let scheme = ctx.conn.scheme;
            Carried::put(ctx, State::Invalidate { key, scheme, host });
        }
        Ok(Flow::Continue)
    }

    /// Answers from the stored object when it may be reused; otherwise prepares the request
    /// to go upstream (with validators) and leaves a [`Miss`] for the response side. With
    /// `may_wait`, a miss behind another request for the same object waits for it.
    fn look_up(
        &self,
        req: &mut Request<Body>,
        ctx: &mut RequestCtx,
        key: &str,
        extra_key: &str,
        directives: RequestDirectives,
        may_wait: bool,
    ) -> Step {
        let now = SystemTime::now();
        let head = req.method() == Method::HEAD;
        let stored = self.store.lookup(key, req.headers(), extra_key);
        let flight_key = || format!("{key}\n{extra_key}");
        if let Some(entry) = &stored {
            match entry.reuse(&directives, now) {
                Reuse::Fresh => {
                    self.store.counters().hits.fetch_add(1, Ordering::Relaxed);
                    return Step::Done(self.serve(entry, req, ctx, "HIT", now));
                }
                Reuse::Stale => {
                    self.store.counters().stale.fetch_add(1, Ordering::Relaxed);
                    return Step::Done(self.serve(entry, req, ctx, "STALE", now));
                }
                Reuse::StaleWhileRevalidate => {
                    self.store.counters().stale.fetch_add(1, Ordering::Relaxed);
                    let flow = self.serve(entry, req, ctx, "STALE", now);
                    if !head
                        && let Some(leader) = flight::try_lead(self.store.flights(), &flight_key())
                    {
                        let mut miss = self.miss(req, key, extra_key, &directives, now);
                        miss.background = true;
                        miss.leader = Some(leader);
                        self.revalidate_with(entry, req, &mut miss);
                        Carried::put(ctx, State::Miss(Box::new(miss)));
                        ctx.extensions.insert(ForwardBehind);
                    }
                    return Step::Done(flow);
                }
                Reuse::Revalidate => {}
            }
        }
        if directives.only_if_cached {
            self.store.counters().misses.fetch_add(1, Ordering::Relaxed);
            let mut resp = Response::new(Body::Empty);
            *resp.status_mut() = StatusCode::GATEWAY_TIMEOUT;
            self.label(&mut resp, ctx, "MISS");
            return Step::Done(Flow::respond(resp, "cache_only_if_cached"));
        }
        let mut miss = self.miss(req, key, extra_key, &directives, now);
        if miss.storable && may_wait && self.rules.collapse.is_some() {
            match flight::join(self.store.flights(), &flight_key()) {
                Join::Lead(leader) => miss.leader = Some(leader),
                Join::Wait(in_flight) => return Step::Wait(in_flight),
            }
        }
        if let Some(entry) = stored {
            if !head {
                self.revalidate_with(&entry, req, &mut miss);
            }
            miss.stale = Some(entry);
        }
        Carried::put(ctx, State::Miss(Box::new(miss)));
        Step::Done(Flow::Continue)
    }

    fn miss(
        &self,
        req: &Request<Body>,
        key: &str,
        extra_key: &str,
        directives: &RequestDirectives,
        now: SystemTime,
    ) -> Miss {
        let head = req.method() == Method::HEAD;
        Miss {
            key: key.to_owned(),
            extra_key: extra_key.into(),
            request_headers: req.headers().clone(),
            request_time: now,
            storable: !head && !directives.no_store && !req.headers().contains_key(header::RANGE),
            authorized: req.headers().contains_key(header::AUTHORIZATION),
            head,
            stale: None,
            revalidating: false,
            client: None,
            leader: None,
            background: false,
        }
    }

    /// Puts `entry`'s validators on `req` in place of the client's conditionals (kept in
    /// `miss` to answer them from the result).
    fn revalidate_with(&self, entry: &Arc<Entry>, req: &mut Request<Body>, miss: &mut Miss) {
        let (etag, modified) = entry.validators();
        if etag.is_none() && modified.is_none() {
            miss.stale = Some(Arc::clone(entry));
            return;
        }
        let headers = req.headers_mut();
        miss.client = Conditionals::of(headers);
        for name in [
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
        ] {
            headers.remove(name);
        }
        if let Some(etag) = etag {
            headers.insert(header::IF_NONE_MATCH, etag.clone());
        }
        if let Some(modified) = modified {
            headers.insert(header::IF_MODIFIED_SINCE, modified.clone());
        }
        miss.revalidating = true;
        miss.stale = Some(Arc::clone(entry));
    }

    /// The answer from `entry`: a 304 or 412 when the client's conditionals say so.
    fn serve(
        &self,
        entry: &Entry,
        req: &Request<Body>,
        ctx: &mut RequestCtx,
        label: &'static str,
        now: SystemTime,
    ) -> Flow {
        let head = req.method() == Method::HEAD;
        let decision =
            Conditionals::of(req.headers()).map_or(Decision::Send, |c| c.decide(&entry.headers));
        let mut resp =
            conditional::answer(decision, entry, now).unwrap_or_else(|| entry.response(now, head));
        self.label(&mut resp, ctx, label);
        let reason = if label == "HIT" {
            "cache_hit"
        } else {
            "cache_stale"
        };
        Flow::respond(resp, reason)
    }

    /// Records how the cache served the request: in the status header and for the log.
    pub(crate) fn label(
        &self,
        resp: &mut Response<Body>,
        ctx: &mut RequestCtx,
        label: &'static str,
    ) {
        ctx.cache = Some(label);
        if let Some(name) = &self.rules.status_header {
            resp.headers_mut()
                .insert(name.clone(), HeaderValue::from_static(label));
        }
    }
}

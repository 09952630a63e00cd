//! Forwarding one request under the upstream's rules: circuit breaker, balancer, per-try
//! timeout, passive health accounting, retries on another target within the budget, and the
//! sticky-session cookie.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use rampart_config::model::{RouteRetry, UpstreamProtocol};
use rampart_core::{Body, ErrorKind, ProxyError};

use crate::forward::{Failure, ForwardError, Forwarded, Held, attempt};
use crate::health::TargetStats;
use crate::health::passive::Outcome;
use crate::members::Members;
use crate::retry::Rules;
use crate::set::{PickKey, UpstreamSet};

/// Most attempts one request makes, whatever `max_retries` says.
const MAX_ATTEMPTS: usize = 8;

/// How to forward one request.
#[derive(Debug, Clone, Copy)]
pub struct ForwardOpts<'a> {
    /// Time allowed for the response head after the request body was sent (per attempt, unless
    /// a shorter `per_try_timeout` applies).
    pub timeout: Duration,
    /// The request asks to switch protocols: use a dedicated connection, never retry after
    /// sending.
    pub upgrade: bool,
    /// The client's IP, for `hash_on = "client_ip"`.
    pub client_ip: Option<IpAddr>,
    /// The route's retry overrides.
    pub route_retry: Option<&'a RouteRetry>,
    /// Field lines Rampart adds to an HTTP/1.1 request outside its map, written after the
    /// request's own (see [`AddedFields`](rampart_core::headers::AddedFields)); empty when
    /// the added fields are in the map.
    pub added: &'a [u8],
}

/// Forwards `req` (origin-form URI, `Host` set, hop-by-hop headers already removed) to a
/// target of `set` chosen by its balancer, retrying on other targets where the rules allow
/// (see [`crate::retry`]). The request is boxed: it moves through the retry loop and into an
/// attempt as one pointer, not as its 200-odd bytes at every step.
///
/// # Errors
/// No usable target (503 at once), circuit breaker full (503 with `Retry-After`), connect
/// failure or timeout on every target tried, reset, bad response, timeout, or a failing client
/// body.
pub async fn forward_with(
    set: &Arc<UpstreamSet>,
    mut req: Box<Request<Body>>,
    opts: &ForwardOpts<'_>,
) -> Result<Forwarded, ForwardError> {
    set.start_health();
    let ticket = match &set.circuit {
        Some(c) => Some(c.admit(&set.name).map_err(|error| ForwardError {
            error,
            target: None,
            retries: 0,
        })?),
        None => None,
    };
    let _slot = match &set.breaker {
        Some(b) => b.admit(&set.name).await.map_err(|error| ForwardError {
            error,
            target: None,
            retries: 0,
        })?,
        None => None,
    };
    let mut members = set.members();
    if members.len() == 0 && set.discovery.is_some() {
        // Discovery has not answered yet (just started): wait for it rather than fail.
        set.wait_ready(set.connect_timeout).await;
        members = set.members();
    }
    let key = set.pick_key(req.uri(), req.headers(), opts.client_ip);
    let rules = set.retry.rules(req.method(), opts.route_retry);
    let timeout = rules
        .per_try_timeout
        .map_or(opts.timeout, |t| t.min(opts.timeout));
    let replay_wanted = !opts.upgrade
        && rules.replay_allowed
        && ((rules.max_retries > 0 && set.retry.retries_responses())
            || rules.hedge_after.is_some());
    if replay_wanted {
        set.retry.deposit();
    }
    let body = match buffer_for_replay(&mut req, replay_wanted, set.retry.buffer_body).await {
        Ok(body) => body,
        Err(error) => {
            return Err(ForwardError {
                error,
                target: None,
                retries: 0,
            });
        }
    };
    let mut run = Run {
        set,
        members: &members,
        key,
        rules,
        body,
        added: opts.added,
        tried: [0; MAX_ATTEMPTS],
        attempts: 0,
    };
    let outcome = run.attempts(req, timeout, opts.upgrade).await;
    if let Some(ticket) = ticket {
        match &outcome {
            Ok(fwd) => ticket.finish(&set.name, fwd.response.status().is_server_error()),
            Err(e) if counts_against_circuit(e.error.kind) => ticket.finish(&set.name, true),
            // Not the upstream's doing (the client's body failed): no outcome.
            Err(_) => drop(ticket),
        }
    }
    let mut fwd = outcome?;
    let last_id = run.last().map(|i| members.targets[i].sticky_id);
    if let Some(sticky) = &set.sticky
        && key.sticky != last_id
        && let Some(cookie) = last_id.and_then(|id| sticky.set_cookie(id))
    {
        fwd.response
            .headers_mut()
            .append(header::SET_COOKIE, cookie);
    }
    fwd.sent = None;
    Ok(fwd)
}

/// Whether a failed request counts as a failure of the upstream for its circuit.
const fn counts_against_circuit(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::UpstreamConnect
            | ErrorKind::UpstreamConnectTimeout
            | ErrorKind::UpstreamTls
            | ErrorKind::UpstreamReset
            | ErrorKind::UpstreamBadResponse
            | ErrorKind::UpstreamTimeout
            | ErrorKind::NoTarget
    )
}

/// Collects a small request body so it can be sent again (the request then carries it whole);
/// larger or unknown-length bodies stream through and make the request non-replayable
/// (`None`). The request is borrowed, not moved: it is large, and most have no body.
async fn buffer_for_replay(
    req: &mut Request<Body>,
    wanted: bool,
    limit: u64,
) -> Result<Option<Bytes>, ProxyError> {
    if req.body().is_end_stream() {
        return Ok(Some(Bytes::new()));
    }
    let fits = req.body().size_hint().upper().is_some_and(|n| n <= limit);
    if !wanted || !fits {
        return Ok(None);
    }
    let body = std::mem::take(req.body_mut());
    let bytes = body
        .collect()
        .await
        .map_err(|e| {
            let kind = rampart_core::body_error::client_body_reason(&*e)
                .unwrap_or(ErrorKind::ClientBodyError);
            ProxyError::new(kind, format!("request body: {e}"))
        })?
        .to_bytes();
    *req.body_mut() = Body::full(bytes.clone());
    Ok(Some(bytes))
}

/// The state of one request's attempts.
struct Run<'a> {
    set: &'a UpstreamSet,
    /// The targets as they were when the request started.
    members: &'a Members,
    key: PickKey,
    rules: Rules,
    /// The whole body when it can be replayed.
    body: Option<Bytes>,
    /// See [`ForwardOpts::added`].
    added: &'a [u8],
    tried: [usize; MAX_ATTEMPTS],
    attempts: usize,
}

/// One attempt on a target while it waits for its response head: counted in flight; when it
/// is abandoned before its outcome was recorded (a hedge answered first, the client went away)
/// it still counts as a request, and the time it ran goes into the latency EWMA, so a slow
/// target that hedges keep hiding is still seen as slow.
struct Pending<'a> {
    stats: &'a TargetStats,
    started: Instant,
    /// Its outcome went through [`Run::after_response`] or [`Run::record_failure`].
    settled: bool,
}

impl<'a> Pending<'a> {
    fn start(stats: &'a TargetStats, started: Instant) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            stats,
            started,
            settled: false,
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.settled {
            let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            self.stats.abandoned.fetch_add(1, Ordering::Relaxed);
            self.stats.observe_latency(micros);
        }
    }
}

/// What to do after an attempt.
enum Next {
    Done(Result<Forwarded, ForwardError>),
    /// Send this request to that target.
    Retry(Held, usize),
}

impl Run<'_> {
    fn last(&self) -> Option<usize> {
        self.attempts.checked_sub(1).map(|i| self.tried[i])
    }

    fn retries(&self) -> u8 {
        u8::try_from(self.attempts.saturating_sub(1)).unwrap_or(u8::MAX)
    }

    async fn attempts(
        &mut self,
        mut req: Held,
        timeout: Duration,
        upgrade: bool,
    ) -> Result<Forwarded, ForwardError> {
        let set = self.set;
        let m = self.members;
        let mut target = set.pick(m, self.key, &[]);
        loop {
            let Some(i) = target.take() else {
                return Err(self.no_target());
            };
            self.tried[self.attempts] = i;
            self.attempts += 1;
            // The attempt's clock: also the start of an exchange on a pooled connection.
            let started = Instant::now();
            let mut pending = Pending::start(&m.stats[i], started);
            // HTTP/2 consumes the request: keep a copy of its head when it may be replayed.
            let replayable = self.replayable();
            let copy = (set.protocol != UpstreamProtocol::Http1 && replayable)
                .then(|| Box::new(copy_head(&req)));
            // HTTP/1.1 gives the request back only when a status could make it go again.
            let keep_sent = replayable && set.retry.retries_responses();
            let hedge = self.hedge_delay(upgrade);
            let first = i;
            let (i, result) = match hedge {
                // Boxed: a race holds two attempts, which would double the size of every
                // request's future when hedging is off.
                Some(delay) => {
                    Box::pin(self.race(i, &mut pending, req, timeout, keep_sent, delay)).await
                }
                None => (
                    i,
                    attempt(
                        set,
                        &m.targets[i],
                        req,
                        self.added,
                        (started, timeout),
                        upgrade,
                        keep_sent,
                    )
                    .await,
                ),
            };
            // The first attempt is settled below when its result is the one kept (or inside the
            // race when it failed); a first attempt that lost a race is abandoned.
            if i == first {
                pending.settled = true;
            }
            drop(pending);
            let next = match result {
                Ok(mut fwd) => {
                    fwd.sent = fwd.sent.take().or(copy);
                    self.after_response(i, fwd)
                }
                Err(mut failure) => {
                    failure.spent = failure.spent.take().or(copy);
                    self.after_failure(i, failure, timeout)
                }
            };
            match next {
                Next::Done(result) => return result,
                Next::Retry(again, next) => {
                    set.retries_total.fetch_add(1, Ordering::Relaxed);
                    req = again;
                    target = Some(next);
                }
            }
        }
    }

    /// Every target is out (and not in panic mode) or at its limit: a fast 503.
    fn no_target(&self) -> ForwardError {
        ForwardError {
            error: ProxyError::new(
                ErrorKind::NoTarget,
                format!("{}: no target available", self.set.name),
            ),
            target: None,
            retries: self.retries(),
        }
    }

    /// The hedging delay, when this (first) attempt may be raced by a second target.
    fn hedge_delay(&self, upgrade: bool) -> Option<Duration> {
        let delay = self.rules.hedge_after?;
        (!upgrade && self.attempts == 1 && self.body.is_some()).then_some(delay)
    }

    /// Sends `req` to target `i`; when no response head came after `delay`, sends a copy to
    /// another target (if one is usable and the retry budget has a token) and keeps whichever
    /// answers first; the other attempt is dropped, closing its connection. A failed attempt
    /// leaves the race to the other one. Returns the target whose result it is.
    async fn race(
        &mut self,
        i: usize,
        first_pending: &mut Pending<'_>,
        req: Held,
        timeout: Duration,
        keep_sent: bool,
        delay: Duration,
    ) -> (usize, Result<Forwarded, Failure>) {
        let (set, m) = (self.set, self.members);
        let mut hedge = Box::new(copy_head(&req));
        let first = attempt(
            set,
            &m.targets[i],
            req,
            self.added,
            (first_pending.started, timeout),
            false,
            keep_sent,
        );
        tokio::pin!(first);
        tokio::select! {
            r = &mut first => return (i, r),
            () = tokio::time::sleep(delay) => {}
        }
        let (Some(body), Some(j)) = (self.body.clone(), self.next_target(u8::MAX)) else {
            return (i, first.await);
        };
        if !set.retry.withdraw() {
            tracing::debug!(upstream = %set.name, "retry budget spent: not hedging");
            return (i, first.await);
        }
        *hedge.body_mut() = Body::full(body);
        self.tried[self.attempts] = j;
        self.attempts += 1;
        set.retries_total.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(upstream = %set.name, target = %m.targets[j].label, "hedging: no answer yet, asking another target too");
        let hedge_started = Instant::now();
        let mut second_pending = Pending::start(&m.stats[j], hedge_started);
        let second = attempt(
            set,
            &m.targets[j],
            hedge,
            self.added,
            (hedge_started, timeout),
            false,
            keep_sent,
        );
        tokio::pin!(second);
        // The attempt whose result is returned is settled by the caller; one that failed is
        // settled here; one still running when the other answered is abandoned (dropped).
        let won = tokio::select! {
            r = &mut first => match r {
                Err(failure) => {
                    self.record_failure(i, &failure.error, timeout);
                    first_pending.settled = true;
                    (j, second.await)
                }
                ok => (i, ok),
            },
            r = &mut second => match r {
                Err(failure) => {
                    self.record_failure(j, &failure.error, timeout);
                    second_pending.settled = true;
                    (i, first.await)
                }
                ok => (j, ok),
            },
        };
        if won.0 == j {
            second_pending.settled = true;
        }
        won
    }

    /// Folds a failed attempt on target `i` into its health; returns what it counted as.
    fn record_failure(&self, i: usize, error: &ProxyError, timeout: Duration) -> Option<Outcome> {
        let (set, m) = (self.set, self.members);
        let outcome = match error.kind {
            ErrorKind::UpstreamConnect
            | ErrorKind::UpstreamConnectTimeout
            | ErrorKind::UpstreamTls => Some(Outcome::ConnectError),
            ErrorKind::UpstreamTimeout => {
                let micros = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
                m.stats[i].observe_latency(micros);
                Some(Outcome::Timeout)
            }
            ErrorKind::UpstreamReset => Some(Outcome::Timeout),
            ErrorKind::UpstreamBadResponse => Some(Outcome::ServerError),
            // The client's body failed: not the target's fault.
            _ => None,
        };
        if let Some(outcome) = outcome {
            set.health.record(&set.name, m, i, outcome);
        }
        outcome
    }

    /// Whether the request could be sent again after reaching a target.
    fn replayable(&self) -> bool {
        self.rules.replay_allowed && self.rules.max_retries > 0 && self.body.is_some()
    }

    /// The target of another attempt, if one is allowed and a target not tried yet is usable
    /// (otherwise the current answer or error stands).
    fn next_target(&self, max_retries: u8) -> Option<usize> {
        if self.attempts >= MAX_ATTEMPTS || self.attempts > usize::from(max_retries) {
            return None;
        }
        self.set
            .pick(self.members, self.key, &self.tried[..self.attempts])
    }

    fn after_response(&mut self, i: usize, mut fwd: Forwarded) -> Next {
        let set = self.set;
        let m = self.members;
        let status = fwd.response.status().as_u16();
        let outcome = if status >= 500 {
            Outcome::ServerError
        } else {
            Outcome::Success
        };
        let micros = u64::try_from(fwd.upstream_time.as_micros()).unwrap_or(u64::MAX);
        m.stats[i].observe_latency(micros);
        set.health.record(&set.name, m, i, outcome);
        fwd.retries = self.retries();
        if set.retry.retries_status(status)
            && let Some((again, next)) = self.replay(fwd.sent.take(), "status")
        {
            tracing::debug!(upstream = %set.name, target = %m.targets[i].label, status, "retrying on another target");
            return Next::Retry(again, next);
        }
        Next::Done(Ok(fwd))
    }

    fn after_failure(&mut self, i: usize, failure: Failure, timeout: Duration) -> Next {
        let set = self.set;
        let m = self.members;
        let Failure {
            error,
            unsent,
            spent,
        } = failure;
        let outcome = self.record_failure(i, &error, timeout);
        let label = &m.targets[i].label;
        // Nothing was sent: always worth another target (at least one retry).
        if let Some(back) = unsent
            && error.retryable
            && let Some(next) = self.next_target(self.rules.max_retries.max(1))
        {
            tracing::debug!(upstream = %set.name, target = %label, error = %error, "connect failed; retrying on another target");
            return Next::Retry(back, next);
        }
        let resettable = matches!(
            error.kind,
            ErrorKind::UpstreamReset | ErrorKind::UpstreamTimeout
        );
        if resettable
            && set.retry.on_reset
            && let Some((again, next)) = self.replay(spent, "reset")
        {
            tracing::debug!(upstream = %set.name, target = %label, error = %error, "retrying on another target");
            return Next::Retry(again, next);
        }
        // Every target is down (health says so) and this one failed too: the upstream has no
        // usable target, which is a 503, answered as fast as the connect failed.
        let error = if outcome == Some(Outcome::ConnectError) && set.health.all_out() {
            ProxyError::new(
                ErrorKind::NoTarget,
                format!("{}: every target is down; last: {error}", set.name),
            )
        } else {
            error
        };
        Next::Done(Err(ForwardError {
            error,
            target: Some(label.clone()),
            retries: self.retries(),
        }))
    }

    /// The request again, with its buffered body, when a retry after sending is allowed: the
    /// method may be repeated, the body was buffered, attempts remain, and the budget has a
    /// token. `sent` is the request given back by the attempt (HTTP/1.1).
    fn replay(&self, sent: Option<Held>, why: &'static str) -> Option<(Held, usize)> {
        if !self.rules.replay_allowed {
            return None;
        }
        let body = self.body.clone()?;
        let mut req = sent?;
        let next = self.next_target(self.rules.max_retries)?;
        if !self.set.retry.withdraw() {
            tracing::debug!(upstream = %self.set.name, why, "retry budget spent");
            return None;
        }
        *req.body_mut() = Body::full(body);
        if req.headers().contains_key(header::CONTENT_LENGTH) || !req.body().is_end_stream() {
            let len = req.body().size_hint().exact().unwrap_or(0);
            req.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        Some((req, next))
    }
}

/// A copy of a request's head (method, target, version, headers) with no body.
fn copy_head(req: &Request<Body>) -> Request<Body> {
    let mut copy = Request::new(Body::Empty);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}

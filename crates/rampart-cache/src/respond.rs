//! [`CacheStage`], response side: what the upstream's answer does to the store. A `304` to
//! the cache's own validators refreshes the stored object and answers from it; a server
//! error with a stale object inside `stale-if-error` is answered from that object; a
//! storable response is copied into the store as it streams ([`crate::tee`]); a successful
//! unsafe method invalidates its URI and the URIs its `Location` / `Content-Location` name.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use http::header::{self, HeaderMap};
use http::{Response, StatusCode, Uri};
use http_body::Body as _;
use rampart_core::{Body, RequestCtx};

use crate::conditional::{self, Decision};
use crate::directives::{ResponseDirectives, SURROGATE_CONTROL};
use crate::entry::{self, combined, heuristic_allowed, vary_names};
use crate::stage::{CacheStage, Miss, State};
use crate::store::Purge;
use crate::tee::{Pending, Tee};

/// Statuses whose caching rules this cache knows (for `must-understand`).
const UNDERSTOOD: [u16; 16] = [
    200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 421, 451, 501,
];

impl CacheStage {
    /// The response side of `state`.
    pub(crate) fn complete(&self, state: State, resp: &mut Response<Body>, ctx: &mut RequestCtx) {
        match state {
            State::Bypass => self.label(resp, ctx, "BYPASS"),
            State::Invalidate { key, scheme, host } => {
                if resp.status().is_success() || resp.status().is_redirection() {
                    self.invalidate(&key, scheme, &host, resp.headers());
                }
            }
            State::Miss(miss) => self.store_or_stand_in(*miss, resp, ctx),
        }
    }

    fn invalidate(&self, key: &str, scheme: &str, host: &str, headers: &HeaderMap) {
        self.store.purge(Purge::Key(key));
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let Some(uri) = headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Uri>().ok())
            else {
                continue;
            };
            let (scheme, target_host) = match uri.authority() {
                Some(authority) => (uri.scheme_str().unwrap_or(scheme), authority.as_str()),
                None if uri.path().starts_with('/') => (scheme, host),
                None => continue,
            };
            // Only the request's own host: a response cannot evict another site's objects.
            if target_host.eq_ignore_ascii_case(host) {
                self.store
                    .purge(Purge::Key(&self.rules.key(scheme, host, &uri)));
            }
        }
    }

    fn store_or_stand_in(&self, mut miss: Miss, resp: &mut Response<Body>, ctx: &mut RequestCtx) {
        let now = SystemTime::now();
        let counters = self.store.counters();
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED
            && miss.revalidating
            && let Some(stale) = miss.stale.take()
        {
            let refreshed =
                stale.refreshed(resp.headers(), miss.request_time, now, self.rules.defaults);
            let entry = self.store.insert(&miss.key, refreshed);
            drop(miss.leader.take());
            if miss.background {
                return;
            }
            counters.revalidated.fetch_add(1, Ordering::Relaxed);
            let decision = miss
                .client
                .as_ref()
                .map_or(Decision::Send, |c| c.decide(&entry.headers));
            let mut answer = conditional::answer(decision, &entry, now)
                .unwrap_or_else(|| entry.response(now, miss.head));
            carry_over(resp.headers(), answer.headers_mut());
            *resp = answer;
            self.label(resp, ctx, "REVALIDATED");
            return;
        }
        if matches!(status.as_u16(), 500 | 502 | 503 | 504)
            && let Some(stale) = &miss.stale
            && stale.usable_on_error(now)
        {
            if miss.background {
                return;
            }
            counters.stale.fetch_add(1, Ordering::Relaxed);
            let mut answer = stale.response(now, miss.head);
            carry_over(resp.headers(), answer.headers_mut());
            *resp = answer;
            self.label(resp, ctx, "STALE");
            return;
        }
        if !miss.background {
            counters.misses.fetch_add(1, Ordering::Relaxed);
            self.label(resp, ctx, "MISS");
        }
        let storable = self.storable(&miss, resp);
        let surrogate = resp.headers_mut().remove(SURROGATE_CONTROL);
        let Some(vary) = storable else {
            return;
        };
        let length = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if length.is_some_and(|n| n > self.rules.max_object_size) {
            counters.too_large.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut headers = resp.headers().clone();
        if let Some(value) = surrogate {
            headers.insert(SURROGATE_CONTROL, value);
        }
        if let Some(name) = &self.rules.status_header {
            headers.remove(name);
        }
        let vary = vary
            .into_iter()
            .map(|name| {
                let value = combined(&miss.request_headers, &name);
                (name, value)
            })
            .collect();
        let pending = Pending {
            store: self.store.clone(),
            key: miss.key,
            status,
            headers,
            vary,
            extra_key: miss.extra_key,
            request_time: miss.request_time,
            response_time: now,
            defaults: self.rules.defaults,
            leader: miss.leader.take(),
        };
        let body = std::mem::take(resp.body_mut());
        *resp.body_mut() = if body.is_end_stream() {
            // Stored at once: an empty body is never polled.
            drop(Tee::new(body, self.rules.max_object_size, pending));
            Body::Empty
        } else {
            Body::boxed(Tee::new(body, self.rules.max_object_size, pending))
        };
    }

    /// The `Vary` names of `resp` when it may be stored (RFC 9111 §3), `None` otherwise.
    fn storable(&self, miss: &Miss, resp: &Response<Body>) -> Option<Vec<http::HeaderName>> {
        let status = resp.status();
        let headers = resp.headers();
        if !miss.storable || !self.rules.storable_status(status.as_u16()) {
            return None;
        }
        let d = ResponseDirectives::parse(headers);
        if d.must_understand {
            // RFC 9111 §5.2.2.3: stored only for a status whose rules are known, and then
            // in spite of `no-store`.
            if !UNDERSTOOD.contains(&status.as_u16()) {
                return None;
            }
        } else if d.no_store {
            return None;
        }
        if d.private {
            return None;
        }
        if miss.authorized && !(d.public || d.s_maxage.is_some() || d.must_revalidate) {
            return None;
        }
        // One client's cookie never goes to another.
        if headers.contains_key(header::SET_COOKIE) || headers.contains_key(header::CONTENT_RANGE) {
            return None;
        }
        let explicit =
            d.max_age.is_some() || d.s_maxage.is_some() || headers.contains_key(header::EXPIRES);
        if !explicit && !heuristic_allowed(status, &d) {
            return None;
        }
        let lifetime = entry::lifetime(
            status,
            headers,
            &d,
            SystemTime::now(),
            self.rules.defaults.ttl,
        );
        let has_validator =
            headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED);
        let stale_use = d
            .stale_while_revalidate
            .unwrap_or(self.rules.defaults.stale_while_revalidate)
            > 0
            || d.stale_if_error
                .unwrap_or(self.rules.defaults.stale_if_error)
                > 0;
        if lifetime == 0 && !has_validator && !stale_use {
            return None;
        }
        vary_names(headers)
    }
}

/// Copies into `into` the fields of `from` it lacks (those the route's later stages added to
/// the upstream's answer, such as security headers), but for the body's framing and
/// description.
fn carry_over(from: &HeaderMap, into: &mut HeaderMap) {
    for (name, value) in from {
        if into.contains_key(name)
            || matches!(
                name.as_str(),
                "content-length"
                    | "content-type"
                    | "content-encoding"
                    | "content-range"
                    | "transfer-encoding"
                    | "etag"
                    | "last-modified"
            )
        {
            continue;
        }
        into.append(name.clone(), value.clone());
    }
}

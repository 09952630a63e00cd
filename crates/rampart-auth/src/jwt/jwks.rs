//! [`Jwks`]: a provider's key set fetched from its JWKS URL and cached.
//!
//! The set is fetched on first use and kept for the response's `Cache-Control: max-age` (or
//! `jwks_cache` without one); a task on the worker that first used it fetches it again before
//! it expires. A token naming an unknown `kid` makes a request fetch at once, at most once per
//! `jwks_min_refresh` (a rotation at the issuer is picked up on the first token signed with the
//! new key; a client sending made-up `kid`s cannot make Rampart hammer the issuer). A failed
//! fetch keeps the last good set. Requests read the set through an `ArcSwap`: no lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use super::keys::KeySet;
use crate::fetch::Fetcher;

/// A cached JWKS.
#[derive(Debug)]
pub(crate) struct Jwks {
    fetcher: Fetcher,
    /// The URL, for logs.
    url: String,
    /// The last good set.
    current: ArcSwapOption<KeySet>,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last fetch attempt (`u64::MAX`: never).
    last_attempt_ms: AtomicU64,
    /// Milliseconds since `epoch` at which `current` goes stale.
    stale_at_ms: AtomicU64,
    /// Fetches that replaced the set.
    generation: AtomicU64,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    default_ttl: Duration,
    min_refresh: Duration,
    refresher: AtomicBool,
}

impl Jwks {
    /// A cache for `url`; nothing is fetched until first use.
    ///
    /// # Errors
    /// An unusable URL or CA file.
    pub(crate) fn new(
        url: &str,
        ca: Option<&str>,
        timeout: Duration,
        default_ttl: Duration,
        min_refresh: Duration,
    ) -> Result<Self, String> {
        Ok(Self {
            fetcher: Fetcher::new(url, ca, timeout)?,
            url: url.to_owned(),
            current: ArcSwapOption::empty(),
            epoch: Instant::now(),
            last_attempt_ms: AtomicU64::new(u64::MAX),
            stale_at_ms: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            fetching: tokio::sync::Mutex::new(()),
            default_ttl,
            min_refresh,
            refresher: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The current set (none before the first successful fetch) and its generation.
    pub(crate) fn current(&self) -> (Option<Arc<KeySet>>, u64) {
        let generation = self.generation.load(Ordering::Acquire);
        (self.current.load_full(), generation)
    }

    /// True when a fetch may start now (none was attempted in the last `jwks_min_refresh`).
    pub(crate) fn may_fetch(&self) -> bool {
        let last = self.last_attempt_ms.load(Ordering::Relaxed);
        last == u64::MAX
            || self.now_ms().saturating_sub(last)
                >= u64::try_from(self.min_refresh.as_millis()).unwrap_or(u64::MAX)
    }

    /// Fetches the set again unless another fetch replaced generation `seen` meanwhile or one
    /// was attempted too recently; returns the set to use.
    pub(crate) async fn refresh(self: &Arc<Self>, seen: u64) -> Option<Arc<KeySet>> {
        self.start_refresher();
        let _one = self.fetching.lock().await;
        if self.generation.load(Ordering::Acquire) != seen || !self.may_fetch() {
            return self.current.load_full();
        }
        self.fetch_now().await;
        self.current.load_full()
    }

    /// One fetch; on success the set is replaced, on failure the last good one is kept.
    async fn fetch_now(&self) {
        self.last_attempt_ms.store(self.now_ms(), Ordering::Relaxed);
        let result = self
            .fetcher
            .get()
            .await
            .and_then(|f| Ok((KeySet::from_jwks(&f.body)?, f.max_age)));
        match result {
            Ok((set, max_age)) => {
                let ttl = max_age.unwrap_or(self.default_ttl).max(self.min_refresh);
                tracing::debug!(url = %self.url, keys = set.keys.len(), ttl_s = ttl.as_secs(), "JWKS fetched");
                self.current.store(Some(Arc::new(set)));
                self.stale_at_ms.store(
                    self.now_ms()
                        .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
                    Ordering::Relaxed,
                );
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            Err(why) => {
                let kept = self.current.load().is_some();
                tracing::warn!(url = %self.url, error = %why, kept_last_good_set = kept, "JWKS fetch failed");
            }
        }
    }

    /// Starts, once, the task that fetches the set again before it goes stale (on the runtime
    /// of the caller: a worker). The task ends when the provider is dropped by a reload.
    pub(crate) fn start_refresher(self: &Arc<Self>) {
        if self.refresher.load(Ordering::Relaxed) || self.refresher.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.refresher.store(false, Ordering::Release);
            return;
        };
        let weak: Weak<Self> = Arc::downgrade(self);
        rt.spawn(async move {
            loop {
                let wait = match weak.upgrade() {
                    Some(jwks) => jwks.until_refresh(),
                    None => return,
                };
                tokio::time::sleep(wait).await;
                let Some(jwks) = weak.upgrade() else { return };
                let _one = jwks.fetching.lock().await;
                if jwks.until_refresh().is_zero() && jwks.may_fetch() {
                    jwks.fetch_now().await;
                }
            }
        });
    }

    /// How long until the background task should fetch: a tenth of the lifetime before the
    /// set goes stale, and no sooner than `jwks_min_refresh` after the last attempt.
    fn until_refresh(&self) -> Duration {
        let now = self.now_ms();
        let last = self.last_attempt_ms.load(Ordering::Relaxed);
        let min = u64::try_from(self.min_refresh.as_millis()).unwrap_or(u64::MAX);
        let earliest = if last == u64::MAX {
            now
        } else {
            last.saturating_add(min)
        };
        let stale = self.stale_at_ms.load(Ordering::Relaxed);
        let due = if self.current.load().is_some() && last != u64::MAX {
            stale.saturating_sub(stale.saturating_sub(last) / 10)
        } else {
            now
        };
        Duration::from_millis(due.max(earliest).saturating_sub(now))
    }
}

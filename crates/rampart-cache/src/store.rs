//! [`CacheStore`]: the objects every cached route shares, in memory and bounded in bytes.
//!
//! Objects live in a moka cache weighed in bytes (body, headers and [`OBJECT_OVERHEAD`]),
//! whose TinyLFU admission keeps a scan of URLs seen once from flushing the objects asked for
//! often. One slot per URL (the primary key) holds that URL's variants: the responses chosen
//! by `Vary` and by the route's key headers and cookies. The store also counts what the cache
//! did, and keeps the in-flight requests that concurrent misses wait for ([`crate::flight`]).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;
use moka::notification::RemovalCause;

use crate::entry::Entry;
use crate::flight::Flights;

/// Most variants kept for one URL; a new one replaces the oldest.
const MAX_VARIANTS: usize = 16;

/// The variants of one URL.
#[derive(Debug)]
pub(crate) struct Variants {
    pub(crate) entries: Box<[Arc<Entry>]>,
    weight: u32,
}

impl Variants {
    fn new(entries: Vec<Arc<Entry>>) -> Self {
        let weight = entries
            .iter()
            .map(|e| u64::from(e.size))
            .sum::<u64>()
            .min(u64::from(u32::MAX));
        Self {
            entries: entries.into_boxed_slice(),
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
        }
    }
}

/// What the cache did, since the store was created.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Requests answered from a fresh object.
    pub hits: AtomicU64,
    /// Requests that went upstream for want of a usable object.
    pub misses: AtomicU64,
    /// Requests answered from a stale object (allowed stale, refreshing behind, or standing in
    /// for a failed upstream).
    pub stale: AtomicU64,
    /// Requests answered from an object the upstream confirmed with `304`.
    pub revalidated: AtomicU64,
    /// Requests that skipped the cache (bypass rules, exclusions).
    pub bypassed: AtomicU64,
    /// Requests that waited for another request's response instead of going upstream.
    pub collapsed: AtomicU64,
    /// Objects stored.
    pub stored: AtomicU64,
    /// Objects the byte bound pushed out.
    pub evictions: AtomicU64,
    /// Responses too large to store, streamed through.
    pub too_large: AtomicU64,
    /// Objects removed by purges and unsafe methods.
    pub purged: AtomicU64,
}

/// What to purge.
#[derive(Debug, Clone, Copy)]
pub enum Purge<'a> {
    /// The object at this cache key (`scheme://host/path?query`), every variant.
    Key(&'a str),
    /// Every object whose key starts with this.
    Prefix(&'a str),
    /// Every object tagged with this `Surrogate-Key`.
    Tag(&'a str),
}

/// The shared store of cached responses; cloning shares it.
#[derive(Clone)]
pub struct CacheStore {
    inner: Arc<Inner>,
}

struct Inner {
    objects: moka::sync::Cache<Arc<str>, Arc<Variants>>,
    flights: Arc<Flights>,
    counters: Arc<CacheCounters>,
    max_size: u64,
}

impl std::fmt::Debug for CacheStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheStore")
            .field("max_size", &self.inner.max_size)
            .finish_non_exhaustive()
    }
}

impl CacheStore {
    /// An empty store holding at most `max_size` bytes.
    #[must_use]
    pub fn new(max_size: u64) -> Self {
        let counters = Arc::new(CacheCounters::default());
        let on_evict = Arc::clone(&counters);
        let objects = moka::sync::Cache::builder()
            .max_capacity(max_size)
            .weigher(|_key: &Arc<str>, variants: &Arc<Variants>| variants.weight)
            .eviction_listener(move |_key, _value, cause| {
                if cause == RemovalCause::Size {
                    on_evict.evictions.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        Self {
            inner: Arc::new(Inner {
                objects,
                flights: Arc::default(),
                counters,
                max_size,
            }),
        }
    }

    /// The byte bound.
    #[must_use]
    pub fn max_size(&self) -> u64 {
        self.inner.max_size
    }

    /// The counters.
    #[must_use]
    pub fn counters(&self) -> &CacheCounters {
        &self.inner.counters
    }

    /// Bytes held now (after the store's pending bookkeeping).
    #[must_use]
    pub fn size(&self) -> u64 {
        self.inner.objects.run_pending_tasks();
        self.inner.objects.weighted_size()
    }

    /// URLs held now.
    #[must_use]
    pub fn objects(&self) -> u64 {
        self.inner.objects.run_pending_tasks();
        self.inner.objects.entry_count()
    }

    /// The most recent variant of `key` that `request` selects.
    pub(crate) fn lookup(
        &self,
        key: &str,
        request: &HeaderMap,
        extra_key: &str,
    ) -> Option<Arc<Entry>> {
        let variants = self.inner.objects.get(key)?;
        variants
            .entries
            .iter()
            .filter(|e| e.matches(request, extra_key))
            .max_by_key(|e| e.response_time)
            .cloned()
    }

    /// Stores `entry` as a variant of `key`, replacing the variant selected by the same
    /// request values.
    pub(crate) fn insert(&self, key: &str, entry: Entry) -> Arc<Entry> {
        let entry = Arc::new(entry);
        let mut entries: Vec<Arc<Entry>> = self
            .inner
            .objects
            .get(key)
            .map(|v| {
                v.entries
                    .iter()
                    .filter(|old| old.extra_key != entry.extra_key || old.vary != entry.vary)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if entries.len() >= MAX_VARIANTS {
            entries.sort_by_key(|e| e.response_time);
            entries.drain(..=entries.len() - MAX_VARIANTS);
        }
        entries.push(Arc::clone(&entry));
        self.inner
            .objects
            .insert(Arc::from(key), Arc::new(Variants::new(entries)));
        self.inner.counters.stored.fetch_add(1, Ordering::Relaxed);
        // Applies the byte bound now rather than at the next bookkeeping round, so the store
        // never holds more than its bound for long.
        self.inner.objects.run_pending_tasks();
        entry
    }

    /// Removes what `what` names; returns how many URLs lost objects.
    pub fn purge(&self, what: Purge<'_>) -> u64 {
        let objects = &self.inner.objects;
        let removed = match what {
            Purge::Key(key) => u64::from(objects.remove(key).is_some()),
            Purge::Prefix(prefix) => {
                let keys: Vec<Arc<str>> = objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(prefix))
                    .map(|(k, _)| Arc::clone(&*k))
                    .collect();
                keys.iter()
                    .map(|k| u64::from(objects.remove(k).is_some()))
                    .sum()
            }
            Purge::Tag(tag) => {
                let tagged: Vec<(Arc<str>, Arc<Variants>)> = objects
                    .iter()
                    .filter(|(_, v)| v.entries.iter().any(|e| e.tags.iter().any(|t| &**t == tag)))
                    .map(|(k, v)| (Arc::clone(&*k), v))
                    .collect();
                for (key, variants) in &tagged {
                    let kept: Vec<Arc<Entry>> = variants
                        .entries
                        .iter()
                        .filter(|e| !e.tags.iter().any(|t| &**t == tag))
                        .cloned()
                        .collect();
                    if kept.is_empty() {
                        objects.remove(key);
                    } else {
                        objects.insert(Arc::clone(key), Arc::new(Variants::new(kept)));
                    }
                }
                tagged.len() as u64
            }
        };
        self.inner
            .counters
            .purged
            .fetch_add(removed, Ordering::Relaxed);
        removed
    }

    /// The in-flight request table.
    pub(crate) fn flights(&self) -> &Arc<Flights> {
        &self.inner.flights
    }

    /// The cache's metrics in the Prometheus text format.
    #[must_use]
    pub fn metrics_text(&self) -> String {
        let c = &self.inner.counters;
        let mut out = String::with_capacity(2048);
        let requests = [
            ("hit", &c.hits),
            ("miss", &c.misses),
            ("stale", &c.stale),
            ("revalidated", &c.revalidated),
            ("bypass", &c.bypassed),
        ];
        out.push_str("# HELP rampart_cache_requests_total Requests on cached routes, by what the cache did.\n# TYPE rampart_cache_requests_total counter\n");
        for (status, n) in requests {
            let _ = writeln!(
                out,
                "rampart_cache_requests_total{{status=\"{status}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let counters = [
            (
                "rampart_cache_collapsed_total",
                "Requests that waited for another request's response instead of going upstream.",
                &c.collapsed,
            ),
            ("rampart_cache_stored_total", "Objects stored.", &c.stored),
            (
                "rampart_cache_evictions_total",
                "Objects pushed out by the byte bound.",
                &c.evictions,
            ),
            (
                "rampart_cache_too_large_total",
                "Responses over max_object_size, streamed through unstored.",
                &c.too_large,
            ),
            (
                "rampart_cache_purged_total",
                "Objects removed by purges and unsafe methods.",
                &c.purged,
            ),
        ];
        for (name, help, n) in counters {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                n.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            (
                "rampart_cache_bytes",
                "Bytes held by the cache store.",
                self.size(),
            ),
            (
                "rampart_cache_max_bytes",
                "The cache store's byte bound.",
                self.max_size(),
            ),
            (
                "rampart_cache_objects",
                "URLs held by the cache store.",
                self.objects(),
            ),
        ];
        for (name, help, n) in gauges {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {n}\n"
            );
        }
        out
    }
}

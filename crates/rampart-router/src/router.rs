//! [`Router`]: routes indexed by host and path, looked up without allocating.
//!
//! Layout: one *table* per exact host, per wildcard suffix, and one for any-host routes. A
//! route with several host patterns is in several tables. Each table indexes its routes by path
//! kind: exact paths and prefixes in hash maps, templates in matchit trees, regexes in a list,
//! and routes without a path key in one bucket. Every (route, host pattern) pair gets a *rank*
//! at build time: its position in the precedence order. A lookup visits the few buckets that
//! can match the request, takes in each the best-ranked route whose method, header and query
//! predicates hold, and keeps the best rank overall; buckets whose best rank cannot beat the
//! current winner are skipped.

use std::collections::HashMap;

use rampart_config::ConfigError;
use regex::{Regex, RegexSet, RegexSetBuilder};

use crate::explain::{self, Explanation};
use crate::hash::FxHashMap;
use crate::host::{self, HostPattern};
use crate::matcher::Matcher;
use crate::path::{PathMatch, Template, for_each_boundary_prefix, literal_prefix};
use crate::precedence::HostSpec;
use crate::templates::TemplateIndex;
use crate::{RequestView, RouteMatch};

/// Compiled-size cap for a table's combined regex set.
const REGEX_SET_SIZE_LIMIT: usize = 16 << 20;

/// A route in a bucket: its rank (smaller wins) and its entry index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Item {
    rank: u32,
    entry: u32,
}

/// Routes sharing one index key, best rank first. Never empty once built.
#[derive(Debug, Default)]
struct Bucket {
    items: Vec<Item>,
}

impl Bucket {
    fn best(&self) -> u32 {
        self.items.first().map_or(u32::MAX, |i| i.rank)
    }

    fn finish(&mut self) {
        self.items.sort_unstable();
        self.items.dedup_by_key(|i| i.entry);
    }
}

/// The best route found so far.
#[derive(Debug, Clone, Copy)]
struct Best {
    rank: u32,
    entry: u32,
}

impl Best {
    const NONE: Self = Self {
        rank: u32::MAX,
        entry: u32::MAX,
    };
}

#[inline]
fn scan(bucket: &Bucket, matchers: &[Matcher], req: &RequestView<'_>, best: &mut Best) {
    for item in &bucket.items {
        if item.rank >= best.rank {
            return;
        }
        if matchers[item.entry as usize].rest_holds(req) {
            *best = Best {
                rank: item.rank,
                entry: item.entry,
            };
            return;
        }
    }
}

/// The set of key lengths in a map, to skip hashing candidates no key can equal.
#[derive(Debug, Default, Clone, Copy)]
struct LenSet {
    bits: [u64; 4],
    long: bool,
}

impl LenSet {
    fn insert(&mut self, len: usize) {
        match self.bits.get_mut(len / 64) {
            Some(word) => *word |= 1 << (len % 64),
            None => self.long = true,
        }
    }

    #[inline]
    fn contains(&self, len: usize) -> bool {
        self.bits
            .get(len / 64)
            .map_or(self.long, |word| word & (1 << (len % 64)) != 0)
    }
}

/// A `path_regex` with its bucket.
#[derive(Debug)]
struct PathRegex {
    regex: Regex,
    /// Text every match starts with, when the pattern makes that plain (`^/api/...`).
    literal_prefix: Option<String>,
    bucket: Bucket,
}

/// The path index of one host table.
#[derive(Debug, Default)]
struct Table {
    /// Best rank of any route in the table.
    best: u32,
    exact: FxHashMap<String, Bucket>,
    exact_lens: LenSet,
    prefixes: FxHashMap<String, Bucket>,
    prefix_lens: LenSet,
    prefix_max: usize,
    prefix_best: u32,
    templates: Vec<Template>,
    template_buckets: Vec<Bucket>,
    template_index: TemplateIndex,
    template_best: u32,
    /// Regexes with their buckets, best rank first.
    regexes: Vec<PathRegex>,
    /// The regexes without a literal prefix, to skip them all in one pass when none matches.
    regex_set: Option<RegexSet>,
    any_path: Bucket,
}

impl Table {
    #[inline]
    fn lookup(&self, req: &RequestView<'_>, matchers: &[Matcher], best: &mut Best) {
        if self.best >= best.rank {
            return;
        }
        let path = req.path;
        if self.exact_lens.contains(path.len())
            && let Some(b) = self.exact.get(path)
        {
            scan(b, matchers, req, best);
        }
        if self.template_best < best.rank {
            self.template_index.for_each_candidate(path, |c| {
                let i = c.template as usize;
                if let (Some(b), Some(t)) = (self.template_buckets.get(i), self.templates.get(i))
                    && b.best() < best.rank
                    && (!c.verify || t.matches(path))
                {
                    scan(b, matchers, req, best);
                }
            });
        }
        if self.prefix_best < best.rank {
            for_each_boundary_prefix(path, self.prefix_max, |p| {
                if self.prefix_lens.contains(p.len())
                    && let Some(b) = self.prefixes.get(p)
                    && b.best() < best.rank
                {
                    scan(b, matchers, req, best);
                }
            });
        }
        if self
            .regexes
            .first()
            .is_some_and(|r| r.bucket.best() < best.rank)
        {
            let mut unprefixed_may_match = None;
            for r in &self.regexes {
                if r.bucket.best() >= best.rank {
                    break;
                }
                let may_match = match &r.literal_prefix {
                    Some(p) => path.starts_with(p.as_str()),
                    None => *unprefixed_may_match.get_or_insert_with(|| {
                        self.regex_set.as_ref().is_none_or(|set| set.is_match(path))
                    }),
                };
                if may_match && r.regex.is_match(path) {
                    scan(&r.bucket, matchers, req, best);
                }
            }
        }
        scan(&self.any_path, matchers, req, best);
    }
}

/// Collects a table's routes before indexing.
#[derive(Default)]
struct TableBuilder {
    exact: HashMap<String, Vec<Item>>,
    prefixes: HashMap<String, Vec<Item>>,
    templates: Vec<(Template, Vec<Item>)>,
    template_keys: HashMap<String, usize>,
    regexes: Vec<(Regex, Vec<Item>)>,
    any_path: Vec<Item>,
}

impl TableBuilder {
    fn add(&mut self, path: &PathMatch, item: Item) {
        match path {
            PathMatch::Any => self.any_path.push(item),
            PathMatch::Exact(p) => self.exact.entry(p.clone()).or_default().push(item),
            PathMatch::Prefix(p) => self.prefixes.entry(p.clone()).or_default().push(item),
            PathMatch::Template(t) => {
                let next = self.templates.len();
                let slot = *self.template_keys.entry(t.key()).or_insert(next);
                if slot == next {
                    self.templates.push((t.clone(), Vec::new()));
                }
                if let Some((_, items)) = self.templates.get_mut(slot) {
                    items.push(item);
                }
            }
            PathMatch::Regex(r) => match self
                .regexes
                .iter_mut()
                .find(|(x, _)| x.as_str() == r.as_str())
            {
                Some((_, items)) => items.push(item),
                None => self.regexes.push((r.clone(), vec![item])),
            },
        }
    }

    /// Builds the table; template indexing errors are reported against `matchers`.
    fn build(self, matchers: &[Matcher], errors: &mut Vec<ConfigError>) -> Table {
        let bucket = |items: Vec<Item>| {
            let mut b = Bucket { items };
            b.finish();
            b
        };
        let lens = |keys: &mut dyn Iterator<Item = &String>| {
            let mut set = LenSet::default();
            keys.for_each(|k| set.insert(k.len()));
            set
        };
        let exact_lens = lens(&mut self.exact.keys());
        let prefix_lens = lens(&mut self.prefixes.keys());
        let prefix_max = self.prefixes.keys().map(String::len).max().unwrap_or(0);
        let exact: FxHashMap<String, Bucket> = self
            .exact
            .into_iter()
            .map(|(k, v)| (k, bucket(v)))
            .collect();
        let prefixes: FxHashMap<String, Bucket> = self
            .prefixes
            .into_iter()
            .map(|(k, v)| (k, bucket(v)))
            .collect();
        let best_of = |buckets: &mut dyn Iterator<Item = &Bucket>| {
            buckets.map(Bucket::best).min().unwrap_or(u32::MAX)
        };
        let prefix_best = best_of(&mut prefixes.values());
        let (templates, template_buckets): (Vec<Template>, Vec<Bucket>) = self
            .templates
            .into_iter()
            .map(|(t, items)| (t, bucket(items)))
            .unzip();
        let template_index = TemplateIndex::build(&templates).unwrap_or_else(|errs| {
            for (i, msg) in errs {
                if let Some(m) = template_buckets
                    .get(i)
                    .and_then(|b| b.items.first())
                    .and_then(|item| matchers.get(item.entry as usize))
                {
                    errors.push(ConfigError::new(
                        Some(m.name_span.clone()),
                        format!("{}.path_template", m.config_path),
                        msg,
                    ));
                }
            }
            TemplateIndex::default()
        });
        let template_best = best_of(&mut template_buckets.iter());
        let mut regexes: Vec<PathRegex> = self
            .regexes
            .into_iter()
            .map(|(regex, items)| PathRegex {
                literal_prefix: literal_prefix(regex.as_str()),
                regex,
                bucket: bucket(items),
            })
            .collect();
        regexes.sort_by_key(|r| r.bucket.best());
        // A set is only worth it for several regexes; if it cannot be built (too large), each
        // regex is simply tried in turn.
        let unprefixed: Vec<&str> = regexes
            .iter()
            .filter(|r| r.literal_prefix.is_none())
            .map(|r| r.regex.as_str())
            .collect();
        let regex_set = (unprefixed.len() > 1)
            .then(|| {
                RegexSetBuilder::new(unprefixed)
                    .size_limit(REGEX_SET_SIZE_LIMIT)
                    .build()
                    .ok()
            })
            .flatten();
        let any_path = bucket(self.any_path);
        let best = best_of(
            &mut exact
                .values()
                .chain(prefixes.values())
                .chain(&template_buckets)
                .chain(regexes.iter().map(|r| &r.bucket))
                .chain([&any_path]),
        );
        Table {
            best,
            exact,
            exact_lens,
            prefixes,
            prefix_lens,
            prefix_max,
            prefix_best,
            templates,
            template_buckets,
            template_index,
            template_best,
            regexes,
            regex_set,
            any_path,
        }
    }
}

/// Routes compiled for lookup, each carrying a payload `T` (the server's compiled route).
#[derive(Debug)]
pub struct Router<T> {
    pub(crate) matchers: Vec<Matcher>,
    values: Vec<T>,
    exact_hosts: FxHashMap<String, Table>,
    wildcard_hosts: FxHashMap<String, Table>,
    /// Label counts of the wildcard suffixes (see [`host::label_bit`]).
    wildcard_labels: u64,
    /// Best rank in any wildcard table.
    wildcard_best: u32,
    any_host: Table,
}

impl<T> Router<T> {
    /// Builds the router. Entry indexes (declaration order) break the last precedence tie.
    ///
    /// # Errors
    /// Every problem, as config errors pointing at the route: two routes with identical
    /// predicates (the loser could never be chosen), templates that cannot be indexed.
    pub fn new(entries: Vec<(Matcher, T)>) -> Result<Self, Vec<ConfigError>> {
        let (matchers, values): (Vec<Matcher>, Vec<T>) = entries.into_iter().unzip();
        let mut errors = duplicates(&matchers);
        if u32::try_from(matchers.len()).is_err() {
            errors.push(ConfigError::new(None, "routes", "too many routes"));
            return Err(errors);
        }

        // Rank every (route, host pattern) pair by precedence.
        let mut keyed = Vec::new();
        for (index, m) in matchers.iter().enumerate() {
            for (p, pattern) in m.hosts.iter().enumerate() {
                keyed.push((m.precedence(HostSpec::of(pattern), index), index, p));
            }
        }
        keyed.sort_unstable_by_key(|k| k.0);
        let mut ranks: Vec<Vec<u32>> = matchers.iter().map(|m| vec![0; m.hosts.len()]).collect();
        for ((_, index, p), rank) in keyed.iter().zip(0u32..) {
            if let Some(slot) = ranks.get_mut(*index).and_then(|r| r.get_mut(*p)) {
                *slot = rank;
            }
        }

        let mut exact: HashMap<String, TableBuilder> = HashMap::new();
        let mut wildcard: HashMap<String, TableBuilder> = HashMap::new();
        let mut any = TableBuilder::default();
        for ((entry, m), ranks) in (0u32..).zip(&matchers).zip(&ranks) {
            for (pattern, &rank) in m.hosts.iter().zip(ranks) {
                let table = match pattern {
                    HostPattern::Exact(h) => exact.entry(h.clone()).or_default(),
                    HostPattern::Wildcard(s) => wildcard.entry(s.clone()).or_default(),
                    HostPattern::Any => &mut any,
                };
                table.add(&m.path, Item { rank, entry });
            }
        }
        let wildcard_labels = wildcard.keys().fold(0, |mask, suffix| {
            mask | host::label_bit(HostPattern::wildcard_labels(suffix))
        });
        let exact_hosts = exact
            .into_iter()
            .map(|(h, b)| (h, b.build(&matchers, &mut errors)))
            .collect();
        let wildcard_hosts: FxHashMap<String, Table> = wildcard
            .into_iter()
            .map(|(h, b)| (h, b.build(&matchers, &mut errors)))
            .collect();
        let wildcard_best = wildcard_hosts
            .values()
            .map(|t| t.best)
            .min()
            .unwrap_or(u32::MAX);
        let any_host = any.build(&matchers, &mut errors);
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.span.as_ref().map_or(usize::MAX, |s| s.start));
            errors.dedup();
            return Err(errors);
        }
        Ok(Self {
            matchers,
            values,
            exact_hosts,
            wildcard_hosts,
            wildcard_labels,
            wildcard_best,
            any_host,
        })
    }

    /// The route for `req`: the best-ranked route whose predicates all hold. No allocation in
    /// the common case (see the crate documentation for the exceptions).
    #[must_use]
    pub fn lookup<'r>(&'r self, req: &RequestView<'_>) -> Option<RouteMatch<'r, T>> {
        let mut best = Best::NONE;
        if let Some(raw) = req.host
            && (!self.exact_hosts.is_empty() || !self.wildcard_hosts.is_empty())
        {
            host::with_normalized(raw, |host| {
                let Some(host) = host else { return };
                if !self.exact_hosts.is_empty()
                    && let Some(t) = self.exact_hosts.get(host)
                {
                    t.lookup(req, &self.matchers, &mut best);
                }
                if self.wildcard_best < best.rank {
                    host::for_each_wildcard_suffix(host, self.wildcard_labels, |suffix| {
                        if let Some(t) = self.wildcard_hosts.get(suffix) {
                            t.lookup(req, &self.matchers, &mut best);
                        }
                    });
                }
            });
        }
        self.any_host.lookup(req, &self.matchers, &mut best);
        let index = best.entry as usize;
        self.values
            .get(index)
            .map(|value| RouteMatch { value, index })
    }

    /// Why each route did or did not take `req` (slow; for `rampart explain`).
    #[must_use]
    pub fn explain(&self, req: &RequestView<'_>) -> Explanation {
        explain::explain(&self.matchers, req)
    }

    /// The matcher and payload of entry `index`.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<(&Matcher, &T)> {
        Some((self.matchers.get(index)?, self.values.get(index)?))
    }

    /// The entries in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&Matcher, &T)> {
        self.matchers.iter().zip(&self.values)
    }

    /// Number of routes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.matchers.len()
    }

    /// Whether there are no routes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.matchers.is_empty()
    }
}

/// Routes whose predicates are identical to an earlier one's: one of each pair can never win.
fn duplicates(matchers: &[Matcher]) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, m) in matchers.iter().enumerate() {
        let first = *seen.entry(m.signature()).or_insert(i);
        let Some(other) = matchers.get(first).filter(|_| first != i) else {
            continue;
        };
        // The higher priority wins; on equal priority the earlier route (`other`) does.
        let (winner, loser, why) = if m.priority > other.priority {
            (m, other, "has a higher priority")
        } else if m.priority < other.priority {
            (other, m, "has a higher priority")
        } else {
            (other, m, "is declared earlier")
        };
        errors.push(ConfigError::new(
            Some(loser.name_span.clone()),
            loser.config_path.clone(),
            format!(
                "route {:?} can never be chosen: route {:?} ({}) has identical predicates and {why}",
                loser.name, winner.name, winner.config_path
            ),
        ));
    }
    errors
}

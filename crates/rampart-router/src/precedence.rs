//! The precedence key: which of several matching routes wins, and how to say why.
//!
//! Smaller keys win. Components, compared in order:
//! 1. higher `priority`;
//! 2. host specificity: exact > wildcard (more labels first) > any host;
//! 3. path kind: exact > template (more literal segments, then fewer params, then plain before
//!    catch-all) > prefix (longer first) > regex > none;
//! 4. more predicates (a methods list counts 1, each header and query predicate 1);
//! 5. earlier in the file.

use std::cmp::{Ordering, Reverse};

use serde::Serialize;

use crate::host::HostPattern;
use crate::path::PathMatch;

/// How specific the host pattern that matched is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostSpec {
    /// An exact host name.
    Exact,
    /// `*.suffix`, with the number of labels in the suffix.
    Wildcard(usize),
    /// `*` or no hosts.
    Any,
}

impl HostSpec {
    /// The precedence class of a host pattern.
    pub(crate) fn of(pattern: &HostPattern) -> Self {
        match pattern {
            HostPattern::Exact(_) => Self::Exact,
            HostPattern::Wildcard(suffix) => Self::Wildcard(HostPattern::wildcard_labels(suffix)),
            HostPattern::Any => Self::Any,
        }
    }

    fn order(self) -> (u8, Reverse<usize>) {
        match self {
            Self::Exact => (0, Reverse(0)),
            Self::Wildcard(labels) => (1, Reverse(labels)),
            Self::Any => (2, Reverse(0)),
        }
    }

    fn class(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Wildcard(_) => "wildcard",
            Self::Any => "any host",
        }
    }
}

/// How specific the path predicate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathSpec {
    /// `path`.
    Exact,
    /// `path_template`.
    Template {
        /// Literal segments.
        literals: usize,
        /// Parameters, the catch-all included.
        params: usize,
        /// Ends in `{*rest}`.
        catch_all: bool,
    },
    /// `path_prefix`, with its length in bytes.
    Prefix(usize),
    /// `path_regex`.
    Regex,
    /// No path key.
    Any,
}

impl PathSpec {
    /// The spec of a path predicate.
    pub(crate) fn of(path: &PathMatch) -> Self {
        match path {
            PathMatch::Any => Self::Any,
            PathMatch::Exact(_) => Self::Exact,
            PathMatch::Prefix(p) => Self::Prefix(p.len()),
            PathMatch::Template(t) => Self::Template {
                literals: t.literals(),
                params: t.params(),
                catch_all: t.is_catch_all(),
            },
            PathMatch::Regex(_) => Self::Regex,
        }
    }

    fn order(self) -> (u8, Reverse<usize>, usize, bool) {
        match self {
            Self::Exact => (0, Reverse(0), 0, false),
            Self::Template {
                literals,
                params,
                catch_all,
            } => (1, Reverse(literals), params, catch_all),
            Self::Prefix(len) => (2, Reverse(len), 0, false),
            Self::Regex => (3, Reverse(0), 0, false),
            Self::Any => (4, Reverse(0), 0, false),
        }
    }

    fn class(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Template { .. } => "template",
            Self::Prefix(_) => "prefix",
            Self::Regex => "regex",
            Self::Any => "no path",
        }
    }
}

/// The precedence key of a route for one request (the host part depends on which of the
/// route's host patterns matched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Precedence {
    pub(crate) priority: i32,
    pub(crate) host: HostSpec,
    pub(crate) path: PathSpec,
    pub(crate) predicates: usize,
    pub(crate) index: usize,
}

type OrderTuple = (
    Reverse<i32>,
    (u8, Reverse<usize>),
    (u8, Reverse<usize>, usize, bool),
    Reverse<usize>,
    usize,
);

impl Precedence {
    fn tuple(&self) -> OrderTuple {
        (
            Reverse(self.priority),
            self.host.order(),
            self.path.order(),
            Reverse(self.predicates),
            self.index,
        )
    }

    /// The key in human form, e.g. `priority 0, exact host "api.example.com", template
    /// "/users/{id}" (1 literal segment, 1 param), 2 predicates, entry #3`; `host` is the host
    /// pattern that matched and `path` the route's path predicate.
    pub(crate) fn describe(&self, host: &str, path: &PathMatch) -> String {
        let host = match self.host {
            HostSpec::Exact => format!("exact host {host:?}"),
            HostSpec::Wildcard(labels) => format!("wildcard host {host:?} ({labels} labels)"),
            HostSpec::Any => "any host".to_owned(),
        };
        let detail = match self.path {
            PathSpec::Template {
                literals,
                params,
                catch_all,
            } => format!(
                " ({literals} literal segment{}, {params} param{}{})",
                plural(literals),
                plural(params),
                if catch_all { ", catch-all" } else { "" }
            ),
            PathSpec::Prefix(len) => format!(" ({len} bytes)"),
            PathSpec::Exact | PathSpec::Regex | PathSpec::Any => String::new(),
        };
        format!(
            "priority {}, {host}, {path}{detail}, {} predicate{}, entry #{}",
            self.priority,
            self.predicates,
            plural(self.predicates),
            self.index
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl Ord for Precedence {
    fn cmp(&self, other: &Self) -> Ordering {
        self.tuple().cmp(&other.tuple())
    }
}

impl PartialOrd for Precedence {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The precedence rule that decided between two matching routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Rule 1: higher `priority`.
    Priority,
    /// Rule 2: more specific host.
    Host,
    /// Rule 3: more specific path.
    Path,
    /// Rule 4: more predicates.
    Predicates,
    /// Rule 5: declared earlier.
    Order,
}

/// What `explain` needs to know about one side of a comparison.
pub(crate) struct Side<'a> {
    pub(crate) name: &'a str,
    pub(crate) key: Precedence,
    pub(crate) host_pattern: &'a str,
    pub(crate) path: &'a PathMatch,
}

/// Which rule makes `winner` beat `loser` (both matched the request), and the sentence for it.
pub(crate) fn why_wins(winner: &Side<'_>, loser: &Side<'_>) -> (Rule, String) {
    let (w, l) = (winner.key, loser.key);
    if w.priority != l.priority {
        return (
            Rule::Priority,
            format!(
                "matched, but route {} has higher priority ({} > {})",
                winner.name, w.priority, l.priority
            ),
        );
    }
    if w.host.order() != l.host.order() {
        let detail = match (w.host, l.host) {
            (HostSpec::Wildcard(a), HostSpec::Wildcard(b)) => format!(
                "{} beats {}: {a} labels > {b}",
                winner.host_pattern, loser.host_pattern
            ),
            _ => format!("{} beats {}", w.host.class(), l.host.class()),
        };
        return (
            Rule::Host,
            format!("matched, but a more specific host wins ({detail})"),
        );
    }
    if w.path.order() != l.path.order() {
        let detail = match (w.path, l.path) {
            (PathSpec::Prefix(_), PathSpec::Prefix(_)) => {
                format!("longer {} beats {}", winner.path, loser.path)
            }
            (
                PathSpec::Template {
                    literals: wl,
                    params: wp,
                    catch_all: wc,
                },
                PathSpec::Template {
                    literals: ll,
                    params: lp,
                    ..
                },
            ) => {
                if wl != ll {
                    format!("{} has more literal segments: {wl} > {ll}", winner.path)
                } else if wp != lp {
                    format!("{} has fewer params: {wp} < {lp}", winner.path)
                } else if !wc {
                    format!("plain {} beats catch-all {}", winner.path, loser.path)
                } else {
                    format!("{} beats {}", winner.path, loser.path)
                }
            }
            _ => format!("{} beats {}", w.path.class(), l.path.class()),
        };
        return (
            Rule::Path,
            format!("matched, but a more specific path wins ({detail})"),
        );
    }
    if w.predicates != l.predicates {
        return (
            Rule::Predicates,
            format!(
                "matched, but route {} has more predicates ({} > {})",
                winner.name, w.predicates, l.predicates
            ),
        );
    }
    (
        Rule::Order,
        format!(
            "matched, but declared later (route {} comes first)",
            winner.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::Template;

    fn key(
        priority: i32,
        host: HostSpec,
        path: PathSpec,
        predicates: usize,
        index: usize,
    ) -> Precedence {
        Precedence {
            priority,
            host,
            path,
            predicates,
            index,
        }
    }

    fn tpl(literals: usize, params: usize, catch_all: bool) -> PathSpec {
        PathSpec::Template {
            literals,
            params,
            catch_all,
        }
    }

    #[test]
    fn priority_beats_every_specificity() {
        let low = key(0, HostSpec::Exact, PathSpec::Exact, 5, 0);
        let high = key(1, HostSpec::Any, PathSpec::Any, 0, 9);
        assert!(high < low);
    }

    #[test]
    fn host_order_is_exact_then_deeper_wildcards_then_any() {
        let k = |h| key(0, h, PathSpec::Any, 0, 0);
        assert!(k(HostSpec::Exact) < k(HostSpec::Wildcard(5)));
        assert!(k(HostSpec::Wildcard(3)) < k(HostSpec::Wildcard(2)));
        assert!(k(HostSpec::Wildcard(1)) < k(HostSpec::Any));
    }

    #[test]
    fn host_specificity_beats_path_specificity() {
        assert!(
            key(0, HostSpec::Exact, PathSpec::Any, 0, 1)
                < key(0, HostSpec::Any, PathSpec::Exact, 0, 0)
        );
    }

    #[test]
    fn path_order_is_exact_template_prefix_regex_none() {
        let k = |p| key(0, HostSpec::Any, p, 0, 0);
        let order = [
            PathSpec::Exact,
            tpl(0, 3, true),
            PathSpec::Prefix(100),
            PathSpec::Regex,
            PathSpec::Any,
        ];
        for pair in order.windows(2) {
            assert!(k(pair[0]) < k(pair[1]), "{:?} < {:?}", pair[0], pair[1]);
        }
    }

    #[test]
    fn templates_rank_by_literals_then_params_then_plain_before_catch_all() {
        let k = |p| key(0, HostSpec::Any, p, 0, 0);
        assert!(k(tpl(2, 2, true)) < k(tpl(1, 1, false)));
        assert!(k(tpl(1, 1, true)) < k(tpl(1, 2, false)));
        assert!(k(tpl(1, 1, false)) < k(tpl(1, 1, true)));
    }

    #[test]
    fn longer_prefixes_win() {
        assert!(
            key(0, HostSpec::Any, PathSpec::Prefix(7), 0, 1)
                < key(0, HostSpec::Any, PathSpec::Prefix(4), 0, 0)
        );
    }

    #[test]
    fn more_predicates_win_then_earlier_declaration() {
        assert!(
            key(0, HostSpec::Any, PathSpec::Any, 2, 5) < key(0, HostSpec::Any, PathSpec::Any, 1, 0)
        );
        assert!(
            key(0, HostSpec::Any, PathSpec::Any, 1, 0) < key(0, HostSpec::Any, PathSpec::Any, 1, 1)
        );
    }

    #[test]
    fn reasons_name_the_deciding_rule() {
        let exact = PathMatch::Exact("/a".into());
        let prefix = PathMatch::Prefix("/a".into());
        let side = |name, key, path| Side {
            name,
            key,
            host_pattern: "*",
            path,
        };
        let w = side("w", key(10, HostSpec::Any, PathSpec::Any, 0, 1), &prefix);
        let l = side("l", key(0, HostSpec::Any, PathSpec::Any, 0, 0), &prefix);
        assert_eq!(
            why_wins(&w, &l),
            (
                Rule::Priority,
                "matched, but route w has higher priority (10 > 0)".into()
            )
        );
        let w = side("w", key(0, HostSpec::Any, PathSpec::Exact, 0, 1), &exact);
        let l = side(
            "l",
            key(0, HostSpec::Any, PathSpec::Prefix(2), 0, 0),
            &prefix,
        );
        assert_eq!(
            why_wins(&w, &l),
            (
                Rule::Path,
                "matched, but a more specific path wins (exact beats prefix)".into()
            )
        );
        let w = side("w", key(0, HostSpec::Any, PathSpec::Any, 0, 0), &prefix);
        let l = side("l", key(0, HostSpec::Any, PathSpec::Any, 0, 1), &prefix);
        assert_eq!(
            why_wins(&w, &l),
            (
                Rule::Order,
                "matched, but declared later (route w comes first)".into()
            )
        );
        let t1 = PathMatch::Template(Template::parse("/a/{x}").unwrap());
        let t2 = PathMatch::Template(Template::parse("/a/{*r}").unwrap());
        let w = side("w", key(0, HostSpec::Any, PathSpec::of(&t1), 0, 1), &t1);
        let l = side("l", key(0, HostSpec::Any, PathSpec::of(&t2), 0, 0), &t2);
        assert_eq!(
            why_wins(&w, &l).1,
            "matched, but a more specific path wins (plain template \"/a/{x}\" beats catch-all template \"/a/{*r}\")"
        );
    }

    #[test]
    fn human_form_lists_every_component() {
        let t = PathMatch::Template(Template::parse("/users/{id}").unwrap());
        let k = key(3, HostSpec::Wildcard(2), PathSpec::of(&t), 2, 4);
        assert_eq!(
            k.describe("*.example.com", &t),
            "priority 3, wildcard host \"*.example.com\" (2 labels), template \"/users/{id}\" (1 literal segment, 1 param), 2 predicates, entry #4"
        );
        let p = PathMatch::Prefix("/api".into());
        let k = key(-1, HostSpec::Any, PathSpec::of(&p), 1, 0);
        assert_eq!(
            k.describe("*", &p),
            "priority -1, any host, prefix \"/api\" (4 bytes), 1 predicate, entry #0"
        );
    }
}

//! `rampart explain`: for one request, which route wins and why every other route lost.
//!
//! This is the slow path: it evaluates every predicate of every route directly, without the
//! index, and allocates freely.

use std::fmt;

use serde::Serialize;

use crate::RequestView;
use crate::host::{self, HostPattern};
use crate::matcher::Matcher;
use crate::path::PathMatch;
use crate::precedence::{self, HostSpec, Precedence, Rule};

/// Which route takes a request and why each other route does not; `Display` renders it for
/// people (`{:#}` adds every route's precedence key), the fields serve machine output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The request as the router saw it: method, path, query and normalized host.
    pub request: String,
    /// The route that takes the request, if any.
    pub winner: Option<RouteSummary>,
    /// Every other route: those that matched but lost first (best first), then near misses,
    /// those that satisfied the most checks first.
    pub others: Vec<RouteReport>,
}

/// A route's identity and precedence key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteSummary {
    /// Route name.
    pub name: String,
    /// Entry index (declaration order).
    pub index: usize,
    /// Config key path, such as `routes[3]`.
    pub config_path: String,
    /// The precedence key in human form (for this request's host, or the route's most specific
    /// host pattern when its host did not match).
    pub precedence: String,
}

/// Why one route did not take the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteReport {
    /// Which route.
    #[serde(flatten)]
    pub route: RouteSummary,
    /// Checks (host, path, methods, each header, each query predicate) that held, in order,
    /// before the first that failed.
    pub checks_passed: usize,
    /// Number of checks the route has.
    pub checks: usize,
    /// The verdict and the sentence explaining it.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// How a route lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Every predicate held, but the winner ranks higher.
    Outranked {
        /// The precedence rule that decided.
        rule: Rule,
        /// E.g. `matched, but route api has higher priority (10 > 0)`.
        reason: String,
    },
    /// A predicate did not hold.
    Missed {
        /// Which kind of predicate failed first.
        predicate: PredicateKind,
        /// E.g. `method POST not in [GET]`.
        reason: String,
    },
}

impl Verdict {
    /// The sentence explaining the verdict.
    #[must_use]
    pub fn reason(&self) -> &str {
        match self {
            Self::Outranked { reason, .. } | Self::Missed { reason, .. } => reason,
        }
    }
}

/// The kinds of predicate, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PredicateKind {
    /// `hosts`.
    Host,
    /// `path`, `path_prefix`, `path_template` or `path_regex`.
    Path,
    /// `methods`.
    Method,
    /// `headers`.
    Header,
    /// `query`.
    Query,
}

/// One route evaluated against the request.
struct Evaluation<'m> {
    index: usize,
    matcher: &'m Matcher,
    /// The most specific host pattern that matched (or the route's most specific one).
    host: String,
    key: Precedence,
    passed: usize,
    checks: usize,
    failure: Option<(PredicateKind, String)>,
}

fn evaluate<'m>(
    index: usize,
    m: &'m Matcher,
    req: &RequestView<'_>,
    host: Option<&str>,
) -> Evaluation<'m> {
    let best_pattern = |only_matching: bool| {
        m.hosts
            .iter()
            .filter(|p| !only_matching || p.matches(host))
            .min_by_key(|p| m.precedence(HostSpec::of(p), index))
    };
    let matched_host = best_pattern(true);
    let shown_host = matched_host
        .or_else(|| best_pattern(false))
        .unwrap_or(&HostPattern::Any);
    let checks = 2 + usize::from(!m.methods.is_empty()) + m.headers.len() + m.query.len();
    let mut e = Evaluation {
        index,
        matcher: m,
        host: shown_host.to_string(),
        key: m.precedence(HostSpec::of(shown_host), index),
        passed: 0,
        checks,
        failure: None,
    };
    check(&mut e, PredicateKind::Host, matched_host.is_some(), &|| {
        let list = m
            .hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        match host {
            Some(h) => format!("host {h:?} not in [{list}]"),
            None => format!("no host in the request; route needs one of [{list}]"),
        }
    });
    check(
        &mut e,
        PredicateKind::Path,
        m.path.matches(req.path),
        &|| match &m.path {
            PathMatch::Exact(p) => format!("path {:?} is not {p:?}", req.path),
            other => format!("path {:?} does not match {other}", req.path),
        },
    );
    if !m.methods.is_empty() {
        let ok = m.methods.iter().any(|x| x == req.method);
        check(&mut e, PredicateKind::Method, ok, &|| {
            let list = m
                .methods
                .iter()
                .map(http::Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            format!("method {} not in [{list}]", req.method)
        });
    }
    for h in &m.headers {
        check(&mut e, PredicateKind::Header, h.holds(req.headers), &|| {
            h.explain_failure(req.headers)
        });
    }
    for q in &m.query {
        check(&mut e, PredicateKind::Query, q.holds(req.query), &|| {
            q.explain_failure(req.query)
        });
    }
    e
}

/// Records one check: counts it if it held, or records why it failed (only the first failure
/// is kept).
fn check(e: &mut Evaluation<'_>, kind: PredicateKind, ok: bool, why: &dyn Fn() -> String) {
    if e.failure.is_none() {
        if ok {
            e.passed += 1;
        } else {
            e.failure = Some((kind, why()));
        }
    }
}

impl Evaluation<'_> {
    fn summary(&self) -> RouteSummary {
        RouteSummary {
            name: self.matcher.name.clone(),
            index: self.index,
            config_path: self.matcher.config_path.clone(),
            precedence: self.key.describe(&self.host, &self.matcher.path),
        }
    }

    fn side(&self) -> precedence::Side<'_> {
        precedence::Side {
            name: &self.matcher.name,
            key: self.key,
            host_pattern: &self.host,
            path: &self.matcher.path,
        }
    }
}

/// Explains how `matchers` treat `req`.
pub(crate) fn explain(matchers: &[Matcher], req: &RequestView<'_>) -> Explanation {
    let host_owned = req
        .host
        .and_then(|raw| host::with_normalized(raw, |h| h.map(str::to_owned)));
    let host = host_owned.as_deref();
    let mut evals: Vec<Evaluation<'_>> = matchers
        .iter()
        .enumerate()
        .map(|(i, m)| evaluate(i, m, req, host))
        .collect();
    // Routes that matched first, best precedence first; then near misses, furthest first.
    evals.sort_by(|a, b| match (&a.failure, &b.failure) {
        (None, None) => a.key.cmp(&b.key),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(_), Some(_)) => b.passed.cmp(&a.passed).then(a.index.cmp(&b.index)),
    });
    let winner = evals.first().filter(|e| e.failure.is_none());
    let others = evals
        .iter()
        .skip(usize::from(winner.is_some()))
        .map(|e| {
            let verdict = match (&e.failure, winner) {
                (Some((predicate, reason)), _) => Verdict::Missed {
                    predicate: *predicate,
                    reason: reason.clone(),
                },
                (None, Some(w)) => {
                    let (rule, reason) = precedence::why_wins(&w.side(), &e.side());
                    Verdict::Outranked { rule, reason }
                }
                // Unreachable: a route that matched sorts first and becomes the winner.
                (None, None) => Verdict::Outranked {
                    rule: Rule::Order,
                    reason: "matched".to_owned(),
                },
            };
            RouteReport {
                route: e.summary(),
                checks_passed: e.passed,
                checks: e.checks,
                verdict,
            }
        })
        .collect();
    let query = req.query.map(|q| format!("?{q}")).unwrap_or_default();
    let host = host.map_or_else(|| "no host".to_owned(), |h| format!("host {h}"));
    Explanation {
        request: format!("{} {}{query} ({host})", req.method, req.path),
        winner: winner.map(Evaluation::summary),
        others,
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = f.alternate();
        write!(f, "request:  {}", self.request)?;
        match &self.winner {
            Some(w) => {
                write!(f, "\nwinner:   {} ({})", w.name, w.config_path)?;
                if all {
                    write!(f, "\n          precedence: {}", w.precedence)?;
                }
            }
            None => write!(f, "\nwinner:   none (no route matches)")?,
        }
        if !self.others.is_empty() {
            write!(f, "\nother routes:")?;
        }
        for r in &self.others {
            write!(
                f,
                "\n  {} ({}): {}",
                r.route.name,
                r.route.config_path,
                r.verdict.reason()
            )?;
            if matches!(r.verdict, Verdict::Missed { .. }) {
                write!(f, " [{}/{} checks passed]", r.checks_passed, r.checks)?;
            }
            if all {
                write!(f, "\n      precedence: {}", r.route.precedence)?;
            }
        }
        Ok(())
    }
}

//! How the dashboard writes numbers: `–` where there is no data yet, and never a negative zero.

/// Shown where there is nothing to show yet (before the first read, or a rate before the second).
pub(crate) const NO_DATA: &str = "–";

/// `v`, or 0 for negative zero and the tiny negatives that float sums leave behind.
fn clean(v: f64) -> f64 {
    if v > 0.0 { v } else { 0.0 }
}

/// A count such as `1234`, or `–`.
pub(crate) fn count(v: Option<f64>) -> String {
    v.map_or_else(|| NO_DATA.to_owned(), |v| format!("{:.0}", clean(v)))
}

/// A rate with one decimal such as `12.5`, or `–`.
pub(crate) fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| NO_DATA.to_owned(), |v| format!("{:.1}", clean(v)))
}

/// A ratio as a percentage such as `0.5%`, or `–`.
pub(crate) fn percent(v: Option<f64>) -> String {
    v.map_or_else(
        || NO_DATA.to_owned(),
        |v| format!("{:.1}%", clean(v) * 100.0),
    )
}

/// A latency in seconds as `850µs` or `12.3ms`, or `–`.
pub(crate) fn latency(seconds: Option<f64>) -> String {
    seconds.map_or_else(
        || NO_DATA.to_owned(),
        |s| {
            let s = clean(s);
            if s < 0.001 {
                format!("{:.0}µs", s * 1e6)
            } else {
                format!("{:.1}ms", s * 1e3)
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::model::{ConnRow, RouteRow, totals};

    #[test]
    fn before_the_first_read_every_figure_is_a_dash() {
        // No rows and no connections: float sums of nothing are -0.0.
        let t = totals(&[], &[]);
        assert_eq!(t.requests, None);
        assert_eq!(count(t.requests), "–");
        assert_eq!(rate(t.rps), "–");
        assert_eq!(percent(t.err5xx), "–");
        assert_eq!(count(t.connections), "–");
    }

    #[test]
    fn negative_zero_is_written_as_zero() {
        assert_eq!(count(Some(-0.0)), "0");
        assert_eq!(rate(Some(-0.0)), "0.0");
        assert_eq!(percent(Some(-0.0)), "0.0%");
        assert_eq!(percent(Some(-1e-12)), "0.0%");
        assert_eq!(latency(Some(-0.0)), "0µs");
        assert_eq!(percent(Some(0.125)), "12.5%");
        assert_eq!(latency(Some(0.0123)), "12.3ms");
    }

    #[test]
    fn totals_of_idle_routes_are_zero_not_negative() {
        let idle = RouteRow {
            route: "api".into(),
            total: 0.0,
            rps: Some(-0.0),
            err5xx: None,
            err4xx: None,
            p50: None,
            p90: None,
            p99: None,
        };
        let conns = [ConnRow {
            listener: "web".into(),
            protocol: "http1".into(),
            active: -0.0,
        }];
        let t = totals(&[idle], &conns);
        assert_eq!(count(t.requests), "0");
        assert_eq!(rate(t.rps), "0.0");
        assert_eq!(count(t.connections), "0");
    }
}

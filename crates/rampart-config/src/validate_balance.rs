//! Checks of the upstream resilience settings: balancing, weights, sticky sessions, health
//! checks, outlier detection, retries and circuit breaking.

use crate::Located;
use crate::diag::ConfigError;
use crate::load::Positions;
use crate::model::{HealthCheck, RawConfig, Upstream};

/// Every problem with the `[[upstreams]]` resilience keys and `[routes.retry]` in `raw`.
pub(crate) fn validate(raw: &RawConfig, positions: &Positions) -> Vec<ConfigError> {
    let mut v = Checks::default();
    for (i, u) in raw.upstreams.iter().enumerate() {
        let path = positions.item("upstreams", i);
        v.balance(&path, u);
        v.sticky(&path, u);
        if let Some(hc) = &u.health_check {
            v.health_check(&format!("{path}.health_check"), u, hc);
        }
        v.outlier(&path, u);
        v.retry(&path, u);
        v.circuit_breaker(&path, u);
        v.unix_targets(&path, u);
    }
    for (i, r) in raw.routes.iter().enumerate() {
        let Some(retry) = &r.retry else { continue };
        for (key, d) in [
            ("per_try_timeout", retry.per_try_timeout),
            ("hedge_after", retry.hedge_after),
        ] {
            if d.is_some_and(|d| d.get().is_zero()) {
                let path = positions.item("routes", i);
                v.at(
                    &r.name,
                    format!("{path}.retry.{key}"),
                    "must be greater than 0s",
                );
            }
        }
    }
    v.errors
}

#[derive(Default)]
struct Checks {
    errors: Vec<ConfigError>,
}

impl Checks {
    fn at<T>(&mut self, value: &Located<T>, path: impl Into<String>, msg: impl Into<String>) {
        self.errors
            .push(ConfigError::new(Some(value.span()), path, msg));
    }

    fn balance(&mut self, path: &str, u: &Upstream) {
        if let Some(key) = &u.hash_on
            && !u.balance.is_hashing()
        {
            self.at(
                key,
                format!("{path}.hash_on"),
                format!(
                    "`hash_on` is the key of consistent hashing, but balance = {:?}: use \"ring_hash\" or \"maglev\"",
                    u.balance.as_str()
                ),
            );
        }
        for (target, weight) in &u.weights {
            if u.discovery.is_none() && !u.targets.iter().any(|t| t.as_str() == target) {
                self.at(
                    weight,
                    format!("{path}.weights.{target}"),
                    format!("{target:?} is not one of this upstream's targets"),
                );
            }
            if !(1..=1000).contains(&**weight) {
                self.at(
                    weight,
                    format!("{path}.weights.{target}"),
                    "a weight is between 1 and 1000",
                );
            }
        }
    }

    fn sticky(&mut self, path: &str, u: &Upstream) {
        let Some(s) = &u.sticky else { return };
        if s.secret.len() < 16 {
            self.at(
                &s.secret,
                format!("{path}.sticky.secret"),
                "the signing secret needs at least 16 bytes (use `${ENV}` interpolation)",
            );
        }
        let valid_name = !s.cookie.is_empty()
            && s.cookie
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            self.at(
                &s.cookie,
                format!("{path}.sticky.cookie"),
                "a cookie name is a non-empty token (letters, digits, `-`, `_`, `.`)",
            );
        }
    }

    fn health_check(&mut self, path: &str, u: &Upstream, hc: &HealthCheck) {
        if !hc.path.starts_with('/') || hc.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            self.at(
                &hc.path,
                format!("{path}.path"),
                "a probe path starts with `/` and has no spaces or control characters",
            );
        }
        if hc.method.is_empty() || !hc.method.bytes().all(|b| b.is_ascii_alphabetic()) {
            self.at(
                &hc.method,
                format!("{path}.method"),
                "a method is letters only, such as \"GET\" or \"HEAD\"",
            );
        }
        if let Some(host) = &hc.host
            && host.bytes().any(|b| b <= b' ' || b == 0x7f)
        {
            self.at(
                host,
                format!("{path}.host"),
                "a Host has no spaces or control characters",
            );
        }
        for s in &hc.expected_statuses {
            if !(100..=599).contains(&**s) {
                self.at(
                    s,
                    format!("{path}.expected_statuses"),
                    "a status is between 100 and 599",
                );
            }
        }
        for (key, zero) in [
            ("interval", hc.interval.get().is_zero()),
            ("timeout", hc.timeout.get().is_zero()),
            ("healthy_threshold", hc.healthy_threshold == 0),
            ("unhealthy_threshold", hc.unhealthy_threshold == 0),
        ] {
            if zero {
                self.at(&u.name, format!("{path}.{key}"), "must be greater than 0");
            }
        }
    }

    fn outlier(&mut self, path: &str, u: &Upstream) {
        let o = &u.outlier;
        if o.max_ejection_percent > 100 {
            self.at(
                &u.name,
                format!("{path}.outlier.max_ejection_percent"),
                "a percentage is at most 100",
            );
        }
        if !(o.latency_factor == 0.0 || (o.latency_factor >= 1.0 && o.latency_factor.is_finite())) {
            self.at(
                &u.name,
                format!("{path}.outlier.latency_factor"),
                "0 (off) or a factor of at least 1.0",
            );
        }
        if o.base_ejection.get().is_zero() || o.max_ejection < o.base_ejection {
            self.at(
                &u.name,
                format!("{path}.outlier.base_ejection"),
                "must be greater than 0s and at most `max_ejection`",
            );
        }
    }

    fn retry(&mut self, path: &str, u: &Upstream) {
        let r = &u.retry;
        for s in &r.on_status {
            if !(500..=599).contains(&**s) {
                self.at(
                    s,
                    format!("{path}.retry.on_status"),
                    "only 5xx statuses are retried",
                );
            }
        }
        if r.budget_percent > 100 {
            self.at(
                &u.name,
                format!("{path}.retry.budget_percent"),
                "a percentage is at most 100",
            );
        }
        if r.max_retries > 7 {
            self.at(
                &u.name,
                format!("{path}.retry.max_retries"),
                "at most 7 retries",
            );
        }
        if r.per_try_timeout.is_some_and(|d| d.get().is_zero()) {
            self.at(
                &u.name,
                format!("{path}.retry.per_try_timeout"),
                "must be greater than 0s",
            );
        }
    }

    /// TLS is not spoken over Unix sockets (the socket's permissions are the protection).
    fn unix_targets(&mut self, path: &str, u: &Upstream) {
        if !u.tls.as_ref().is_some_and(|t| t.enabled) {
            return;
        }
        for (i, t) in u.targets.iter().enumerate() {
            if t.starts_with("unix:") {
                self.at(
                    t,
                    format!("{path}.targets[{i}]"),
                    "TLS is not used over Unix sockets: put this target in an upstream without `[upstreams.tls]`",
                );
            }
        }
    }

    fn circuit_breaker(&mut self, path: &str, u: &Upstream) {
        let Some(cb) = &u.circuit_breaker else { return };
        if cb.max_requests == Some(0) || cb.max_requests_per_target == Some(0) {
            self.at(
                &u.name,
                format!("{path}.circuit_breaker"),
                "limits must be greater than 0",
            );
        }
        if cb.max_requests.is_none() && cb.max_requests_per_target.is_none() && !cb.trips() {
            self.at(
                &u.name,
                format!("{path}.circuit_breaker"),
                "set `max_requests`, `max_requests_per_target`, `consecutive_failures` or `failure_rate_percent`",
            );
        }
        if cb.failure_rate_percent > 100
            || cb.half_open_requests == 0
            || cb.open_for.get().is_zero()
            || (cb.failure_rate_percent > 0 && cb.window.get().is_zero())
        {
            self.at(
                &u.name,
                format!("{path}.circuit_breaker"),
                "`failure_rate_percent` is at most 100; `half_open_requests`, `open_for` and `window` must be greater than 0",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    fn errors(upstream_extra: &str) -> String {
        let text = format!(
            "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n\n[[upstreams]]\nname = \"u\"\ntargets = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n{upstream_extra}\n\n[[routes]]\nname = \"r\"\nlisteners = [\"l\"]\npath = \"/\"\nupstream = \"u\"\n"
        );
        crate::load_errors(&text)
    }

    #[test]
    fn zero_route_retry_durations_are_refused() {
        let text = "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n\n[[upstreams]]\nname = \"u\"\ntargets = [\"127.0.0.1:1\"]\n\n[[routes]]\nname = \"r\"\nlisteners = [\"l\"]\npath = \"/\"\nupstream = \"u\"\n[routes.retry]\nhedge_after = \"0s\"\nper_try_timeout = \"0s\"\n";
        let e = crate::load_errors(text);
        assert!(e.contains("routes[0].retry.hedge_after"), "{e}");
        assert!(e.contains("routes[0].retry.per_try_timeout"), "{e}");
    }

    #[test]
    fn good_settings_pass() {
        let e = errors(
            "balance = \"maglev\"\nhash_on = \"cookie:sid\"\nweights = { \"127.0.0.1:1\" = 5 }\n[upstreams.sticky]\nsecret = \"0123456789abcdef\"\n[upstreams.health_check]\npath = \"/healthz\"\n[upstreams.retry]\nmax_retries = 2\n[upstreams.circuit_breaker]\nmax_requests = 100",
        );
        assert_eq!(e, "");
    }

    #[test]
    fn bad_settings_are_reported_with_their_keys() {
        for (extra, want) in [
            ("hash_on = \"path\"", "hash_on"),
            (
                "weights = { \"10.0.0.9:1\" = 2 }",
                "not one of this upstream's targets",
            ),
            ("weights = { \"127.0.0.1:1\" = 0 }", "between 1 and 1000"),
            ("[upstreams.sticky]\nsecret = \"short\"", "16 bytes"),
            (
                "[upstreams.sticky]\nsecret = \"0123456789abcdef\"\ncookie = \"a b\"",
                "cookie name",
            ),
            (
                "[upstreams.health_check]\npath = \"healthz\"",
                "starts with `/`",
            ),
            (
                "[upstreams.health_check]\ninterval = \"0s\"",
                "health_check.interval",
            ),
            (
                "[upstreams.health_check]\nexpected_statuses = [42]",
                "between 100 and 599",
            ),
            (
                "[upstreams.outlier]\nmax_ejection_percent = 150",
                "at most 100",
            ),
            (
                "[upstreams.outlier]\nlatency_factor = 0.5",
                "latency_factor",
            ),
            ("[upstreams.retry]\non_status = [404]", "only 5xx"),
            ("[upstreams.retry]\nmax_retries = 9", "at most 7"),
            (
                "[upstreams.circuit_breaker]\nmax_requests = 0",
                "greater than 0",
            ),
        ] {
            let e = errors(extra);
            assert!(e.contains(want), "{extra}: {e}");
        }
    }
}

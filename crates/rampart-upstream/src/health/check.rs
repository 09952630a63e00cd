//! Compiled `[upstreams.health_check]`: what a probe asks, how often, and which answer passes.
//! The set owns it; the probe tasks ([`super::probe`]) run it.

use std::time::Duration;

use rampart_config::model::{HealthCheck, HealthCheckKind};

/// Compiled `[upstreams.health_check]`.
#[derive(Debug, Clone)]
pub(crate) struct HealthCheckRt {
    /// HTTP, TCP or gRPC.
    pub(super) kind: HealthCheckKind,
    /// Request path of an HTTP probe.
    pub(super) path: String,
    /// Request method of an HTTP probe, upper case.
    pub(super) method: String,
    /// `Host` of an HTTP probe; the target's label when absent.
    pub(super) host: Option<String>,
    statuses: Vec<u16>,
    body_contains: Option<String>,
    /// Service name asked about by a gRPC probe.
    pub(super) grpc_service: String,
    interval: Duration,
    /// Time a probe may take.
    pub(super) timeout: Duration,
    jitter: Duration,
    /// Consecutive passes that make an unhealthy target healthy again.
    pub(super) healthy_threshold: u32,
    /// Consecutive failures that make a target unhealthy.
    pub(super) unhealthy_threshold: u32,
}

impl HealthCheckRt {
    pub(crate) fn new(c: &HealthCheck) -> Self {
        Self {
            kind: c.kind,
            path: c.path.to_string(),
            method: c.method.to_ascii_uppercase(),
            host: c.host.as_ref().map(|h| h.to_string()),
            statuses: c.expected_statuses.iter().map(|s| **s).collect(),
            body_contains: c.body_contains.clone(),
            grpc_service: c.grpc_service.clone(),
            interval: c.interval.get(),
            timeout: c.timeout.get(),
            jitter: c.jitter.get(),
            healthy_threshold: c.healthy_threshold.max(1),
            unhealthy_threshold: c.unhealthy_threshold.max(1),
        }
    }

    /// The wait before the next probe: the interval plus a random jitter.
    pub(super) fn next_delay(&self) -> Duration {
        let jitter_ms = u64::try_from(self.jitter.as_millis()).unwrap_or(0);
        let extra = if jitter_ms == 0 {
            0
        } else {
            fastrand::u64(0..=jitter_ms)
        };
        self.interval + Duration::from_millis(extra)
    }

    /// Checks a raw HTTP/1.1 response against the expected statuses and body text.
    pub(super) fn judge_http(&self, raw: &[u8]) -> Result<(), String> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let body_start = match resp.parse(raw) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Err("incomplete response head".to_owned()),
            Err(e) => return Err(format!("bad response: {e}")),
        };
        let status = resp.code.unwrap_or(0);
        let ok = if self.statuses.is_empty() {
            (200..400).contains(&status)
        } else {
            self.statuses.contains(&status)
        };
        if !ok {
            return Err(format!("status {status}"));
        }
        if let Some(needle) = &self.body_contains {
            let body = &raw[body_start..];
            if !body
                .windows(needle.len().max(1))
                .any(|w| w == needle.as_bytes())
            {
                return Err("body does not contain the expected text".to_owned());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str) -> HealthCheckRt {
        HealthCheckRt::new(&toml::from_str(toml_text).unwrap())
    }

    #[test]
    fn http_statuses_and_body_are_judged() {
        let any = check("");
        assert!(any.judge_http(b"HTTP/1.1 204 No Content\r\n\r\n").is_ok());
        assert!(any.judge_http(b"HTTP/1.1 503 Busy\r\n\r\n").is_err());
        assert!(any.judge_http(b"garbage").is_err());
        let strict = check("expected_statuses = [200]\nbody_contains = \"ok\"");
        assert!(strict.judge_http(b"HTTP/1.1 200 OK\r\n\r\nall ok").is_ok());
        assert!(strict.judge_http(b"HTTP/1.1 200 OK\r\n\r\nnope").is_err());
        assert!(strict.judge_http(b"HTTP/1.1 204 OK\r\n\r\nok").is_err());
    }
}

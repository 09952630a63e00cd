//! The Prometheus text exposition format (version 0.0.4), written by hand: the counters are
//! plain atomics, so a client library would only add a second copy of every value.

use super::text::{header, sample};
use super::{BUCKETS_US, Histogram, Registry, process};
use std::collections::HashMap;
use std::sync::Arc;

use rampart_filters::ratelimit::RedisHealth;
use rampart_upstream::UpstreamSet;

/// The `Content-Type` of [`encode`]'s output.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn histogram(out: &mut String, name: &str, label: (&str, &str), h: &Histogram) {
    let (buckets, sum) = h.read();
    let bucket = format!("{name}_bucket");
    for (i, n) in buckets.iter().enumerate() {
        let le = BUCKETS_US
            .get(i)
            .map_or_else(|| "+Inf".to_owned(), |us| format_seconds(*us));
        sample(out, &bucket, &[label, ("le", &le)], n);
    }
    sample(out, &format!("{name}_sum"), &[label], sum);
    sample(
        out,
        &format!("{name}_count"),
        &[label],
        buckets[BUCKETS_US.len()],
    );
}

/// Microseconds as seconds without trailing zeros (`2500` → `0.0025`).
fn format_seconds(us: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let s = us as f64 / 1e6;
    format!("{s}")
}

/// Every metric of the process, in the text format.
pub(crate) fn encode(
    registry: &Registry,
    sets: &HashMap<String, Arc<UpstreamSet>>,
    redis_health: Option<RedisHealth>,
) -> String {
    let mut out = String::with_capacity(16 * 1024);
    requests(&mut out, registry);
    connections(&mut out, registry);
    upstreams(&mut out, sets);
    tls(&mut out, registry);
    super::quic::encode(&mut out, &registry.quic);
    rejections(&mut out, registry);
    stages(&mut out, registry);
    mirrors(&mut out, registry);
    reloads(&mut out, registry);
    if let Some(health) = redis_health {
        redis(&mut out, health);
    }
    let started = registry
        .started
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    process::write(&mut out, started.floor());
    out
}

fn requests(out: &mut String, registry: &Registry) {
    let t = registry.tables();
    header(
        out,
        "rampart_requests_total",
        "counter",
        "Requests answered, by listener, route, upstream, method and status class.",
    );
    for ((listener, route, upstream), counts) in &t.requests {
        for (method, class, n) in counts.nonzero() {
            sample(
                out,
                "rampart_requests_total",
                &[
                    ("listener", listener),
                    ("route", route),
                    ("upstream", upstream),
                    ("method", method),
                    ("status_class", class),
                ],
                n,
            );
        }
    }
    header(
        out,
        "rampart_grpc_responses_total",
        "counter",
        "gRPC calls Rampart answered itself (HTTP 200, the outcome in grpc-status), by route and grpc_status.",
    );
    for (route, counts) in &t.route_grpc {
        for (code, n) in counts.nonzero() {
            let code = code.to_string();
            sample(
                out,
                "rampart_grpc_responses_total",
                &[("route", route), ("grpc_status", &code)],
                n,
            );
        }
    }
    header(
        out,
        "rampart_request_duration_seconds",
        "histogram",
        "Time from the request head to the end of the response, by route.",
    );
    for (route, h) in &t.route_durations {
        histogram(out, "rampart_request_duration_seconds", ("route", route), h);
    }
    header(
        out,
        "rampart_upstream_duration_seconds",
        "histogram",
        "Time until the upstream's response head, by upstream.",
    );
    for (upstream, m) in &t.upstreams {
        histogram(
            out,
            "rampart_upstream_duration_seconds",
            ("upstream", upstream),
            &m.duration,
        );
    }
    header(
        out,
        "rampart_upstream_retries_total",
        "counter",
        "Requests sent again to another target, by upstream.",
    );
    for (upstream, m) in &t.upstreams {
        let n = m.retries.load(std::sync::atomic::Ordering::Relaxed);
        sample(
            out,
            "rampart_upstream_retries_total",
            &[("upstream", upstream)],
            n,
        );
    }
}

fn connections(out: &mut String, registry: &Registry) {
    use std::sync::atomic::Ordering::Relaxed;
    let t = registry.tables();
    header(
        out,
        "rampart_received_bytes_total",
        "counter",
        "Bytes received from clients, by listener.",
    );
    for (l, m) in &t.listeners {
        sample(
            out,
            "rampart_received_bytes_total",
            &[("listener", l)],
            m.received.load(Relaxed),
        );
    }
    header(
        out,
        "rampart_sent_bytes_total",
        "counter",
        "Bytes sent to clients, by listener.",
    );
    for (l, m) in &t.listeners {
        sample(
            out,
            "rampart_sent_bytes_total",
            &[("listener", l)],
            m.sent.load(Relaxed),
        );
    }
    header(
        out,
        "rampart_listener_requests_total",
        "counter",
        "Requests answered, by listener and HTTP version (1.0, 1.1, 2, 3).",
    );
    for (l, m) in &t.listeners {
        for (version, n) in m.requests() {
            sample(
                out,
                "rampart_listener_requests_total",
                &[("listener", l), ("http_version", version)],
                n,
            );
        }
    }
    header(
        out,
        "rampart_connections_active",
        "gauge",
        "Client connections open now, by listener and protocol.",
    );
    for (l, m) in &t.listeners {
        for (protocol, n) in m.active() {
            sample(
                out,
                "rampart_connections_active",
                &[("listener", l), ("protocol", protocol)],
                n.max(0),
            );
        }
    }
}

fn upstreams(out: &mut String, sets: &HashMap<String, Arc<UpstreamSet>>) {
    use rampart_upstream::TargetState;
    let mut names: Vec<&String> = sets.keys().collect();
    names.sort();
    let statuses: Vec<(&String, Vec<rampart_upstream::TargetStatus>)> = names
        .iter()
        .map(|n| (*n, sets[*n].target_statuses()))
        .collect();
    header(
        out,
        "rampart_upstream_target_healthy",
        "gauge",
        "1 when the target receives traffic, 0 when it is unhealthy or ejected.",
    );
    for (name, targets) in &statuses {
        for t in targets {
            let up = matches!(t.state, TargetState::Healthy | TargetState::SlowStart);
            let labels = [("upstream", name.as_str()), ("target", t.target.as_str())];
            sample(
                out,
                "rampart_upstream_target_healthy",
                &labels,
                u8::from(up),
            );
        }
    }
    header(
        out,
        "rampart_upstream_target_in_flight",
        "gauge",
        "Requests in flight to the target now.",
    );
    for (name, targets) in &statuses {
        for t in targets {
            let labels = [("upstream", name.as_str()), ("target", t.target.as_str())];
            sample(
                out,
                "rampart_upstream_target_in_flight",
                &labels,
                t.in_flight,
            );
        }
    }
    header(
        out,
        "rampart_upstream_ejections_total",
        "counter",
        "Times a target was taken out of rotation, by reason.",
    );
    for (name, targets) in &statuses {
        for t in targets {
            for (reason, count) in &t.taken_out {
                let labels = [
                    ("upstream", name.as_str()),
                    ("target", t.target.as_str()),
                    ("reason", *reason),
                ];
                sample(out, "rampart_upstream_ejections_total", &labels, count);
            }
        }
    }
    header(
        out,
        "rampart_upstream_pool_idle_connections",
        "gauge",
        "Idle pooled HTTP/1.1 connections to the upstream's targets, all workers.",
    );
    for name in &names {
        let idle = sets[*name].idle_connections();
        sample(
            out,
            "rampart_upstream_pool_idle_connections",
            &[("upstream", name.as_str())],
            idle,
        );
    }
    circuits(out, sets, &names);
}

/// The circuit of every upstream that has one: a state set and its transitions.
fn circuits(out: &mut String, sets: &HashMap<String, Arc<UpstreamSet>>, names: &[&String]) {
    use rampart_upstream::CircuitState;
    let circuits: Vec<_> = names
        .iter()
        .filter_map(|n| Some((*n, sets[*n].circuit_status()?)))
        .collect();
    header(
        out,
        "rampart_upstream_circuit_state",
        "gauge",
        "1 for the state the upstream's circuit is in (closed, open, half_open), 0 for the others.",
    );
    for (name, c) in &circuits {
        for state in CircuitState::ALL {
            let labels = [("upstream", name.as_str()), ("state", state.as_str())];
            sample(
                out,
                "rampart_upstream_circuit_state",
                &labels,
                u8::from(c.state == state),
            );
        }
    }
    header(
        out,
        "rampart_upstream_circuit_transitions_total",
        "counter",
        "Times the upstream's circuit entered a state, by the state entered.",
    );
    for (name, c) in &circuits {
        for (state, n) in CircuitState::ALL.iter().zip(c.transitions) {
            let labels = [("upstream", name.as_str()), ("to", state.as_str())];
            sample(
                out,
                "rampart_upstream_circuit_transitions_total",
                &labels,
                n,
            );
        }
    }
}

fn tls(out: &mut String, registry: &Registry) {
    let s = registry.tls.snapshot();
    header(
        out,
        "rampart_tls_handshakes_total",
        "counter",
        "Completed TLS handshakes, by protocol version, cipher suite and ALPN protocol.",
    );
    for (version, cipher, alpn, n) in &s.handshakes {
        sample(
            out,
            "rampart_tls_handshakes_total",
            &[("version", version), ("cipher", cipher), ("alpn", alpn)],
            n,
        );
    }
    header(
        out,
        "rampart_tls_handshake_failures_total",
        "counter",
        "Failed TLS handshakes, by reason.",
    );
    for (reason, n) in &s.failures {
        sample(
            out,
            "rampart_tls_handshake_failures_total",
            &[("reason", reason)],
            n,
        );
    }
    header(
        out,
        "rampart_tls_resumptions_total",
        "counter",
        "TLS handshakes that resumed a session.",
    );
    sample(out, "rampart_tls_resumptions_total", &[], s.resumptions);
    header(
        out,
        "rampart_tls_early_data_total",
        "counter",
        "TLS early data: connections accepted, requests refused with 425.",
    );
    sample(
        out,
        "rampart_tls_early_data_total",
        &[("result", "accepted")],
        s.early_data_accepted,
    );
    sample(
        out,
        "rampart_tls_early_data_total",
        &[("result", "rejected")],
        s.early_data_rejected,
    );
    header(
        out,
        "rampart_tls_reloads_total",
        "counter",
        "Certificate, key, OCSP, CA or CRL reloads put in service.",
    );
    sample(out, "rampart_tls_reloads_total", &[], s.reloads);
    header(
        out,
        "rampart_tls_reload_failures_total",
        "counter",
        "Certificate, key, OCSP, CA or CRL reloads refused (the previous files stay in service).",
    );
    sample(
        out,
        "rampart_tls_reload_failures_total",
        &[],
        s.reload_failures,
    );
    header(
        out,
        "rampart_tls_ocsp_refused_total",
        "counter",
        "OCSP responses not stapled on reload: about another certificate, expired or malformed.",
    );
    sample(out, "rampart_tls_ocsp_refused_total", &[], s.ocsp_refused);
    header(
        out,
        "rampart_tls_certificate_expiry_timestamp_seconds",
        "gauge",
        "Expiry time of each certificate in service, Unix seconds.",
    );
    for (label, not_after) in &s.certificate_expiry {
        let (listener, cert) = label.split_once(':').unwrap_or(("", label));
        sample(
            out,
            "rampart_tls_certificate_expiry_timestamp_seconds",
            &[("listener", listener), ("certificate", cert)],
            not_after,
        );
    }
}

fn rejections(out: &mut String, registry: &Registry) {
    header(
        out,
        "rampart_rejections_total",
        "counter",
        "Requests refused or failed, by reason code.",
    );
    let mut all = registry.rejections();
    all.sort_unstable();
    for (reason, n) in all {
        sample(out, "rampart_rejections_total", &[("reason", reason)], n);
    }
}

fn stages(out: &mut String, registry: &Registry) {
    header(
        out,
        "rampart_stage_decisions_total",
        "counter",
        "Requests a route's stage answered itself or refused, by route, stage and decision.",
    );
    for (route, stage, answered, refused) in registry.stage_decisions() {
        for (decision, n) in [("answer", answered), ("refuse", refused)] {
            let labels = [
                ("route", route.as_str()),
                ("stage", stage),
                ("decision", decision),
            ];
            sample(out, "rampart_stage_decisions_total", &labels, n);
        }
    }
}

/// The Redis rate-limit store, when policies use one.
fn mirrors(out: &mut String, registry: &Registry) {
    let t = registry.tables();
    header(
        out,
        "rampart_mirror_requests_total",
        "counter",
        "Mirrored (shadow) requests by route, shadow upstream and result: the answer's status class, failed, dropped (over max_concurrent) or skipped (body over max_body).",
    );
    for ((route, upstream), counts) in &t.mirrors {
        for (result, n) in counts.results() {
            let labels = [
                ("route", route.as_str()),
                ("upstream", upstream),
                ("result", result),
            ];
            sample(out, "rampart_mirror_requests_total", &labels, n);
        }
    }
}

fn redis(out: &mut String, health: RedisHealth) {
    header(
        out,
        "rampart_redis_up",
        "gauge",
        "1 while rate-limit policies ask Redis, 0 while they skip it after a failure.",
    );
    sample(out, "rampart_redis_up", &[], u8::from(!health.down));
    header(
        out,
        "rampart_redis_failures_total",
        "counter",
        "Redis calls and health pings that failed or timed out.",
    );
    sample(out, "rampart_redis_failures_total", &[], health.failures);
    header(
        out,
        "rampart_redis_recoveries_total",
        "counter",
        "Times Redis answered again after a failure.",
    );
    sample(
        out,
        "rampart_redis_recoveries_total",
        &[],
        health.recoveries,
    );
}

fn reloads(out: &mut String, registry: &Registry) {
    let (ok, failed, generation, last) = registry.reloads();
    header(
        out,
        "rampart_config_reloads_total",
        "counter",
        "Config reloads, by result.",
    );
    sample(
        out,
        "rampart_config_reloads_total",
        &[("result", "success")],
        ok,
    );
    sample(
        out,
        "rampart_config_reloads_total",
        &[("result", "failure")],
        failed,
    );
    header(
        out,
        "rampart_config_generation",
        "gauge",
        "Generation of the config in service (1 at start, +1 per successful reload).",
    );
    sample(out, "rampart_config_generation", &[], generation);
    header(
        out,
        "rampart_config_last_reload_success_timestamp_seconds",
        "gauge",
        "When a config was last applied, Unix seconds.",
    );
    sample(
        out,
        "rampart_config_last_reload_success_timestamp_seconds",
        &[],
        last,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "m", &[("route", "a\"b\\c\nd")], 1);
        assert_eq!(out, "m{route=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn bucket_bounds_print_as_seconds() {
        assert_eq!(format_seconds(1_000), "0.001");
        assert_eq!(format_seconds(2_500), "0.0025");
        assert_eq!(format_seconds(10_000_000), "10");
    }
}

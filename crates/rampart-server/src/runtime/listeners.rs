//! Compiling one listener: its request policy and router for the plane (the routes that serve
//! it), and how its connections are opened for the edge (TLS termination, passthrough).

use std::sync::Arc;

use http::StatusCode;
use http::header::HeaderName;
use rampart_config::model::{Listener, Passthrough, Route};
use rampart_config::{ConfigError, RawConfig};
use rampart_router::{Matcher, Router};

use crate::listen::bind::ListenTuning;
use crate::listen::edge::EdgeListener;
use crate::listen::quic::QuicListener;
use crate::listen::tls::TlsListener;
use crate::listen::tls::passthrough::PassthroughRt;
use crate::observe::tls_stats::TlsStats;
use crate::pipeline::gates::ListenerGates;
use crate::pipeline::handler::ForwardPolicy;
use crate::pipeline::plane::{AltSvc, CompiledRoute, ListenerRt, TlsPolicy};

/// Compiles listener `l` (at config path `path`) over the compiled `routes`. `kept_tls` is the
/// running TLS termination of an unchanged listener (its session caches and ticket keys).
pub(crate) fn compile_listener(
    l: &Listener,
    routes: &[(&Route, String, Arc<CompiledRoute>)],
    raw: &RawConfig,
    path: &str,
    tls_stats: &Arc<TlsStats>,
    kept_tls: Option<Arc<TlsListener>>,
) -> Result<(ListenerRt, EdgeListener), Vec<ConfigError>> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let tls = match &l.tls {
        Some(_) if kept_tls.is_some() => kept_tls,
        Some(t) => match TlsListener::compile(l, t, &format!("{path}.tls"), tls_stats) {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                errors.extend(e);
                None
            }
        },
        None => None,
    };
    let names = l
        .tls
        .as_ref()
        .map(|t| t.client_cert_headers.clone())
        .unwrap_or_default();
    let header = |n: &str, fallback: &'static str| {
        HeaderName::from_bytes(n.as_bytes()).unwrap_or(HeaderName::from_static(fallback))
    };
    let client_cert_headers = Arc::new([
        header(&names.fingerprint, "x-client-cert-sha256"),
        header(&names.subject, "x-client-cert-subject"),
        header(&names.sans, "x-client-cert-sans"),
    ]);
    let redirect_https = l.redirect_https.as_ref().map(|r| {
        let status =
            StatusCode::from_u16(*r.status.get()).unwrap_or(StatusCode::PERMANENT_REDIRECT);
        let port: Arc<str> = match r.port {
            Some(443) | None => Arc::from(""),
            Some(p) => Arc::from(format!(":{p}")),
        };
        (status, port)
    });
    let passthrough = l
        .passthrough
        .as_ref()
        .map(|p| Arc::new(PassthroughRt::new(p, &raw.upstreams)));
    if let (Some(p), Some(t)) = (&l.passthrough, &tls) {
        errors.extend(passed_and_served(p, t, path));
    }
    for (route, path, compiled) in routes {
        match Matcher::from_config(route, path) {
            Ok(m) if m.serves_listener(&l.name) => entries.push((m, Arc::clone(compiled))),
            Ok(_) => {}
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let policy = ListenerRt {
        name: Arc::from(l.name.as_str()),
        bind: *l.bind,
        http2: l.http2,
        backlog: l.backlog,
        forward: ForwardPolicy {
            x_forwarded: l.x_forwarded,
            forwarded: l.forwarded,
            client_cert_headers,
        },
        trust_request_id: l.trust_request_id,
        health_endpoints: l.health_endpoints,
        router: Router::new(entries)?,
        gates: ListenerGates::new(l, raw),
        tls: tls.as_ref().map(|t| TlsPolicy {
            strict_sni: t.strict_sni,
            hsts: t.hsts.clone(),
        }),
        alt_svc: l
            .http3
            .as_ref()
            .filter(|h3| h3.alt_svc && l.tls.is_some())
            .map(|h3| AltSvc::new(l.bind.port(), h3.alt_svc_max_age.get().as_secs())),
        redirect_https,
        metrics: Arc::default(),
        no_route: Arc::default(),
    };
    let quic = match (&l.http3, &tls) {
        (Some(h3), Some(t)) => match QuicListener::compile(h3, Arc::clone(t)) {
            Ok(q) => Some(Arc::new(q)),
            Err(msg) => {
                return Err(vec![ConfigError::new(
                    Some(l.name.span()),
                    format!("{path}.http3"),
                    msg,
                )]);
            }
        },
        _ => None,
    };
    let edge = EdgeListener {
        tls,
        passthrough,
        quic,
        tuning: ListenTuning::of(l),
    };
    Ok((policy, edge))
}

/// A name both passed through and served by a certificate (also one taken from the
/// certificate's own DNS names, which config validation cannot see) is refused.
fn passed_and_served(p: &Passthrough, tls: &TlsListener, path: &str) -> Vec<ConfigError> {
    let served: Vec<&str> = tls.names().collect();
    p.sni
        .iter()
        .filter(|(name, _)| served.iter().any(|s| s.eq_ignore_ascii_case(name)))
        .map(|(name, upstream)| {
            ConfigError::new(
                Some(upstream.span()),
                format!("{path}.passthrough.sni.{name:?}"),
                format!(
                    "{name:?} is passed through to {:?} and also served by a certificate of this listener's `tls`: a name is either passed through or terminated",
                    upstream.get()
                ),
            )
        })
        .collect()
}

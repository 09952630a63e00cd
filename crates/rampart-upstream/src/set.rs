//! [`UpstreamSet`]: a compiled `[[upstreams]]` entry with its targets and round-robin state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::HeaderValue;
use rampart_config::model::{ProxyProtocolVersion, Upstream, UpstreamProtocol, UpstreamTls};
use rampart_config::syntax::{self, Target as TargetSpec};
use rampart_config::{ConfigError, Located};

/// One server of an upstream.
#[derive(Debug)]
pub struct Target {
    /// Where to connect.
    pub spec: TargetSpec,
    /// `host:port` as written, for logs and the `Host` of HTTP/2 requests.
    pub label: Arc<str>,
    /// The same as a header value.
    pub authority: HeaderValue,
    /// The per-worker pool this target's connections live in (stable across reloads).
    pub(crate) pool_key: usize,
}

impl Target {
    /// The host part of the target (DNS name or IP literal), for TLS server names.
    #[must_use]
    pub fn host(&self) -> String {
        match &self.spec {
            TargetSpec::Addr(addr) => addr.ip().to_string(),
            TargetSpec::Host(host, _) => host.clone(),
        }
    }
}

/// A named group of targets with its connection settings.
#[derive(Debug)]
pub struct UpstreamSet {
    /// Name from config.
    pub name: Arc<str>,
    /// The targets, in config order.
    pub targets: Vec<Target>,
    /// Protocol spoken to the targets.
    pub protocol: UpstreamProtocol,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Time from the end of the request until the response headers arrive.
    pub request_timeout: Duration,
    /// Idle time after which a pooled connection is closed.
    pub idle_timeout: Duration,
    /// Most idle HTTP/1.1 connections per target and worker.
    pub max_idle_per_target: usize,
    /// TLS to the targets, when configured.
    pub tls: Option<UpstreamTlsRt>,
    /// PROXY protocol header opening each connection; such connections are never pooled.
    pub proxy_protocol: Option<ProxyProtocolVersion>,
    next: AtomicUsize,
}

/// An upstream's compiled TLS settings.
#[derive(Debug)]
pub struct UpstreamTlsRt {
    /// The rustls client configuration (roots, client certificate, ALPN).
    pub config: Arc<rustls::ClientConfig>,
    /// The settings as written (for the SNI name).
    pub settings: UpstreamTls,
}

impl UpstreamSet {
    /// Compiles an upstream from config; `path` (like `upstreams[0]`) locates errors.
    ///
    /// # Errors
    /// A target that does not parse (validation normally catches this first).
    pub fn from_config(u: &Upstream, path: &str) -> Result<Self, Vec<ConfigError>> {
        let tls = match u.tls.as_ref().filter(|t| t.enabled) {
            Some(settings) => {
                let http2 = u.protocol != UpstreamProtocol::Http1;
                let config = crate::tls::client_config(settings, http2, &format!("{path}.tls"))?;
                Some(UpstreamTlsRt {
                    config,
                    settings: settings.clone(),
                })
            }
            None => None,
        };
        // Connections of different TLS settings never share a pool.
        let identity = tls
            .as_ref()
            .map(|t| format!("{}|{:?}", u.name.get(), t.settings));
        let mut errors = Vec::new();
        let mut targets = Vec::with_capacity(u.targets.len());
        for (i, t) in u.targets.iter().enumerate() {
            match build_target(t, u.protocol, identity.as_deref()) {
                Ok(target) => targets.push(target),
                Err(msg) => errors.push(ConfigError::new(
                    Some(t.span()),
                    format!("{path}.targets[{i}]"),
                    msg,
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            name: Arc::from(u.name.as_str()),
            targets,
            protocol: u.protocol,
            connect_timeout: u.connect_timeout.get(),
            request_timeout: u.request_timeout.get(),
            idle_timeout: u.idle_timeout.get(),
            max_idle_per_target: u.max_idle_per_target,
            tls,
            proxy_protocol: u.proxy_protocol.as_ref().map(|v| *v.get()),
            next: AtomicUsize::new(0),
        })
    }

    /// The next target in round-robin order, skipping the one at index `skip` when there is
    /// another.
    pub fn next_target(&self, skip: Option<usize>) -> Option<(usize, &Target)> {
        let n = self.targets.len();
        if n == 0 {
            return None;
        }
        let mut i = self.next.fetch_add(1, Ordering::Relaxed) % n;
        if skip == Some(i) && n > 1 {
            i = (i + 1) % n;
        }
        Some((i, &self.targets[i]))
    }
}

fn build_target(
    text: &Located<String>,
    protocol: UpstreamProtocol,
    tls: Option<&str>,
) -> Result<Target, String> {
    let spec = syntax::parse_target(text)?;
    let authority = HeaderValue::from_str(text).map_err(|e| e.to_string())?;
    Ok(Target {
        pool_key: pool_key(&spec, protocol, tls),
        label: Arc::from(text.as_str()),
        authority,
        spec,
    })
}

/// Everything that makes connections interchangeable: target, protocol, TLS identity.
type PoolIdentity = (TargetSpec, UpstreamProtocol, Option<String>);

/// A small dense number per pool identity, the same for the life of the process, so pools are
/// found by indexing rather than hashing and survive config reloads.
fn pool_key(spec: &TargetSpec, protocol: UpstreamProtocol, tls: Option<&str>) -> usize {
    static KEYS: OnceLock<Mutex<HashMap<PoolIdentity, usize>>> = OnceLock::new();
    let mut keys = KEYS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let next = keys.len();
    *keys
        .entry((spec.clone(), protocol, tls.map(str::to_owned)))
        .or_insert(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(targets: &[&str]) -> UpstreamSet {
        let text = format!(
            "name = \"u\"\ntargets = [{}]\n",
            targets
                .iter()
                .map(|t| format!("{t:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let u: Upstream = toml::from_str(&text).unwrap();
        UpstreamSet::from_config(&u, "upstreams[0]").unwrap()
    }

    #[test]
    fn round_robin_visits_every_target_in_turn() {
        let s = set(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
        let picks: Vec<usize> = (0..6).map(|_| s.next_target(None).unwrap().0).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn a_retry_skips_the_failed_target() {
        let s = set(&["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(s.next_target(None).unwrap().0, 0);
        // Round robin would pick 1 now; a retry after 1 failed must not.
        assert_eq!(s.next_target(Some(1)).unwrap().0, 0);
    }

    #[test]
    fn pool_keys_are_stable_per_target_and_protocol() {
        let a = set(&["127.0.0.1:9"]);
        let b = set(&["127.0.0.1:9", "127.0.0.1:10"]);
        assert_eq!(a.targets[0].pool_key, b.targets[0].pool_key);
        assert_ne!(b.targets[0].pool_key, b.targets[1].pool_key);
    }
}

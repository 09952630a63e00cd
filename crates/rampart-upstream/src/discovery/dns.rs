//! The DNS sources: the A/AAAA addresses of a name (each one a target on the configured port),
//! or the SRV records of a service name (each record's host resolved to its addresses, with the
//! record's port, weight and priority). Answers are used until their TTL runs out, bounded by
//! `min_ttl` and `max_ttl`; failures are retried with a doubling back-off within the same
//! bounds while the last good targets stay in service.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use rampart_config::model::{AddressFamily, Discovery as DiscoveryConfig};
use rampart_config::syntax::{self, Target as TargetSpec};

use super::{Sink, backoff};
use crate::members::Entry;

/// Most targets one answer may produce (a runaway record set must not become a runaway pool).
const MAX_TARGETS: usize = 512;

/// What is looked up.
#[derive(Debug, Clone)]
enum Query {
    /// The addresses of `name`, each a target on `port`.
    Host { name: String, port: u16 },
    /// The SRV records of `name`.
    Srv { name: String },
}

/// A compiled DNS source.
#[derive(Debug)]
pub(super) struct DnsSource {
    query: Query,
    /// DNS servers; empty means the system's (`/etc/resolv.conf`).
    servers: Vec<SocketAddr>,
    min_ttl: Duration,
    max_ttl: Duration,
    family: AddressFamily,
}

impl DnsSource {
    pub(super) fn new(d: &DiscoveryConfig) -> Result<Self, String> {
        let query = if let Some(srv) = &d.srv {
            Query::Srv {
                name: srv.get().clone(),
            }
        } else {
            let text = d.dns.as_ref().ok_or("no discovery source")?;
            let (name, port) = text
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| format!("invalid {:?}: expected \"host:port\"", text.get()))?;
            Query::Host { name, port }
        };
        let servers = d
            .resolvers
            .iter()
            .map(|r| {
                syntax::parse_dns_server(r)
                    .ok_or_else(|| format!("invalid DNS server {:?}", r.get()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            query,
            servers,
            min_ttl: d.min_ttl.get(),
            max_ttl: d.max_ttl.get(),
            family: d.family,
        })
    }

    pub(super) fn describe(&self) -> String {
        match &self.query {
            Query::Host { name, port } => format!("dns {name}:{port}"),
            Query::Srv { name } => format!("dns srv {name}"),
        }
    }

    fn resolver(&self) -> Result<TokioResolver, String> {
        let mut builder = if self.servers.is_empty() {
            Resolver::builder_tokio().map_err(|e| format!("system DNS configuration: {e}"))?
        } else {
            let servers = self
                .servers
                .iter()
                .map(|addr| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = addr.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = addr.port();
                    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
                })
                .collect();
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.ip_strategy = match self.family {
            AddressFamily::Any => LookupIpStrategy::Ipv4AndIpv6,
            AddressFamily::Ipv4 => LookupIpStrategy::Ipv4Only,
            AddressFamily::Ipv6 => LookupIpStrategy::Ipv6Only,
        };
        opts.positive_min_ttl = Some(self.min_ttl);
        opts.positive_max_ttl = Some(self.max_ttl);
        opts.negative_max_ttl = Some(self.min_ttl);
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        builder.build().map_err(|e| format!("DNS resolver: {e}"))
    }

    pub(super) async fn run<S: Sink>(&self, set: &Weak<S>) {
        let resolver = match self.resolver() {
            Ok(r) => r,
            Err(e) => {
                let name = set.upgrade().map(|s| s.name().to_owned());
                tracing::error!(upstream = name.as_deref().unwrap_or("-"), error = %e, "discovery cannot start");
                return;
            }
        };
        let source = self.describe();
        let mut failures = 0u32;
        loop {
            let result = self.lookup(&resolver).await;
            let Some(set) = set.upgrade() else { return };
            let wait = match result {
                Ok((entries, valid_until)) => {
                    if failures > 0 {
                        tracing::info!(upstream = %set.name(), source, "discovery answers again");
                    }
                    failures = 0;
                    set.apply(entries, &source);
                    valid_until
                        .saturating_duration_since(Instant::now())
                        .clamp(self.min_ttl, self.max_ttl)
                }
                Err(why) => {
                    // Requests waiting for a first answer get theirs (503 without targets).
                    set.answered();
                    let kept = set.target_count();
                    if failures == 0 {
                        tracing::warn!(upstream = %set.name(), source, error = %why, kept, "discovery failed; keeping the last targets");
                    } else {
                        tracing::debug!(upstream = %set.name(), source, error = %why, kept, "discovery still failing");
                    }
                    failures += 1;
                    backoff(self.min_ttl, self.max_ttl, failures - 1)
                }
            };
            drop(set);
            tokio::time::sleep(wait).await;
        }
    }

    /// One refresh: the targets and how long the answer holds. No address at all is an error
    /// (the last targets stay).
    async fn lookup(&self, resolver: &TokioResolver) -> Result<(Vec<Entry>, Instant), String> {
        let (mut entries, valid_until) = match &self.query {
            Query::Host { name, port } => {
                let (addrs, until) = addresses(resolver, name).await?;
                let server_name = server_name(name);
                let entries = addrs
                    .into_iter()
                    .map(|ip| entry(SocketAddr::new(ip, *port), 1, 0, server_name.clone()))
                    .collect();
                (entries, until)
            }
            Query::Srv { name } => srv_entries(resolver, name).await?,
        };
        if entries.is_empty() {
            return Err("the answer has no address".to_owned());
        }
        // Answers come in any order: a stable order keeps round robin and logs calm, and the
        // cap then keeps the same (most preferred) targets on every refresh.
        entries.sort_by(|a, b| (a.priority, &a.label).cmp(&(b.priority, &b.label)));
        entries.truncate(MAX_TARGETS);
        Ok((entries, valid_until))
    }
}

/// The addresses of `name` and when the answer expires.
async fn addresses(resolver: &TokioResolver, name: &str) -> Result<(Vec<IpAddr>, Instant), String> {
    let lookup = resolver
        .lookup_ip(name)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let mut addrs: Vec<IpAddr> = lookup.iter().collect();
    addrs.sort_unstable();
    addrs.dedup();
    Ok((addrs, lookup.valid_until()))
}

/// The targets of the SRV records of `name`: every address of every record's host.
async fn srv_entries(
    resolver: &TokioResolver,
    name: &str,
) -> Result<(Vec<Entry>, Instant), String> {
    let lookup = resolver
        .srv_lookup(name)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let mut valid_until = lookup.valid_until();
    let records: Vec<_> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some(srv.clone()),
            _ => None,
        })
        .collect();
    let heaviest = records.iter().map(|r| r.weight).max().unwrap_or(0);
    let mut entries: Vec<Entry> = Vec::new();
    for r in records {
        let host = r.target.to_utf8();
        // "." means "no service here" (RFC 2782).
        if host == "." || r.port == 0 {
            continue;
        }
        let (addrs, until) = addresses(resolver, &host).await?;
        valid_until = valid_until.min(until);
        let weight = srv_weight(r.weight, heaviest);
        for ip in addrs {
            let e = entry(
                SocketAddr::new(ip, r.port),
                weight,
                r.priority,
                server_name(&host),
            );
            if !entries.iter().any(|x| x.label == e.label) {
                entries.push(e);
            }
        }
    }
    Ok((entries, valid_until))
}

/// An SRV weight (0 to 65535) as a target weight (1 to 1000), keeping proportions; weight 0
/// gets the smallest share.
fn srv_weight(weight: u16, heaviest: u16) -> u32 {
    let scaled = if heaviest > 1000 {
        u32::from(weight) * 1000 / u32::from(heaviest)
    } else {
        u32::from(weight)
    };
    scaled.clamp(1, 1000)
}

fn server_name(host: &str) -> Option<Arc<str>> {
    let host = host.trim_end_matches('.');
    (host.parse::<IpAddr>().is_err()).then(|| Arc::from(host.to_ascii_lowercase()))
}

fn entry(addr: SocketAddr, weight: u32, priority: u16, server_name: Option<Arc<str>>) -> Entry {
    Entry {
        spec: TargetSpec::Addr(addr),
        label: addr.to_string(),
        weight,
        priority,
        server_name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srv_weights_keep_their_proportions_within_bounds() {
        assert_eq!(srv_weight(0, 10), 1);
        assert_eq!(srv_weight(10, 10), 10);
        assert_eq!(srv_weight(60_000, 60_000), 1000);
        assert_eq!(srv_weight(30_000, 60_000), 500);
        assert_eq!(srv_weight(1, 60_000), 1);
    }

    #[test]
    fn discovered_names_become_server_names_but_ip_literals_do_not() {
        assert_eq!(
            server_name("API.internal.").as_deref(),
            Some("api.internal")
        );
        assert_eq!(server_name("10.0.0.1"), None);
        let e = entry("10.0.0.1:80".parse().unwrap(), 1, 0, server_name("a.b"));
        assert_eq!(e.label, "10.0.0.1:80");
    }
}

//! Listen ports (can each listener bind?) and upstream targets (do they resolve, do they
//! accept a TCP connection?), with bounded timeouts.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use rampart_config::RawConfig;
use tokio::task::JoinSet;

use super::{Finding, Severity};

/// Longest wait for one DNS lookup and for one TCP connect.
const DNS_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Upstream targets checked at most (the rest are reported as skipped).
const MAX_TARGETS: usize = 256;

/// Tries to bind every listener's address (port 0 always binds and is skipped).
pub(super) fn ports(raw: &RawConfig) -> Vec<Finding> {
    raw.listeners
        .iter()
        .map(|l| {
            let addr = *l.bind.get();
            let subject = format!("listener {} ({addr})", l.name.get());
            if addr.port() == 0 {
                return Finding::new(
                    "port",
                    Severity::Ok,
                    subject,
                    "port 0: the kernel picks a free port",
                );
            }
            bind_finding(addr, subject)
        })
        .collect()
}

fn bind_finding(addr: SocketAddr, subject: String) -> Finding {
    match TcpListener::bind(addr) {
        Ok(_) => Finding::new("port", Severity::Ok, subject, "free"),
        Err(e) if e.kind() == ErrorKind::AddrInUse => Finding::new(
            "port",
            Severity::Error,
            subject,
            format!("{addr} is already in use by another socket"),
        )
        .fix(format!(
            "find the owner with `ss -ltnp 'sport = :{}'` and stop it, or choose another port \
             (to replace a running Rampart without downtime use `rampart upgrade`)",
            addr.port()
        )),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Finding::new(
            "port",
            Severity::Error,
            subject,
            format!("not allowed to bind {addr}: {e}"),
        )
        .fix(
            "ports below 1024 need CAP_NET_BIND_SERVICE: `setcap cap_net_bind_service=+ep \
             $(command -v rampart)` or `AmbientCapabilities=CAP_NET_BIND_SERVICE` in the unit",
        ),
        Err(e) if e.kind() == ErrorKind::AddrNotAvailable => Finding::new(
            "port",
            Severity::Error,
            subject,
            format!("{} is not an address of this machine: {e}", addr.ip()),
        )
        .fix("bind an address this host has (`ip addr`), or 0.0.0.0 / [::]"),
        Err(e) => Finding::new(
            "port",
            Severity::Error,
            subject,
            format!("cannot bind {addr}: {e}"),
        ),
    }
}

/// Resolves and connects to every upstream target (and the `host:port` of DNS discovery),
/// concurrently, each bounded in time.
pub(super) fn upstreams(raw: &RawConfig) -> Vec<Finding> {
    let targets: Vec<(String, String)> = raw
        .upstreams
        .iter()
        .flat_map(|u| {
            let discovered = u.discovery.as_ref().and_then(|d| d.dns.as_ref());
            u.targets
                .iter()
                .chain(discovered)
                .map(move |t| (u.name.get().clone(), t.get().clone()))
        })
        .collect();
    let skipped = targets.len().saturating_sub(MAX_TARGETS);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return vec![Finding::new(
                "upstream",
                Severity::Info,
                "upstreams",
                format!("skipped: {e}"),
            )];
        }
    };
    let mut findings = rt.block_on(async {
        let mut set = JoinSet::new();
        for (i, (upstream, target)) in targets.into_iter().take(MAX_TARGETS).enumerate() {
            set.spawn(async move { (i, probe(&upstream, &target).await) });
        }
        let mut done = Vec::new();
        while let Some(joined) = set.join_next().await {
            if let Ok(result) = joined {
                done.push(result);
            }
        }
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, f)| f).collect::<Vec<_>>()
    });
    if skipped > 0 {
        findings.push(Finding::new(
            "upstream",
            Severity::Info,
            "upstreams",
            format!("{skipped} more targets not checked (at most {MAX_TARGETS} are)"),
        ));
    }
    findings
}

async fn probe(upstream: &str, target: &str) -> Finding {
    let subject = format!("upstream {upstream} target {target}");
    if let Some(path) = target.strip_prefix("unix:") {
        return probe_unix(subject, path).await;
    }
    let addrs = match tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host(target)).await {
        Ok(Ok(addrs)) => addrs.collect::<Vec<SocketAddr>>(),
        Ok(Err(e)) => {
            return Finding::new(
                "upstream",
                Severity::Warning,
                subject,
                format!("does not resolve: {e}"),
            )
            .fix(
                "check the host name and /etc/resolv.conf; requests routed here will fail with 502",
            );
        }
        Err(_) => {
            return Finding::new(
                "upstream",
                Severity::Warning,
                subject,
                format!("DNS lookup took longer than {}s", DNS_TIMEOUT.as_secs()),
            )
            .fix("check the resolvers in /etc/resolv.conf");
        }
    };
    let Some(first) = addrs.first().copied() else {
        return Finding::new(
            "upstream",
            Severity::Warning,
            subject,
            "resolves to no address",
        );
    };
    // The resolved address is news only when the target is a name.
    let at = if first.to_string() == target {
        String::new()
    } else {
        format!(" ({first})")
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(first)).await {
        Ok(Ok(_)) => Finding::new("upstream", Severity::Ok, subject, format!("accepts connections{at}")),
        Ok(Err(e)) => Finding::new("upstream", Severity::Warning, subject, format!("cannot connect{at}: {e}"))
            .fix("start the service, or check firewalls and the port; requests routed here will fail with 502"),
        Err(_) => Finding::new(
            "upstream",
            Severity::Warning,
            subject,
            format!("no answer within {}s{at}", CONNECT_TIMEOUT.as_secs()),
        )
        .fix("a firewall may drop the packets; requests routed here will time out"),
    }
}

/// A Unix socket target: does something accept connections on it?
async fn probe_unix(subject: String, path: &str) -> Finding {
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(path)).await {
        Ok(Ok(_)) => Finding::new("upstream", Severity::Ok, subject, "accepts connections"),
        Ok(Err(e)) => Finding::new("upstream", Severity::Warning, subject, format!("cannot connect: {e}"))
            .fix("start the service that owns the socket, and check that Rampart's user may open it; requests routed here will fail with 502"),
        Err(_) => Finding::new(
            "upstream",
            Severity::Warning,
            subject,
            format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
        ),
    }
}

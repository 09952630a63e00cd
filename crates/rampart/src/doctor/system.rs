//! Process limits and kernel settings, read from /proc (Linux); on other systems these
//! checks report that they were skipped.

use rampart_config::RawConfig;

use super::{Finding, Severity};

/// File descriptors a proxied connection needs at most: the client's and the upstream's.
const FDS_PER_CONNECTION: u64 = 2;
/// Descriptors for everything else: listeners, logs, epoll, pools' idle connections, threads.
const FDS_RESERVE: u64 = 256;

/// The soft and hard `Max open files` limits of this process, from /proc/self/limits.
fn nofile_limits() -> Option<(Option<u64>, Option<u64>)> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let parse = |v: Option<&str>| v.and_then(|v| v.parse::<u64>().ok());
    Some((parse(fields.next()), parse(fields.next())))
}

/// The fd limit against `limits.max_connections`.
pub(super) fn fd_limit(raw: &RawConfig) -> Vec<Finding> {
    let Some((Some(soft), hard)) = nofile_limits() else {
        return vec![Finding::new(
            "fd_limit",
            Severity::Info,
            "RLIMIT_NOFILE",
            "unlimited or not readable from /proc/self/limits; skipped",
        )];
    };
    let hard = hard.map_or_else(|| "unlimited".to_owned(), |h| h.to_string());
    let max = raw.limits.max_connections as u64;
    let subject = "RLIMIT_NOFILE";
    if max == 0 {
        return vec![
            Finding::new(
                "fd_limit",
                Severity::Warning,
                subject,
                format!(
                    "limits.max_connections is 0 (no cap): past about {} connections accepts fail \
                 with EMFILE (soft limit {soft}, hard {hard})",
                    soft.saturating_sub(FDS_RESERVE) / FDS_PER_CONNECTION
                ),
            )
            .fix("set limits.max_connections below what the fd limit allows"),
        ];
    }
    let need = max * FDS_PER_CONNECTION + FDS_RESERVE;
    if soft >= need {
        return vec![Finding::new(
            "fd_limit",
            Severity::Ok,
            subject,
            format!("soft limit {soft} covers limits.max_connections = {max} (needs about {need})"),
        )];
    }
    // Rampart starts whatever the limit; what the limit decides is how many connections it
    // can hold at once.
    let reachable = soft.saturating_sub(FDS_RESERVE) / FDS_PER_CONNECTION;
    vec![
        Finding::new(
            "fd_limit",
            Severity::Warning,
            subject,
            format!(
                "soft limit {soft} (hard {hard}) allows about {reachable} proxied connections \
                 (2 descriptors each: client and upstream), not the limits.max_connections = \
                 {max} configured (about {need} descriptors): past that, accepting fails with \
                 EMFILE, the listener backs off and retries (logged as `accept failed`), and \
                 upstream connects can fail with 502"
            ),
        )
        .fix(format!(
            "raise it to {need}: `LimitNOFILE={need}` in the systemd unit, `ulimit -n {need}` in \
             the shell that starts Rampart (the hard limit must allow it), or lower \
             limits.max_connections to {reachable}"
        )),
    ]
}

/// Reads one sysctl as a list of numbers.
fn sysctl(name: &str) -> Option<Vec<u64>> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().map(|v| v.parse().ok()).collect()
}

/// `net.core.somaxconn`, `net.ipv4.tcp_max_syn_backlog`, `net.ipv4.ip_local_port_range`,
/// `net.ipv4.tcp_fastopen` (when a listener uses it), `fs.nr_open` and `net.ipv4.tcp_tw_reuse`.
pub(super) fn kernel(raw: &RawConfig) -> Vec<Finding> {
    let backlog = u64::from(raw.listeners.iter().map(|l| l.backlog).max().unwrap_or(0));
    let mut out = Vec::new();
    let mut read = |name: &'static str, f: &mut dyn FnMut(&[u64]) -> Finding| match sysctl(name) {
        Some(v) if !v.is_empty() => out.push(f(&v)),
        _ => out.push(Finding::new(
            "kernel",
            Severity::Info,
            name,
            "not readable (not Linux, or /proc/sys hidden); skipped",
        )),
    };
    read("net.core.somaxconn", &mut |v| {
        backlog_finding(
            "net.core.somaxconn",
            v[0],
            backlog,
            "caps every listen backlog",
        )
    });
    read("net.ipv4.tcp_max_syn_backlog", &mut |v| {
        backlog_finding(
            "net.ipv4.tcp_max_syn_backlog",
            v[0],
            backlog,
            "holds half-open connections",
        )
    });
    read("net.ipv4.ip_local_port_range", &mut |v| port_range(v, raw));
    if raw.listeners.iter().any(|l| *l.fast_open > 0) {
        read("net.ipv4.tcp_fastopen", &mut |v| fast_open_finding(v[0]));
    }
    read("fs.nr_open", &mut |v| {
        let need = raw.limits.max_connections as u64 * FDS_PER_CONNECTION + FDS_RESERVE;
        if v[0] < need {
            Finding::new("kernel", Severity::Warning, "fs.nr_open", format!(
                "{} is below the {need} descriptors limits.max_connections may need; no process \
                 can raise its fd limit past it", v[0]))
            .fix(format!("sysctl -w fs.nr_open={need}"))
        } else {
            Finding::new("kernel", Severity::Ok, "fs.nr_open", v[0].to_string())
        }
    });
    read("net.ipv4.tcp_tw_reuse", &mut |v| {
        if v[0] == 0 {
            Finding::new(
                "kernel",
                Severity::Info,
                "net.ipv4.tcp_tw_reuse",
                "0: upstream connections in TIME_WAIT keep their local ports until it expires",
            )
            .fix("sysctl -w net.ipv4.tcp_tw_reuse=1 if upstream connection churn exhausts ports")
        } else {
            Finding::new(
                "kernel",
                Severity::Ok,
                "net.ipv4.tcp_tw_reuse",
                v[0].to_string(),
            )
        }
    });
    out
}

fn backlog_finding(name: &'static str, value: u64, backlog: u64, what: &str) -> Finding {
    if value < backlog {
        Finding::new(
            "kernel",
            Severity::Warning,
            name,
            format!("{value} {what} and is below the configured listener backlog of {backlog}: the kernel silently uses {value}"),
        )
        .fix(format!("sysctl -w {name}={backlog} (and persist it in /etc/sysctl.d/)"))
    } else {
        Finding::new(
            "kernel",
            Severity::Ok,
            name,
            format!("{value} (backlog {backlog})"),
        )
    }
}

/// Listeners with `fast_open` need the kernel's server side of TCP Fast Open (bit 2).
fn fast_open_finding(value: u64) -> Finding {
    let name = "net.ipv4.tcp_fastopen";
    if value & 2 == 0 {
        Finding::new(
            "kernel",
            Severity::Warning,
            name,
            format!("{value}: the kernel accepts no Fast Open data from clients, so listeners' `fast_open` has no effect"),
        )
        .fix(format!("sysctl -w {name}={} (and persist it in /etc/sysctl.d/)", value | 2))
    } else {
        Finding::new("kernel", Severity::Ok, name, value.to_string())
    }
}

/// Local ports for upstream connections: each target can have at most this many at once.
fn port_range(v: &[u64], raw: &RawConfig) -> Finding {
    let name = "net.ipv4.ip_local_port_range";
    let (low, high) = (v[0], v.get(1).copied().unwrap_or(v[0]));
    let ports = high.saturating_sub(low) + 1;
    let max = raw.limits.max_connections as u64;
    if ports < 10_000 || (max > 0 && ports < max) {
        Finding::new(
            "kernel",
            Severity::Warning,
            name,
            format!("{low}-{high} gives {ports} local ports per upstream target; busy targets can run out (EADDRNOTAVAIL)"),
        )
        .fix(format!("sysctl -w {name}=\"1024 65535\""))
    } else {
        Finding::new(
            "kernel",
            Severity::Ok,
            name,
            format!("{low}-{high} ({ports} ports per upstream target)"),
        )
    }
}

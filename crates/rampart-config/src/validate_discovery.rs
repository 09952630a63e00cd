//! Checks of `[upstreams.discovery]`: one source, well-formed names and resolvers, sane TTL
//! bounds, and no static targets beside it. The discovery file itself is read when the config
//! is compiled (this crate does no I/O beyond the config file).

use std::net::IpAddr;

use crate::Located;
use crate::diag::ConfigError;
use crate::load::Positions;
use crate::model::{Discovery, RawConfig, Upstream};
use crate::syntax;

/// Every problem with the `[upstreams.discovery]` sections of `raw`.
pub(crate) fn validate(raw: &RawConfig, positions: &Positions) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (i, u) in raw.upstreams.iter().enumerate() {
        let Some(d) = &u.discovery else { continue };
        let path = format!("{}.discovery", positions.item("upstreams", i));
        check_upstream(&mut errors, &path, u, d);
        check_not_passthrough(&mut errors, &path, raw, u);
    }
    errors
}

fn err<T>(value: &Located<T>, path: impl Into<String>, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(Some(value.span()), path, msg)
}

fn check_upstream(errors: &mut Vec<ConfigError>, path: &str, u: &Upstream, d: &Discovery) {
    let sources = [d.dns.is_some(), d.srv.is_some(), d.file.is_some()];
    if sources.iter().filter(|s| **s).count() != 1 {
        errors.push(err(
            &u.name,
            path,
            "set exactly one of `dns` (\"host:port\"), `srv` (an SRV name) or `file` (a target list)",
        ));
    }
    if let Some(first) = u.targets.first() {
        errors.push(err(
            first,
            path.replace(".discovery", ".targets"),
            "`targets` must be empty when `[upstreams.discovery]` supplies the targets",
        ));
    }
    if let Some(dns) = &d.dns
        && let Err(msg) = dns_host_port(dns)
    {
        errors.push(err(dns, format!("{path}.dns"), msg));
    }
    if let Some(srv) = &d.srv
        && let Err(msg) = syntax::check_dns_name(srv)
    {
        errors.push(err(srv, format!("{path}.srv"), msg));
    }
    if let Some(file) = &d.file
        && file.trim().is_empty()
    {
        errors.push(err(file, format!("{path}.file"), "a file path is needed"));
    }
    for (i, r) in d.resolvers.iter().enumerate() {
        if syntax::parse_dns_server(r).is_none() {
            errors.push(err(
                r,
                format!("{path}.resolvers[{i}]"),
                format!(
                    "invalid DNS server {:?}: expected \"ip\" or \"ip:port\"",
                    r.get()
                ),
            ));
        }
    }
    if d.min_ttl.get().is_zero() || d.min_ttl.get() > d.max_ttl.get() {
        errors.push(err(
            &u.name,
            format!("{path}.min_ttl"),
            "min_ttl must be greater than 0s and at most max_ttl",
        ));
    }
}

/// TLS passthrough forwards to static targets only.
fn check_not_passthrough(errors: &mut Vec<ConfigError>, path: &str, raw: &RawConfig, u: &Upstream) {
    let name = u.name.as_str();
    let used = raw
        .listeners
        .iter()
        .filter_map(|l| l.passthrough.as_ref())
        .any(|p| {
            p.default.as_ref().is_some_and(|d| d.as_str() == name)
                || p.sni.values().any(|v| v.as_str() == name)
        });
    if used {
        errors.push(err(
            &u.name,
            path,
            "a TLS passthrough listener forwards to this upstream: passthrough needs static `targets`",
        ));
    }
}

/// `host:port` with a DNS name or an IP literal and a port above 0.
fn dns_host_port(text: &str) -> Result<(), String> {
    let expected =
        || format!("invalid {text:?}: expected \"host:port\", like \"api.internal:8080\"");
    let (host, port) = text.rsplit_once(':').ok_or_else(expected)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(expected()),
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    syntax::check_dns_name(host).map_err(|m| format!("invalid {text:?}: {m}"))
}

#[cfg(test)]
mod tests {
    fn errors(discovery: &str, targets: &str) -> String {
        let text = format!(
            "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n\n[[upstreams]]\nname = \"u\"\ntargets = [{targets}]\n[upstreams.discovery]\n{discovery}\n\n[[routes]]\nname = \"r\"\nlisteners = [\"l\"]\npath = \"/\"\nupstream = \"u\"\n"
        );
        crate::load_errors(&text)
    }

    #[test]
    fn each_source_alone_is_accepted() {
        for d in [
            "dns = \"api.internal:8080\"",
            "srv = \"_http._tcp.api.internal\"",
            "file = \"targets.json\"\n",
            "dns = \"api.internal:8080\"\nresolvers = [\"127.0.0.1:5353\", \"::1\", \"[::1]:53\"]\nmin_ttl = \"2s\"\nmax_ttl = \"30s\"\nfamily = \"ipv4\"",
        ] {
            assert_eq!(errors(d, ""), "", "{d}");
        }
    }

    #[test]
    fn none_or_two_sources_are_refused() {
        assert!(errors("min_ttl = \"1s\"", "").contains("exactly one of"));
        assert!(errors("dns = \"a.b:1\"\nsrv = \"_x._tcp.b\"", "").contains("exactly one of"));
    }

    #[test]
    fn static_targets_beside_discovery_are_refused() {
        let e = errors("dns = \"a.b:1\"", "\"127.0.0.1:1\"");
        assert!(e.contains("upstreams[0].targets"), "{e}");
        assert!(e.contains("must be empty"), "{e}");
    }

    #[test]
    fn bad_names_resolvers_and_ttls_name_their_key() {
        let e = errors("dns = \"api.internal\"", "");
        assert!(
            e.contains("discovery.dns") && e.contains("host:port"),
            "{e}"
        );
        let e = errors("dns = \"bad host:80\"", "");
        assert!(e.contains("discovery.dns"), "{e}");
        let e = errors("srv = \"_http._tcp.exa mple\"", "");
        assert!(e.contains("discovery.srv"), "{e}");
        let e = errors("dns = \"a.b:1\"\nresolvers = [\"dns.google\"]", "");
        assert!(e.contains("discovery.resolvers[0]"), "{e}");
        let e = errors("dns = \"a.b:1\"\nmin_ttl = \"2m\"\nmax_ttl = \"1m\"", "");
        assert!(e.contains("discovery.min_ttl"), "{e}");
    }

    #[test]
    fn unknown_keys_and_families_are_refused() {
        assert!(errors("dns = \"a.b:1\"\nttl = \"1s\"", "").contains("ttl"));
        assert!(errors("dns = \"a.b:1\"\nfamily = \"ipv5\"", "").contains("family"));
    }

    #[test]
    fn a_passthrough_upstream_needs_static_targets() {
        let text = "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n\n[[listeners]]\nname = \"tls\"\nbind = \"127.0.0.1:0\"\n[listeners.passthrough]\ndefault = \"u\"\n\n[[upstreams]]\nname = \"u\"\n[upstreams.discovery]\ndns = \"a.b:443\"\n\n[[routes]]\nname = \"r\"\nlisteners = [\"l\"]\npath = \"/\"\nupstream = \"u\"\n";
        let e = crate::load_errors(text);
        assert!(e.contains("passthrough needs static"), "{e}");
    }
}

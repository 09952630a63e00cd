//! Checks of the TLS sections that serde alone cannot express: conflicting listener modes,
//! settings that only make sense together, names and header names. Files are not opened here
//! (this crate does no I/O beyond the config file): compiling the config reads and verifies them.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::Located;
use crate::diag::{ConfigError, suggest};
use crate::load::Positions;
use crate::model::{
    ClientAuth, ClientCertRequirement, Listener, ListenerTls, Passthrough, RawConfig, Upstream,
    UpstreamTls,
};
use crate::syntax;

/// Every TLS-related problem in `raw`.
pub(crate) fn validate(
    raw: &RawConfig,
    incomplete: &[&str],
    positions: &Positions,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let upstreams: Vec<&str> = raw.upstreams.iter().map(|u| u.name.as_str()).collect();
    let check_refs = !incomplete.contains(&"upstreams");
    for (i, l) in raw.listeners.iter().enumerate() {
        let path = positions.item("listeners", i);
        listener(&mut errors, &path, l, &upstreams, check_refs);
    }
    for (i, u) in raw.upstreams.iter().enumerate() {
        if let Some(tls) = &u.tls {
            let path = format!("{}.tls", positions.item("upstreams", i));
            upstream_tls(&mut errors, &path, u, tls);
        }
    }
    let passthrough: Vec<&str> = raw
        .listeners
        .iter()
        .filter(|l| l.passthrough.is_some() && l.tls.is_none())
        .map(|l| l.name.as_str())
        .collect();
    for (i, r) in raw.routes.iter().enumerate() {
        let path = positions.item("routes", i);
        for (j, name) in r.listeners.iter().enumerate() {
            if passthrough.contains(&name.as_str()) {
                errors.push(err(
                    name,
                    format!("{path}.listeners[{j}]"),
                    format!(
                        "listener {:?} forwards TLS by SNI (passthrough) and serves no routes",
                        name.get()
                    ),
                ));
            }
        }
        if let Some(cc) = &r.client_cert {
            client_cert(&mut errors, &format!("{path}.client_cert"), cc);
        }
    }
    errors
}

fn err<T>(at: &Located<T>, path: impl Into<String>, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(Some(at.span()), path, msg)
}

fn listener(
    errors: &mut Vec<ConfigError>,
    path: &str,
    l: &Listener,
    upstreams: &[&str],
    check_refs: bool,
) {
    if l.redirect_https.is_some() && (l.tls.is_some() || l.passthrough.is_some()) {
        let other = if l.tls.is_some() {
            "tls"
        } else {
            "passthrough"
        };
        errors.push(err(
            &l.name,
            path,
            format!("`redirect_https` is for a cleartext listener; this one also has `{other}`"),
        ));
    }
    if let (Some(tls), Some(p)) = (&l.tls, &l.passthrough) {
        mixed(errors, path, tls, p);
    }
    if let Some(tls) = &l.tls {
        listener_tls(errors, &format!("{path}.tls"), l, tls);
    }
    if let Some(r) = &l.redirect_https
        && ![301, 302, 307, 308].contains(r.status.get())
    {
        errors.push(err(
            &r.status,
            format!("{path}.redirect_https.status"),
            format!(
                "{} is not a redirect status that keeps the method: expected 301, 302, 307 or 308",
                r.status.get()
            ),
        ));
    }
    if let Some(p) = &l.passthrough {
        passthrough(
            errors,
            &format!("{path}.passthrough"),
            l,
            p,
            upstreams,
            check_refs,
        );
    }
}

fn listener_tls(errors: &mut Vec<ConfigError>, path: &str, l: &Listener, tls: &ListenerTls) {
    if tls.certificates.is_empty() {
        errors.push(err(
            &l.name,
            format!("{path}.certificates"),
            "a TLS listener needs at least one certificate (`[[listeners.tls.certificates]]` with `cert` and `key`)",
        ));
    }
    let defaults = tls.certificates.iter().filter(|c| c.default).count();
    if defaults > 1 {
        errors.push(err(
            &l.name,
            format!("{path}.certificates"),
            format!("{defaults} certificates are marked `default = true`; at most one may be"),
        ));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, c) in tls.certificates.iter().enumerate() {
        let cpath = format!("{path}.certificates[{i}]");
        for (key, file) in [("cert", &c.cert), ("key", &c.key)] {
            if file.trim().is_empty() {
                errors.push(err(file, format!("{cpath}.{key}"), "must not be empty"));
            }
        }
        for (j, name) in c.names.iter().enumerate() {
            if name.as_str() == "*" {
                errors.push(err(
                    name,
                    format!("{cpath}.names[{j}]"),
                    "`*` is not an SNI name: mark the certificate `default = true` instead",
                ));
                continue;
            }
            if let Err(msg) = syntax::check_host_pattern(name) {
                errors.push(err(name, format!("{cpath}.names[{j}]"), msg));
            }
            let key = name.to_ascii_lowercase();
            if let Some(first) = seen.insert(key, i)
                && first != i
            {
                errors.push(err(
                    name,
                    format!("{cpath}.names[{j}]"),
                    format!(
                        "{:?} is already served by {path}.certificates[{first}]",
                        name.get()
                    ),
                ));
            }
        }
    }
    match (tls.client_auth, &tls.client_ca) {
        (ClientAuth::None, Some(ca)) => errors.push(err(
            ca,
            format!("{path}.client_ca"),
            "`client_ca` is set but `client_auth` is \"none\": set `client_auth = \"required\"` (or \"optional\") or remove `client_ca`",
        )),
        (ClientAuth::Optional | ClientAuth::Required, None) => errors.push(err(
            &l.name,
            format!("{path}.client_ca"),
            "`client_auth` asks for client certificates: `client_ca` (a PEM bundle of the CAs they must chain to) is required",
        )),
        _ => {}
    }
    if !tls.client_crl.is_empty() && tls.client_ca.is_none() {
        errors.push(err(
            &tls.client_crl[0],
            format!("{path}.client_crl"),
            "`client_crl` needs `client_ca` and `client_auth`",
        ));
    }
    if tls.early_data && tls.client_auth != ClientAuth::None {
        errors.push(err(
            &l.name,
            format!("{path}.early_data"),
            "early data (0-RTT) cannot be combined with client certificates: the certificate is only verified after the early data was read",
        ));
    }
    if tls.early_data && tls.session_cache == 0 {
        errors.push(err(
            &l.name,
            format!("{path}.early_data"),
            "early data needs the server-side session cache (single-use resumption): set `session_cache` above 0",
        ));
    }
    if tls.early_data
        && (tls.max_early_data.get() == 0 || tls.max_early_data.get() > u64::from(u32::MAX))
    {
        errors.push(err(
            &l.name,
            format!("{path}.max_early_data"),
            "must be between 1 byte and 4 GiB",
        ));
    }
    let h = &tls.client_cert_headers;
    for (key, name) in [
        ("fingerprint", &h.fingerprint),
        ("subject", &h.subject),
        ("sans", &h.sans),
    ] {
        if !syntax::is_token(name) {
            errors.push(err(
                &l.name,
                format!("{path}.client_cert_headers.{key}"),
                format!("invalid header name {name:?}"),
            ));
        }
    }
    if let Some(hsts) = &tls.hsts
        && hsts.preload
        && (!hsts.include_subdomains || hsts.max_age.get().as_secs() < 31_536_000)
    {
        errors.push(err(
            &l.name,
            format!("{path}.hsts.preload"),
            "preload lists require `include_subdomains = true` and a `max_age` of at least 365d",
        ));
    }
    if tls.handshake_timeout.is_some_and(|t| t.get().is_zero()) {
        errors.push(err(
            &l.name,
            format!("{path}.handshake_timeout"),
            "must be greater than 0s",
        ));
    }
}

/// A listener with both `tls` and `passthrough`: the names in `passthrough.sni` go raw to
/// their upstreams, every other connection is terminated.
fn mixed(errors: &mut Vec<ConfigError>, path: &str, tls: &ListenerTls, p: &Passthrough) {
    if let Some(d) = &p.default {
        errors.push(err(
            d,
            format!("{path}.passthrough.default"),
            "this listener also has `tls`: names not in `passthrough.sni` are terminated, so there is no passthrough `default`; remove it (or the `tls` section)",
        ));
    }
    for (name, upstream) in &p.sni {
        for (i, c) in tls.certificates.iter().enumerate() {
            for (j, served) in c.names.iter().enumerate() {
                if served.eq_ignore_ascii_case(name) {
                    errors.push(err(
                        upstream,
                        format!("{path}.passthrough.sni.{name:?}"),
                        format!(
                            "{name:?} is passed through and also served by {path}.tls.certificates[{i}].names[{j}]: a name is either passed through or terminated"
                        ),
                    ));
                }
            }
        }
    }
}

fn passthrough(
    errors: &mut Vec<ConfigError>,
    path: &str,
    l: &Listener,
    p: &Passthrough,
    upstreams: &[&str],
    check_refs: bool,
) {
    if p.sni.is_empty() && (p.default.is_none() || l.tls.is_some()) {
        errors.push(err(
            &l.name,
            path,
            "a passthrough listener needs `sni` entries (name = upstream) or a `default` upstream",
        ));
    }
    for (name, upstream) in &p.sni {
        if let Err(msg) = syntax::check_host_pattern(name).and_then(|()| {
            (name != "*")
                .then_some(())
                .ok_or_else(|| "use `default` for any name".to_owned())
        }) {
            errors.push(err(upstream, format!("{path}.sni.{name:?}"), msg));
        }
        if check_refs && !upstreams.contains(&upstream.as_str()) {
            errors.push(err(
                upstream,
                format!("{path}.sni.{name:?}"),
                unknown_upstream(upstream, upstreams),
            ));
        }
    }
    if let Some(d) = &p.default
        && check_refs
        && !upstreams.contains(&d.as_str())
    {
        errors.push(err(
            d,
            format!("{path}.default"),
            unknown_upstream(d, upstreams),
        ));
    }
    for (key, d) in [
        ("client_hello_timeout", p.client_hello_timeout),
        ("idle_timeout", p.idle_timeout),
    ] {
        if d.get().is_zero() {
            errors.push(err(
                &l.name,
                format!("{path}.{key}"),
                "must be greater than 0s",
            ));
        }
    }
}

fn unknown_upstream(name: &Located<String>, defined: &[&str]) -> String {
    let hint = suggest(name, defined.iter().copied())
        .map(|h| format!(" (did you mean {h:?}?)"))
        .unwrap_or_default();
    format!("unknown upstream {:?}{hint}", name.get())
}

fn upstream_tls(errors: &mut Vec<ConfigError>, path: &str, u: &Upstream, tls: &UpstreamTls) {
    match (&tls.client_cert, &tls.client_key) {
        (Some(c), None) => errors.push(err(
            c,
            format!("{path}.client_key"),
            "`client_cert` needs `client_key`",
        )),
        (None, Some(k)) => errors.push(err(
            k,
            format!("{path}.client_cert"),
            "`client_key` needs `client_cert`",
        )),
        _ => {}
    }
    if tls.insecure_skip_verify
        && let Some(ca) = &tls.ca
    {
        errors.push(err(
            ca,
            format!("{path}.ca"),
            "`ca` has no effect with `insecure_skip_verify = true`: remove one of them",
        ));
    }
    if let Some(name) = &tls.server_name
        && name.parse::<IpAddr>().is_err()
        && (name.contains('*') || syntax::check_host_pattern(name).is_err())
    {
        errors.push(err(
            name,
            format!("{path}.server_name"),
            format!(
                "invalid server name {:?}: expected a DNS name or an IP address",
                name.get()
            ),
        ));
    }
    let _ = u;
}

fn client_cert(errors: &mut Vec<ConfigError>, path: &str, cc: &Located<ClientCertRequirement>) {
    if !cc.required && cc.fingerprints.is_empty() && cc.subjects.is_empty() {
        errors.push(err(
            cc,
            path,
            "`client_cert` needs `required = true` (any verified certificate), `fingerprints` or `subjects`",
        ));
    }
    for (i, f) in cc.fingerprints.iter().enumerate() {
        if normalize_fingerprint(f).is_none() {
            errors.push(err(
                f,
                format!("{path}.fingerprints[{i}]"),
                "expected a SHA-256 fingerprint: 64 hex digits (colons allowed)",
            ));
        }
    }
    for (i, s) in cc.subjects.iter().enumerate() {
        if s.trim().is_empty() {
            errors.push(err(s, format!("{path}.subjects[{i}]"), "must not be empty"));
        }
    }
}

/// A SHA-256 fingerprint as 64 lowercase hex digits, from hex with optional colons.
#[must_use]
pub fn normalize_fingerprint(text: &str) -> Option<String> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXED: &str = "[[listeners]]\nname = \"https\"\nbind = \"127.0.0.1:0\"\n[listeners.passthrough]\nsni = { \"legacy.test\" = \"legacy\" }\n[listeners.tls]\n[[listeners.tls.certificates]]\ncert = \"a.crt\"\nkey = \"a.key\"\nnames = [\"a.test\"]\n\n[[upstreams]]\nname = \"legacy\"\ntargets = [\"127.0.0.1:9\"]\n\n[[routes]]\nname = \"r\"\nlisteners = [\"https\"]\nupstream = \"legacy\"\n";

    #[test]
    fn one_listener_may_pass_some_names_through_and_terminate_the_rest() {
        assert_eq!(crate::load_errors(MIXED), "");
    }

    #[test]
    fn a_name_both_passed_through_and_served_is_refused_at_its_key() {
        let text = MIXED.replace("[\"a.test\"]", "[\"a.test\", \"Legacy.test\"]");
        let e = crate::load_errors(&text);
        assert!(
            e.contains("listeners[0].passthrough.sni.\"legacy.test\"")
                && e.contains("also served by listeners[0].tls.certificates[0].names[1]"),
            "{e}"
        );
        let text = MIXED.replace("[listeners.tls]", "default = \"legacy\"\n[listeners.tls]");
        let e = crate::load_errors(&text);
        assert!(e.contains("passthrough.default"), "{e}");
        let text = MIXED.replace("[[listeners]]\n", "[[listeners]]\nredirect_https = {}\n");
        assert!(crate::load_errors(&text).contains("redirect_https"));
    }

    #[test]
    fn fingerprints_accept_colons_and_case() {
        let colons = "AB:".repeat(31) + "AB";
        assert_eq!(normalize_fingerprint(&colons), Some("ab".repeat(32)));
        assert_eq!(normalize_fingerprint("abc"), None);
        assert_eq!(normalize_fingerprint(&"zz".repeat(32)), None);
    }
}

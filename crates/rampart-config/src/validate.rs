//! Semantic checks over the raw config: references, duplicates, conflicts, value ranges and
//! syntaxes that serde alone cannot express. Every problem is collected, none stops the others.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;

use crate::Located;
use crate::diag::{ConfigError, suggest};
use crate::load::Positions;
use crate::model::{
    HeaderMatch, Listener, QueryMatch, RawConfig, Route, Upstream, UpstreamProtocol,
};
use crate::syntax;

/// Checks `raw` and returns every problem found. References into the `incomplete` sections
/// (where an item failed to deserialize and was reported already) are not checked, to avoid
/// follow-on errors.
pub(crate) fn validate(
    raw: &RawConfig,
    incomplete: &[&str],
    positions: &Positions,
) -> Vec<ConfigError> {
    let mut v = Checker {
        errors: Vec::new(),
        incomplete: incomplete.to_vec(),
        positions,
    };
    v.settings(raw);
    v.listeners(&raw.listeners);
    v.upstreams(&raw.upstreams);
    let listener_names: Vec<&str> = raw.listeners.iter().map(|l| l.name.as_str()).collect();
    let upstream_names: Vec<&str> = raw.upstreams.iter().map(|u| u.name.as_str()).collect();
    v.unique_names("routes", raw.routes.iter().map(|r| &r.name));
    for (i, route) in raw.routes.iter().enumerate() {
        let path = positions.item("routes", i);
        v.route(&path, route, &listener_names, &upstream_names);
    }
    v.errors
}

struct Checker<'a> {
    errors: Vec<ConfigError>,
    incomplete: Vec<&'a str>,
    positions: &'a Positions,
}

impl Checker<'_> {
    fn error(
        &mut self,
        span: Option<Range<usize>>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError::new(span, path, message));
    }

    fn at<T>(&mut self, value: &Located<T>, path: impl Into<String>, message: impl Into<String>) {
        self.error(Some(value.span()), path, message);
    }

    fn settings(&mut self, raw: &RawConfig) {
        if raw.server.workers > 1024 {
            self.error(
                None,
                "server.workers",
                format!(
                    "{} workers is more than the maximum of 1024 (0 means one per core)",
                    raw.server.workers
                ),
            );
        }
        if !syntax::is_token(&raw.server.name) {
            self.error(
                None,
                "server.name",
                format!(
                    "invalid name {:?}: expected letters, digits and `-._~`",
                    raw.server.name
                ),
            );
        }
        if raw.access_log.path.trim().is_empty() {
            self.error(
                None,
                "access_log.path",
                "must not be empty: use \"stdout\", \"stderr\" or a file path",
            );
        }
        let limits = &raw.limits;
        if limits.max_header_count == 0 {
            self.error(None, "limits.max_header_count", "must be at least 1");
        }
        if limits.max_uri_length.get() < 16 {
            self.error(None, "limits.max_uri_length", "must be at least 16 bytes");
        }
        if limits.max_header_size.get() < 256 {
            self.error(None, "limits.max_header_size", "must be at least 256 bytes");
        }
        for (name, d) in [
            ("timeouts.header_read", raw.timeouts.header_read),
            ("timeouts.keepalive", raw.timeouts.keepalive),
            ("timeouts.tunnel_idle", raw.timeouts.tunnel_idle),
            ("timeouts.send", raw.timeouts.send),
        ] {
            if d.get().is_zero() {
                self.error(None, name, "must be greater than 0s");
            }
        }
    }

    fn unique_names<'a>(
        &mut self,
        section: &str,
        names: impl Iterator<Item = &'a Located<String>>,
    ) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, name) in names.enumerate() {
            let path = format!("{}.name", self.positions.item(section, i));
            if !syntax::is_name(name) {
                self.at(
                    name,
                    &path,
                    format!(
                        "invalid name {:?}: expected 1 to 64 letters, digits, `-`, `_` or `.`",
                        name.get()
                    ),
                );
            }
            if let Some(first) = seen.insert(name.as_str(), i) {
                let first = self.positions.item(section, first);
                self.at(
                    name,
                    &path,
                    format!("duplicate name {:?}: already used by {first}", name.get()),
                );
            }
        }
    }

    fn listeners(&mut self, listeners: &[Listener]) {
        if listeners.is_empty() && !self.incomplete.contains(&"listeners") {
            self.error(
                None,
                "listeners",
                "no listener is defined: add a `[[listeners]]` table with `name` and `bind`",
            );
        }
        self.unique_names("listeners", listeners.iter().map(|l| &l.name));
        for (i, a) in listeners.iter().enumerate() {
            let path = self.positions.item("listeners", i);
            if a.backlog == 0 {
                self.error(
                    Some(a.name.span()),
                    format!("{path}.backlog"),
                    "must be at least 1",
                );
            }
            if *a.fast_open > a.backlog {
                self.at(
                    &a.fast_open,
                    format!("{path}.fast_open"),
                    format!(
                        "{} is more than the listener's backlog of {}: Fast Open connections wait in the accept queue, so at most `backlog` of them can",
                        *a.fast_open, a.backlog
                    ),
                );
            }
            for b in listeners.iter().take(i) {
                if binds_conflict(*a.bind, *b.bind) {
                    self.at(&a.bind, format!("{path}.bind"), format!(
                        "{} conflicts with listener {:?} on {} (same port, overlapping address)",
                        *a.bind, b.name.get(), *b.bind
                    ));
                }
            }
        }
    }

    fn upstreams(&mut self, upstreams: &[Upstream]) {
        self.unique_names("upstreams", upstreams.iter().map(|u| &u.name));
        for (i, u) in upstreams.iter().enumerate() {
            let path = self.positions.item("upstreams", i);
            if u.targets.is_empty() && u.discovery.is_none() {
                self.at(
                    &u.name,
                    format!("{path}.targets"),
                    "an upstream needs at least one target (\"host:port\") or `[upstreams.discovery]`",
                );
            }
            for (t, target) in u.targets.iter().enumerate() {
                if let Err(msg) = syntax::parse_target(target) {
                    self.at(target, format!("{path}.targets[{t}]"), msg);
                }
            }
            self.upstream_protocol(&path, u);
            for (key, d) in [
                ("connect_timeout", u.connect_timeout),
                ("request_timeout", u.request_timeout),
                ("idle_timeout", u.idle_timeout),
            ] {
                if d.get().is_zero() {
                    self.at(&u.name, format!("{path}.{key}"), "must be greater than 0s");
                }
            }
        }
    }

    /// `h2` needs TLS; `h2c` is cleartext only.
    fn upstream_protocol(&mut self, path: &str, u: &Upstream) {
        let tls = u.tls.as_ref().is_some_and(|t| t.enabled);
        match u.protocol {
            UpstreamProtocol::H2 if !tls => self.at(
                &u.name,
                format!("{path}.protocol"),
                "\"h2\" is HTTP/2 over TLS: add an enabled `[upstreams.tls]` section, or use \"h2c\" for cleartext HTTP/2",
            ),
            UpstreamProtocol::H2c if tls => self.at(
                &u.name,
                format!("{path}.protocol"),
                "\"h2c\" is cleartext HTTP/2, but this upstream uses TLS: use \"h2\"",
            ),
            _ => {}
        }
        if let Some(pp) = &u.proxy_protocol
            && u.protocol != UpstreamProtocol::Http1
        {
            self.at(
                pp,
                format!("{path}.proxy_protocol"),
                "a PROXY protocol header names one client, but HTTP/2 connections carry many: use protocol = \"http1\"",
            );
        }
    }

    fn route(&mut self, path: &str, r: &Route, listeners: &[&str], upstreams: &[&str]) {
        self.references(
            &format!("{path}.listeners"),
            &r.listeners,
            listeners,
            "listener",
        );
        for (i, host) in r.hosts.iter().enumerate() {
            if let Err(msg) = syntax::check_host_pattern(host) {
                self.at(host, format!("{path}.hosts[{i}]"), msg);
            }
        }
        self.path_matchers(path, r);
        self.methods(&format!("{path}.methods"), &r.methods);
        self.methods(&format!("{path}.allow_methods"), &r.allow_methods);
        for (i, h) in r.headers.iter().enumerate() {
            self.header_match(&format!("{path}.headers[{i}]"), h);
        }
        for (i, q) in r.query.iter().enumerate() {
            self.query_match(&format!("{path}.query[{i}]"), q);
        }
        self.handler(path, r, upstreams);
        self.rewrite(path, r);
        if r.timeout.is_some_and(|t| t.get().is_zero()) {
            self.at(
                &r.name,
                format!("{path}.timeout"),
                "must be greater than 0s",
            );
        }
    }

    fn references(&mut self, path: &str, refs: &[Located<String>], defined: &[&str], what: &str) {
        if self.incomplete.contains(&format!("{what}s").as_str()) {
            return;
        }
        for (i, name) in refs.iter().enumerate() {
            if !defined.contains(&name.as_str()) {
                let msg = unknown_reference(what, name, defined);
                self.at(name, format!("{path}[{i}]"), msg);
            }
        }
    }

    fn path_matchers(&mut self, path: &str, r: &Route) {
        let given: Vec<&str> = [
            r.path.as_ref().map(|_| "path"),
            r.path_prefix.as_ref().map(|_| "path_prefix"),
            r.path_template.as_ref().map(|_| "path_template"),
            r.path_regex.as_ref().map(|_| "path_regex"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            self.at(&r.name, path, format!("a route takes at most one of `path`, `path_prefix`, `path_template`, `path_regex`; found {}", given.join(", ")));
        }
        for (key, value) in [("path", &r.path), ("path_prefix", &r.path_prefix)] {
            if let Some(p) = value
                && let Err(msg) = syntax::check_path(p)
            {
                self.at(p, format!("{path}.{key}"), msg);
            }
        }
        if let Some(t) = &r.path_template
            && let Err(msg) = syntax::check_template(t)
        {
            self.at(t, format!("{path}.path_template"), msg);
        }
    }

    fn methods(&mut self, path: &str, methods: &[Located<String>]) {
        for (i, m) in methods.iter().enumerate() {
            if !syntax::is_token(m) {
                self.at(
                    m,
                    format!("{path}[{i}]"),
                    format!(
                        "invalid method {:?}: expected a token such as \"GET\"",
                        m.get()
                    ),
                );
            } else if m.chars().any(|c| c.is_ascii_lowercase()) {
                self.at(
                    m,
                    format!("{path}[{i}]"),
                    format!(
                        "methods are case-sensitive: write {:?}",
                        m.to_ascii_uppercase()
                    ),
                );
            }
        }
    }

    fn header_match(&mut self, path: &str, h: &HeaderMatch) {
        if !syntax::is_token(&h.name) {
            self.at(
                &h.name,
                format!("{path}.name"),
                format!("invalid header name {:?}", h.name.get()),
            );
        }
        self.predicate_forms(
            path,
            &h.name,
            h.value.is_some(),
            h.regex.is_some(),
            h.present,
        );
        if let Some(v) = &h.value
            && !syntax::is_header_value(v)
        {
            self.at(
                &h.name,
                format!("{path}.value"),
                "header values may not contain control characters",
            );
        }
    }

    fn query_match(&mut self, path: &str, q: &QueryMatch) {
        if q.name.is_empty() {
            self.at(&q.name, format!("{path}.name"), "must not be empty");
        }
        self.predicate_forms(
            path,
            &q.name,
            q.value.is_some(),
            q.regex.is_some(),
            q.present,
        );
    }

    fn predicate_forms(
        &mut self,
        path: &str,
        name: &Located<String>,
        value: bool,
        regex: bool,
        present: bool,
    ) {
        if value && regex {
            self.at(name, path, "give either `value` or `regex`, not both");
        }
        if !present && (value || regex) {
            self.at(
                name,
                path,
                "`present = false` cannot be combined with `value` or `regex`",
            );
        }
    }

    fn handler(&mut self, path: &str, r: &Route, upstreams: &[&str]) {
        let handlers: Vec<&str> = [
            r.upstream.as_ref().map(|_| "upstream"),
            r.redirect.as_ref().map(|_| "redirect"),
            r.respond.as_ref().map(|_| "respond"),
            r.echo.then_some("echo"),
            r.static_files.as_ref().map(|_| "static"),
        ]
        .into_iter()
        .flatten()
        .collect();
        match handlers.len() {
            0 => self.at(&r.name, path, "a route needs exactly one handler: `upstream`, `redirect`, `respond`, `static` or `echo = true`"),
            1 => {}
            _ => self.at(&r.name, path, format!("a route takes exactly one handler; found {}", handlers.join(", "))),
        }
        if let Some(u) = &r.upstream
            && !upstreams.contains(&u.as_str())
            && !self.incomplete.contains(&"upstreams")
        {
            let msg = unknown_reference("upstream", u, upstreams);
            self.at(u, format!("{path}.upstream"), msg);
        }
        if let Some(redirect) = &r.redirect {
            if ![301, 302, 303, 307, 308].contains(redirect.status.get()) {
                self.at(
                    &redirect.status,
                    format!("{path}.redirect.status"),
                    format!(
                        "{} is not a redirect status: expected 301, 302, 303, 307 or 308",
                        redirect.status.get()
                    ),
                );
            }
            if redirect.to.is_empty() {
                self.at(
                    &redirect.to,
                    format!("{path}.redirect.to"),
                    "must not be empty",
                );
            }
        }
        if let Some(respond) = &r.respond {
            if !(200..=599).contains(respond.status.get()) {
                self.at(
                    &respond.status,
                    format!("{path}.respond.status"),
                    format!(
                        "{} is not a final status: expected 200 to 599",
                        respond.status.get()
                    ),
                );
            }
            for (name, value) in &respond.headers {
                if !syntax::is_token(name) || !syntax::is_header_value(value) {
                    self.at(
                        &respond.status,
                        format!("{path}.respond.headers.{name}"),
                        "invalid header name or value",
                    );
                }
            }
            if !syntax::is_header_value(&respond.content_type) {
                self.at(
                    &respond.status,
                    format!("{path}.respond.content_type"),
                    "invalid header value",
                );
            }
        }
    }

    fn rewrite(&mut self, path: &str, r: &Route) {
        let Some(rw) = &r.rewrite else { return };
        let path = format!("{path}.rewrite");
        if r.upstream.is_none() && !r.echo {
            self.at(
                &r.name,
                &path,
                "rewrites apply only to routes with `upstream` or `echo`",
            );
        }
        let count = [
            rw.strip_prefix.is_some(),
            rw.replace_prefix.is_some(),
            rw.path_regex.is_some(),
        ]
        .into_iter()
        .filter(|x| *x)
        .count();
        if count > 1 {
            self.at(
                &r.name,
                &path,
                "give at most one of `strip_prefix`, `replace_prefix`, `path_regex`",
            );
        }
        if let Some(p) = &rw.strip_prefix
            && let Err(msg) = syntax::check_path(p)
        {
            self.at(p, format!("{path}.strip_prefix"), msg);
        }
        if let Some(rp) = &rw.replace_prefix {
            for (key, value) in [("from", &rp.from), ("to", &rp.to)] {
                if let Err(msg) = syntax::check_path(value) {
                    self.at(value, format!("{path}.replace_prefix.{key}"), msg);
                }
            }
        }
        if let Some(rx) = &rw.path_regex
            && let Err(msg) = syntax::check_capture_refs(rx.pattern.regex(), &rx.replace)
        {
            self.at(&rx.replace, format!("{path}.path_regex.replace"), msg);
        }
        if let Some(host) = &rw.host
            && let Err(msg) = syntax::check_authority(host)
        {
            self.at(host, format!("{path}.host"), msg);
        }
    }
}

fn unknown_reference(what: &str, name: &Located<String>, defined: &[&str]) -> String {
    let hint = suggest(name, defined.iter().copied())
        .map(|h| format!(" (did you mean {h:?}?)"))
        .unwrap_or_default();
    if defined.is_empty() {
        format!("unknown {what} {:?}: no {what}s are defined", name.get())
    } else {
        let list = defined
            .iter()
            .map(|d| format!("{d:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("unknown {what} {:?}{hint}; defined: {list}", name.get())
    }
}

/// Two listeners conflict when they share a port and family and one address covers the other
/// (an unspecified address such as `0.0.0.0` covers every address of its family). With
/// `SO_REUSEPORT` the kernel would otherwise silently split connections between them.
/// Port 0 (an ephemeral port chosen at bind time) never conflicts.
fn binds_conflict(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn listener_conflicts_cover_wildcards_but_not_other_families() {
        assert!(binds_conflict(addr("0.0.0.0:80"), addr("127.0.0.1:80")));
        assert!(binds_conflict(addr("127.0.0.1:80"), addr("127.0.0.1:80")));
        assert!(!binds_conflict(addr("127.0.0.1:80"), addr("127.0.0.2:80")));
        assert!(!binds_conflict(addr("0.0.0.0:80"), addr("[::]:80")));
        assert!(!binds_conflict(addr("0.0.0.0:80"), addr("0.0.0.0:81")));
        assert!(!binds_conflict(addr("127.0.0.1:0"), addr("127.0.0.1:0")));
    }
}

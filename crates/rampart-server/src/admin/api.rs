//! The JSON documents of the admin API (field names are a contract with `rampart top`).

use serde_json::{Value, json};

use crate::control::Control;
use crate::runtime::Runtime;

/// `GET /status`.
pub(crate) fn status(control: &Control) -> Value {
    let rt = control.shared.runtime();
    let addrs = control.listener_addrs();
    let listeners: Vec<Value> = rt
        .listeners
        .iter()
        .map(|l| {
            let address = addrs
                .iter()
                .find(|(n, _)| **n == *l.name)
                .map_or(l.bind, |(_, a)| *a);
            let protocol = if l.passthrough.is_some() {
                "tls_passthrough"
            } else if l.tls.is_some() {
                "https"
            } else {
                "http"
            };
            json!({ "name": &*l.name, "address": address.to_string(), "protocol": protocol })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_seconds": control.started.elapsed().as_secs(),
        "generation": rt.generation,
        "workers": control.workers.len(),
        "draining": control.shared.is_draining(),
        "listeners": listeners,
    })
}

/// `GET /routes`: every route with what it matches, its stages and its handler.
pub(crate) fn routes(rt: &Runtime) -> Value {
    let raw = rt.config.raw();
    let routes: Vec<Value> = raw
        .routes
        .iter()
        .map(|r| {
            let compiled = rt.routes.iter().find(|c| *c.name == *r.name.as_str());
            let strings = |v: &[rampart_config::Located<String>]| -> Vec<String> {
                v.iter().map(|s| s.get().clone()).collect()
            };
            json!({
                "name": r.name.as_str(),
                "priority": r.priority,
                "listeners": strings(&r.listeners),
                "hosts": strings(&r.hosts),
                "path": r.path.as_ref().map(|p| p.get().clone()),
                "path_prefix": r.path_prefix.as_ref().map(|p| p.get().clone()),
                "path_template": r.path_template.as_ref().map(|p| p.get().clone()),
                "path_regex": r.path_regex.as_ref().map(|p| p.get().as_str().to_owned()),
                "methods": strings(&r.methods),
                "upstream": r.upstream.as_ref().map(|u| u.get().clone()),
                "handler": compiled.map(|c| c.handler_summary()),
                "stages": compiled.map(|c| c.stage_names()),
            })
        })
        .collect();
    json!({ "generation": rt.generation, "routes": routes })
}

/// `GET /upstreams`: every upstream and its targets with their state.
pub(crate) fn upstreams(rt: &Runtime) -> Value {
    let raw = rt.config.raw();
    let upstreams: Vec<Value> = raw
        .upstreams
        .iter()
        .filter_map(|u| rt.upstreams.get(u.name.as_str()))
        .map(|set| {
            json!({
                "name": &*set.name,
                "balance": serde_json::to_value(set.balance).unwrap_or(Value::Null),
                "targets": serde_json::to_value(set.target_statuses()).unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({ "upstreams": upstreams })
}

//! The JSON documents of the admin API (field names are a contract with `rampart top`).

use rampart_server::{AdminHandle, Runtime};
use serde_json::{Value, json};

/// `GET /status`.
pub(crate) fn status(control: &AdminHandle) -> Value {
    let rt = control.runtime();
    let listeners: Vec<Value> = control
        .listeners()
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "address": l.address.to_string(),
                "protocol": l.protocol.as_str(),
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_seconds": control.uptime().as_secs(),
        "generation": rt.generation(),
        "workers": control.workers(),
        "draining": control.is_draining(),
        "listeners": listeners,
    })
}

/// `GET /routes`: every route with what it matches, its stages (and how often each answered
/// or refused a request) and its handler.
pub(crate) fn routes(control: &AdminHandle) -> Value {
    let rt = control.runtime();
    let raw = rt.config().raw();
    let routes: Vec<Value> = raw
        .routes
        .iter()
        .map(|r| {
            let compiled = rt.routes().iter().find(|c| c.name() == r.name.as_str());
            let decisions: serde_json::Map<String, Value> = control
                .stage_decisions(r.name.as_str())
                .into_iter()
                .map(|(stage, answered, refused)| {
                    let counts = json!({ "answered": answered, "refused": refused });
                    (stage.to_owned(), counts)
                })
                .collect();
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
                "stage_decisions": decisions,
            })
        })
        .collect();
    json!({ "generation": rt.generation(), "routes": routes })
}

/// `GET /upstreams`: every upstream and its targets with their state.
pub(crate) fn upstreams(rt: &Runtime) -> Value {
    let raw = rt.config().raw();
    let upstreams: Vec<Value> = raw
        .upstreams
        .iter()
        .filter_map(|u| rt.upstreams().get(u.name.as_str()))
        .map(|set| {
            json!({
                "name": &*set.name,
                "balance": serde_json::to_value(set.balance).unwrap_or(Value::Null),
                "targets": serde_json::to_value(set.target_statuses()).unwrap_or(Value::Null),
                "circuit": serde_json::to_value(set.circuit_status()).unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({ "upstreams": upstreams })
}

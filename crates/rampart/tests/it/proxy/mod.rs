//! End-to-end proxying: a real Rampart between real clients and real origin servers.
//!
//! Every test starts its own gateway (listeners on `127.0.0.1:0`) and origins, bounds every
//! wait with a timeout, and asserts behaviour, never timing.

mod disconnects;
mod errors;
mod forwarding;
mod headers;
mod http2;
mod pooling;

use std::net::SocketAddr;

use rampart_testkit::{TestGateway, raw_request_parsed};
use serde_json::Value;

use crate::support::within;

/// Config for one upstream called `origin` with these targets and extra keys.
fn upstream(name: &str, targets: &[SocketAddr], extra: &str) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[[upstreams]]\nname = \"{name}\"\ntargets = [{}]\n{extra}\n",
        targets.join(", ")
    )
}

/// Config for listener `name` on `127.0.0.1:0` with extra keys.
fn listener(name: &str, extra: &str) -> String {
    format!("[[listeners]]\nname = \"{name}\"\nbind = \"127.0.0.1:0\"\n{extra}\n")
}

/// One listener, one upstream `origin` (with `upstream_extra` keys) and one route to it.
fn one_route_config(origin: SocketAddr, upstream_extra: &str) -> String {
    format!(
        "{}{}[[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        listener("public", ""),
        upstream("origin", &[origin], upstream_extra)
    )
}

/// A gateway with one listener `public` and one catch-all route to `origin`.
fn simple_gateway(origin: SocketAddr) -> TestGateway {
    TestGateway::builder(one_route_config(origin, ""))
        .access_log()
        .start()
}

/// Values of header `name` in an `HttpOrigin` JSON echo.
fn echoed(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

/// The single value of header `name` in an echo (panics if absent or repeated).
fn echoed_one(echo: &Value, name: &str) -> String {
    let values = echoed(echo, name);
    assert_eq!(values.len(), 1, "{name}: {values:?} in {echo}");
    values.into_iter().next().unwrap()
}

/// Sends `GET {path}` with `extra` header lines over a raw connection and parses the JSON echo.
async fn raw_echo(addr: SocketAddr, path: &str, extra: &str) -> Value {
    let request = format!("GET {path} HTTP/1.1\r\nHost: app.example\r\n{extra}\r\n");
    let resp = within(raw_request_parsed(addr, request.as_bytes()))
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    serde_json::from_slice(&resp.body).unwrap()
}

/// The access log line with this request id.
fn log_line(gw: &TestGateway, request_id: &str, min_lines: usize) -> Value {
    let lines = gw.access_log_json(min_lines);
    lines
        .into_iter()
        .find(|l| l["request_id"] == request_id)
        .unwrap_or_else(|| panic!("no access log line for {request_id}"))
}

//! Rampart's integration tests, linked as one test binary: each module is one area and starts
//! real gateways, origins and clients on loopback; `support` holds the helpers several areas
//! share.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod audit;
mod cli;
mod cors;
mod discovery;
mod doctor;
mod grpc;
mod headers;
mod identity;
mod limits;
mod ops;
mod otlp;
mod proxy;
mod proxy_protocol;
mod ratelimit;
mod ratelimit_redis;
mod reload_upgrade;
mod routing;
mod slow_clients;
mod smuggling;
mod streaming;
mod tls;
mod upstream_balance;
mod upstream_faults;
mod upstream_tls;

/// `autotests = false` keeps Cargo from building anything but this binary, so a test file put
/// directly in `tests/` (or a second `tests/*/main.rs`) would silently never run; this fails
/// instead.
#[test]
fn every_integration_test_is_part_of_this_binary() {
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut stray = Vec::new();
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        let is_rs = path.extension().is_some_and(|e| e == "rs");
        let other_main = path.is_dir() && path.file_name() != Some("it".as_ref());
        if is_rs || (other_main && path.join("main.rs").exists()) {
            stray.push(path);
        }
    }
    assert!(
        stray.is_empty(),
        "{stray:?} would not be built; make each a module of tests/it/main.rs"
    );
}

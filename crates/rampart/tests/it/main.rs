//! Rampart's integration tests, linked as one test binary: each module is one area and starts
//! real gateways, origins and clients on loopback; `support` holds the helpers several areas
//! share.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod accept;
mod access_log;
mod audit;
mod auth;
mod cache;
mod cli;
mod compress;
mod cors;
mod decompress;
mod discovery;
mod docs;
mod doctor;
mod grpc;
mod h2_drain;
mod h2_headers;
mod h2_streams;
mod h3;
mod half_close;
mod headers;
mod identity;
mod limits;
mod mirror;
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
mod stage_api;
mod static_files;
mod streaming;
mod structure;
mod testkit_origins;
mod tls;
mod top;
mod traffic;
mod upstream_balance;
mod upstream_circuit;
mod upstream_faults;
mod upstream_hedge;
mod upstream_tls;
mod user_text;
mod welcome;

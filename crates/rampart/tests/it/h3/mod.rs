//! HTTP/3 over QUIC end to end: a quinn + h3 client (and aioquic's, an independent
//! implementation) against a real gateway on 127.0.0.1 UDP: requests through the same
//! pipeline as HTTP/1.1 and HTTP/2, Alt-Svc, limits and bad input, 0-RTT, reload and
//! upgrade, counters.

mod client;
mod lifecycle;
mod limits;
mod paths;
mod serving;
mod upgrade;
mod zero_rtt;

use rampart_testkit::{TestGateway, TestPki};

/// A TLS listener `h3` with `[listeners.http3]` (plus `h3_extra` keys), a route `all` to
/// `upstream` (an address) and `route_extra` keys, and the access log on.
pub(crate) fn gateway(
    pki: &TestPki,
    upstream: std::net::SocketAddr,
    h3_extra: &str,
    route_extra: &str,
) -> TestGateway {
    let cert = pki.server("h3", &["h3.test"]);
    TestGateway::builder(format!(
        r#"
[[listeners]]
name = "h3"
bind = "127.0.0.1:0"
[listeners.http3]
{h3_extra}
[listeners.tls]
[[listeners.tls.certificates]]
cert = {:?}
key = {:?}

[[upstreams]]
name = "origin"
targets = ["{upstream}"]

[[routes]]
name = "all"
upstream = "origin"
{route_extra}
"#,
        cert.cert, cert.key
    ))
    .access_log()
    .start()
}

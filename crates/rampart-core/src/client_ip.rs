//! Resolving the one client IP of a request: the peer's address, unless the peer is a trusted
//! proxy, in which case the forwarding header is walked from the right, through trusted hops
//! only, to the first untrusted one ("rightmost untrusted hop").
//!
//! A client can write anything into `X-Forwarded-For`; only entries appended by proxies we
//! trust are believed. Walking from the right stops at the first address that is not a trusted
//! proxy: that is the client. An entry that is not an address (garbage, `unknown`, an obfuscated
//! `Forwarded` node) stops the walk too, and the last address established is used. Nothing here
//! allocates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderMap;
use http::header::HeaderName;
use rampart_config::model::ClientIpHeader;

use crate::ipset::IpSet;

/// Most hops examined in a forwarding chain; a longer chain stops at the last one examined.
pub const MAX_HOPS: usize = 32;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The client IP for a request from `peer` carrying `headers`.
#[must_use]
pub fn resolve(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &IpSet,
    source: ClientIpHeader,
) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let name = match source {
        ClientIpHeader::XForwardedFor => &X_FORWARDED_FOR,
        ClientIpHeader::Forwarded => &FORWARDED,
    };
    let mut client = peer;
    let mut hops = 0;
    for value in headers.get_all(name).iter().rev() {
        let Ok(value) = value.to_str() else {
            return client;
        };
        for element in value.rsplit(',') {
            hops += 1;
            if hops > MAX_HOPS {
                return client;
            }
            let hop = match source {
                ClientIpHeader::XForwardedFor => parse_node(element.trim()),
                ClientIpHeader::Forwarded => forwarded_for(element),
            };
            let Some(hop) = hop else {
                return client;
            };
            client = hop;
            if !trusted.contains(hop) {
                return hop;
            }
        }
    }
    client
}

/// The `for=` node of one `Forwarded` element, when it is an IP address.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for pair in element.split(';') {
        let (name, value) = pair.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            if found.is_some() {
                // Two `for` parameters in one element: ambiguous, believe neither.
                return None;
            }
            let value = value.trim();
            let value = match value.strip_prefix('"') {
                Some(quoted) => quoted.strip_suffix('"')?,
                None => value,
            };
            found = Some(parse_node(value)?);
        }
    }
    found
}

/// An address as proxies write it: `192.0.2.7`, `192.0.2.7:443`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:443`.
#[must_use]
pub fn parse_node(text: &str) -> Option<IpAddr> {
    if let Some(rest) = text.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        if !after.is_empty() && !after.strip_prefix(':').is_some_and(is_port) {
            return None;
        }
        return ip
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let (ip, port) = text.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    ip.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn set(nets: &[&str]) -> IpSet {
        let cidrs: Vec<rampart_config::Cidr> = nets.iter().map(|n| n.parse().unwrap()).collect();
        IpSet::new(&cidrs)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(name: &'static str, values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, HeaderValue::from_static(v));
        }
        h
    }

    fn xff(peer: &str, values: &[&'static str], trusted: &IpSet) -> IpAddr {
        resolve(
            ip(peer),
            &headers("x-forwarded-for", values),
            trusted,
            ClientIpHeader::XForwardedFor,
        )
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let trusted = set(&["10.0.0.0/8"]);
        assert_eq!(
            xff("203.0.113.9", &["1.2.3.4"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            xff("203.0.113.9", &["10.0.0.1"], &IpSet::default()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = set(&["10.0.0.0/8"]);
        assert_eq!(
            xff("10.0.0.1", &["6.6.6.6, 198.51.100.4"], &trusted),
            ip("198.51.100.4")
        );
        assert_eq!(
            xff("10.0.0.1", &["6.6.6.6, 198.51.100.4, 10.9.9.9"], &trusted),
            ip("198.51.100.4")
        );
        // Several header lines form one list, in order.
        assert_eq!(
            xff(
                "10.0.0.1",
                &["6.6.6.6", "198.51.100.4", "10.1.1.1"],
                &trusted
            ),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn an_all_trusted_chain_yields_its_leftmost_address() {
        let trusted = set(&["10.0.0.0/8"]);
        assert_eq!(
            xff("10.0.0.1", &["10.0.0.5, 10.0.0.6"], &trusted),
            ip("10.0.0.5")
        );
        assert_eq!(xff("10.0.0.1", &[], &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_known_hop() {
        let trusted = set(&["10.0.0.0/8"]);
        for bad in [
            "not-an-ip",
            "",
            "1.2.3.4:99999",
            "[::1",
            "unknown",
            "1.2.3.4 5.6.7.8",
        ] {
            let value: &'static str = Box::leak(format!("{bad}, 10.0.0.7").into_boxed_str());
            assert_eq!(
                xff("10.0.0.1", &[value], &trusted),
                ip("10.0.0.7"),
                "{bad:?}"
            );
        }
        assert_eq!(xff("10.0.0.1", &["1.2.3.4,"], &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_understood() {
        let trusted = set(&["10.0.0.0/8", "2001:db8::/32"]);
        assert_eq!(
            xff("10.0.0.1", &["198.51.100.4:5000"], &trusted),
            ip("198.51.100.4")
        );
        assert_eq!(
            xff("10.0.0.1", &["[2001:db9::1]:443"], &trusted),
            ip("2001:db9::1")
        );
        assert_eq!(
            xff("10.0.0.1", &["2001:db9::1"], &trusted),
            ip("2001:db9::1")
        );
        assert_eq!(
            xff("10.0.0.1", &["1.1.1.1, ::ffff:10.0.0.3"], &trusted),
            ip("1.1.1.1")
        );
        assert_eq!(
            xff("::ffff:10.0.0.1", &["1.1.1.1"], &trusted),
            ip("1.1.1.1")
        );
    }

    #[test]
    fn a_long_chain_is_walked_only_so_far() {
        let trusted = set(&["10.0.0.0/8"]);
        let chain: &'static str =
            Box::leak(vec!["10.0.0.2"; MAX_HOPS + 5].join(", ").into_boxed_str());
        assert_eq!(xff("10.0.0.1", &[chain], &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn forwarded_for_nodes_are_walked_the_same_way() {
        let trusted = set(&["10.0.0.0/8"]);
        let resolve_fwd = |values: &[&'static str]| {
            resolve(
                ip("10.0.0.1"),
                &headers("forwarded", values),
                &trusted,
                ClientIpHeader::Forwarded,
            )
        };
        assert_eq!(
            resolve_fwd(&["for=6.6.6.6, for=198.51.100.4;proto=https, for=10.0.0.9"]),
            ip("198.51.100.4")
        );
        assert_eq!(
            resolve_fwd(&["For=\"[2001:db8::7]:4711\""]),
            ip("2001:db8::7")
        );
        assert_eq!(
            resolve_fwd(&["proto=http;for=198.51.100.4;by=10.0.0.1"]),
            ip("198.51.100.4")
        );
        assert_eq!(resolve_fwd(&["for=_hidden, for=10.0.0.9"]), ip("10.0.0.9"));
        assert_eq!(resolve_fwd(&["for=unknown"]), ip("10.0.0.1"));
        assert_eq!(resolve_fwd(&["for=1.1.1.1;for=2.2.2.2"]), ip("10.0.0.1"));
        assert_eq!(resolve_fwd(&["for=\"1.1.1.1"]), ip("10.0.0.1"));
        // X-Forwarded-For is ignored when the source is Forwarded.
        let mut h = headers("x-forwarded-for", &["1.1.1.1"]);
        h.append("forwarded", HeaderValue::from_static("for=2.2.2.2"));
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &trusted, ClientIpHeader::Forwarded),
            ip("2.2.2.2")
        );
    }

    #[test]
    fn non_ascii_values_stop_the_walk() {
        let trusted = set(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"1.1.1.1\xff").unwrap(),
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &trusted, ClientIpHeader::XForwardedFor),
            ip("10.0.0.1")
        );
    }
}

//! Config errors in the security sections point at the offending value.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rampart_config::{Diagnostics, load_str};

fn refused(text: &str) -> Diagnostics {
    load_str(text, "sec.toml")
        .err()
        .unwrap_or_else(|| panic!("accepted:\n{text}"))
}

/// The error whose path is `path`, its message and the text its span covers.
fn error_at(d: &Diagnostics, text: &str, path: &str) -> (String, String) {
    let e = d
        .errors()
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no error at {path}:\n{d}"));
    let span = e
        .span
        .clone()
        .unwrap_or_else(|| panic!("{path}: no span\n{d}"));
    (e.message.clone(), text[span].to_owned())
}

const LISTENER: &str = "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n";

#[test]
fn bad_networks_are_refused_where_they_are_written() {
    let text = format!("[client_ip]\ntrusted_proxies = [\"10.0.0.1/8\"]\n{LISTENER}");
    let d = refused(&text);
    let e = &d.errors()[0];
    assert!(e.message.contains("did you mean \"10.0.0.0/8\""), "{d}");
    assert!(text[e.span.clone().unwrap()].contains("10.0.0.1/8"), "{d}");

    let text = format!("{LISTENER}access = {{ deny = [\"not-an-ip\"] }}\n");
    let d = refused(&text);
    assert!(d.to_string().contains("not-an-ip"), "{d}");
}

#[test]
fn country_codes_and_geo_rules_are_checked() {
    let text = format!(
        "[geoip]\ncountry_db = \"/x.mmdb\"\n{LISTENER}access = {{ deny_countries = [\"de\"], allow_asns = [1] }}\n"
    );
    let d = refused(&text);
    let (msg, at) = error_at(&d, &text, "listeners[0].access.deny_countries[0]");
    assert!(msg.contains("two capital letters"), "{msg}");
    assert_eq!(at, "\"de\"");
    let (msg, _) = error_at(&d, &text, "listeners[0].access.allow_asns");
    assert!(msg.contains("asn_db"), "{msg}");
}

#[test]
fn proxy_protocol_needs_sources_and_the_country_header_a_database() {
    let text = format!(
        "[geoip]\ncountry_header = \"X-Country\"\n{LISTENER}proxy_protocol = {{ from = [] }}\n"
    );
    let d = refused(&text);
    let (msg, _) = error_at(&d, &text, "listeners[0].proxy_protocol.from");
    assert!(msg.contains("load balancers"), "{msg}");
    let (msg, at) = error_at(&d, &text, "geoip.country_header");
    assert!(msg.contains("country_db"), "{msg}");
    assert_eq!(at, "\"X-Country\"");
}

#[test]
fn zero_limits_are_refused() {
    let text =
        format!("[http2]\nmax_concurrent_streams = 0\n[timeouts]\nbody_grace = \"0s\"\n{LISTENER}");
    let d = refused(&text);
    let paths: Vec<&str> = d.errors().iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"http2.max_concurrent_streams"), "{d}");
    assert!(paths.contains(&"timeouts.body_grace"), "{d}");
}

#[test]
fn a_full_security_config_loads() {
    let text = format!(
        "[client_ip]\ntrusted_proxies = [\"10.0.0.0/8\", \"2001:db8::/32\"]\nheader = \"forwarded\"\n\
         [geoip]\ncountry_db = \"/c.mmdb\"\nasn_db = \"/a.mmdb\"\ncountry_header = \"x-country\"\n\
         [limits]\nmax_connections = 10\nmax_connections_per_ip = 2\nmin_body_rate = \"2KiB\"\n\
         {LISTENER}trusted_proxies = []\nproxy_protocol = {{ from = [\"10.1.0.0/16\"] }}\n\
         access = {{ allow = [\"192.0.2.0/24\"], deny = [\"192.0.2.7\"], allow_countries = [\"DE\"], deny_asns = [64500] }}\n"
    );
    load_str(&text, "ok.toml").unwrap_or_else(|d| panic!("{d}"));
}

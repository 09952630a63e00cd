//! Header helpers: hop-by-hop removal, fields added for HTTP/1.1 upstreams, small parsing
//! utilities.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Header fields that describe a single connection (RFC 9110 §7.6.1) and never cross a proxy.
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The lengths of the names in [`HOP_BY_HOP`]: `te`, `upgrade`, `connection` and `keep-alive`,
/// `proxy-connection`, `transfer-encoding`, `proxy-authenticate`.
const HOP_BY_HOP_LENGTHS: [usize; 6] = [2, 7, 10, 16, 17, 18];

/// Bit of `Connection` in the presence mask of [`HOP_BY_HOP`].
const CONNECTION_BIT: u8 = 1;
/// Bit of `TE`.
const TE_BIT: u8 = 1 << 4;
/// Bits of `Connection` and `Upgrade`, kept when forwarding an upgrade.
const UPGRADE_BITS: u8 = CONNECTION_BIT | 1 << 6;

/// Removes hop-by-hop headers and every header named in `Connection`. `TE: trailers` is kept
/// (gRPC needs it end to end); `keep_upgrade` keeps `Upgrade` and `Connection: upgrade` for a
/// protocol upgrade being forwarded.
///
/// Hot path, hand-written: one pass over the header names records which hop-by-hop headers
/// are present (cheap comparisons of well-known names), and only those are removed; most
/// requests carry none, most responses only `Connection: keep-alive`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let mut present = 0u8;
    for name in headers.keys() {
        // Most names are not hop-by-hop: their length alone says so (one comparison instead of
        // seven name comparisons per field, measured with callgrind).
        if !HOP_BY_HOP_LENGTHS.contains(&name.as_str().len()) {
            continue;
        }
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 && !keep_upgrade {
        return;
    }
    let listed = if present & CONNECTION_BIT == 0 {
        Vec::new()
    } else {
        connection_listed(headers, keep_upgrade)
    };
    let te_trailers = present & TE_BIT != 0
        && headers
            .get_all(header::TE)
            .iter()
            .any(|v| comma_tokens(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"trailers")));
    let keep = if keep_upgrade { UPGRADE_BITS } else { 0 };
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & !keep & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    for name in &listed {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Names listed in `Connection` (all its field lines) that are not hop-by-hop already and are
/// not connection options such as `close`.
fn connection_listed(headers: &HeaderMap, keep_upgrade: bool) -> Vec<HeaderName> {
    let mut listed = Vec::new();
    for value in &headers.get_all(header::CONNECTION) {
        for token in comma_tokens(value.as_bytes()) {
            let known = token.eq_ignore_ascii_case(b"close")
                || HOP_BY_HOP
                    .iter()
                    .any(|h| h.as_str().as_bytes().eq_ignore_ascii_case(token));
            if known || (keep_upgrade && token.eq_ignore_ascii_case(b"upgrade")) {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token) {
                listed.push(name);
            }
        }
    }
    listed
}

/// Iterates the comma-separated tokens of a header value, trimmed, skipping empty ones.
pub fn comma_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Maps with at most this many names are searched by comparing each name instead of by
/// hashing the one looked for (see [`has_field`]).
const SCAN_NAMES: usize = 8;

/// True when `headers` has a field named `name`.
///
/// Hot path: in a small map (most requests and responses), comparing every name (a tag
/// comparison for well-known names) costs less than hashing `name` and probing, which
/// `HeaderMap::contains_key` does (measured with callgrind: about 80 instructions less for a
/// request with a few fields).
#[must_use]
pub fn has_field(headers: &HeaderMap, name: &HeaderName) -> bool {
    if headers.keys_len() <= SCAN_NAMES {
        headers.keys().any(|n| n == name)
    } else {
        headers.contains_key(name)
    }
}

/// True when the `Connection` header lists `token` (case-insensitive).
#[must_use]
pub fn connection_has(headers: &HeaderMap, token: &[u8]) -> bool {
    let lists = |v: &HeaderValue| comma_tokens(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(token));
    // As in `has_field`: a small map is scanned rather than hashed into.
    if headers.keys_len() <= SCAN_NAMES {
        return headers
            .iter()
            .any(|(n, v)| n == header::CONNECTION && lists(v));
    }
    headers.get_all(header::CONNECTION).iter().any(lists)
}

/// Header fields Rampart adds to a request bound for an HTTP/1.1 upstream, already serialized
/// as field lines (`name: value\r\n`). The proxy handler hands them to the forwarder beside the
/// request (`ForwardOpts::added`) instead of putting them in its `HeaderMap`; the upstream's
/// HTTP/1.1 encoder writes them after the request's own fields, on every attempt. The handler removes any field of the same name from the map first, so the result
/// on the wire is what inserting them into the map would have sent.
///
/// Hot path, hand-written instead of `HeaderMap::insert`: inserting six fields hashes every
/// name and grows the map the client's head was parsed into; appending bytes to one buffer
/// costs less (measured with callgrind: about 770 instructions fewer per proxied request;
/// passing them beside the request also spares the allocations of an extensions entry). The map is still used where something reads
/// the fields before they are serialized (HTTP/2 and upgrades go through hyper's client;
/// `hash_on = "header:…"` reads the map).
#[derive(Debug, Clone, Default)]
pub struct AddedFields {
    lines: Vec<u8>,
}

impl AddedFields {
    /// Room for `bytes` of field lines.
    #[must_use]
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            lines: Vec::with_capacity(bytes),
        }
    }

    /// Adds the field `name: value`. `value` must be a valid field value: the bytes of a
    /// [`HeaderValue`], or bytes Rampart formatted itself from a known alphabet.
    pub fn push(&mut self, name: &HeaderName, value: &[u8]) {
        let name = name.as_str().as_bytes();
        self.lines.reserve(name.len() + value.len() + 4);
        self.lines.extend_from_slice(name);
        self.lines.extend_from_slice(b": ");
        self.lines.extend_from_slice(value);
        self.lines.extend_from_slice(b"\r\n");
    }

    /// The serialized field lines, each ending in CRLF.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.lines
    }

    /// True when no field was added.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (the first one), if any.
#[must_use]
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
        })
}

/// The host part of a `Host` header value or URI authority, lowercased, without port.
#[must_use]
pub fn host_without_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        // IPv6 literal: "[::1]:8080" → "::1"
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-connection", "keep-alive"),
            ("x-end-to-end", "stays"),
        ]);
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-end-to-end"], "stays");
    }

    #[test]
    fn headers_named_on_any_connection_line_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive"),
            ("connection", "x-second-line"),
            ("x-second-line", "1"),
            ("x-end-to-end", "stays"),
        ]);
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-end-to-end"], "stays");
    }

    #[test]
    fn te_trailers_survives_other_te_values_do_not() {
        let mut h = map(&[("te", "gzip, trailers")]);
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h["te"], "trailers");
        let mut h = map(&[("te", "gzip")]);
        remove_hop_by_hop(&mut h, false);
        assert!(h.get("te").is_none());
    }

    #[test]
    fn upgrades_keep_upgrade_and_a_clean_connection_header() {
        let mut h = map(&[
            ("connection", "Upgrade, x-hop"),
            ("upgrade", "websocket"),
            ("x-hop", "1"),
        ]);
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert!(h.get("x-hop").is_none());
    }

    #[test]
    fn small_and_large_maps_find_the_same_fields() {
        for extra in [0usize, 3, 20] {
            let mut h = map(&[("connection", "keep-alive"), ("connection", "Upgrade")]);
            for i in 0..extra {
                h.insert(
                    HeaderName::from_bytes(format!("x-f{i}").as_bytes()).unwrap(),
                    HeaderValue::from_static("v"),
                );
            }
            h.insert(
                HeaderName::from_static("x-custom"),
                HeaderValue::from_static("1"),
            );
            assert!(connection_has(&h, b"upgrade"), "{extra}");
            assert!(connection_has(&h, b"KEEP-ALIVE"), "{extra}");
            assert!(!connection_has(&h, b"close"), "{extra}");
            assert!(has_field(&h, &header::CONNECTION), "{extra}");
            assert!(
                has_field(&h, &HeaderName::from_static("x-custom")),
                "{extra}"
            );
            assert!(!has_field(&h, &header::HOST), "{extra}");
            assert!(
                !has_field(&h, &HeaderName::from_static("x-other")),
                "{extra}"
            );
        }
        assert!(!connection_has(&HeaderMap::new(), b"upgrade"));
        assert!(!has_field(&HeaderMap::new(), &header::HOST));
    }

    #[test]
    fn added_fields_are_canonical_field_lines() {
        let mut added = AddedFields::with_capacity(64);
        assert!(added.is_empty());
        added.push(&header::VIA, b"1.1 rampart");
        added.push(&HeaderName::from_static("x-request-id"), b"abc");
        assert_eq!(
            added.as_bytes(),
            b"via: 1.1 rampart\r\nx-request-id: abc\r\n"
        );
    }

    #[test]
    fn the_length_filter_knows_every_hop_by_hop_name() {
        for name in &HOP_BY_HOP {
            assert!(HOP_BY_HOP_LENGTHS.contains(&name.as_str().len()), "{name}");
        }
    }

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(host_without_port("example.com:8080"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[::1]:8080"), "::1");
        assert_eq!(host_without_port("[::1]"), "::1");
    }

    #[test]
    fn connection_tokens_are_case_insensitive() {
        let h = map(&[("connection", "keep-alive, Upgrade")]);
        assert!(connection_has(&h, b"upgrade"));
        assert!(!connection_has(&h, b"close"));
    }

    #[test]
    fn a_cookie_is_found_among_others_and_across_headers() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; canary=yes"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, "canary"), Some(&b"yes"[..]));
        assert_eq!(cookie(&h, "b"), Some(&b"2"[..]));
        assert_eq!(cookie(&h, "canar"), None);
        assert_eq!(cookie(&HeaderMap::new(), "a"), None);
    }
}

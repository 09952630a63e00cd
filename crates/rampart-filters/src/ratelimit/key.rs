//! Rate-limit keys: which parts of a request (client IP, route, a header, a query parameter)
//! pick a request's bucket, fed without allocation into a hasher (local buckets) or into bytes
//! (Redis keys).

use std::hash::Hasher;
use std::net::IpAddr;

use http::header::HeaderName;
use http::{HeaderMap, Uri};
use rampart_config::model::{KeyPart, MissingKey};

/// One compiled key part.
#[derive(Debug, Clone)]
enum Part {
    ClientIp,
    Route,
    Header(HeaderName),
    Query(Box<[u8]>),
}

/// The parts of a policy's key and what to do when one is missing. A later `jwt:CLAIM` part
/// becomes one more variant here, fed from the verified claims the auth stage leaves on the
/// request context.
#[derive(Debug, Clone)]
pub struct KeySpec {
    parts: Box<[Part]>,
    missing: MissingKey,
}

/// What the key of one request is built from.
pub struct KeyInput<'a> {
    /// The client's IP.
    pub client_ip: IpAddr,
    /// The route's name.
    pub route: &'a str,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The request target.
    pub uri: &'a Uri,
}

/// Receives a key as framed parts: each part's bytes, then its length and tag, so that no two
/// different keys feed the same sequence.
pub trait KeySink {
    /// Bytes of the current part.
    fn bytes(&mut self, bytes: &[u8]);
    /// Ends a part of `len` bytes of kind `tag`.
    fn end(&mut self, tag: u8, len: usize);
}

impl<H: Hasher> KeySink for H {
    fn bytes(&mut self, bytes: &[u8]) {
        self.write(bytes);
    }
    fn end(&mut self, tag: u8, len: usize) {
        self.write_usize(len);
        self.write_u8(tag);
    }
}

/// Key bytes for Redis, framed the same way.
#[derive(Debug, Default)]
pub struct KeyBytes(pub Vec<u8>);

impl KeySink for KeyBytes {
    fn bytes(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
    fn end(&mut self, tag: u8, len: usize) {
        self.0.extend_from_slice(&(len as u64).to_be_bytes());
        self.0.push(tag);
    }
}

/// Tag of a part that was absent (shared by every request lacking it).
const ABSENT: u8 = 0;

impl KeySpec {
    /// Compiles `parts` (already validated by the config).
    ///
    /// # Errors
    /// A part that does not parse or names an invalid header.
    pub fn new(parts: &[String], missing: MissingKey) -> Result<Self, String> {
        let parts = parts
            .iter()
            .map(|p| match KeyPart::parse(p)? {
                KeyPart::ClientIp => Ok(Part::ClientIp),
                KeyPart::Route => Ok(Part::Route),
                KeyPart::Header(name) => HeaderName::from_bytes(name.as_bytes())
                    .map(Part::Header)
                    .map_err(|e| format!("invalid header name {name:?}: {e}")),
                KeyPart::Query(name) => Ok(Part::Query(name.into_bytes().into_boxed_slice())),
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { parts, missing })
    }

    /// Feeds the key of `input` to `sink`. Returns false when a part is missing and the policy
    /// skips such requests.
    pub fn feed(&self, input: &KeyInput<'_>, sink: &mut impl KeySink) -> bool {
        for (i, part) in self.parts.iter().enumerate() {
            let tag = u8::try_from(i + 1).unwrap_or(u8::MAX);
            let present = match part {
                Part::ClientIp => {
                    match input.client_ip {
                        IpAddr::V4(ip) => {
                            sink.bytes(&ip.octets());
                            sink.end(tag, 4);
                        }
                        IpAddr::V6(ip) => {
                            sink.bytes(&ip.octets());
                            sink.end(tag, 16);
                        }
                    }
                    true
                }
                Part::Route => {
                    sink.bytes(input.route.as_bytes());
                    sink.end(tag, input.route.len());
                    true
                }
                Part::Header(name) => {
                    let mut found = false;
                    for value in input.headers.get_all(name) {
                        sink.bytes(value.as_bytes());
                        sink.end(tag, value.len());
                        found = true;
                    }
                    found
                }
                Part::Query(name) => feed_query(input.uri.query(), name, tag, sink),
            };
            if !present {
                if self.missing == MissingKey::Skip {
                    return false;
                }
                sink.end(ABSENT, i);
            }
        }
        true
    }
}

/// Feeds every (percent-decoded) value of query parameter `name`; false when there is none.
/// Decoding matters: `%61pi_key=…` and `api_key=…` name the same parameter for the upstream,
/// and must not get different buckets.
fn feed_query(query: Option<&str>, name: &[u8], tag: u8, sink: &mut impl KeySink) -> bool {
    let Some(query) = query else { return false };
    let mut found = false;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !decoded(k.as_bytes()).eq(name.iter().copied()) {
            continue;
        }
        let mut buf = [0u8; 64];
        let mut n = 0;
        let mut len = 0;
        for b in decoded(v.as_bytes()) {
            buf[n] = b;
            n += 1;
            len += 1;
            if n == buf.len() {
                sink.bytes(&buf);
                n = 0;
            }
        }
        sink.bytes(&buf[..n]);
        sink.end(tag, len);
        found = true;
    }
    found
}

/// Percent-decoding of a query component (`+` is a space); invalid escapes stay as written.
fn decoded(bytes: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *bytes.get(i)?;
        i += 1;
        match b {
            b'+' => Some(b' '),
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (
                    bytes.get(i).and_then(|c| hex(*c)),
                    bytes.get(i + 1).and_then(|c| hex(*c)),
                ) {
                    (Some(hi), Some(lo)) => {
                        i += 2;
                        u8::try_from(hi * 16 + lo).ok()
                    }
                    _ => Some(b'%'),
                }
            }
            b => Some(b),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn spec(parts: &[&str], missing: MissingKey) -> KeySpec {
        let parts: Vec<String> = parts.iter().map(|p| (*p).to_owned()).collect();
        KeySpec::new(&parts, missing).unwrap()
    }

    fn key(
        spec: &KeySpec,
        ip: &str,
        route: &str,
        headers: &[(&str, &str)],
        uri: &str,
    ) -> Option<Vec<u8>> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let uri: Uri = uri.parse().unwrap();
        let input = KeyInput {
            client_ip: ip.parse().unwrap(),
            route,
            headers: &map,
            uri: &uri,
        };
        let mut out = KeyBytes::default();
        spec.feed(&input, &mut out).then_some(out.0)
    }

    #[test]
    fn parts_combine_and_distinguish() {
        let s = spec(&["header:x-api-key", "client_ip"], MissingKey::Share);
        let a = key(&s, "192.0.2.1", "r", &[("x-api-key", "k1")], "/");
        let b = key(&s, "192.0.2.1", "r", &[("x-api-key", "k2")], "/");
        let c = key(&s, "192.0.2.2", "r", &[("x-api-key", "k1")], "/");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            a,
            key(&s, "192.0.2.1", "other", &[("x-api-key", "k1")], "/")
        );
    }

    #[test]
    fn framing_keeps_boundaries() {
        let s = spec(&["header:a", "header:b"], MissingKey::Share);
        let one = key(&s, "::1", "r", &[("a", "xy"), ("b", "z")], "/");
        let two = key(&s, "::1", "r", &[("a", "x"), ("b", "yz")], "/");
        assert_ne!(one, two);
    }

    #[test]
    fn missing_parts_share_or_skip() {
        let share = spec(&["header:x-api-key"], MissingKey::Share);
        let a = key(&share, "192.0.2.1", "r", &[], "/");
        let b = key(&share, "192.0.2.9", "r", &[], "/");
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_ne!(a, key(&share, "192.0.2.1", "r", &[("x-api-key", "")], "/"));
        let skip = spec(&["header:x-api-key"], MissingKey::Skip);
        assert_eq!(key(&skip, "192.0.2.1", "r", &[], "/"), None);
    }

    #[test]
    fn query_values_are_decoded_before_keying() {
        let s = spec(&["query:api_key"], MissingKey::Skip);
        let plain = key(&s, "::1", "r", &[], "/x?a=1&api_key=abc");
        assert!(plain.is_some());
        assert_eq!(plain, key(&s, "::1", "r", &[], "/x?%61pi_key=%61bc"));
        assert_ne!(plain, key(&s, "::1", "r", &[], "/x?api_key=abd"));
        assert_eq!(key(&s, "::1", "r", &[], "/x?api_keyx=abc"), None);
        let long = "v".repeat(200);
        assert!(key(&s, "::1", "r", &[], &format!("/?api_key={long}")).is_some());
        assert!(key(&s, "::1", "r", &[], "/?api_key=%zz%4").is_some());
    }

    #[test]
    fn route_part_separates_routes() {
        let s = spec(&["client_ip", "route"], MissingKey::Share);
        assert_ne!(key(&s, "::1", "a", &[], "/"), key(&s, "::1", "b", &[], "/"));
    }

    #[test]
    fn hashing_feeds_the_same_parts() {
        let s = spec(&["client_ip"], MissingKey::Share);
        let state = std::hash::RandomState::new();
        let hash = |ip: &str| {
            let mut h = state.build_hasher();
            let map = HeaderMap::new();
            let uri = Uri::from_static("/");
            let input = KeyInput {
                client_ip: ip.parse().unwrap(),
                route: "r",
                headers: &map,
                uri: &uri,
            };
            assert!(s.feed(&input, &mut h));
            h.finish()
        };
        assert_eq!(hash("192.0.2.1"), hash("192.0.2.1"));
        assert_ne!(hash("192.0.2.1"), hash("192.0.2.2"));
    }
}

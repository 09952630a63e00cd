//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`, off in the product
//! build; also compiled for this crate's tests, which replay the seed corpora). Each takes the
//! fuzzer's bytes, runs a parser over them, and panics when the parser panics or when one of
//! its properties does not hold.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::BytesMut;
use http::{HeaderMap, HeaderValue};
use rampart_config::model::ClientIpHeader;

use crate::chunked::{ChunkedDecoder, Decoded};
use crate::client_ip::{self, MAX_HOPS};
use crate::ipset::IpSet;
use crate::proxy_protocol::{self, Parsed};

/// How a chunked stream ended, fed in some pieces.
#[derive(Debug, PartialEq, Eq)]
enum ChunkedOutcome {
    /// The body, its trailers (as `name: value` lines) and the bytes left after the end.
    Complete(Vec<u8>, Vec<String>, Vec<u8>),
    /// An error (its message may depend on where the reads were split).
    Invalid,
    /// The input ended before the body did.
    Truncated,
}

/// Decodes `input` as a chunked body fed in reads of the given sizes (cycled).
fn decode_in_reads(input: &[u8], reads: &[usize]) -> ChunkedOutcome {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut trailers = Vec::new();
    let mut fed = 0;
    let mut read = 0;
    // Each round either consumes bytes or feeds more, so this is bounded by twice the input.
    for _ in 0..=2 * input.len() + 8 {
        match decoder.decode(&mut buf) {
            Ok(Decoded::Data(data)) => {
                assert!(!data.is_empty(), "an empty data piece");
                body.extend_from_slice(&data);
            }
            Ok(Decoded::Trailers(map)) => trailers.extend(
                map.iter()
                    .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes()))),
            ),
            Ok(Decoded::End) => {
                let mut rest = buf.to_vec();
                rest.extend_from_slice(&input[fed..]);
                assert_eq!(
                    decoder.decode(&mut BytesMut::new()),
                    Ok(Decoded::End),
                    "a finished decoder stays finished"
                );
                return ChunkedOutcome::Complete(body, trailers, rest);
            }
            Ok(Decoded::NeedMore) => {
                if fed == input.len() {
                    return ChunkedOutcome::Truncated;
                }
                let size = reads.get(read % reads.len().max(1)).copied().unwrap_or(1);
                read += 1;
                let end = (fed + size.max(1)).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
            Err(_) => return ChunkedOutcome::Invalid,
        }
    }
    panic!("the decoder made no progress");
}

/// Chunked decoding of arbitrary bytes: the outcome (body, trailers, what is left after the
/// body, or an error) does not depend on how the bytes were split into reads. Then the first
/// bytes, read as a recipe, chunk-encode the rest, which decodes back to itself.
pub fn chunked(data: &[u8]) {
    let whole = decode_in_reads(data, &[data.len().max(1)]);
    let split = decode_in_reads(data, &[1, 7, 2, 300, 3]);
    match (&whole, &split) {
        // Bounds on lines may trip at a different byte, but both must refuse.
        (ChunkedOutcome::Invalid, ChunkedOutcome::Invalid) => {}
        _ => assert_eq!(whole, split, "whole and split reads disagree"),
    }
    let bytes = decode_in_reads(data, &[1]);
    match (&whole, &bytes) {
        (ChunkedOutcome::Invalid, ChunkedOutcome::Invalid) => {}
        _ => assert_eq!(whole, bytes, "whole and byte-by-byte reads disagree"),
    }
    round_trip(data);
}

/// Encodes the body after a recipe byte in chunks sized by the body's own bytes, with
/// extensions, upper-case hex and trailers as the recipe says, and decodes it back.
fn round_trip(data: &[u8]) {
    let Some((&recipe, body)) = data.split_first() else {
        return;
    };
    let mut encoded = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let size = (usize::from(rest[0]) % 97 + 1).min(rest.len());
        if recipe & 1 != 0 {
            encoded.extend_from_slice(format!("{size:X}").as_bytes());
        } else {
            encoded.extend_from_slice(format!("{size:x}").as_bytes());
        }
        if recipe & 2 != 0 {
            encoded.extend_from_slice(format!(";ext{i}=\"v\"").as_bytes());
        }
        encoded.extend_from_slice(b"\r\n");
        encoded.extend_from_slice(&rest[..size]);
        encoded.extend_from_slice(b"\r\n");
        rest = &rest[size..];
        i += 1;
    }
    encoded.extend_from_slice(b"0\r\n");
    let trailers = if recipe & 4 != 0 {
        encoded.extend_from_slice(b"x-check: 1\r\ngrpc-status: 0\r\n");
        vec!["x-check: 1".to_owned(), "grpc-status: 0".to_owned()]
    } else {
        Vec::new()
    };
    encoded.extend_from_slice(b"\r\n");
    let reads = [usize::from(recipe >> 3) + 1, 5, 1];
    assert_eq!(
        decode_in_reads(&encoded, &reads),
        ChunkedOutcome::Complete(body.to_vec(), trailers, Vec::new()),
        "chunk-encoded body does not decode back to itself"
    );
}

/// PROXY protocol header parsing: a complete header parses the same from exactly its own
/// bytes, and each shorter prefix asks for more bytes (never refuses, never claims complete);
/// "need more" always asks for more than it has. Then addresses taken from the bytes are
/// encoded as v1 and v2 headers, which parse back to them.
pub fn proxy_protocol(data: &[u8]) {
    match proxy_protocol::parse(data) {
        Ok(Parsed::Complete { header, len }) => {
            assert!(len > 0 && len <= data.len(), "length {len} out of range");
            assert_eq!(
                proxy_protocol::parse(&data[..len]),
                Ok(Parsed::Complete { header, len }),
                "the header alone parses differently"
            );
            for tlv in header.tlvs() {
                assert!(tlv.value.len() <= len);
            }
            let step = (len / 64).max(1);
            for cut in (0..len).step_by(step).chain([len - 1]) {
                match proxy_protocol::parse(&data[..cut]) {
                    Ok(Parsed::Incomplete { need }) => {
                        assert!(need > cut, "prefix {cut} of {len} needs {need}");
                    }
                    other => panic!("prefix of {cut} of a {len}-byte header: {other:?}"),
                }
            }
        }
        Ok(Parsed::Incomplete { need }) => {
            assert!(
                need > data.len(),
                "asks for {need} with {} bytes",
                data.len()
            );
        }
        Err(e) => {
            let _ = (e.code(), e.to_string());
        }
    }
    encode_round_trip(data);
}

fn encode_round_trip(data: &[u8]) {
    let mut bytes = data.iter().copied().chain(std::iter::repeat(0));
    let mut take = || bytes.next().unwrap_or(0);
    let mut addr = |v6: bool| {
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from(std::array::from_fn::<u8, 16, _>(|_| take())))
        } else {
            IpAddr::V4(Ipv4Addr::new(take(), take(), take(), take()))
        };
        SocketAddr::new(ip, u16::from_be_bytes([take(), take()]))
    };
    let v6 = data.first().is_some_and(|b| b & 1 != 0);
    let (src, dst) = (addr(v6), addr(v6));
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let v1 = proxy_protocol::encode_v1(src, dst);
    let expected_v1 = match (canonical(src).ip(), canonical(dst).ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
            Some((canonical(src), canonical(dst)))
        }
        _ => None,
    };
    match proxy_protocol::parse(v1.as_bytes()) {
        Ok(Parsed::Complete { header, len }) => {
            assert_eq!(len, v1.len());
            assert_eq!(header.addresses, expected_v1, "v1 {v1:?}");
        }
        other => panic!("encoded v1 {v1:?} parses as {other:?}"),
    }
    let tlv = data.get(1..).unwrap_or_default();
    let tlv = &tlv[..tlv.len().min(300)];
    let checksum = data.first().is_some_and(|b| b & 2 != 0);
    let Ok(v2) = proxy_protocol::encode_v2(Some((src, dst)), &[(0xE0, tlv)], checksum) else {
        panic!("a 300-byte TLV fits a v2 header");
    };
    match proxy_protocol::parse(&v2) {
        Ok(Parsed::Complete { header, len }) => {
            assert_eq!(len, v2.len());
            let got = header.addresses.map(|(s, d)| (canonical(s), canonical(d)));
            assert_eq!(got, Some((canonical(src), canonical(dst))), "v2 addresses");
            assert!(header.tlvs().any(|t| t.kind == 0xE0 && t.value == tlv));
        }
        other => panic!("encoded v2 parses as {other:?}"),
    }
}

/// The trusted proxies the client-IP check runs with.
fn trusted() -> IpSet {
    let nets: Vec<rampart_config::Cidr> =
        ["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32", "::1/128"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
    IpSet::new(&nets)
}

/// Client-IP resolution from `X-Forwarded-For` or `Forwarded`: the first byte picks the peer
/// and the header, each further line is one field value. The result is the peer when the peer
/// is not trusted, and otherwise the address a plain rightmost-untrusted walk over the same
/// elements finds. Every address a proxy may write parses back to itself.
pub fn client_ip(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let source = if selector & 1 == 0 {
        ClientIpHeader::XForwardedFor
    } else {
        ClientIpHeader::Forwarded
    };
    let peers: [IpAddr; 4] = [
        IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
    ];
    let peer = peers[usize::from(selector >> 1) % peers.len()];
    let name = match source {
        ClientIpHeader::XForwardedFor => "x-forwarded-for",
        ClientIpHeader::Forwarded => "forwarded",
    };
    let mut headers = HeaderMap::new();
    for line in rest.split(|b| *b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(name, value);
        }
    }
    let trusted = trusted();
    let got = client_ip::resolve(peer, &headers, &trusted, source);
    assert_eq!(
        got,
        reference_walk(peer, &headers, &trusted, source),
        "client IP of {headers:?} from {peer}"
    );
    for value in headers.values() {
        let Ok(text) = value.to_str() else { continue };
        for element in text.split(',') {
            if let Some(ip) = client_ip::parse_node(element.trim()) {
                assert_eq!(ip, ip.to_canonical(), "{element:?} gives a mapped address");
                let written = match ip {
                    IpAddr::V4(v4) => format!("{v4}:80"),
                    IpAddr::V6(v6) => format!("[{v6}]:80"),
                };
                assert_eq!(client_ip::parse_node(&written), Some(ip), "{written:?}");
                assert_eq!(client_ip::parse_node(&ip.to_string()), Some(ip));
            }
        }
    }
}

/// The rightmost untrusted hop, the plain way: every element of every value, last first.
fn reference_walk(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &IpSet,
    source: ClientIpHeader,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let name = match source {
        ClientIpHeader::XForwardedFor => "x-forwarded-for",
        ClientIpHeader::Forwarded => "forwarded",
    };
    let mut elements: Vec<Option<&str>> = Vec::new();
    for value in headers.get_all(name) {
        match value.to_str() {
            Ok(text) => elements.extend(text.split(',').map(Some)),
            // A value that is not text ends the walk where it stands.
            Err(_) => elements.push(None),
        }
    }
    let mut client = peer;
    for element in elements.into_iter().rev().take(MAX_HOPS) {
        let Some(element) = element else {
            return client;
        };
        let hop = match source {
            ClientIpHeader::XForwardedFor => client_ip::parse_node(element.trim()),
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
    client
}

/// The single `for=` address of a `Forwarded` element (RFC 7239 §4), or nothing.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let pairs: Vec<(&str, &str)> = element
        .split(';')
        .map(|p| p.split_once('='))
        .collect::<Option<_>>()?;
    let mut fors = pairs
        .iter()
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case("for"));
    let (_, value) = fors.next()?;
    if fors.next().is_some() {
        return None;
    }
    let value = value.trim();
    let value = match value.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => value,
    };
    client_ip::parse_node(value)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Runs `check` over every file of the seed corpus `fuzz/corpus/<target>`.
    fn replay(target: &str, check: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
            check(&data);
            seen += 1;
        }
        assert!(seen > 0, "no seeds in {}", dir.display());
    }

    #[test]
    fn the_chunked_corpus_passes() {
        replay("chunked", super::chunked);
    }

    #[test]
    fn the_proxy_protocol_corpus_passes() {
        replay("proxy_protocol", super::proxy_protocol);
    }

    #[test]
    fn the_client_ip_corpus_passes() {
        replay("client_ip", super::client_ip);
    }
}

//! The PROXY protocol (versions 1 and 2, haproxy.org's `proxy-protocol.txt`): a header a load
//! balancer sends before the client's bytes to tell the real client and server addresses.
//!
//! [`parse`] is pure and never allocates or panics: it takes the bytes received so far and says
//! whether a header is complete (and how long it is), needs more bytes, or is invalid and why.
//! The encoders build headers for upstreams that expect one.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

mod crc32c;

pub use crc32c::crc32c;

/// The 12 bytes every version 2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest version 1 line, CRLF included (the protocol's own limit).
pub const V1_MAX_LEN: usize = 107;

/// The longest version 2 header accepted, fixed part included. The protocol allows 65,551
/// bytes; load balancers send far less, and a cap bounds what a peer can make us buffer.
pub const V2_MAX_LEN: usize = 4096;

/// TLV type of the CRC32C checksum of the whole header.
pub const TLV_CRC32C: u8 = 0x03;

/// TLV type of padding that receivers ignore.
pub const TLV_NOOP: u8 = 0x04;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_FIXED_LEN: usize = 16;

/// Protocol version of a parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text format.
    V1,
    /// The binary format.
    V2,
}

/// What the sender says the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The sender's own connection (a health check): use the real endpoints.
    Local,
    /// A relayed connection: the header carries the client's addresses.
    Proxy,
}

/// A complete, valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Which format it used.
    pub version: Version,
    /// Relayed or local.
    pub command: Command,
    /// The client (source) and server (destination) addresses, when the header names TCP
    /// over IPv4 or IPv6; `None` for `LOCAL`, `UNKNOWN`, `UNSPEC` and UNIX sockets.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
    /// Raw TLV area of a version 2 header (already validated; see [`Header::tlvs`]).
    tlv_area: &'a [u8],
}

impl<'a> Header<'a> {
    /// The client address the header carries, if any.
    #[must_use]
    pub fn source(&self) -> Option<SocketAddr> {
        self.addresses.map(|(src, _)| src)
    }

    /// The type-length-value extensions of a version 2 header, in order.
    #[must_use]
    pub const fn tlvs(&self) -> Tlvs<'a> {
        Tlvs {
            rest: self.tlv_area,
        }
    }
}

/// One TLV extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Its type (`PP2_TYPE_*`).
    pub kind: u8,
    /// Its value.
    pub value: &'a [u8],
}

/// Iterator over validated TLVs.
#[derive(Debug, Clone)]
pub struct Tlvs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Tlv<'a>;

    fn next(&mut self) -> Option<Tlv<'a>> {
        let (tlv, rest) = split_tlv(self.rest).ok()??;
        self.rest = rest;
        Some(tlv)
    }
}

/// The result of looking at the first bytes of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A whole header, `len` bytes long; the client's own bytes follow it.
    Complete {
        /// The header.
        header: Header<'a>,
        /// Its length in bytes.
        len: usize,
    },
    /// Not enough bytes yet: the buffer must grow to at least `need` bytes.
    Incomplete {
        /// The buffer length that allows progress.
        need: usize,
    },
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The bytes start with neither signature: the peer sent no PROXY header.
    Missing,
    /// A version 1 line longer than 107 bytes.
    V1TooLong,
    /// A version 1 line that does not follow the grammar; says which part.
    V1Malformed(&'static str),
    /// A version 2 header whose version nibble is not 2.
    V2Version(u8),
    /// A version 2 command other than LOCAL (0) and PROXY (1).
    V2Command(u8),
    /// A version 2 address family or transport this listener cannot use.
    V2Family(u8),
    /// A version 2 length too short for the address block its family needs.
    V2AddressLength(u16),
    /// A version 2 header longer than [`V2_MAX_LEN`].
    V2TooLong(usize),
    /// A TLV that runs past the header or is otherwise malformed.
    V2Tlv,
    /// A CRC32C TLV that does not match the header.
    V2Checksum,
}

impl ParseError {
    /// A short stable code for logs.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::V1TooLong => "v1_too_long",
            Self::V1Malformed(_) => "v1_malformed",
            Self::V2Version(_) => "v2_bad_version",
            Self::V2Command(_) => "v2_bad_command",
            Self::V2Family(_) => "v2_bad_family",
            Self::V2AddressLength(_) => "v2_bad_length",
            Self::V2TooLong(_) => "v2_too_long",
            Self::V2Tlv => "v2_bad_tlv",
            Self::V2Checksum => "v2_bad_checksum",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("no PROXY protocol header"),
            Self::V1TooLong => write!(f, "PROXY v1 line longer than {V1_MAX_LEN} bytes"),
            Self::V1Malformed(what) => write!(f, "malformed PROXY v1 line: {what}"),
            Self::V2Version(v) => write!(f, "PROXY v2 header with version {v}"),
            Self::V2Command(c) => write!(f, "PROXY v2 header with unknown command {c}"),
            Self::V2Family(b) => write!(
                f,
                "PROXY v2 header with unsupported family/transport 0x{b:02x}"
            ),
            Self::V2AddressLength(n) => {
                write!(f, "PROXY v2 length {n} too short for its addresses")
            }
            Self::V2TooLong(n) => write!(
                f,
                "PROXY v2 header of {n} bytes (at most {V2_MAX_LEN} accepted)"
            ),
            Self::V2Tlv => f.write_str("PROXY v2 header with a malformed TLV"),
            Self::V2Checksum => f.write_str("PROXY v2 header with a wrong CRC32C checksum"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Looks at the first bytes of a connection.
///
/// # Errors
/// The bytes cannot start a valid PROXY protocol header; [`ParseError`] says why.
pub fn parse(buf: &[u8]) -> Result<Parsed<'_>, ParseError> {
    if buf.first() == Some(&b'P') {
        if !is_prefix_of(buf, V1_PREFIX) {
            return Err(ParseError::Missing);
        }
        parse_v1(buf)
    } else {
        if !is_prefix_of(buf, &V2_SIGNATURE) {
            return Err(ParseError::Missing);
        }
        parse_v2(buf)
    }
}

/// True when `buf` and `sig` agree on their common length.
fn is_prefix_of(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf[..n] == sig[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Parsed<'_>, ParseError> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(lf) = window.iter().position(|b| *b == b'\n') else {
        if buf.len() >= V1_MAX_LEN {
            return Err(ParseError::V1TooLong);
        }
        return Ok(Parsed::Incomplete {
            need: buf.len() + 1,
        });
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return Err(ParseError::V1Malformed("line does not end in CRLF"));
    }
    let line = &window[V1_PREFIX.len()..lf - 1];
    let line = std::str::from_utf8(line).map_err(|_| ParseError::V1Malformed("not ASCII"))?;
    let header = v1_fields(line)?;
    Ok(Parsed::Complete {
        header,
        len: lf + 1,
    })
}

fn v1_fields(line: &str) -> Result<Header<'static>, ParseError> {
    let unknown = Header {
        version: Version::V1,
        command: Command::Proxy,
        addresses: None,
        tlv_area: &[],
    };
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return Ok(unknown);
    }
    if line
        .bytes()
        .any(|b| !(0x21..=0x7e).contains(&b) && b != b' ')
    {
        return Err(ParseError::V1Malformed("control character"));
    }
    let mut fields = line.split(' ');
    let (Some(proto), Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(ParseError::V1Malformed(
            "expected PROTO SRC DST SPORT DPORT separated by single spaces",
        ));
    };
    let (src, dst): (IpAddr, IpAddr) = match proto {
        "TCP4" => (
            IpAddr::V4(
                src.parse::<Ipv4Addr>()
                    .map_err(|_| ParseError::V1Malformed("bad IPv4 source"))?,
            ),
            IpAddr::V4(
                dst.parse::<Ipv4Addr>()
                    .map_err(|_| ParseError::V1Malformed("bad IPv4 destination"))?,
            ),
        ),
        "TCP6" => (
            IpAddr::V6(
                src.parse::<Ipv6Addr>()
                    .map_err(|_| ParseError::V1Malformed("bad IPv6 source"))?,
            ),
            IpAddr::V6(
                dst.parse::<Ipv6Addr>()
                    .map_err(|_| ParseError::V1Malformed("bad IPv6 destination"))?,
            ),
        ),
        _ => {
            return Err(ParseError::V1Malformed(
                "protocol is not TCP4, TCP6 or UNKNOWN",
            ));
        }
    };
    let sport = v1_port(sport)?;
    let dport = v1_port(dport)?;
    Ok(Header {
        addresses: Some((SocketAddr::new(src, sport), SocketAddr::new(dst, dport))),
        ..unknown
    })
}

fn v1_port(text: &str) -> Result<u16, ParseError> {
    let bad = ParseError::V1Malformed("bad port");
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(bad);
    }
    text.parse().map_err(|_| bad)
}

fn parse_v2(buf: &[u8]) -> Result<Parsed<'_>, ParseError> {
    if buf.len() < V2_FIXED_LEN {
        return Ok(Parsed::Incomplete { need: V2_FIXED_LEN });
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(ParseError::V2Version(ver_cmd >> 4));
    }
    let command = match ver_cmd & 0x0f {
        0 => Command::Local,
        1 => Command::Proxy,
        other => return Err(ParseError::V2Command(other)),
    };
    let fam = buf[13];
    let declared = u16::from_be_bytes([buf[14], buf[15]]);
    let total = V2_FIXED_LEN + usize::from(declared);
    if total > V2_MAX_LEN {
        return Err(ParseError::V2TooLong(total));
    }
    let address_len = match fam {
        0x00 => 0,
        0x11 => 12,
        0x21 => 36,
        0x31 => 216,
        other => return Err(ParseError::V2Family(other)),
    };
    if usize::from(declared) < address_len {
        return Err(ParseError::V2AddressLength(declared));
    }
    if buf.len() < total {
        return Ok(Parsed::Incomplete { need: total });
    }
    let header_bytes = &buf[..total];
    let body = &header_bytes[V2_FIXED_LEN..];
    let tlv_area = &body[address_len..];
    check_tlvs(header_bytes, tlv_area, V2_FIXED_LEN + address_len)?;
    let addresses = match (command, fam) {
        (Command::Proxy, 0x11) => Some(v2_inet4(body)),
        (Command::Proxy, 0x21) => Some(v2_inet6(body)),
        _ => None,
    };
    Ok(Parsed::Complete {
        header: Header {
            version: Version::V2,
            command,
            addresses,
            tlv_area,
        },
        len: total,
    })
}

fn v2_inet4(body: &[u8]) -> (SocketAddr, SocketAddr) {
    let ip = |at: usize| Ipv4Addr::new(body[at], body[at + 1], body[at + 2], body[at + 3]);
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    (
        SocketAddr::new(IpAddr::V4(ip(0)), port(8)),
        SocketAddr::new(IpAddr::V4(ip(4)), port(10)),
    )
}

fn v2_inet6(body: &[u8]) -> (SocketAddr, SocketAddr) {
    let ip = |at: usize| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&body[at..at + 16]);
        Ipv6Addr::from(octets)
    };
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    (
        SocketAddr::new(IpAddr::V6(ip(0)), port(32)),
        SocketAddr::new(IpAddr::V6(ip(16)), port(34)),
    )
}

/// Splits the first TLV off `area`: `Ok(None)` at the end, `Err` when it runs past the area.
fn split_tlv(area: &[u8]) -> Result<Option<(Tlv<'_>, &[u8])>, ParseError> {
    if area.is_empty() {
        return Ok(None);
    }
    if area.len() < 3 {
        return Err(ParseError::V2Tlv);
    }
    let len = usize::from(u16::from_be_bytes([area[1], area[2]]));
    let end = 3 + len;
    if area.len() < end {
        return Err(ParseError::V2Tlv);
    }
    Ok(Some((
        Tlv {
            kind: area[0],
            value: &area[3..end],
        },
        &area[end..],
    )))
}

/// Walks every TLV, and verifies a CRC32C TLV against the whole header (`tlv_start` is the
/// offset of the TLV area in `header`).
fn check_tlvs(header: &[u8], area: &[u8], tlv_start: usize) -> Result<(), ParseError> {
    let mut rest = area;
    let mut seen_crc = false;
    while let Some((tlv, next)) = split_tlv(rest)? {
        if tlv.kind == TLV_CRC32C {
            if tlv.value.len() != 4 || seen_crc {
                return Err(ParseError::V2Tlv);
            }
            seen_crc = true;
            let value_at = tlv_start + (area.len() - rest.len()) + 3;
            let expected =
                u32::from_be_bytes([tlv.value[0], tlv.value[1], tlv.value[2], tlv.value[3]]);
            if crc32c_with_zeroed(header, value_at) != expected {
                return Err(ParseError::V2Checksum);
            }
        }
        rest = next;
    }
    Ok(())
}

/// CRC32C of `header` with the four bytes at `zero_at` taken as zero.
fn crc32c_with_zeroed(header: &[u8], zero_at: usize) -> u32 {
    let state = crc32c::update(crc32c::INIT, &header[..zero_at]);
    let state = crc32c::update(state, &[0; 4]);
    !crc32c::update(state, &header[zero_at + 4..])
}

/// Why a header could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The TLVs make the header longer than the protocol allows.
    #[error("PROXY v2 header too long")]
    TooLong,
}

/// The version 1 line for a connection from `source` to `destination` (`PROXY UNKNOWN` when
/// their address families differ).
#[must_use]
pub fn encode_v1(source: SocketAddr, destination: SocketAddr) -> String {
    let (src, dst) = (source.ip().to_canonical(), destination.ip().to_canonical());
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            format!(
                "PROXY TCP4 {s} {d} {} {}\r\n",
                source.port(),
                destination.port()
            )
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            format!(
                "PROXY TCP6 {s} {d} {} {}\r\n",
                source.port(),
                destination.port()
            )
        }
        _ => "PROXY UNKNOWN\r\n".to_owned(),
    }
}

/// A version 2 header: `PROXY` with the addresses (TCP; IPv4 when both are IPv4, otherwise
/// IPv6 with IPv4-mapped addresses), or `LOCAL` when `addresses` is `None`. `tlvs` are
/// `(type, value)` pairs written in order; with `checksum`, a CRC32C TLV is appended.
///
/// # Errors
/// [`EncodeError::TooLong`] when the TLVs do not fit the 16-bit length.
pub fn encode_v2(
    addresses: Option<(SocketAddr, SocketAddr)>,
    tlvs: &[(u8, &[u8])],
    checksum: bool,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&V2_SIGNATURE);
    match addresses {
        None => out.extend_from_slice(&[0x20, 0x00, 0, 0]),
        Some((src, dst)) => match (src.ip().to_canonical(), dst.ip().to_canonical()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                out.extend_from_slice(&[0x21, 0x11, 0, 0]);
                out.extend_from_slice(&s.octets());
                out.extend_from_slice(&d.octets());
                out.extend_from_slice(&src.port().to_be_bytes());
                out.extend_from_slice(&dst.port().to_be_bytes());
            }
            (s, d) => {
                out.extend_from_slice(&[0x21, 0x21, 0, 0]);
                out.extend_from_slice(&as_v6(s).octets());
                out.extend_from_slice(&as_v6(d).octets());
                out.extend_from_slice(&src.port().to_be_bytes());
                out.extend_from_slice(&dst.port().to_be_bytes());
            }
        },
    }
    for (kind, value) in tlvs {
        let len = u16::try_from(value.len()).map_err(|_| EncodeError::TooLong)?;
        out.push(*kind);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(value);
    }
    let crc_at = checksum.then(|| {
        out.extend_from_slice(&[TLV_CRC32C, 0, 4]);
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        at
    });
    let len = u16::try_from(out.len() - V2_FIXED_LEN).map_err(|_| EncodeError::TooLong)?;
    out[14..16].copy_from_slice(&len.to_be_bytes());
    if let Some(at) = crc_at {
        let crc = crc32c(&out);
        out[at..at + 4].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(out)
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests;

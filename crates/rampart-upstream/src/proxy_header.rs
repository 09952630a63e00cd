//! PROXY protocol headers sent to upstreams that ask for them (`proxy_protocol = "v1" | "v2"`):
//! the client's connection, written before anything else on a connection opened for it.

use std::net::SocketAddr;

use bytes::Bytes;
use rampart_config::model::ProxyProtocolVersion;
use rampart_core::proxy_protocol::{encode_v1, encode_v2};

/// TLV: the host name the client asked for (SNI, else the request's host).
const TLV_AUTHORITY: u8 = 0x02;
/// TLV: an opaque ID of the connection or request (Rampart's request ID).
const TLV_UNIQUE_ID: u8 = 0x05;
/// TLV: the client's TLS details (client flags, verify result, then sub-TLVs).
const TLV_SSL: u8 = 0x20;
/// Sub-TLV of `TLV_SSL`: the TLS version, like `TLSv1.3`.
const SUBTLV_SSL_VERSION: u8 = 0x21;
/// `TLV_SSL` client flag: the client connected over TLS.
const PP2_CLIENT_SSL: u8 = 0x01;
/// `TLV_SSL` client flag: the client presented a certificate on this connection.
const PP2_CLIENT_CERT_CONN: u8 = 0x02;

/// The client connection a header describes; the server puts it in the request's extensions
/// for upstreams with `proxy_protocol` set.
#[derive(Debug, Clone)]
pub struct ClientConnection {
    /// The client's address (from the socket, or from the PROXY header it came with).
    pub source: SocketAddr,
    /// The address the client connected to.
    pub destination: SocketAddr,
    /// SNI name or request host (v2 `AUTHORITY` TLV).
    pub authority: Option<String>,
    /// The request ID (v2 `UNIQUE_ID` TLV; at most 128 bytes are sent).
    pub unique_id: Bytes,
    /// The TLS version when the client used TLS, and whether it sent a certificate.
    pub tls: Option<(&'static str, bool)>,
}

/// Encodes the header for `client` in `version`. A v2 header that would not fit (an absurdly
/// long authority) is sent without its TLVs rather than not at all.
#[must_use]
pub fn encode(version: ProxyProtocolVersion, client: &ClientConnection) -> Bytes {
    match version {
        ProxyProtocolVersion::V1 => Bytes::from(encode_v1(client.source, client.destination)),
        ProxyProtocolVersion::V2 => {
            let addresses = Some((client.source, client.destination));
            let ssl = client.tls.map(ssl_tlv);
            let id = &client.unique_id[..client.unique_id.len().min(128)];
            let mut tlvs: Vec<(u8, &[u8])> = Vec::with_capacity(3);
            if let Some(authority) = &client.authority {
                tlvs.push((TLV_AUTHORITY, authority.as_bytes()));
            }
            if !id.is_empty() {
                tlvs.push((TLV_UNIQUE_ID, id));
            }
            if let Some(ssl) = &ssl {
                tlvs.push((TLV_SSL, ssl));
            }
            encode_v2(addresses, &tlvs, true)
                .or_else(|_| encode_v2(addresses, &[], true))
                .map(Bytes::from)
                .unwrap_or_default()
        }
    }
}

/// The header for a connection of Rampart's own (no client to name): `PROXY UNKNOWN` or a v2
/// `LOCAL` header, so that the upstream still finds the header it requires.
#[must_use]
pub fn encode_local(version: ProxyProtocolVersion) -> Bytes {
    match version {
        ProxyProtocolVersion::V1 => Bytes::from_static(b"PROXY UNKNOWN\r\n"),
        ProxyProtocolVersion::V2 => encode_v2(None, &[], false)
            .map(Bytes::from)
            .unwrap_or_default(),
    }
}

/// The header a request's connection to `version` upstreams opens with: the client named by
/// the request's [`ClientConnection`] extension, else a local header.
#[must_use]
pub fn for_request<B>(version: ProxyProtocolVersion, req: &http::Request<B>) -> Bytes {
    match req.extensions().get::<ClientConnection>() {
        Some(client) => encode(version, client),
        None => encode_local(version),
    }
}

/// The `PP2_TYPE_SSL` value: client flags, a verify result of 0 (success: Rampart only lets
/// verified certificates through), and the version sub-TLV.
fn ssl_tlv((version, cert): (&'static str, bool)) -> Vec<u8> {
    let mut flags = PP2_CLIENT_SSL;
    if cert {
        flags |= PP2_CLIENT_CERT_CONN;
    }
    let mut out = vec![flags, 0, 0, 0, 0, SUBTLV_SSL_VERSION];
    out.extend_from_slice(&u16::try_from(version.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(version.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::proxy_protocol::{Command, Header, Parsed, parse};

    fn complete(bytes: &[u8]) -> (Header<'_>, usize) {
        match parse(bytes).unwrap() {
            Parsed::Complete { header, len } => (header, len),
            Parsed::Incomplete { need } => panic!("incomplete, needs {need}"),
        }
    }

    fn client(tls: Option<(&'static str, bool)>) -> ClientConnection {
        ClientConnection {
            source: "203.0.113.7:40000".parse().unwrap(),
            destination: "127.0.0.1:443".parse().unwrap(),
            authority: Some("app.example".to_owned()),
            unique_id: Bytes::from_static(b"0123abcd"),
            tls,
        }
    }

    #[test]
    fn v1_names_the_client_and_the_address_it_reached() {
        let header = encode(ProxyProtocolVersion::V1, &client(None));
        assert_eq!(
            &header[..],
            b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n"
        );
    }

    #[test]
    fn v2_round_trips_through_the_parser_with_its_tlvs() {
        let header = encode(ProxyProtocolVersion::V2, &client(Some(("TLSv1.3", true))));
        let (parsed, len) = complete(&header);
        assert_eq!(len, header.len());
        assert_eq!(parsed.command, Command::Proxy);
        assert_eq!(parsed.source(), Some("203.0.113.7:40000".parse().unwrap()));
        let tlvs: Vec<(u8, Vec<u8>)> = parsed.tlvs().map(|t| (t.kind, t.value.to_vec())).collect();
        assert!(
            tlvs.contains(&(TLV_AUTHORITY, b"app.example".to_vec())),
            "{tlvs:?}"
        );
        assert!(tlvs.contains(&(TLV_UNIQUE_ID, b"0123abcd".to_vec())));
        let ssl = &tlvs.iter().find(|(t, _)| *t == TLV_SSL).unwrap().1;
        assert_eq!(ssl[0], PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN);
        assert_eq!(&ssl[5..], b"\x21\x00\x07TLSv1.3");
    }

    #[test]
    fn an_oversized_authority_drops_the_tlvs_not_the_header() {
        let mut c = client(None);
        c.authority = Some("a".repeat(70_000));
        let header = encode(ProxyProtocolVersion::V2, &c);
        assert_eq!(complete(&header).0.source(), Some(c.source));
    }
}

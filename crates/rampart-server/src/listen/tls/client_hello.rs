//! Reading the SNI name from the first bytes of a TLS connection without terminating it (for
//! passthrough). A pure function over untrusted bytes: it never panics, never allocates more
//! than the name, and says whether more bytes are needed.

/// Most bytes of ClientHello that are buffered before giving up.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;

/// What the first bytes of a connection say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sni {
    /// More bytes are needed.
    Incomplete,
    /// A complete ClientHello without a (host name) SNI extension.
    None,
    /// The SNI host name, lowercase, without a trailing dot.
    Name(String),
    /// Not a TLS ClientHello, malformed, or larger than [`MAX_CLIENT_HELLO`].
    Invalid,
}

const HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 0x01;
const EXT_SERVER_NAME: u16 = 0;

/// Parses the SNI name out of the ClientHello at the start of `buf`, which may be split over
/// several TLS records.
#[must_use]
pub fn parse_sni(buf: &[u8]) -> Sni {
    // Reassemble the handshake message from the records' fragments.
    let mut message: Vec<u8> = Vec::new();
    let mut rest = buf;
    loop {
        if rest.len() < 5 {
            return if buf.len() >= MAX_CLIENT_HELLO {
                Sni::Invalid
            } else {
                Sni::Incomplete
            };
        }
        if rest[0] != HANDSHAKE || rest[1] != 3 {
            return Sni::Invalid;
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 || len > 16_384 + 2048 {
            return Sni::Invalid;
        }
        let Some(fragment) = rest.get(5..5 + len) else {
            return if buf.len() >= MAX_CLIENT_HELLO {
                Sni::Invalid
            } else {
                Sni::Incomplete
            };
        };
        message.extend_from_slice(fragment);
        rest = &rest[5 + len..];
        if message.len() >= 4 {
            if message[0] != CLIENT_HELLO {
                return Sni::Invalid;
            }
            let body_len = usize::from(message[1]) << 16
                | usize::from(message[2]) << 8
                | usize::from(message[3]);
            if body_len + 4 > MAX_CLIENT_HELLO {
                return Sni::Invalid;
            }
            if message.len() >= body_len + 4 {
                return client_hello_sni(&message[4..4 + body_len]).unwrap_or(Sni::Invalid);
            }
        }
    }
}

/// A bounds-checked reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

fn client_hello_sni(body: &[u8]) -> Option<Sni> {
    let mut r = Reader(body);
    r.take(2)?; // legacy_version
    r.take(32)?; // random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    if r.0.is_empty() {
        return Some(Sni::None); // no extensions at all
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind != EXT_SERVER_NAME {
            continue;
        }
        let mut list = Reader(Reader(data).vec16()?);
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name = list.vec16()?;
            if name_type != 0 {
                continue;
            }
            let name = std::str::from_utf8(name).ok()?;
            let name = name.strip_suffix('.').unwrap_or(name);
            if name.is_empty()
                || name.len() > 253
                || name.split('.').any(str::is_empty)
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            {
                return None;
            }
            return Some(Sni::Name(name.to_ascii_lowercase()));
        }
        return Some(Sni::None);
    }
    Some(Sni::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello record with the given extensions block.
    fn hello(extensions: &[u8]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&u16::try_from(extensions.len()).unwrap().to_be_bytes());
        body.extend_from_slice(extensions);
        let mut msg = vec![CLIENT_HELLO];
        let len = u32::try_from(body.len()).unwrap().to_be_bytes();
        msg.extend_from_slice(&len[1..]);
        msg.extend_from_slice(&body);
        let mut rec = vec![HANDSHAKE, 3, 1];
        rec.extend_from_slice(&u16::try_from(msg.len()).unwrap().to_be_bytes());
        rec.extend_from_slice(&msg);
        rec
    }

    fn sni_ext(name: &str) -> Vec<u8> {
        let mut entry = vec![0];
        entry.extend_from_slice(&u16::try_from(name.len()).unwrap().to_be_bytes());
        entry.extend_from_slice(name.as_bytes());
        let mut list = u16::try_from(entry.len()).unwrap().to_be_bytes().to_vec();
        list.extend_from_slice(&entry);
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&u16::try_from(list.len()).unwrap().to_be_bytes());
        ext.extend_from_slice(&list);
        ext
    }

    #[test]
    fn finds_the_name_among_other_extensions() {
        let mut exts = vec![0, 10, 0, 2, 0, 29]; // supported_groups-ish
        exts.extend(sni_ext("API.Example.com."));
        assert_eq!(
            parse_sni(&hello(&exts)),
            Sni::Name("api.example.com".into())
        );
    }

    #[test]
    fn names_with_empty_labels_are_invalid() {
        for name in ["a..", "a..b", ".a", "..", "."] {
            assert_eq!(parse_sni(&hello(&sni_ext(name))), Sni::Invalid, "{name}");
        }
    }

    #[test]
    fn no_sni_is_reported() {
        assert_eq!(parse_sni(&hello(&[0, 10, 0, 2, 0, 29])), Sni::None);
        assert_eq!(parse_sni(&hello(&[])), Sni::None);
    }

    #[test]
    fn every_truncation_is_incomplete_never_a_panic() {
        let full = hello(&sni_ext("a.example"));
        for n in 0..full.len() {
            assert_eq!(parse_sni(&full[..n]), Sni::Incomplete, "at {n}");
        }
        assert_eq!(parse_sni(&full), Sni::Name("a.example".into()));
    }

    #[test]
    fn a_hello_split_over_two_records_is_reassembled() {
        let full = hello(&sni_ext("split.example"));
        let msg = &full[5..];
        let (a, b) = msg.split_at(20);
        let mut two = vec![HANDSHAKE, 3, 1];
        two.extend_from_slice(&u16::try_from(a.len()).unwrap().to_be_bytes());
        two.extend_from_slice(a);
        two.extend_from_slice(&[HANDSHAKE, 3, 1]);
        two.extend_from_slice(&u16::try_from(b.len()).unwrap().to_be_bytes());
        two.extend_from_slice(b);
        assert_eq!(parse_sni(&two), Sni::Name("split.example".into()));
    }

    #[test]
    fn garbage_is_invalid() {
        assert_eq!(
            parse_sni(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Sni::Invalid
        );
        assert_eq!(parse_sni(&[0x16, 3, 1, 0, 0]), Sni::Invalid);
        let mut bad = hello(&sni_ext("bad name"));
        assert_eq!(parse_sni(&bad), Sni::Invalid);
        bad[5] = 2; // not a ClientHello
        assert_eq!(parse_sni(&bad), Sni::Invalid);
        // Lengths that point past the end of the message.
        let mut lying = hello(&sni_ext("a.example"));
        let n = lying.len();
        lying[n - 12] = 0xff;
        assert!(matches!(parse_sni(&lying), Sni::Invalid | Sni::None));
    }

    #[test]
    fn pseudo_random_input_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..2000 {
            let bytes: Vec<u8> = (0..len % 300)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect();
            let _ = parse_sni(&bytes);
            let mut with_header = vec![0x16, 3, 1, 1, 0x20, 1, 0, 1, 0x1c];
            with_header.extend_from_slice(&bytes);
            let _ = parse_sni(&with_header);
        }
    }
}

//! `Accept-Encoding` negotiation (RFC 9110 §12.5.3): which of the server's codings a client
//! gets, from its q-values first and the server's order of preference second.
//!
//! The header is read in place, without allocating, however long it is: each element is a
//! coding name with optional parameters, of which only `q` counts. An element whose `q` is not
//! a valid weight counts as `q=0`; a coding named with `q=0` is refused even when `*` would
//! accept it.

use http::HeaderMap;
use http::header::ACCEPT_ENCODING;

/// A content coding of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `gzip`.
    Gzip,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
}

impl Encoding {
    /// The coding's name in `Content-Encoding`.
    #[must_use]
    pub const fn token(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }

    /// The file extension of a precompressed sibling (`app.js.br`).
    #[must_use]
    pub const fn extension(self) -> &'static str {
        match self {
            Self::Gzip => "gz",
            Self::Brotli => "br",
            Self::Zstd => "zst",
        }
    }

    fn matches(self, name: &[u8]) -> bool {
        match self {
            Self::Gzip => {
                name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip")
            }
            Self::Brotli => name.eq_ignore_ascii_case(b"br"),
            Self::Zstd => name.eq_ignore_ascii_case(b"zstd"),
        }
    }
}

/// A weight in thousandths (`q=0.5` is 500).
type Weight = u16;

/// The coding of `offered` (in the server's order of preference) that the request's
/// `Accept-Encoding` prefers, or `None` for identity.
#[must_use]
pub fn choose(headers: &HeaderMap, offered: &[Encoding]) -> Option<Encoding> {
    let mut best: Option<(Encoding, Weight)> = None;
    for &encoding in offered {
        let weight = weight_of(headers, encoding);
        if weight > 0 && best.is_none_or(|(_, w)| weight > w) {
            best = Some((encoding, weight));
        }
    }
    best.map(|(encoding, _)| encoding)
}

/// The client's weight for `encoding`: its own element's, else `*`'s, else 0.
fn weight_of(headers: &HeaderMap, encoding: Encoding) -> Weight {
    let mut named = None;
    let mut star = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        for element in value.as_bytes().split(|b| *b == b',') {
            let mut parts = element.split(|b| *b == b';');
            let name = parts.next().unwrap_or_default().trim_ascii();
            let slot = if encoding.matches(name) {
                &mut named
            } else if name == b"*" {
                &mut star
            } else {
                continue;
            };
            let weight = q_of(parts);
            // Repeated elements: the highest weight given counts.
            *slot = Some(slot.map_or(weight, |w: Weight| w.max(weight)));
        }
    }
    named.or(star).unwrap_or(0)
}

/// The `q` parameter among `params` (1 when absent; 0 when malformed).
fn q_of<'a>(params: impl Iterator<Item = &'a [u8]>) -> Weight {
    for param in params {
        let param = param.trim_ascii();
        let Some(eq) = param.iter().position(|b| *b == b'=') else {
            continue;
        };
        if !param[..eq].trim_ascii().eq_ignore_ascii_case(b"q") {
            continue;
        }
        return parse_q(param[eq + 1..].trim_ascii()).unwrap_or(0);
    }
    1000
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
fn parse_q(text: &[u8]) -> Option<Weight> {
    let (int, frac) = match text.iter().position(|b| *b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Weight = 0;
    for (i, digit) in frac.iter().enumerate() {
        let scale = [100, 10, 1][i];
        thousandths += Weight::from(digit - b'0') * scale;
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const ALL: &[Encoding] = &[Encoding::Zstd, Encoding::Brotli, Encoding::Gzip];

    fn pick(value: &str, offered: &[Encoding]) -> Option<Encoding> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        choose(&headers, offered)
    }

    #[test]
    fn server_order_breaks_ties() {
        assert_eq!(pick("gzip, deflate, br, zstd", ALL), Some(Encoding::Zstd));
        assert_eq!(pick("gzip, br", ALL), Some(Encoding::Brotli));
        assert_eq!(
            pick("gzip, br", &[Encoding::Gzip, Encoding::Brotli]),
            Some(Encoding::Gzip)
        );
        assert_eq!(pick("*", ALL), Some(Encoding::Zstd));
    }

    #[test]
    fn q_values_come_first() {
        assert_eq!(pick("zstd;q=0.5, gzip;q=0.9", ALL), Some(Encoding::Gzip));
        assert_eq!(pick("br;q=1.0, zstd;q=0.999", ALL), Some(Encoding::Brotli));
        assert_eq!(pick("gzip ; q = 0.3 , br;q=0.2", ALL), Some(Encoding::Gzip));
        assert_eq!(pick("X-GZIP", ALL), Some(Encoding::Gzip));
    }

    #[test]
    fn q_zero_refuses_even_with_a_star() {
        assert_eq!(pick("zstd;q=0, br;q=0, *", ALL), Some(Encoding::Gzip));
        assert_eq!(pick("*;q=0", ALL), None);
        assert_eq!(pick("gzip;q=0", &[Encoding::Gzip]), None);
        assert_eq!(pick("identity", ALL), None);
        assert_eq!(pick("", ALL), None);
    }

    #[test]
    fn malformed_weights_count_as_zero() {
        for bad in [
            "gzip;q=2",
            "gzip;q=0.1234",
            "gzip;q=abc",
            "gzip;q=",
            "gzip;q=1.5",
            "gzip;q=-1",
        ] {
            assert_eq!(pick(bad, ALL), None, "{bad}");
        }
        assert_eq!(pick("gzip;foo=bar", ALL), Some(Encoding::Gzip));
        assert_eq!(pick(";;;,,,;q=1", ALL), None);
    }

    #[test]
    fn long_headers_are_read_whole_without_trouble() {
        let mut long = "x-unknown;q=0.1, ".repeat(500);
        long.push_str("br");
        assert!(long.len() > 8 * 1024);
        assert_eq!(pick(&long, ALL), Some(Encoding::Brotli));
    }

    #[test]
    fn several_header_lines_are_combined() {
        let mut headers = HeaderMap::new();
        headers.append(ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0.5"));
        headers.append(ACCEPT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(choose(&headers, ALL), Some(Encoding::Brotli));
    }
}

//! Request IDs and W3C trace context (`traceparent`).

use http::HeaderValue;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Two hex digits per byte value: one table load per byte instead of a shift and a load per
/// digit (request IDs and `traceparent` are formatted on every request).
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    table
};

/// Writes the low `out.len() / 2` bytes of `value` as lowercase hex (`out.len()` is even).
fn hex_into(out: &mut [u8], value: u128) {
    let bytes = value.to_be_bytes();
    let skip = bytes.len().saturating_sub(out.len() / 2);
    for (pair, byte) in out.chunks_exact_mut(2).zip(&bytes[skip..]) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
    }
}

/// A new random request ID: 32 lowercase hex digits.
///
/// Hot path: the digits are owned by the value's `Bytes` as they are (one allocation), so the
/// clones that put the ID into the response and the log share them without copying; a value
/// built from a slice would copy it, then allocate again on its first clone.
#[must_use]
pub fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; 32];
    hex_into(&mut buf, fastrand::u128(..));
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(buf))
        .unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// True when a client-supplied request ID is acceptable: 1–128 visible ASCII characters
/// without spaces or quotes (so it is safe in logs and headers).
#[must_use]
pub fn is_valid_request_id(value: &HeaderValue) -> bool {
    let b = value.as_bytes();
    (1..=128).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_graphic() && *c != b'"' && *c != b'\\')
}

/// The W3C trace context of a request, as Rampart forwards it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// 128-bit trace ID (never zero).
    pub trace_id: u128,
    /// The span ID Rampart uses for its hop (the upstream's parent), never zero.
    pub span_id: u64,
    /// The span ID the client sent, if any.
    pub parent_id: Option<u64>,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// Continues the client's `traceparent` when it is valid, or starts a new trace.
    #[must_use]
    pub fn continue_or_start(traceparent: Option<&HeaderValue>) -> Self {
        match traceparent.and_then(|v| parse_traceparent(v.as_bytes())) {
            Some((trace_id, parent, flags)) => Self {
                trace_id,
                span_id: nonzero_u64(),
                parent_id: Some(parent),
                flags,
            },
            None => Self {
                trace_id: fastrand::u128(1..),
                span_id: nonzero_u64(),
                parent_id: None,
                flags: 0,
            },
        }
    }

    /// The `traceparent` value to send upstream (Rampart's hop as the parent).
    #[must_use]
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.header_bytes())
            .unwrap_or_else(|_| HeaderValue::from_static("00"))
    }

    /// The `traceparent` value as bytes (lowercase hex and dashes: always a valid field
    /// value), for writers that serialize it without allocating a [`HeaderValue`].
    #[must_use]
    pub fn header_bytes(&self) -> [u8; 55] {
        let mut buf = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex_into(&mut buf[3..35], self.trace_id);
        hex_into(&mut buf[36..52], u128::from(self.span_id));
        hex_into(&mut buf[53..55], u128::from(self.flags));
        buf
    }

    /// The trace ID as 32 hex digits (for logs).
    #[must_use]
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

fn nonzero_u64() -> u64 {
    fastrand::u64(1..)
}

/// Parses `version-traceid-parentid-flags` per W3C Trace Context level 1; returns `None` for
/// anything invalid (all-zero IDs, version `ff`, wrong lengths, uppercase hex).
fn parse_traceparent(v: &[u8]) -> Option<(u128, u64, u8)> {
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = parse_hex(&v[0..2])?;
    // Version 00 is exactly 55 bytes; later versions may append fields after another '-'.
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    let trace_id = parse_hex(&v[3..35])?;
    let parent = u64::try_from(parse_hex(&v[36..52])?).ok()?;
    let flags = u8::try_from(parse_hex(&v[53..55])?).ok()?;
    (trace_id != 0 && parent != 0).then_some((trace_id, parent, flags))
}

fn parse_hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |acc, d| {
        let n = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some((acc << 4) | u128::from(n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_32_hex_digits_and_differ() {
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 32);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(a, b);
        let copy = a.clone();
        assert_eq!(copy, a);
        assert_eq!(
            copy.as_bytes().as_ptr(),
            a.as_bytes().as_ptr(),
            "clones share"
        );
    }

    #[test]
    fn client_request_ids_are_validated() {
        assert!(is_valid_request_id(&HeaderValue::from_static("abc-123")));
        assert!(!is_valid_request_id(&HeaderValue::from_static("has space")));
        assert!(!is_valid_request_id(&HeaderValue::from_static("")));
        let long = "x".repeat(129);
        assert!(!is_valid_request_id(&HeaderValue::from_str(&long).unwrap()));
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let incoming =
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let ctx = TraceContext::continue_or_start(Some(&incoming));
        assert_eq!(ctx.trace_id, 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736);
        assert_eq!(ctx.parent_id, Some(0x00f0_67aa_0ba9_02b7));
        assert_eq!(ctx.flags, 1);
        let out = ctx.header_value();
        let out = out.to_str().unwrap();
        assert!(
            out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{out}"
        );
        assert!(out.ends_with("-01"));
        assert_ne!(&out[36..52], "00f067aa0ba902b7");
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let ctx = TraceContext::continue_or_start(Some(&HeaderValue::from_static(bad)));
            assert_eq!(ctx.parent_id, None, "{bad}");
            assert_ne!(ctx.trace_id, 0);
        }
    }

    #[test]
    fn new_traces_format_as_valid_traceparents() {
        let ctx = TraceContext::continue_or_start(None);
        let v = ctx.header_value();
        assert!(parse_traceparent(v.as_bytes()).is_some(), "{v:?}");
    }
}

//! The OTLP trace protobuf messages Rampart sends, encoded by hand: a request is a handful of
//! nested messages of strings, integers and bytes, which does not justify a code generator or
//! a protobuf runtime. Field numbers follow `opentelemetry/proto/trace/v1/trace.proto`,
//! `common/v1/common.proto`, `resource/v1/resource.proto` and
//! `collector/trace/v1/trace_service.proto`.

use super::SpanRecord;

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// `Span.SpanKind.SPAN_KIND_SERVER`.
const SPAN_KIND_SERVER: u64 = 2;
/// `Status.StatusCode.STATUS_CODE_ERROR`.
const STATUS_CODE_ERROR: u64 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(out, field, LEN);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn u64_field(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, VARINT);
    varint(out, v);
}

fn fixed64_field(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// Writes a nested message built by `build` as field `field`.
fn message(out: &mut Vec<u8>, field: u32, build: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    build(&mut inner);
    bytes_field(out, field, &inner);
}

/// A value of an attribute (`AnyValue`).
pub(super) enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
}

/// `KeyValue { key = 1; value = 2 }` as field `field` of its parent.
fn attribute(out: &mut Vec<u8>, field: u32, key: &str, value: &Value<'_>) {
    message(out, field, |kv| {
        bytes_field(kv, 1, key.as_bytes());
        message(kv, 2, |any| match value {
            Value::Str(s) => bytes_field(any, 1, s.as_bytes()),
            Value::Int(i) => u64_field(any, 3, *i as u64),
            Value::Double(d) => fixed64_field(any, 4, d.to_bits()),
        });
    });
}

/// An `ExportTraceServiceRequest` with one resource (`service.name`) and one scope.
pub(super) fn export_request(service_name: &str, spans: &[SpanRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 * spans.len() + 128);
    // ExportTraceServiceRequest.resource_spans = 1
    message(&mut out, 1, |rs| {
        // ResourceSpans.resource = 1 { attributes = 1 }
        message(rs, 1, |res| {
            attribute(res, 1, "service.name", &Value::Str(service_name));
            attribute(
                res,
                1,
                "service.version",
                &Value::Str(env!("CARGO_PKG_VERSION")),
            );
        });
        // ResourceSpans.scope_spans = 2
        message(rs, 2, |ss| {
            // ScopeSpans.scope = 1 { name = 1, version = 2 }
            message(ss, 1, |scope| {
                bytes_field(scope, 1, b"rampart");
                bytes_field(scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
            });
            for span in spans {
                // ScopeSpans.spans = 2
                message(ss, 2, |s| encode_span(s, span));
            }
        });
    });
    out
}

fn encode_span(out: &mut Vec<u8>, span: &SpanRecord) {
    bytes_field(out, 1, &span.trace_id.to_be_bytes());
    bytes_field(out, 2, &span.span_id.to_be_bytes());
    if let Some(parent) = span.parent_id {
        bytes_field(out, 4, &parent.to_be_bytes());
    }
    bytes_field(out, 5, span.name().as_bytes());
    u64_field(out, 6, SPAN_KIND_SERVER);
    fixed64_field(out, 7, span.start_unix_nanos);
    fixed64_field(out, 8, span.end_unix_nanos);
    span.for_each_attribute(|key, value| attribute(out, 9, key, &value));
    if span.status >= 500 {
        // Span.status = 15 { message = 2, code = 3 }
        message(out, 15, |st| {
            if let Some(reason) = span.reason {
                bytes_field(st, 2, reason.as_bytes());
            }
            u64_field(st, 3, STATUS_CODE_ERROR);
        });
    }
}

/// Frames a protobuf message for gRPC: no compression flag, then its length (big-endian).
pub(super) fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_encode_as_protobuf_does() {
        let mut out = Vec::new();
        varint(&mut out, 1);
        varint(&mut out, 300);
        varint(&mut out, u64::MAX);
        assert_eq!(
            out,
            [
                1, 0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]
        );
    }

    #[test]
    fn grpc_frames_carry_the_length() {
        assert_eq!(grpc_frame(b"abc"), [0, 0, 0, 0, 3, b'a', b'b', b'c']);
    }
}

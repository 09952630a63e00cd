//! Tests of the response head parser.

use super::*;

fn parse(raw: &str, method: &Method) -> Result<Option<Head>, BadResponse> {
    let mut buf = BytesMut::from(raw.as_bytes());
    parse_head(&mut buf, method, &mut HeadScratch::default())
}

fn head(raw: &str) -> Head {
    parse(raw, &Method::GET).unwrap().unwrap()
}

#[test]
fn a_content_length_response_is_framed_by_length_and_kept_alive() {
    let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello");
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.framing, ResponseFraming::Length(5));
    assert!(h.keep_alive);
    assert_eq!(h.headers["x-a"], "b");
}

#[test]
fn names_remembered_from_the_previous_head_are_reused_only_when_they_match() {
    let mut scratch = HeadScratch::default();
    let mut parse_with = |raw: &str| {
        let mut buf = BytesMut::from(raw.as_bytes());
        parse_head(&mut buf, &Method::GET, &mut scratch)
            .unwrap()
            .unwrap()
    };
    let first = parse_with("HTTP/1.1 200 OK\r\nX-Tag: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(first.headers["x-tag"], "a");
    // Same names in another case, then a different name at the same position.
    let second = parse_with("HTTP/1.1 200 OK\r\nx-TAG: b\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(second.headers["x-tag"], "b");
    assert_eq!(second.headers["content-length"], "0");
    let third = parse_with("HTTP/1.1 200 OK\r\nX-Other: c\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(third.headers["x-other"], "c");
    assert!(third.headers.get("x-tag").is_none());
    let names: Vec<&str> = third.headers.keys().map(HeaderName::as_str).collect();
    assert_eq!(names, ["x-other", "content-length"]);
    // A malformed name is refused even where a valid one was remembered.
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX Other: c\r\n\r\n"[..]);
    assert!(parse_head(&mut buf, &Method::GET, &mut scratch).is_err());
}

/// The proof obligation of [`parsed_value`]'s `unsafe`: a value byte httparse accepts is
/// one `HeaderValue` accepts, for all 256 bytes (and the two refuse the same ones).
#[test]
fn every_byte_httparse_accepts_is_a_valid_header_value() {
    for b in 0..=u8::MAX {
        let value = [b'a', b, b'z'];
        let mut raw = b"HTTP/1.1 204 No Content\r\nX-V: ".to_vec();
        raw.extend_from_slice(&value);
        raw.extend_from_slice(b"\r\n\r\n");
        let mut buf = BytesMut::from(&raw[..]);
        let parsed = parse_head(&mut buf, &Method::GET, &mut HeadScratch::default());
        let valid = HeaderValue::from_bytes(&value).is_ok();
        match parsed {
            Ok(Some(head)) => {
                assert!(valid, "httparse accepted byte {b:#04x}");
                assert_eq!(head.headers["x-v"].as_bytes(), value);
            }
            Ok(None) => panic!("a complete head needs no more bytes (byte {b:#04x})"),
            Err(_) => assert!(!valid, "httparse refused valid byte {b:#04x}"),
        }
    }
}

#[test]
fn the_head_is_removed_from_the_buffer_and_the_body_left() {
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..]);
    parse_head(&mut buf, &Method::GET, &mut HeadScratch::default())
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..], b"ok");
}

#[test]
fn partial_heads_ask_for_more() {
    assert!(
        parse("HTTP/1.1 200 OK\r\nContent-Le", &Method::GET)
            .unwrap()
            .is_none()
    );
}

#[test]
fn interim_responses_do_not_count_as_an_early_answer() {
    let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]);
    assert!(!final_response_started(&mut buf));
    assert!(buf.is_empty());
    let mut buf =
        BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 413 Payload Too Large\r\n"[..]);
    assert!(final_response_started(&mut buf));
    assert!(buf.starts_with(b"HTTP/1.1 413"));
    let mut buf = BytesMut::from(&b"HTTP/1.1 10"[..]);
    assert!(!final_response_started(&mut buf));
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
    assert!(final_response_started(&mut buf));
}

#[test]
fn interim_responses_are_skipped() {
    let h = head(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(h.status, StatusCode::CREATED);
    assert_eq!(h.framing, ResponseFraming::Empty);
}

#[test]
fn chunked_wins_only_as_the_final_coding() {
    assert_eq!(
        head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").framing,
        ResponseFraming::Chunked
    );
    let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_eq!(h.framing, ResponseFraming::UntilClose);
    assert!(!h.keep_alive);
}

#[test]
fn ambiguous_framing_is_refused() {
    for raw in [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
    ] {
        assert!(parse(raw, &Method::GET).is_err(), "{raw:?}");
    }
    for agreeing in [
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\nContent-Length: 5\r\n\r\n",
    ] {
        assert_eq!(
            head(agreeing).framing,
            ResponseFraming::Length(5),
            "{agreeing:?}"
        );
    }
}

#[test]
fn garbage_and_oversized_heads_are_refused() {
    assert!(parse("not http\r\n\r\n", &Method::GET).is_err());
    assert!(parse("HTTP/1.1 999x OK\r\n\r\n", &Method::GET).is_err());
    let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD_BYTES + 1));
    assert!(parse(&huge, &Method::GET).is_err());
    let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
    assert!(parse(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"), &Method::GET).is_err());
}

#[test]
fn bodiless_responses_have_no_body_whatever_they_claim() {
    let h = parse(
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        &Method::HEAD,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.framing, ResponseFraming::Empty);
    assert_eq!(
        head("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n").framing,
        ResponseFraming::Empty
    );
    assert_eq!(
        head("HTTP/1.1 204 No Content\r\n\r\n").framing,
        ResponseFraming::Empty
    );
}

#[test]
fn connection_options_are_consumed_but_listed_headers_kept_for_removal() {
    let h = head(
        "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(h.headers.get("connection").is_none() && h.headers.get("keep-alive").is_none());
    let h = head(
        "HTTP/1.1 200 OK\r\nConnection: close, x-internal\r\nX-Internal: 1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(h.headers["connection"], "close, x-internal");
    assert!(!h.keep_alive);
}

#[test]
fn header_values_share_the_read_buffer() {
    let h = head("HTTP/1.1 200 OK\r\nX-A: one\r\nX-A: two\r\nContent-Length: 0\r\n\r\n");
    let values: Vec<_> = h.headers.get_all("x-a").iter().collect();
    assert_eq!(values, ["one", "two"]);
}

#[test]
fn connection_reuse_follows_version_and_connection_header() {
    assert!(!head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive);
    assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
    assert!(
        head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").keep_alive
    );
    assert!(
        !head("HTTP/1.1 200 OK\r\n\r\n").keep_alive,
        "close-delimited"
    );
}

#[test]
fn names_in_any_case_are_lowercased_and_classified() {
    let h = head(
        "HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 3\r\nX-Mixed-CASE: v\r\nCONNECTION: Keep-Alive\r\n\r\nabc",
    );
    assert_eq!(h.framing, ResponseFraming::Length(3));
    assert_eq!(h.headers["x-mixed-case"], "v");
    assert!(h.headers.get("connection").is_none());
    assert!(!h.hop_by_hop);
    assert!(h.keep_alive);
}

#[test]
fn empty_values_are_kept_empty() {
    let h = head("HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Spaces:   \r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.headers["x-empty"], "");
    assert_eq!(h.headers["x-spaces"], "");
    assert_eq!(h.framing, ResponseFraming::Empty);
}

#[test]
fn obsolete_line_folding_is_refused() {
    for raw in [
        "HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: one\r\n\ttwo\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\n Content-Length: 0\r\n\r\n",
    ] {
        assert!(parse(raw, &Method::GET).is_err(), "{raw:?}");
    }
}

#[test]
fn duplicate_fields_keep_their_order_and_count() {
    let h = head(
        "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-B: 1\r\nset-cookie: b=2\r\nSET-COOKIE: c=3\r\nContent-Length: 0\r\n\r\n",
    );
    let cookies: Vec<_> = h.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2", "c=3"]);
    assert_eq!(h.headers.len(), 5);
}

/// Past the names remembered per connection, every name is parsed afresh; heads whose names
/// change position from one response to the next still come out right.
#[test]
fn very_many_fields_parse_right_response_after_response() {
    let mut scratch = HeadScratch::default();
    for round in 0..3 {
        let fields: String = (0..100)
            .map(|i| format!("X-F{}: v{i}\r\n", (i + round) % 100))
            .collect();
        let raw = format!("HTTP/1.1 200 OK\r\n{fields}Content-Length: 0\r\n\r\n");
        let mut buf = BytesMut::from(raw.as_bytes());
        let h = parse_head(&mut buf, &Method::GET, &mut scratch)
            .unwrap()
            .unwrap();
        assert_eq!(h.headers.len(), 101);
        for i in 0..100 {
            let name = format!("x-f{}", (i + round) % 100);
            assert_eq!(h.headers[name.as_str()], format!("v{i}").as_str(), "{name}");
        }
        assert!(!h.hop_by_hop);
    }
}

#[test]
fn hop_by_hop_fields_left_in_the_map_are_reported() {
    let plain = head("HTTP/1.1 200 OK\r\nConnection: close\r\nKeep-Alive: x\r\nX-A: b\r\n\r\n");
    assert!(!plain.hop_by_hop, "options and Keep-Alive are consumed");
    for raw in [
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTE: trailers\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nProxy-Connection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n",
    ] {
        assert!(head(raw).hop_by_hop, "{raw:?}");
    }
    // Remembered names keep their kind: the second head reuses the first one's names.
    let mut scratch = HeadScratch::default();
    for _ in 0..2 {
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nTE: trailers\r\nContent-Length: 0\r\n\r\n"[..]);
        let h = parse_head(&mut buf, &Method::GET, &mut scratch)
            .unwrap()
            .unwrap();
        assert!(h.hop_by_hop);
        assert_eq!(h.framing, ResponseFraming::Empty);
    }
}

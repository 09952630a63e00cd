use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn complete(buf: &[u8]) -> (Header<'_>, usize) {
    match parse(buf) {
        Ok(Parsed::Complete { header, len }) => (header, len),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn error(buf: &[u8]) -> ParseError {
    match parse(buf) {
        Err(e) => e,
        other => panic!("{:?} accepted: {other:?}", String::from_utf8_lossy(buf)),
    }
}

/// A v2 header by hand: version/command byte, family byte, body (addresses and TLVs).
fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(ver_cmd);
    out.push(fam);
    out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

const INET4_BODY: [u8; 12] = [192, 0, 2, 7, 10, 0, 0, 1, 0x1f, 0x90, 0x01, 0xbb];

#[test]
fn v1_tcp4_tcp6_and_unknown_lines_parse() {
    let (h, len) = complete(b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n");
    assert_eq!(len, 41);
    assert_eq!(h.version, Version::V1);
    assert_eq!(
        h.addresses,
        Some((addr("192.0.2.7:56324"), addr("10.0.0.1:443")))
    );
    let (h, _) = complete(b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n");
    assert_eq!(h.source(), Some(addr("[2001:db8::7]:65535")));
    let (h, len) = complete(b"PROXY UNKNOWN\r\n");
    assert_eq!((h.addresses, len), (None, 15));
    let (h, _) = complete(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n");
    assert_eq!(h.addresses, None);
}

#[test]
fn v1_truncated_lines_ask_for_more_bytes() {
    let full = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n";
    for n in 1..full.len() {
        match parse(&full[..n]) {
            Ok(Parsed::Incomplete { need }) => assert!(need > n, "{n}: need {need}"),
            other => panic!("{n} bytes: {other:?}"),
        }
    }
}

#[test]
fn v1_hostile_lines_are_refused() {
    let cases: &[&[u8]] = &[
        b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\rX\r\n",
        b"PROXY TCP4 192.0.2.7  10.0.0.1 56324 443\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443 extra\r\n",
        b"PROXY TCP4 192.0.2.256 10.0.0.1 1 2\r\n",
        b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
        b"PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 -1 2\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 080 2\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 +80 2\r\n",
        b"PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n",
        b"PROXY tcp4 192.0.2.7 10.0.0.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.7\t10.0.0.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\0\r\n",
        b"PROXY TCP4 \xff\xfe 10.0.0.1 1 2\r\n",
        b"PROXY \r\n",
    ];
    for case in cases {
        let e = error(case);
        assert_ne!(
            e,
            ParseError::Missing,
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
    assert_eq!(error(b"PROXY\r\n"), ParseError::Missing);
}

#[test]
fn v1_oversize_lines_are_refused_without_waiting_forever() {
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(V1_MAX_LEN, b'x');
    assert_eq!(error(&line), ParseError::V1TooLong);
    line.extend_from_slice(b"\r\n");
    assert_eq!(error(&line), ParseError::V1TooLong);
    // Exactly 107 bytes with CRLF is fine.
    let mut ok = b"PROXY UNKNOWN ".to_vec();
    ok.resize(V1_MAX_LEN - 2, b'x');
    ok.extend_from_slice(b"\r\n");
    assert_eq!(complete(&ok).1, V1_MAX_LEN);
}

#[test]
fn other_protocols_are_reported_as_missing_header() {
    for case in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"PRI * HTTP/2.0",
        b"\x16\x03\x01",
        b"PROXZ",
        b"\r\n\r\n\0\r\nQUIX\n",
    ] {
        assert_eq!(
            error(case),
            ParseError::Missing,
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
    // The start of either signature is not yet a verdict.
    assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete { need: 4 }));
    assert_eq!(parse(b""), Ok(Parsed::Incomplete { need: 16 }));
    assert_eq!(
        parse(&V2_SIGNATURE[..5]),
        Ok(Parsed::Incomplete { need: 16 })
    );
}

#[test]
fn v2_inet4_inet6_local_unspec_and_unix_parse() {
    let buf = v2(0x21, 0x11, &INET4_BODY);
    let (h, len) = complete(&buf);
    assert_eq!(len, 28);
    assert_eq!((h.version, h.command), (Version::V2, Command::Proxy));
    assert_eq!(
        h.addresses,
        Some((addr("192.0.2.7:8080"), addr("10.0.0.1:443")))
    );

    let mut body6 = Vec::new();
    body6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
    body6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    body6.extend_from_slice(&[0, 80, 1, 187]);
    let buf = v2(0x21, 0x21, &body6);
    assert_eq!(complete(&buf).0.source(), Some(addr("[2001:db8::7]:80")));

    let buf = v2(0x20, 0x00, &[]);
    let (h, _) = complete(&buf);
    assert_eq!((h.command, h.addresses), (Command::Local, None));
    // LOCAL with addresses: the addresses are ignored.
    assert_eq!(complete(&v2(0x20, 0x11, &INET4_BODY)).0.addresses, None);
    assert_eq!(complete(&v2(0x21, 0x00, &[])).0.addresses, None);
    assert_eq!(complete(&v2(0x21, 0x31, &[0; 216])).0.addresses, None);
}

#[test]
fn v2_truncated_headers_ask_for_exactly_the_missing_bytes() {
    let buf = v2(0x21, 0x11, &INET4_BODY);
    for n in 0..buf.len() {
        let Ok(Parsed::Incomplete { need }) = parse(&buf[..n]) else {
            panic!("{n} bytes: {:?}", parse(&buf[..n]));
        };
        assert_eq!(need, if n < 16 { 16 } else { 28 }, "{n}");
    }
}

#[test]
fn v2_hostile_headers_are_refused() {
    assert_eq!(
        error(&v2(0x11, 0x11, &INET4_BODY)),
        ParseError::V2Version(1)
    );
    assert_eq!(
        error(&v2(0x31, 0x11, &INET4_BODY)),
        ParseError::V2Version(3)
    );
    assert_eq!(
        error(&v2(0x22, 0x11, &INET4_BODY)),
        ParseError::V2Command(2)
    );
    assert_eq!(
        error(&v2(0x21, 0x12, &INET4_BODY)),
        ParseError::V2Family(0x12),
        "UDP"
    );
    assert_eq!(
        error(&v2(0x21, 0x41, &INET4_BODY)),
        ParseError::V2Family(0x41)
    );
    assert_eq!(
        error(&v2(0x21, 0x10, &INET4_BODY)),
        ParseError::V2Family(0x10)
    );
    assert_eq!(
        error(&v2(0x21, 0x13, &INET4_BODY)),
        ParseError::V2Family(0x13)
    );
    assert_eq!(
        error(&v2(0x21, 0x11, &INET4_BODY[..11])),
        ParseError::V2AddressLength(11)
    );
    assert_eq!(
        error(&v2(0x21, 0x21, &INET4_BODY)),
        ParseError::V2AddressLength(12)
    );
    // A length over the cap is refused from the fixed part alone, before the bytes arrive.
    let mut huge = V2_SIGNATURE.to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    assert_eq!(error(&huge), ParseError::V2TooLong(16 + 0xffff));
}

#[test]
fn v2_tlvs_are_walked_and_malformed_ones_refused() {
    let mut body = INET4_BODY.to_vec();
    body.extend_from_slice(&[0x01, 0, 2, b'h', b'2']); // ALPN
    body.extend_from_slice(&[TLV_NOOP, 0, 0]);
    body.extend_from_slice(&[0xE0, 0, 3, 1, 2, 3]); // custom
    let buf = v2(0x21, 0x11, &body);
    let kinds: Vec<(u8, Vec<u8>)> = complete(&buf)
        .0
        .tlvs()
        .map(|t| (t.kind, t.value.to_vec()))
        .collect();
    assert_eq!(
        kinds,
        vec![(1, b"h2".to_vec()), (4, vec![]), (0xE0, vec![1, 2, 3])]
    );

    for tail in [
        &[0x01u8][..],
        &[0x01, 0],
        &[0x01, 0, 3, b'a'],
        &[0x01, 0xff, 0xff],
    ] {
        let mut body = INET4_BODY.to_vec();
        body.extend_from_slice(tail);
        assert_eq!(error(&v2(0x21, 0x11, &body)), ParseError::V2Tlv, "{tail:?}");
    }
}

#[test]
fn v2_checksums_are_verified() {
    let good = encode_v2(
        Some((addr("192.0.2.7:1000"), addr("10.0.0.1:443"))),
        &[(0xE1, b"x")],
        true,
    )
    .unwrap();
    let (h, len) = complete(&good);
    assert_eq!(len, good.len());
    assert!(h.tlvs().any(|t| t.kind == TLV_CRC32C));
    // Any flipped bit anywhere breaks it.
    for i in 16..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        match parse(&bad) {
            Err(_) => {}
            // Only a flip that turns the checksum TLV into another type can pass, and then
            // the header no longer claims a checksum.
            Ok(Parsed::Complete { header, .. }) => {
                assert!(
                    !header.tlvs().any(|t| t.kind == TLV_CRC32C),
                    "byte {i} flipped"
                );
            }
            Ok(other) => panic!("byte {i} flipped: {other:?}"),
        }
    }
    // A checksum TLV of the wrong size, or two of them, is malformed.
    let mut body = INET4_BODY.to_vec();
    body.extend_from_slice(&[TLV_CRC32C, 0, 3, 0, 0, 0]);
    assert_eq!(error(&v2(0x21, 0x11, &body)), ParseError::V2Tlv);
    let mut body = INET4_BODY.to_vec();
    body.extend_from_slice(&[TLV_CRC32C, 0, 4, 0, 0, 0, 0]);
    assert_eq!(error(&v2(0x21, 0x11, &body)), ParseError::V2Checksum);
}

#[test]
fn encoders_round_trip_through_the_parser() {
    let v4 = (addr("192.0.2.7:56324"), addr("10.0.0.1:443"));
    let v6 = (addr("[2001:db8::7]:1"), addr("[2001:db8::1]:2"));
    let line = encode_v1(v4.0, v4.1);
    assert_eq!(line, "PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n");
    assert_eq!(complete(line.as_bytes()).0.addresses, Some(v4));
    let line = encode_v1(v6.0, v6.1);
    assert_eq!(line, "PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n");
    assert_eq!(complete(line.as_bytes()).0.addresses, Some(v6));
    assert_eq!(encode_v1(v4.0, v6.1), "PROXY UNKNOWN\r\n");

    for pair in [v4, v6] {
        let tlvs: &[(u8, &[u8])] = &[(0x02, b"example.com"), (0xE0, &[0; 300])];
        for checksum in [false, true] {
            let bytes = encode_v2(Some(pair), tlvs, checksum).unwrap();
            let (h, len) = complete(&bytes);
            assert_eq!((h.addresses, len), (Some(pair), bytes.len()));
            let got: Vec<(u8, usize)> = h.tlvs().map(|t| (t.kind, t.value.len())).collect();
            assert_eq!(&got[..2], &[(0x02, 11), (0xE0, 300)]);
        }
    }
    // Mixed families become IPv6 with a mapped address.
    let bytes = encode_v2(Some((v4.0, v6.1)), &[], false).unwrap();
    assert_eq!(
        complete(&bytes).0.source(),
        Some(addr("[::ffff:192.0.2.7]:56324"))
    );
    let local = encode_v2(None, &[], false).unwrap();
    assert_eq!(complete(&local).0.command, Command::Local);
    assert_eq!(local.len(), 16);
    let too_big = vec![0u8; 70_000];
    assert_eq!(
        encode_v2(Some(v4), &[(0xE0, &too_big)], false),
        Err(EncodeError::TooLong)
    );
    let nearly: Vec<u8> = vec![0u8; 65_535 - 12 - 3 + 1];
    assert_eq!(
        encode_v2(Some(v4), &[(0xE0, &nearly)], false),
        Err(EncodeError::TooLong)
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic fuzz: every prefix of many pseudo-random buffers, some starting with
    // a valid signature.
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..2000 {
        let mut buf: Vec<u8> = match round % 3 {
            0 => V2_SIGNATURE.to_vec(),
            1 => b"PROXY ".to_vec(),
            _ => Vec::new(),
        };
        let extra = (next() % 120) as usize;
        for _ in 0..extra {
            buf.push((next() & 0xff) as u8);
        }
        if round % 3 == 0 && buf.len() > 15 {
            buf[12] = 0x21;
            buf[13] = [0x11, 0x21, 0x00, 0x31][(next() % 4) as usize];
        }
        for n in 0..=buf.len() {
            if let Ok(Parsed::Complete { header, len }) = parse(&buf[..n]) {
                assert!(len <= n);
                let _ = header.tlvs().count();
            }
        }
    }
}

//! The PROXY protocol v2 header sent upstream for a request that came over TLS: its SSL TLV
//! spells the version as HAProxy and OpenSSL do.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rampart_core::proxy_protocol::{Parsed, parse};
use rampart_testkit::{TestGateway, TestPki};

use super::{get, https, status};

/// An origin that records the bytes of each connection up to its first request head, answers
/// it and closes.
fn raw_origin() -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut seen = Vec::new();
            let mut chunk = [0u8; 4096];
            // The v2 signature itself holds a CRLFCRLF: look past it.
            while !seen
                .get(12..)
                .is_some_and(|rest| rest.windows(4).any(|w| w == b"\r\n\r\n"))
            {
                match stream.read(&mut chunk) {
                    Ok(n) if n > 0 => seen.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            let _ = tx.send(seen);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (addr, rx)
}

/// A client trusting `pki`'s CA that speaks only `version`.
pub(super) fn client_with_version(
    pki: &TestPki,
    version: &'static rustls::SupportedProtocolVersion,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der()).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth()
}

#[test]
fn the_ssl_tlv_names_the_tls_version_as_haproxy_does() {
    let pki = TestPki::new();
    let cert = pki.server("a", &["a.test"]);
    let (origin, seen) = raw_origin();
    let gw = TestGateway::builder(format!(
        "[[listeners]]\nname = \"https\"\nbind = \"127.0.0.1:0\"\n[[listeners.tls.certificates]]\n\
         cert = {:?}\nkey = {:?}\n\n[[upstreams]]\nname = \"origin\"\ntargets = [\"{origin}\"]\n\
         proxy_protocol = \"v2\"\n\n[[routes]]\nname = \"all\"\nupstream = \"origin\"\n",
        cert.cert, cert.key
    ))
    .start();
    for (version, spelled) in [
        (&rustls::version::TLS13, &b"TLSv1.3"[..]),
        (&rustls::version::TLS12, &b"TLSv1.2"[..]),
    ] {
        let config = Arc::new(client_with_version(&pki, version));
        let (resp, _) = https(gw.addr("https"), &config, "a.test", &get("a.test", "/")).unwrap();
        assert_eq!(status(&resp), 200, "{resp}");
        let bytes = seen.recv_timeout(Duration::from_secs(10)).unwrap();
        let Parsed::Complete { header, .. } = parse(&bytes).unwrap() else {
            panic!("incomplete PROXY header: {bytes:?}");
        };
        let ssl = header.tlvs().find(|t| t.kind == 0x20).expect("an SSL TLV");
        // client = PP2_CLIENT_SSL, verify = 0, then the version sub-TLV (0x21, length, text).
        let mut expected = vec![
            0x01,
            0,
            0,
            0,
            0,
            0x21,
            0,
            u8::try_from(spelled.len()).unwrap(),
        ];
        expected.extend_from_slice(spelled);
        assert_eq!(ssl.value, &expected[..]);
    }
}

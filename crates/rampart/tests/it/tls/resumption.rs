//! Session resumption and 0-RTT: early data gets 425 unless safe, `session_cache` governs
//! TLS 1.2 session IDs, `session_tickets` governs tickets, and with both off nothing resumes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rampart_testkit::TestPki;
use rustls::HandshakeKind;
use rustls::client::{Resumption, Tls12Resumption};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::proxy_tlv::client_with_version;
use super::{echo_gateway, get, https, status};

/// Two handshakes in a row with one client config over TLS 1.2; the second one's kind.
fn second_handshake(listener_keys: &str, tls12_resumption: Tls12Resumption) -> HandshakeKind {
    let pki = TestPki::new();
    let gw = echo_gateway(&pki, listener_keys);
    let mut config = client_with_version(&pki, &rustls::version::TLS12);
    config.resumption = Resumption::in_memory_sessions(16).tls12_resumption(tls12_resumption);
    let config = Arc::new(config);
    let addr = gw.addr("https");
    let (resp, first) = https(addr, &config, "a.test", &get("a.test", "/1")).unwrap();
    assert_eq!(status(&resp), 200, "{resp}");
    assert_eq!(
        first.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(first.handshake_kind(), Some(HandshakeKind::Full));
    let (resp, second) = https(addr, &config, "a.test", &get("a.test", "/2")).unwrap();
    assert_eq!(status(&resp), 200, "{resp}");
    second.handshake_kind().unwrap()
}

#[test]
fn session_cache_zero_turns_off_session_ids_and_tickets_still_resume() {
    // No cache: a client that resumes only by session ID gets a full handshake...
    assert_eq!(
        second_handshake("session_cache = 0", Tls12Resumption::SessionIdOnly),
        HandshakeKind::Full
    );
    // ...and one that offers tickets resumes through them (`session_tickets` is on).
    assert_eq!(
        second_handshake("session_cache = 0", Tls12Resumption::SessionIdOrTickets),
        HandshakeKind::Resumed
    );
}

#[test]
fn with_cache_and_tickets_off_tls12_does_not_resume_at_all() {
    assert_eq!(
        second_handshake(
            "session_cache = 0\nsession_tickets = false",
            Tls12Resumption::SessionIdOrTickets
        ),
        HandshakeKind::Full
    );
    // The cache alone resumes session IDs.
    assert_eq!(
        second_handshake("session_tickets = false", Tls12Resumption::SessionIdOnly),
        HandshakeKind::Resumed
    );
}

#[test]
fn sessions_resume_and_early_data_gets_425_unless_safe() {
    let pki = TestPki::new();
    let gw = echo_gateway(&pki, "early_data = true");
    let addr = gw.addr("https");
    let mut config = pki.client_config(&[b"http/1.1"]);
    config.enable_early_data = true;
    let config = Arc::new(config);
    // A full handshake stores a ticket.
    let (resp, conn) = https(addr, &config, "a.test", &get("a.test", "/first")).unwrap();
    assert_eq!(status(&resp), 200);
    assert_eq!(conn.handshake_kind(), Some(rustls::HandshakeKind::Full));

    // Early data: a GET is served before the handshake completes and carries Early-Data: 1.
    let (resp, conn) = early(addr, &config, &get("a.test", "/early"));
    assert!(conn.is_early_data_accepted(), "early data was not accepted");
    assert_eq!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
    assert_eq!(status(&resp), 200, "{resp}");
    assert!(resp.contains("early-data"), "{resp}");

    // A POST in early data is refused with 425 Too Early.
    let post =
        "POST /early HTTP/1.1\r\nhost: a.test\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let (resp, conn) = early(addr, &config, post);
    assert!(conn.is_early_data_accepted());
    assert_eq!(status(&resp), 425, "{resp}");

    let stats = gw.tls_stats();
    assert!(stats.resumptions >= 2, "{stats:?}");
    assert!(stats.early_data_accepted >= 2, "{stats:?}");
    assert_eq!(stats.early_data_rejected, 1, "{stats:?}");
}

/// Sends `request` as TLS 1.3 early data on a resumed session.
fn early(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    request: &str,
) -> (String, ClientConnection) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut conn =
        ClientConnection::new(config.clone(), ServerName::try_from("a.test").unwrap()).unwrap();
    let mut early = conn
        .early_data()
        .expect("a resumable session with early data");
    early.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut stream = StreamOwned::new(conn, &mut tcp);
    let _ = stream.read_to_end(&mut out);
    let conn = stream.conn;
    (String::from_utf8_lossy(&out).into_owned(), conn)
}

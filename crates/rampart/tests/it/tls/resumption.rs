//! TLS 1.2 resumption: `session_cache` governs session IDs, `session_tickets` governs tickets
//! (TLS 1.2 and 1.3), and with both off nothing resumes.

use std::sync::Arc;

use rampart_testkit::TestPki;
use rustls::HandshakeKind;
use rustls::client::{Resumption, Tls12Resumption};

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

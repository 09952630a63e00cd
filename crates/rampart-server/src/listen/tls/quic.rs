//! The QUIC side of a TLS listener: the same certificates (the same SNI resolver, so
//! certificate reloads apply to both), client verification and ticket keys, with ALPN `h3`,
//! TLS 1.3 only (QUIC has no other), and 0-RTT only when the listener's `http3.early_data`
//! asks for it. QUIC connections keep a session cache of their own.

use std::sync::Arc;

use quinn::crypto::rustls::{HandshakeData, QuicServerConfig};
use rampart_core::TlsInfo;
use rustls::pki_types::CertificateDer;
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, StoresServerSessions};

use super::{Spec, TlsListener, build_config, client_cert_info, versions};

/// QUIC forbids any early-data limit but "none" and "unlimited" (RFC 9001 §4.6.1); the
/// transport's flow control bounds what 0-RTT can carry.
const QUIC_EARLY_DATA: u32 = u32::MAX;

/// The TLS config of a listener's QUIC side, and whether it accepts 0-RTT.
pub(crate) struct QuicCrypto {
    early_data: bool,
    config: Arc<QuicServerConfig>,
}

impl TlsListener {
    /// Builds this listener's QUIC TLS config (0-RTT when `early_data`) and keeps it, to be
    /// rebuilt with the TCP side's when a CA or CRL file changes.
    pub(crate) fn enable_quic(&self, early_data: bool) -> Result<(), String> {
        let config = self.quic_crypto(early_data)?;
        self.quic
            .store(Some(Arc::new(QuicCrypto { early_data, config })));
        Ok(())
    }

    /// The QUIC TLS config new connections use, when HTTP/3 is enabled.
    pub(crate) fn quic(&self) -> Option<Arc<QuicServerConfig>> {
        self.quic.load().as_ref().map(|q| Arc::clone(&q.config))
    }

    /// Rebuilds the QUIC TLS config, if there is one (new CA bundle or CRLs).
    pub(super) fn rebuild_quic(&self) -> Result<(), String> {
        match self.quic.load_full() {
            Some(q) => self.enable_quic(q.early_data),
            None => Ok(()),
        }
    }

    /// The TLS config of this listener's QUIC side, with 0-RTT when `early_data`.
    fn quic_crypto(&self, early_data: bool) -> Result<Arc<QuicServerConfig>, String> {
        let session_storage: Arc<dyn StoresServerSessions> = if self.spec.send_tickets > 0 {
            ServerSessionMemoryCache::new(self.quic_session_cache)
        } else {
            Arc::new(NoServerSessionStorage {})
        };
        let spec = Spec {
            versions: versions(rampart_config::model::TlsVersion::Tls13),
            alpn: vec![b"h3".to_vec()],
            session_storage,
            max_early_data: if early_data { QUIC_EARLY_DATA } else { 0 },
            ..self.spec.clone()
        };
        let config = build_config(&spec, &self.provider, &self.resolver)?;
        QuicServerConfig::try_from(Arc::new(config))
            .map(Arc::new)
            .map_err(|e| format!("QUIC TLS config: {e}"))
    }

    /// The facts of an established QUIC connection, as the TCP side hands them to requests.
    pub(crate) fn quic_info(&self, conn: &quinn::Connection, early_data: bool) -> TlsInfo {
        let sni = conn
            .handshake_data()
            .and_then(|d| d.downcast::<HandshakeData>().ok())
            .and_then(|d| d.server_name)
            .map(|s| s.to_ascii_lowercase());
        let cert_names = self
            .resolver
            .lookup(sni.as_deref())
            .map(|s| Arc::clone(&s.names))
            .unwrap_or_else(|| Arc::from(Vec::new()));
        let client_cert = conn
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
            .and_then(|chain| chain.first().map(|der| client_cert_info(der.as_ref())));
        TlsInfo {
            sni: sni.map(Arc::from),
            alpn: Some("h3"),
            version: "TLSv1.3",
            // quinn does not say which of the TLS 1.3 suites was negotiated.
            cipher: "unknown",
            resumed: early_data,
            early_data,
            cert_names,
            client_cert,
        }
    }
}

//! TLS counters, kept in-process with atomics (no locks on the handshake path) and read as a
//! [`TlsStatsSnapshot`] by whoever exports metrics.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::{CipherSuite, ProtocolVersion};

/// Cipher suites counted by name; anything else counts as "other".
const CIPHERS: [CipherSuite; 9] = [
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// Protocol versions counted, as labelled.
const VERSIONS: [&str; 2] = ["TLSv1_2", "TLSv1_3"];

/// ALPN protocols counted, as labelled (`none`: no ALPN or another protocol).
const ALPNS: [&str; 3] = ["h2", "http/1.1", "none"];

/// Why a TLS handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The handshake did not finish within the handshake timeout.
    Timeout,
    /// No certificate serves the requested SNI name (and there is no default).
    NoCertificate,
    /// The client certificate was missing, invalid, untrusted or revoked.
    ClientCertificate,
    /// No protocol version, cipher suite or key exchange in common.
    Incompatible,
    /// The client sent an alert (often: it does not trust our certificate).
    AlertReceived,
    /// Not TLS, or malformed TLS.
    Protocol,
    /// The connection closed or failed during the handshake.
    Io,
    /// Anything else.
    Other,
}

impl HandshakeFailure {
    /// Every reason, in the order of [`TlsStatsSnapshot::failures`].
    pub const ALL: [Self; 8] = [
        Self::Timeout,
        Self::NoCertificate,
        Self::ClientCertificate,
        Self::Incompatible,
        Self::AlertReceived,
        Self::Protocol,
        Self::Io,
        Self::Other,
    ];

    /// Stable snake_case label.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::NoCertificate => "no_certificate",
            Self::ClientCertificate => "client_certificate",
            Self::Incompatible => "incompatible",
            Self::AlertReceived => "alert_received",
            Self::Protocol => "protocol",
            Self::Io => "io",
            Self::Other => "other",
        }
    }

    /// Classifies the error a handshake ended with.
    #[must_use]
    pub fn classify(err: &std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::TimedOut {
            return Self::Timeout;
        }
        let Some(tls) = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        else {
            return Self::Io;
        };
        match tls {
            rustls::Error::NoCertificatesPresented
            | rustls::Error::InvalidCertificate(_)
            | rustls::Error::InvalidCertRevocationList(_) => Self::ClientCertificate,
            rustls::Error::PeerIncompatible(_) => Self::Incompatible,
            rustls::Error::AlertReceived(_) => Self::AlertReceived,
            rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. }
            | rustls::Error::PeerMisbehaved(_)
            | rustls::Error::DecryptError => Self::Protocol,
            rustls::Error::General(m) if m.contains("certificate") => Self::NoCertificate,
            _ => Self::Other,
        }
    }
}

/// Process-wide TLS counters (one per running server).
#[derive(Debug, Default)]
pub struct TlsStats {
    /// Handshakes by version × cipher suite × ALPN (indexes into `VERSIONS`, `CIPHERS` with
    /// one more for "other", and `ALPNS`); the per-dimension totals are sums of these.
    combos: [[[AtomicU64; ALPNS.len()]; CIPHERS.len() + 1]; VERSIONS.len()],
    resumed: AtomicU64,
    early_data_accepted: AtomicU64,
    early_data_rejected: AtomicU64,
    failures: [AtomicU64; HandshakeFailure::ALL.len()],
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    ocsp_refused: AtomicU64,
    passthrough_connections: AtomicU64,
    passthrough_rejected: AtomicU64,
    expiry: Mutex<Vec<(String, i64)>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsStatsSnapshot {
    /// Completed handshakes by protocol version (`TLSv1_2`, `TLSv1_3`).
    pub handshakes_by_version: Vec<(&'static str, u64)>,
    /// Completed handshakes by cipher suite name (`other` for the rest).
    pub handshakes_by_cipher: Vec<(&'static str, u64)>,
    /// Completed handshakes by ALPN protocol (`h2`, `http/1.1`, `none`).
    pub handshakes_by_alpn: Vec<(&'static str, u64)>,
    /// Completed handshakes by (version, cipher suite, ALPN); combinations never seen are
    /// left out.
    pub handshakes: Vec<(&'static str, &'static str, &'static str, u64)>,
    /// Handshakes that resumed a session (ticket or cache).
    pub resumptions: u64,
    /// Connections whose early data (0-RTT) was accepted.
    pub early_data_accepted: u64,
    /// Requests received in early data and refused with 425.
    pub early_data_rejected: u64,
    /// Failed handshakes by reason code (see [`HandshakeFailure::code`]).
    pub failures: Vec<(&'static str, u64)>,
    /// Certificate, key, CA, CRL or OCSP files reloaded successfully.
    pub reloads: u64,
    /// Reloads refused because the new files were broken (the old ones stay in service).
    pub reload_failures: u64,
    /// OCSP responses not stapled on reload: about another certificate, expired or malformed.
    pub ocsp_refused: u64,
    /// Passthrough connections forwarded by SNI.
    pub passthrough_connections: u64,
    /// Passthrough connections closed (no ClientHello, no SNI match, upstream unreachable).
    pub passthrough_rejected: u64,
    /// Expiry time (Unix seconds) of every certificate in service, by `listener:cert file`.
    pub certificate_expiry: Vec<(String, i64)>,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl TlsStats {
    /// Counts a completed handshake.
    pub(crate) fn handshake(
        &self,
        version: Option<ProtocolVersion>,
        cipher: Option<CipherSuite>,
        alpn: Option<&[u8]>,
        resumed: bool,
    ) {
        let v = usize::from(version == Some(ProtocolVersion::TLSv1_3));
        let c = cipher
            .and_then(|c| CIPHERS.iter().position(|k| *k == c))
            .unwrap_or(CIPHERS.len());
        let a = match alpn {
            Some(b"h2") => 0,
            Some(b"http/1.1") => 1,
            _ => 2,
        };
        inc(&self.combos[v][c][a]);
        if resumed {
            inc(&self.resumed);
        }
    }

    /// Counts a failed handshake.
    pub(crate) fn failure(&self, reason: HandshakeFailure) {
        let i = HandshakeFailure::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(HandshakeFailure::ALL.len() - 1);
        inc(&self.failures[i]);
    }

    pub(crate) fn early_data_accepted(&self) {
        inc(&self.early_data_accepted);
    }

    pub(crate) fn early_data_rejected(&self) {
        inc(&self.early_data_rejected);
    }

    pub(crate) fn reloaded(&self) {
        inc(&self.reloads);
    }

    pub(crate) fn reload_failed(&self) {
        inc(&self.reload_failures);
    }

    pub(crate) fn ocsp_refused(&self) {
        inc(&self.ocsp_refused);
    }

    pub(crate) fn passthrough(&self, ok: bool) {
        inc(if ok {
            &self.passthrough_connections
        } else {
            &self.passthrough_rejected
        });
    }

    /// Records the expiry time of the certificate known as `label`.
    pub(crate) fn set_expiry(&self, label: &str, not_after: i64) {
        let Ok(mut list) = self.expiry.lock() else {
            return;
        };
        match list.iter_mut().find(|(l, _)| l == label) {
            Some(entry) => entry.1 = not_after,
            None => list.push((label.to_owned(), not_after)),
        }
    }

    /// A copy of every counter.
    #[must_use]
    pub fn snapshot(&self) -> TlsStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let cipher_name = |c: usize| {
            CIPHERS
                .get(c)
                .map_or("other", |k| k.as_str().unwrap_or("unknown"))
        };
        let mut by_version = VERSIONS.map(|v| (v, 0));
        let mut by_cipher: Vec<(&'static str, u64)> =
            (0..=CIPHERS.len()).map(|c| (cipher_name(c), 0)).collect();
        let mut by_alpn = ALPNS.map(|a| (a, 0));
        let mut handshakes = Vec::new();
        for (v, by_cipher_alpn) in self.combos.iter().enumerate() {
            for (c, by_alpn_here) in by_cipher_alpn.iter().enumerate() {
                for (a, n) in by_alpn_here.iter().enumerate() {
                    let n = get(n);
                    by_version[v].1 += n;
                    by_cipher[c].1 += n;
                    by_alpn[a].1 += n;
                    if n > 0 {
                        handshakes.push((VERSIONS[v], cipher_name(c), ALPNS[a], n));
                    }
                }
            }
        }
        TlsStatsSnapshot {
            handshakes_by_version: by_version.to_vec(),
            handshakes_by_cipher: by_cipher,
            handshakes,
            handshakes_by_alpn: by_alpn.to_vec(),
            resumptions: get(&self.resumed),
            early_data_accepted: get(&self.early_data_accepted),
            early_data_rejected: get(&self.early_data_rejected),
            failures: HandshakeFailure::ALL
                .iter()
                .zip(&self.failures)
                .map(|(r, n)| (r.code(), get(n)))
                .collect(),
            reloads: get(&self.reloads),
            reload_failures: get(&self.reload_failures),
            ocsp_refused: get(&self.ocsp_refused),
            passthrough_connections: get(&self.passthrough_connections),
            passthrough_rejected: get(&self.passthrough_rejected),
            certificate_expiry: self.expiry.lock().map(|l| l.clone()).unwrap_or_default(),
        }
    }
}

impl TlsStatsSnapshot {
    /// Completed handshakes in total.
    #[must_use]
    pub fn handshakes(&self) -> u64 {
        self.handshakes_by_version.iter().map(|(_, n)| n).sum()
    }

    /// The count for failure reason `code`.
    #[must_use]
    pub fn failures_for(&self, code: &str) -> u64 {
        self.failures
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(0, |(_, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_are_cross_tabulated_by_version_cipher_and_alpn() {
        let stats = TlsStats::default();
        let tls13 = Some(ProtocolVersion::TLSv1_3);
        let aes = Some(CipherSuite::TLS13_AES_128_GCM_SHA256);
        stats.handshake(tls13, aes, Some(b"h2"), false);
        stats.handshake(tls13, aes, Some(b"h2"), true);
        stats.handshake(
            Some(ProtocolVersion::TLSv1_2),
            Some(CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
            None,
            false,
        );
        let snap = stats.snapshot();
        assert_eq!(
            snap.handshakes,
            vec![
                (
                    "TLSv1_2",
                    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                    "none",
                    1
                ),
                ("TLSv1_3", "TLS13_AES_128_GCM_SHA256", "h2", 2),
            ]
        );
        assert_eq!(snap.handshakes(), 3);
        assert_eq!(snap.handshakes_by_version, [("TLSv1_2", 1), ("TLSv1_3", 2)]);
        assert_eq!(
            snap.handshakes_by_alpn,
            [("h2", 2), ("http/1.1", 0), ("none", 1)]
        );
        assert_eq!(snap.resumptions, 1);
    }
}

//! QUIC counters of every HTTP/3 listener, whatever the generation: handshakes, retries,
//! connections closed for limits, and what quinn saw of the paths (lost packets, migrations).

use std::sync::atomic::{AtomicU64, Ordering};

use super::text::{header, sample};

/// QUIC counters (`Relaxed` adds; read when `/metrics` is scraped).
#[derive(Debug, Default)]
pub(crate) struct QuicStats {
    handshakes: AtomicU64,
    handshake_failures: AtomicU64,
    refused: AtomicU64,
    retries: AtomicU64,
    lost_packets: AtomicU64,
    migrations: AtomicU64,
    reset_floods: AtomicU64,
}

/// Why a new QUIC connection was refused before its handshake.
#[derive(Debug, Clone, Copy)]
pub(crate) enum QuicRefusal {
    /// A connection cap (`limits.max_connections`, `limits.max_connections_per_ip`).
    ConnectionCap,
}

impl QuicStats {
    /// A handshake completed.
    pub(crate) fn handshake(&self) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
    }

    /// A handshake failed or timed out.
    pub(crate) fn handshake_failed(&self) {
        self.handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A new connection was refused.
    pub(crate) fn refused(&self, _why: QuicRefusal) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A Retry packet was sent (address validation).
    pub(crate) fn retry_sent(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed: what quinn counted of it.
    pub(crate) fn closed(&self, lost_packets: u64, migrated: bool) {
        self.lost_packets.fetch_add(lost_packets, Ordering::Relaxed);
        if migrated {
            self.migrations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection was closed for cancelling too many requests.
    pub(crate) fn reset_flood(&self) {
        self.reset_floods.fetch_add(1, Ordering::Relaxed);
    }
}

/// Writes the QUIC counters in the Prometheus text format.
pub(super) fn encode(out: &mut String, s: &QuicStats) {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    header(
        out,
        "rampart_quic_handshakes_total",
        "counter",
        "QUIC handshakes of HTTP/3 listeners, by result.",
    );
    let name = "rampart_quic_handshakes_total";
    sample(out, name, &[("result", "ok")], get(&s.handshakes));
    sample(
        out,
        name,
        &[("result", "failed")],
        get(&s.handshake_failures),
    );
    sample(out, name, &[("result", "refused")], get(&s.refused));
    for (name, help, value) in [
        (
            "rampart_quic_retries_total",
            "QUIC Retry packets sent to validate a new client's address.",
            &s.retries,
        ),
        (
            "rampart_quic_lost_packets_total",
            "Packets QUIC declared lost, counted when their connection closes.",
            &s.lost_packets,
        ),
        (
            "rampart_quic_migrations_total",
            "QUIC connections that ended on another client address than they began on.",
            &s.migrations,
        ),
        (
            "rampart_quic_reset_floods_total",
            "QUIC connections closed for cancelling more requests than http3.max_reset_streams.",
            &s.reset_floods,
        ),
    ] {
        header(out, name, "counter", help);
        sample(out, name, &[], get(value));
    }
}

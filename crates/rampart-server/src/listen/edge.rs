//! [`Edge`]: what accepting a connection reads, compiled from one config together with the
//! plane its requests read (TLS termination and passthrough per listener), and
//! [`Listening`], the process-wide state of the accept path (the edge in service, connection
//! counts for the caps, and the pipeline's services).

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::listen::bind::ListenTuning;
use crate::listen::conn_limits::ConnLimits;
use crate::listen::quic::QuicListener;
use crate::listen::tls::TlsListener;
use crate::listen::tls::passthrough::PassthroughRt;
use crate::pipeline::plane::Plane;
use crate::pipeline::session::Shared;

/// The accept side of a compiled config.
pub(crate) struct Edge {
    /// The plane compiled with this edge (same listeners, same order).
    pub(crate) plane: Arc<Plane>,
    /// Per listener, in the plane's order.
    pub(crate) listeners: Vec<EdgeListener>,
}

/// How one listener's connections are opened.
pub(crate) struct EdgeListener {
    /// TLS termination, when the listener has `[listeners.tls]`.
    pub(crate) tls: Option<Arc<TlsListener>>,
    /// Forward raw TLS by SNI instead of serving HTTP.
    pub(crate) passthrough: Option<Arc<PassthroughRt>>,
    /// The QUIC side, when the listener serves HTTP/3.
    pub(crate) quic: Option<Arc<QuicListener>>,
    /// Options of the listening sockets (deferred accept).
    pub(crate) tuning: ListenTuning,
}

/// The accept path's process-wide state.
pub(crate) struct Listening {
    edge: ArcSwap<Edge>,
    /// The pipeline's services and plane in service.
    pub(crate) shared: Arc<Shared>,
    /// Open-connection counts for the global and per-IP caps (kept across reloads).
    pub(crate) conn_limits: Arc<ConnLimits>,
}

impl Listening {
    /// The accept path of `edge`, whose plane `shared` already serves.
    pub(crate) fn new(edge: Arc<Edge>, shared: Arc<Shared>) -> Self {
        Self {
            edge: ArcSwap::new(edge),
            shared,
            conn_limits: Arc::default(),
        }
    }

    /// The edge in service.
    pub(crate) fn edge(&self) -> Arc<Edge> {
        self.edge.load_full()
    }

    /// Puts `edge` and its plane in service: requests that start from now on use the plane,
    /// connections accepted from now on the edge; running ones finish on theirs.
    pub(crate) fn swap(&self, edge: Arc<Edge>) {
        self.shared.swap(Arc::clone(&edge.plane));
        self.edge.store(edge);
    }
}

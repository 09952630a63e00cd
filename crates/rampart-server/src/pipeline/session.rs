//! What the pipeline shares with the front ends: the process-wide services every request may
//! use ([`Shared`], with the plane in service), and the [`Session`] of the client connection a
//! request arrived on, with the [`Carrier`] the pipeline reports back to.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use rampart_core::ConnInfo;

use crate::observe::access_log::AccessLog;
use crate::observe::audit::AuditLog;
use crate::observe::otel::Tracer;
use crate::pipeline::plane::Plane;

/// Process-wide services of the request path and the plane in service.
pub(crate) struct Shared {
    plane: ArcSwap<Plane>,
    pub(crate) access_log: Option<Arc<AccessLog>>,
    /// Configuration changes and security decisions (`[audit_log]`), when enabled.
    pub(crate) audit: Option<Arc<AuditLog>>,
    /// Request spans exported over OTLP (`[tracing]`), when enabled.
    pub(crate) tracer: Option<Arc<Tracer>>,
    draining: AtomicBool,
}

impl Shared {
    /// Services around `plane`.
    pub(crate) fn new(
        plane: Arc<Plane>,
        access_log: Option<Arc<AccessLog>>,
        audit: Option<Arc<AuditLog>>,
        tracer: Option<Arc<Tracer>>,
    ) -> Self {
        Self {
            plane: ArcSwap::new(plane),
            access_log,
            audit,
            tracer,
            draining: AtomicBool::new(false),
        }
    }

    /// The plane in service (requests keep the one they started with).
    pub(crate) fn plane(&self) -> Arc<Plane> {
        self.plane.load_full()
    }

    /// Puts `plane` in service for requests that start from now on.
    pub(crate) fn swap(&self, plane: Arc<Plane>) {
        self.plane.store(plane);
    }

    /// True once shutdown began (`/readyz` then answers 503).
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Marks the server as draining: `/readyz` answers 503 from now on.
    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

/// What the pipeline tells the connection that carries a request (an HTTP/1.1 or HTTP/2
/// connection today). The front end counts a request as started when it dispatches it.
pub(crate) trait Carrier: Send + Sync {
    /// The request's response finished, or the request was abandoned.
    fn request_finished(&self);
    /// A `101 Switching Protocols` is being sent: the connection carries a tunnel from now on.
    fn switch_protocols(&self);
    /// The connection was closed because the client took in nothing for `timeouts.send`.
    fn send_timed_out(&self) -> bool;
}

/// A client connection as its requests see it.
pub(crate) struct Session {
    pub(crate) info: Arc<ConnInfo>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) carrier: Arc<dyn Carrier>,
    /// The connection's listener in `start`'s layout.
    pub(crate) listener_index: usize,
    /// The plane the connection started on (not kept alive by the connection): its requests
    /// use it while it lives if a reload removed the listener.
    pub(crate) start: Weak<Plane>,
    /// The listener layout of that plane: `listener_index` is valid in any plane with it.
    pub(crate) layout: u64,
}

impl Session {
    /// The plane a new request runs on and the index of the connection's listener in it.
    /// `None`: a reload removed the listener and the old plane is gone.
    pub(crate) fn plane(&self) -> (Arc<Plane>, Option<usize>) {
        let plane = self.shared.plane();
        if plane.layout == self.layout {
            return (plane, Some(self.listener_index));
        }
        if let Some(i) = plane
            .listeners
            .iter()
            .position(|l| l.name == self.info.listener)
        {
            return (plane, Some(i));
        }
        match self.start.upgrade() {
            Some(old) => (old, Some(self.listener_index)),
            None => (plane, None),
        }
    }
}

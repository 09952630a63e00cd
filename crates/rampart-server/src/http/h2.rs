//! HTTP/2 serving: hyper's `http2::Builder` as Rampart configures it, and the executor that
//! runs each stream hyper hands over.
//!
//! Each stream runs as a task of its own. Running a connection's streams inside the
//! connection's task instead (a `FuturesUnordered` the connection loop polls) was measured and
//! dropped: it saves the spawn, but every response a stream hands h2 wakes the connection's
//! task once more, and scenario d came out about 270 instructions per request higher (see
//! docs/benchmarks.md). hyper's settings do not change what an idle connection holds: windows
//! and send-buffer limits are counters, not buffers (see docs/benchmarks.md, "HTTP/2 and TLS
//! idle memory").

use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::HttpService;
use rampart_config::model::Http2Section;

/// Runs each HTTP/2 stream hyper hands over as its own task, boxed first.
///
/// Hot path: a stream's future holds the whole request pipeline (several KiB), and spawning it
/// inline copies it into the task several times and again on every stage change of the task.
/// Boxed, the task holds a pointer; the future is copied once (measured with callgrind on TLS
/// + HTTP/2: see docs/benchmarks.md).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamExecutor;

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(Box::pin(fut));
    }
}

/// What an HTTP/2 connection is built with, copied from the plane before it is released.
pub(crate) struct H2Settings {
    limits: Http2Section,
    /// The largest header block hyper decodes and hands over.
    max_header_list_size: u32,
}

impl H2Settings {
    /// Settings from the `[http2]` limits and the header room the connection allows.
    pub(crate) fn new(limits: &Http2Section, head_room: usize) -> Self {
        Self {
            limits: limits.clone(),
            max_header_list_size: u32::try_from(head_room).unwrap_or(u32::MAX),
        }
    }

    /// Serves HTTP/2 on `io`.
    pub(crate) fn serve<I, S, B>(
        &self,
        io: I,
        service: S,
    ) -> http2::Connection<I, S, StreamExecutor>
    where
        S: HttpService<Incoming, ResBody = B>,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: hyper::body::Body + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        I: hyper::rt::Read + hyper::rt::Write + Unpin,
        StreamExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
    {
        let mut http2 = http2::Builder::new(StreamExecutor);
        http2
            .max_concurrent_streams(self.limits.max_concurrent_streams)
            .max_pending_accept_reset_streams(self.limits.max_pending_accept_reset_streams)
            .max_local_error_reset_streams(self.limits.max_local_error_reset_streams)
            // Beyond this h2 itself answers 431 on the stream while it can still decode the
            // block (keeping the HPACK state), and ends the connection with COMPRESSION_ERROR
            // once the block is too large to decode.
            .max_header_list_size(self.max_header_list_size);
        http2.serve_connection(io, service)
    }
}

//! The Stage API: how a feature acts on a request. A stage is one step of a route's pipeline
//! with a method per phase it acts in; the pipeline calls a stage only in the phases it names
//! in [`Stage::phases`], so a phase a stage does not use costs nothing.
//!
//! The phases, in the order a request meets them:
//!
//! | phase | method | may |
//! |---|---|---|
//! | request head | [`Stage::on_request`] | change the request, answer ([`Flow::Respond`]), refuse (`Err`) |
//! | request body | [`Stage::on_request_body`] | wrap or read the body, answer, refuse |
//! | upstream choice | [`Stage::choose_upstream`] | send a proxied request to another upstream |
//! | response head | [`Stage::on_response`] | change the status and headers (reverse order) |
//! | response body | [`Stage::on_response_body`] | wrap the body (reverse order, after every head) |
//! | logging | [`Stage::on_log`] | see the finished request's outcome |
//!
//! Stages are built from the config by a [`StageFactory`], once per route when the config is
//! compiled, and shared by every worker: they hold only immutable or lock-free state. What a
//! stage learns about one request and needs in a later phase goes into
//! [`RequestCtx::extensions`](crate::RequestCtx::extensions).

mod factory;

use std::future::Future;
use std::ops::BitOr;
use std::pin::Pin;
use std::sync::Arc;

use http::{Request, Response};

pub use factory::{Prepared, Previous, RouteSpec, StageFactory};

use crate::body::Body;
use crate::ctx::RequestCtx;
use crate::error::ProxyError;

/// What a stage decided about a request: go on, or answer now. A refusal is an `Err` with a
/// [`ProxyError`], whose kind is the reason.
pub enum Flow {
    /// Go on to the next stage or the handler.
    Continue,
    /// Answer now; later stages and the handler do not run.
    Respond {
        /// The response sent instead of the handler's. Boxed: the rare case should not make
        /// every `Continue` carry a whole response.
        response: Box<Response<Body>>,
        /// A stable snake_case code (`cors_preflight`, `cache_hit`) that the access log shows
        /// as the request's reason.
        reason: &'static str,
    },
}

impl Flow {
    /// Answers with `response` for `reason` (see [`Flow::Respond`]).
    #[must_use]
    pub fn respond(response: Response<Body>, reason: &'static str) -> Self {
        Self::Respond {
            response: Box::new(response),
            reason,
        }
    }
}

/// Put in [`RequestCtx::extensions`] by a request-head stage that answers with
/// [`Flow::Respond`] to have the request still forwarded, behind the answer (a cache serving
/// a stale object while it refreshes it): the route's later request stages and its handler
/// run in the background, their response goes through the route's response stages, and its
/// body is read to the end and dropped. The background run takes the request's extensions;
/// the answered request keeps none. It is not logged.
#[derive(Debug, Clone, Copy)]
pub struct ForwardBehind;

/// The result of a request-phase stage.
pub type StageResult = Result<Flow, ProxyError>;

/// A stage's answer: immediate for synchronous stages (no allocation), or a future for those
/// that must wait (a remote auth service, a shared rate limiter, a body being read).
pub enum StageFuture<'a> {
    /// Decided without waiting.
    Ready(StageResult),
    /// Decided once the future completes.
    Pending(Pin<Box<dyn Future<Output = StageResult> + Send + 'a>>),
}

impl StageFuture<'_> {
    /// Waits for the decision.
    pub async fn resolve(self) -> StageResult {
        match self {
            Self::Ready(result) => result,
            Self::Pending(fut) => fut.await,
        }
    }
}

impl From<StageResult> for StageFuture<'_> {
    fn from(result: StageResult) -> Self {
        Self::Ready(result)
    }
}

/// The phases a stage acts in: a small bit set, combined with `|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phases(u8);

impl Phases {
    /// No phase.
    pub const NONE: Self = Self(0);
    /// [`Stage::on_request`].
    pub const REQUEST: Self = Self(1);
    /// [`Stage::on_request_body`].
    pub const REQUEST_BODY: Self = Self(1 << 1);
    /// [`Stage::choose_upstream`].
    pub const UPSTREAM: Self = Self(1 << 2);
    /// [`Stage::on_response`].
    pub const RESPONSE: Self = Self(1 << 3);
    /// [`Stage::on_response_body`].
    pub const RESPONSE_BODY: Self = Self(1 << 4);
    /// [`Stage::on_log`].
    pub const LOG: Self = Self(1 << 5);

    /// True when every phase of `other` is in `self`.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Phases {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// How a finished request ended, for [`Stage::on_log`] and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The status sent (499 when the client left before any response;
    /// [`Self::NOTHING_SENT`] when the connection was closed without an answer).
    pub status: u16,
    /// Bytes sent to the client: the response body, and for an upgraded connection
    /// (WebSocket) the bytes relayed to the client until the tunnel closed.
    pub bytes_sent: u64,
    /// Bytes relayed from the client through an upgraded connection until the tunnel closed
    /// (0 for a request that was not upgraded).
    pub bytes_received: u64,
    /// The response was sent whole.
    pub completed: bool,
}

impl Outcome {
    /// The status of a refusal that sent nothing: logged as `0` in JSON, `-` in combined
    /// format.
    pub const NOTHING_SENT: u16 = 0;
}

/// One step of a route's pipeline (see the module documentation for the phases). Every phase
/// method defaults to doing nothing; a stage implements the ones it names in [`Self::phases`].
pub trait Stage: Send + Sync + 'static {
    /// Short name shown by `rampart explain`, the admin API, logs and metrics.
    fn name(&self) -> &'static str;

    /// The phases this stage acts in; the pipeline calls no other phase method.
    fn phases(&self) -> Phases;

    /// Request head: inspects or changes the request before its body is touched; may answer
    /// or refuse. Runs in route order.
    fn on_request<'a>(
        &'a self,
        _req: &'a mut Request<Body>,
        _ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        StageFuture::Ready(Ok(Flow::Continue))
    }

    /// Request body: runs after every stage's request head, once the client body is guarded
    /// (validated framing, minimum rate). A stage may replace the body with one that
    /// transforms it as it streams, or read it (bounded) and put back what it read; it may
    /// answer or refuse. Runs in route order.
    fn on_request_body<'a>(
        &'a self,
        _req: &'a mut Request<Body>,
        _ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        StageFuture::Ready(Ok(Flow::Continue))
    }

    /// Upstream choice, for routes that proxy: the name of an upstream to send this request
    /// to instead of the route's own. The first stage in route order that names one decides;
    /// the name must be an upstream of the config (check it when building the stage).
    fn choose_upstream(&self, _req: &Request<Body>, _ctx: &RequestCtx) -> Option<Arc<str>> {
        None
    }

    /// Response head: inspects or changes the response's status and headers. Runs in reverse
    /// route order, for every response of the route: the handler's, a stage's answer, or an
    /// error.
    fn on_response(&self, _resp: &mut Response<Body>, _ctx: &mut RequestCtx) {}

    /// Response body: may replace the body with one that transforms it as it streams. Runs in
    /// reverse route order after every stage's response head, so it sees the final headers.
    fn on_response_body(&self, _resp: &mut Response<Body>, _ctx: &mut RequestCtx) {}

    /// Logging: the request is finished (sent whole, failed, or abandoned by the client).
    /// Runs in route order, on the worker, just before the access log line is written: keep
    /// it cheap and never block.
    fn on_log(&self, _ctx: &RequestCtx, _outcome: &Outcome) {}
}

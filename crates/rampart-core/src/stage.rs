//! The [`Stage`] trait: one step of a route's pipeline, with phase methods that default to
//! "continue".

use std::future::Future;
use std::pin::Pin;

use http::{Request, Response};

use crate::body::Body;
use crate::ctx::RequestCtx;
use crate::error::ProxyError;

/// What a stage decided about a request.
pub enum Flow {
    /// Go on to the next stage or the handler.
    Continue,
    /// Answer now with this response; later stages and the handler do not run. Boxed: the
    /// rare case should not make every `Continue` carry a whole response.
    Respond(Box<Response<Body>>),
}

/// The result of a request-phase stage.
pub type StageResult = Result<Flow, ProxyError>;

/// A stage's answer: immediate for synchronous stages (no allocation), or a future for those
/// that must wait (a remote auth service, a shared rate limiter).
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

/// One step of a route's pipeline. Stages are built once per route when the config is
/// compiled and shared by all workers, so they hold only immutable or lock-free state.
pub trait Stage: Send + Sync + 'static {
    /// Short name shown by `rampart explain` and in logs.
    fn name(&self) -> &'static str;

    /// Inspects or changes the request before the handler; may answer instead.
    fn on_request<'a>(
        &'a self,
        _req: &'a mut Request<Body>,
        _ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        StageFuture::Ready(Ok(Flow::Continue))
    }

    /// Inspects or changes the response on its way back (stages run in reverse order).
    fn on_response(&self, _resp: &mut Response<Body>, _ctx: &mut RequestCtx) {}
}

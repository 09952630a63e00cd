//! [`DecompressStage`]: a route's request bodies decompressed on their way to the upstream
//! (and to any stage after it that reads bodies), built by [`DecompressStages`] for routes
//! with `decompress`.
//!
//! The stage acts in the request-body phase. A body without a `Content-Encoding` (or with
//! `identity`) is left as it is. Otherwise the coding is checked (415 for one Rampart cannot
//! decode, or several), and up to [`READ_AHEAD`] of the body is decompressed before anything
//! is forwarded: a bomb or a corrupt stream found there is refused with 413 or 400 before an
//! upstream is contacted, and a body that ends within it is forwarded with its exact
//! `Content-Length`. A longer body streams on through the decoder (chunked to an HTTP/1.1
//! upstream); crossing a cap later fails the body mid-stream, so the upstream gets an
//! incomplete message and never a complete one. `Content-Encoding` is removed either way.

use http::Request;
use http::header::{self, HeaderValue};
use rampart_config::ConfigError;
use rampart_config::model::Decompress;
use rampart_core::{Body, Flow, Phases, RequestCtx, Stage, StageFuture};
use rampart_core::{Prepared, RouteSpec, StageFactory};

use super::inflate::Inflating;
use super::{Coding, DecompressLimits, Decompressor};

/// Decompressed bytes (and compressed bytes read) before forwarding starts.
pub const READ_AHEAD: usize = 64 * 1024;

/// Decompresses a route's request bodies within its caps.
#[derive(Debug)]
pub struct DecompressStage {
    limits: DecompressLimits,
}

impl DecompressStage {
    /// A stage decompressing within `limits`.
    #[must_use]
    pub const fn new(limits: DecompressLimits) -> Self {
        Self { limits }
    }
}

impl Stage for DecompressStage {
    fn name(&self) -> &'static str {
        "decompress"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST_BODY
    }

    fn on_request_body<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        _ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        if !req.headers().contains_key(header::CONTENT_ENCODING) {
            return Ok(Flow::Continue).into();
        }
        let coding = match Coding::from_headers(req.headers()) {
            Ok(coding) => coding,
            Err(e) => return Err(e).into(),
        };
        req.headers_mut().remove(header::CONTENT_ENCODING);
        if coding == Coding::Identity || http_body::Body::is_end_stream(req.body()) {
            return Ok(Flow::Continue).into();
        }
        req.headers_mut().remove(header::CONTENT_LENGTH);
        let limits = self.limits;
        StageFuture::Pending(Box::pin(async move {
            let inner = std::mem::take(req.body_mut());
            let mut inflating = Inflating::new(inner, Decompressor::new(coding, limits));
            inflating.read_ahead(READ_AHEAD, READ_AHEAD as u64).await?;
            *req.body_mut() = match inflating.take_whole() {
                Some(bytes) => {
                    req.headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                    Body::full(bytes)
                }
                None => Body::boxed(inflating),
            };
            Ok(Flow::Continue)
        }))
    }
}

/// Builds the `decompress` stage of routes with `decompress` on.
#[derive(Debug, Clone, Copy)]
pub struct DecompressStages;

impl StageFactory for DecompressStages {
    fn name(&self) -> &'static str {
        "decompress"
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        _prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        let Some(config) = route.route.decompress.as_ref().filter(|d| d.enabled) else {
            return Ok(Vec::new());
        };
        Ok(vec![Box::new(DecompressStage::new(limits(config)))])
    }
}

/// The caps of `config` (validated with the config: both at least 1).
const fn limits(config: &Decompress) -> DecompressLimits {
    DecompressLimits {
        max_size: config.max_size.get().get(),
        max_ratio: *config.max_ratio.get(),
    }
}

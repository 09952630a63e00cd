//! [`CompressStage`]: a route's responses compressed on their way to the client, built by
//! [`CompressStages`] for routes with `compress`.
//!
//! The request head phase reads `Accept-Encoding` (never for `HEAD`) and keeps the choice in
//! the request's context; the response head phase decides whether this response is
//! compressible and rewrites its headers; the response body phase wraps the body in a
//! [`CompressBody`]. A response is compressed only when every one of these holds: its status
//! is not 1xx, 204, 205, 206 or 304; it has no `Content-Encoding` (other than `identity`) and
//! no `Content-Range`; its `Cache-Control` has no `no-transform`; its `Content-Type` is one
//! of the route's types; its `Content-Length`, when known, is at least the minimum size.
//! Every response that passes those checks gets `Vary: Accept-Encoding`, compressed or not, so
//! that caches keep the variants apart.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use rampart_config::ConfigError;
use rampart_config::model::{Compress, CompressAlgorithm};
use rampart_core::{Body, Flow, Phases, RequestCtx, Stage, StageFuture};
use rampart_core::{Prepared, RouteSpec, StageFactory};

use crate::body::CompressBody;
use crate::encoder::{Encoder, Levels};
use crate::negotiate::{Encoding, choose};
use crate::types::TypeList;

/// What the request head decided, kept in the request's context for the response phases.
#[derive(Debug, Clone, Copy)]
struct Negotiated(Option<Encoding>);

/// The response head chose to compress with this coding: the body phase wraps the body.
#[derive(Debug, Clone, Copy)]
struct Compressing(Encoding);

/// Compresses a route's responses (see the module documentation for the rules).
#[derive(Debug)]
pub struct CompressStage {
    offered: Vec<Encoding>,
    types: TypeList,
    min_size: u64,
    levels: Levels,
}

impl CompressStage {
    /// A stage offering `offered` (in the server's order of preference) for `types`.
    #[must_use]
    pub const fn new(
        offered: Vec<Encoding>,
        types: TypeList,
        min_size: u64,
        levels: Levels,
    ) -> Self {
        Self {
            offered,
            types,
            min_size,
            levels,
        }
    }

    /// True when `resp` may be compressed at all (whichever coding the client accepts).
    fn compressible(&self, resp: &Response<Body>) -> bool {
        let status = resp.status();
        if status.is_informational()
            || matches!(
                status,
                StatusCode::NO_CONTENT
                    | StatusCode::RESET_CONTENT
                    | StatusCode::PARTIAL_CONTENT
                    | StatusCode::NOT_MODIFIED
            )
        {
            return false;
        }
        let headers = resp.headers();
        if headers.contains_key(header::CONTENT_RANGE)
            || is_encoded(headers)
            || no_transform(headers)
        {
            return false;
        }
        if !headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|t| self.types.matches(t.as_bytes()))
        {
            return false;
        }
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .or_else(|| http_body::Body::size_hint(resp.body()).exact());
        length.is_none_or(|len| len >= self.min_size)
    }
}

/// The response already has a content coding.
fn is_encoded(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"))
}

/// `Cache-Control: no-transform` (RFC 9111 §5.2.2.6): intermediaries must not change the body.
fn no_transform(headers: &HeaderMap) -> bool {
    headers.get_all(header::CACHE_CONTROL).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
    })
}

/// Adds `Accept-Encoding` to `Vary` unless it is there already (or `Vary: *`).
pub(crate) fn vary_accept_encoding(headers: &mut HeaderMap) {
    let listed = headers.get_all(header::VARY).iter().any(|v| {
        v.as_bytes().split(|b| *b == b',').any(|name| {
            let name = name.trim_ascii();
            name == b"*" || name.eq_ignore_ascii_case(b"accept-encoding")
        })
    });
    if !listed {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// A strong `ETag` made weak: the compressed bytes are not the bytes the tag named.
fn weaken_etag(headers: &mut HeaderMap) {
    let Some(tag) = headers.get(header::ETAG) else {
        return;
    };
    if tag.as_bytes().starts_with(b"W/") {
        return;
    }
    let mut weak = Vec::with_capacity(tag.len() + 2);
    weak.extend_from_slice(b"W/");
    weak.extend_from_slice(tag.as_bytes());
    if let Ok(weak) = HeaderValue::from_bytes(&weak) {
        headers.insert(header::ETAG, weak);
    }
}

impl Stage for CompressStage {
    fn name(&self) -> &'static str {
        "compress"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST | Phases::RESPONSE | Phases::RESPONSE_BODY
    }

    fn on_request<'a>(
        &'a self,
        req: &'a mut Request<Body>,
        ctx: &'a mut RequestCtx,
    ) -> StageFuture<'a> {
        let chosen = if req.method() == Method::HEAD {
            None
        } else {
            choose(req.headers(), &self.offered)
        };
        ctx.extensions.insert(Negotiated(chosen));
        StageFuture::Ready(Ok(Flow::Continue))
    }

    fn on_response(&self, resp: &mut Response<Body>, ctx: &mut RequestCtx) {
        // A response produced before this stage's request phase ran (a refusal by an earlier
        // stage) has no negotiation: it is sent as it is.
        let Some(Negotiated(chosen)) = ctx.extensions.remove::<Negotiated>() else {
            return;
        };
        if !self.compressible(resp) {
            return;
        }
        let headers = resp.headers_mut();
        vary_accept_encoding(headers);
        let Some(encoding) = chosen else {
            return;
        };
        headers.remove(header::CONTENT_LENGTH);
        headers.remove(header::ACCEPT_RANGES);
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.token()),
        );
        weaken_etag(headers);
        ctx.extensions.insert(Compressing(encoding));
    }

    fn on_response_body(&self, resp: &mut Response<Body>, ctx: &mut RequestCtx) {
        let Some(Compressing(encoding)) = ctx.extensions.remove::<Compressing>() else {
            return;
        };
        match Encoder::new(encoding, self.levels.of(encoding)) {
            Ok(encoder) => {
                let inner = std::mem::take(resp.body_mut());
                *resp.body_mut() = Body::boxed(CompressBody::new(inner, encoder));
            }
            Err(e) => {
                // Headers already say compressed; a body that cannot be is cut rather than
                // sent mislabelled.
                tracing::warn!(coding = encoding.token(), error = %e, "compressor could not start");
                *resp.body_mut() = Body::boxed(Failed(Some(e.to_string())));
            }
        }
    }
}

/// A body that fails at once (the compressor could not start).
struct Failed(Option<String>);

impl http_body::Body for Failed {
    type Data = bytes::Bytes;
    type Error = rampart_core::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.get_mut().0.take().map(|e| Err(e.into())))
    }
}

/// Builds the `compress` stage of routes with `compress` on.
#[derive(Debug, Clone, Copy)]
pub struct CompressStages;

impl StageFactory for CompressStages {
    fn name(&self) -> &'static str {
        "compress"
    }

    fn build(
        &self,
        route: &RouteSpec<'_>,
        _prepared: &Prepared,
    ) -> Result<Vec<Box<dyn Stage>>, Vec<ConfigError>> {
        let Some(config) = route.route.compress.as_ref().filter(|c| c.enabled) else {
            return Ok(Vec::new());
        };
        Ok(vec![Box::new(compile(route, config)?)])
    }
}

/// Checks `config` and compiles its stage.
fn compile(route: &RouteSpec<'_>, config: &Compress) -> Result<CompressStage, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut offered = Vec::new();
    for algorithm in &config.algorithms {
        let encoding = match **algorithm {
            CompressAlgorithm::Gzip => Encoding::Gzip,
            CompressAlgorithm::Brotli => Encoding::Brotli,
            CompressAlgorithm::Zstd => Encoding::Zstd,
        };
        if offered.contains(&encoding) {
            errors.push(route.error(
                Some(algorithm.span()),
                "compress.algorithms",
                format!("{:?} is listed twice", encoding.token()),
            ));
        }
        offered.push(encoding);
    }
    if offered.is_empty() {
        errors.push(route.error(
            None,
            "compress.algorithms",
            "list at least one algorithm (or set `compress = false`)",
        ));
    }
    let types = match TypeList::new(config.types.iter().map(|t| t.as_str())) {
        Ok(types) => types,
        Err((i, message)) => {
            errors.push(route.error(
                config.types.get(i).map(rampart_config::Located::span),
                "compress.types",
                message,
            ));
            TypeList::default()
        }
    };
    let levels = &config.levels;
    for (key, level, range) in [
        ("gzip", &levels.gzip, 1..=9),
        ("br", &levels.br, 0..=11),
        ("zstd", &levels.zstd, 1..=19),
    ] {
        if !range.contains(level.get()) {
            errors.push(route.error(
                Some(level.span()),
                &format!("compress.levels.{key}"),
                format!(
                    "{} is out of range: expected {} to {}",
                    level.get(),
                    range.start(),
                    range.end()
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(CompressStage::new(
        offered,
        types,
        config.min_size.get().get(),
        Levels {
            gzip: *levels.gzip.get(),
            brotli: *levels.br.get(),
            zstd: *levels.zstd.get(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_is_added_once_and_never_next_to_a_star() {
        let mut h = HeaderMap::new();
        vary_accept_encoding(&mut h);
        vary_accept_encoding(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);
        let mut h = HeaderMap::new();
        h.insert(
            header::VARY,
            HeaderValue::from_static("Origin, Accept-Encoding"),
        );
        vary_accept_encoding(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);
        let mut h = HeaderMap::new();
        h.insert(header::VARY, HeaderValue::from_static("*"));
        vary_accept_encoding(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);
    }

    #[test]
    fn strong_etags_become_weak_and_weak_ones_stay() {
        let mut h = HeaderMap::new();
        h.insert(header::ETAG, HeaderValue::from_static("\"abc\""));
        weaken_etag(&mut h);
        assert_eq!(h[header::ETAG], "W/\"abc\"");
        weaken_etag(&mut h);
        assert_eq!(h[header::ETAG], "W/\"abc\"");
    }

    #[test]
    fn encoded_and_no_transform_responses_are_detected() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        assert!(!is_encoded(&h));
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(is_encoded(&h));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, No-Transform"),
        );
        assert!(no_transform(&h));
    }
}

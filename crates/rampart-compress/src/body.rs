//! [`CompressBody`]: a response body compressed as it streams.
//!
//! Chunks are compressed as they arrive, at most [`CHUNK`] input bytes at a time, so one poll
//! never produces more than about one chunk of output whatever the size of the frame it was
//! given. Whenever the inner body has nothing more to give right now (it returned `Pending`)
//! and bytes went in since the last output, the compressor is flushed and what it holds is
//! sent: a streaming response is never held back waiting for more input.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use rampart_core::{Body, BoxError};

use crate::encoder::Encoder;

/// Input compressed per step.
pub const CHUNK: usize = 64 * 1024;

/// A body passed through an [`Encoder`].
pub struct CompressBody {
    inner: Body,
    encoder: Option<Encoder>,
    /// Input taken from the inner body and not compressed yet.
    pending: Bytes,
    /// Input went into the encoder since its output was last flushed.
    unflushed: bool,
    /// Trailers to send after the last compressed bytes.
    trailers: Option<HeaderMap>,
    /// The inner body ended (or failed).
    inner_done: bool,
}

impl CompressBody {
    /// `inner`, compressed by `encoder`.
    #[must_use]
    pub fn new(inner: Body, encoder: Encoder) -> Self {
        Self {
            inner,
            encoder: Some(encoder),
            pending: Bytes::new(),
            unflushed: false,
            trailers: None,
            inner_done: false,
        }
    }

    fn encoder(&mut self) -> Result<&mut Encoder, BoxError> {
        self.encoder
            .as_mut()
            .ok_or_else(|| "compressed body polled after its end".into())
    }

    /// Compresses the next piece of `pending`.
    fn step(&mut self) -> Result<Bytes, BoxError> {
        let take = self.pending.len().min(CHUNK);
        let piece = self.pending.split_to(take);
        let out = self.encoder()?.write(&piece)?;
        self.unflushed = true;
        Ok(Bytes::from(out))
    }

    /// Ends the stream: the encoder's last bytes.
    fn end(&mut self) -> Result<Bytes, BoxError> {
        match self.encoder.take() {
            Some(encoder) => Ok(Bytes::from(encoder.finish()?)),
            None => Ok(Bytes::new()),
        }
    }
}

impl http_body::Body for CompressBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        // Bounded: every turn either consumes input, ends the stream, or returns.
        loop {
            if !this.pending.is_empty() {
                match this.step() {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                    Err(e) => return Poll::Ready(Some(Err(e))),
                }
            }
            if this.inner_done {
                if this.encoder.is_some() {
                    match this.end() {
                        Ok(out) if !out.is_empty() => {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                        Ok(_) => {}
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    if !this.unflushed {
                        return Poll::Pending;
                    }
                    this.unflushed = false;
                    return match this.encoder().and_then(|e| Ok(e.flush()?)) {
                        Ok(out) if out.is_empty() => Poll::Pending,
                        Ok(out) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                        Err(e) => Poll::Ready(Some(Err(e))),
                    };
                }
                Poll::Ready(None) => this.inner_done = true,
                Poll::Ready(Some(Err(e))) => {
                    // The response is cut: the client sees an incomplete stream, never a
                    // complete one.
                    this.inner_done = true;
                    this.encoder = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            this.trailers = Some(trailers);
                        }
                        this.inner_done = true;
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner_done
            && self.encoder.is_none()
            && self.pending.is_empty()
            && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use crate::encoder::tests::decode;
    use crate::negotiate::Encoding;

    #[tokio::test]
    async fn a_large_full_body_comes_out_in_bounded_frames() {
        let text: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        for encoding in [Encoding::Gzip, Encoding::Brotli, Encoding::Zstd] {
            let encoder = Encoder::new(encoding, 1).unwrap();
            let mut body = CompressBody::new(Body::full(text.clone()), encoder);
            let mut out = Vec::new();
            let mut frames = 0;
            while let Some(frame) = body.frame().await {
                let data = frame.unwrap().into_data().unwrap();
                assert!(
                    data.len() <= 2 * CHUNK,
                    "{encoding:?}: {} bytes",
                    data.len()
                );
                out.extend_from_slice(&data);
                frames += 1;
                assert!(frames < 10_000);
            }
            assert!(http_body::Body::is_end_stream(&body));
            assert_eq!(decode(encoding, &out), text, "{encoding:?}");
        }
    }

    #[tokio::test]
    async fn an_empty_body_is_a_valid_empty_stream() {
        for encoding in [Encoding::Gzip, Encoding::Brotli, Encoding::Zstd] {
            let body = CompressBody::new(Body::Empty, Encoder::new(encoding, 3).unwrap());
            let out = body.collect().await.unwrap().to_bytes();
            assert!(decode(encoding, &out).is_empty());
        }
    }
}

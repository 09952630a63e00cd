//! [`Inflating`]: a request body decompressed as it streams, within the caps of its
//! [`Decompressor`]. Compressed input is fed in small slices and the output handed on in
//! frames of about [`FRAME_BYTES`], so what one body holds at a time stays small whatever the
//! body's size.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as _, Frame};
use rampart_core::body_error::client_body_reason;
use rampart_core::{Body, BoxError, ErrorKind, ProxyError};

use super::Decompressor;

/// Compressed bytes fed to the decoder at a time: the ratio cap is checked after each slice,
/// so a bomb is stopped within one slice's worth of output past the cap.
const SLICE: usize = 1024;

/// Decompressed bytes gathered before they are handed on as one frame.
const FRAME_BYTES: usize = 32 * 1024;

/// A compressed body being decompressed.
pub(super) struct Inflating {
    inner: Body,
    /// `None` once the stream was finished or failed.
    decoder: Option<Decompressor>,
    /// Compressed bytes received and not yet fed.
    input: Bytes,
    /// Decompressed bytes not yet handed on.
    out: Vec<u8>,
    /// The client body ended.
    inner_done: bool,
    /// The client body's trailers, handed on after the last data.
    trailers: Option<HeaderMap>,
    /// Compressed bytes received so far.
    received: u64,
}

impl Inflating {
    /// Decompresses `inner` with `decoder`.
    pub(super) fn new(inner: Body, decoder: Decompressor) -> Self {
        Self {
            inner,
            decoder: Some(decoder),
            input: Bytes::new(),
            out: Vec::new(),
            inner_done: false,
            trailers: None,
            received: 0,
        }
    }

    /// Reads and decompresses until the body ended, or until `max_out` decompressed or
    /// `max_in` compressed bytes are held; [`Self::take_whole`] then says which.
    ///
    /// # Errors
    /// A cap crossed, a corrupt stream, or the client body failing, with its reason.
    pub(super) async fn read_ahead(
        &mut self,
        max_out: usize,
        max_in: u64,
    ) -> Result<(), ProxyError> {
        loop {
            if !self.input.is_empty() {
                self.feed(max_out)?;
            } else if self.decoder.is_none() {
                return Ok(());
            } else if self.inner_done {
                self.finish()?;
            } else if self.out.len() >= max_out || self.received >= max_in {
                return Ok(());
            } else {
                std::future::poll_fn(|cx| self.poll_inner(cx)).await?;
            }
            if self.out.len() >= max_out {
                return Ok(());
            }
        }
    }

    /// The whole decompressed body when the stream has ended; `None` to stream the rest (or
    /// to keep the client's trailers).
    pub(super) fn take_whole(&mut self) -> Option<Bytes> {
        (self.decoder.is_none() && self.trailers.is_none())
            .then(|| Bytes::from(std::mem::take(&mut self.out)))
    }

    /// Feeds slices of the pending input until it is used up or `max_out` bytes are held.
    fn feed(&mut self, max_out: usize) -> Result<(), ProxyError> {
        let Some(decoder) = self.decoder.as_mut() else {
            self.input = Bytes::new();
            return Ok(());
        };
        while !self.input.is_empty() && self.out.len() < max_out {
            let slice = self.input.split_to(self.input.len().min(SLICE));
            if let Err(e) = decoder.push(&slice, &mut self.out) {
                self.fail();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Ends the stream: the decoder checks that it was complete.
    fn finish(&mut self) -> Result<(), ProxyError> {
        if let Some(decoder) = self.decoder.take()
            && let Err(e) = decoder.finish(&mut self.out)
        {
            self.fail();
            return Err(e);
        }
        Ok(())
    }

    fn fail(&mut self) {
        self.decoder = None;
        self.input = Bytes::new();
        self.out = Vec::new();
        self.trailers = None;
    }

    /// Waits for the next frame of the client body and stores it.
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            None => self.inner_done = true,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    self.received += data.len() as u64;
                    self.input = data;
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        self.trailers = Some(trailers);
                    }
                }
            },
            Some(Err(e)) => {
                self.fail();
                let kind = client_body_reason(&*e).unwrap_or(ErrorKind::ClientBodyError);
                return Poll::Ready(Err(ProxyError::new(kind, format!("request body: {e}"))));
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes the decompressed bytes held, as a frame.
    fn take_frame(&mut self) -> Frame<Bytes> {
        Frame::data(Bytes::from(std::mem::take(&mut self.out)))
    }
}

impl http_body::Body for Inflating {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if !this.input.is_empty() {
                if let Err(e) = this.feed(FRAME_BYTES) {
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                if this.out.len() >= FRAME_BYTES {
                    return Poll::Ready(Some(Ok(this.take_frame())));
                }
            } else if this.decoder.is_none() {
                if !this.out.is_empty() {
                    return Poll::Ready(Some(Ok(this.take_frame())));
                }
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            } else if this.inner_done {
                if let Err(e) = this.finish() {
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
            } else {
                match this.poll_inner(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(Box::new(e)))),
                    // Hand on what is decompressed while the client is slow.
                    Poll::Pending if !this.out.is_empty() => {
                        return Poll::Ready(Some(Ok(this.take_frame())));
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_none() && self.out.is_empty() && self.trailers.is_none()
    }
}

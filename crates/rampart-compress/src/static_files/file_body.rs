//! A file sent as a stream of bounded chunks: each chunk (at most [`READ_CHUNK`]) is one
//! positional read on the blocking pool, so a large file never sits in memory and many
//! requests share one open file. A file that shrank under a response ends it with an error
//! (the client sees a cut response, never a short one passed off as whole).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::stream;
use http_body::Frame;
use http_body_util::StreamBody;
use rampart_core::{Body, BoxError};

use super::range::Segment;

/// Bytes read per step.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// A body of `segments`, reading file ranges from `file`.
pub(crate) fn body(file: Arc<File>, segments: Vec<Segment>) -> Body {
    let state = (file, segments.into_iter(), None::<(u64, u64)>);
    let chunks = stream::unfold(state, |(file, mut segments, mut current)| async move {
        loop {
            if let Some((offset, remaining)) = current
                && remaining > 0
            {
                let want = usize::try_from(remaining)
                    .unwrap_or(READ_CHUNK)
                    .min(READ_CHUNK);
                let read = read_at(Arc::clone(&file), offset, want).await;
                return match read {
                    Ok(bytes) => {
                        let n = bytes.len() as u64;
                        current = Some((offset + n, remaining - n));
                        Some((Ok(Frame::data(bytes)), (file, segments, current)))
                    }
                    Err(e) => {
                        // Nothing more after an error.
                        let done = (file, Vec::new().into_iter(), None);
                        Some((Err(e), done))
                    }
                };
            }
            match segments.next()? {
                Segment::Bytes(bytes) => {
                    return Some((Ok(Frame::data(bytes)), (file, segments, None)));
                }
                Segment::File(range) => current = Some((range.start, range.len)),
            }
        }
    });
    Body::boxed(StreamBody::new(chunks))
}

/// A body of `segments` cut from `content`, a whole file already in memory.
pub(crate) fn from_memory(content: &Bytes, segments: &[Segment]) -> Body {
    let slice = |range: super::range::ByteRange| {
        let start = usize::try_from(range.start)
            .unwrap_or(usize::MAX)
            .min(content.len());
        let end = usize::try_from(range.start + range.len)
            .unwrap_or(usize::MAX)
            .min(content.len());
        content.slice(start..end)
    };
    match segments {
        [Segment::File(range)] => Body::full(slice(*range)),
        _ => {
            let mut out = BytesMut::new();
            for segment in segments {
                match segment {
                    Segment::Bytes(bytes) => out.extend_from_slice(bytes),
                    Segment::File(range) => out.extend_from_slice(&slice(*range)),
                }
            }
            Body::full(out.freeze())
        }
    }
}

/// Reads exactly `len` bytes at `offset` (fewer only at a shrunk file's end: an error).
async fn read_at(file: Arc<File>, offset: u64, len: usize) -> Result<Bytes, BoxError> {
    let read = tokio::task::spawn_blocking(move || {
        let mut buf = BytesMut::zeroed(len);
        let mut filled = 0;
        while filled < len {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        Ok(buf.freeze())
    })
    .await;
    match read {
        Ok(Ok(bytes)) if bytes.len() == len => Ok(bytes),
        Ok(Ok(_)) => Err("file shrank while it was being sent".into()),
        Ok(Err(e)) => Err(format!("file read failed: {e}").into()),
        Err(e) => Err(format!("file read task failed: {e}").into()),
    }
}

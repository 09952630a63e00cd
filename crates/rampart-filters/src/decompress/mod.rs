//! Request-body decompression, within caps: the decompressed size, and the ratio of
//! decompressed to compressed bytes. A body over either cap stops decompressing at once (413
//! `decompression_limit`), so a decompression bomb costs at most the cap in memory and time.
//! [`DecompressStage`] puts it on the routes that opt in, before the stages that read bodies.
//!
//! The API streams: feed compressed chunks as they arrive with [`Decompressor::push`], collect
//! the decompressed bytes, and call [`Decompressor::finish`] at the end of the body, which
//! refuses a truncated stream. Codings: `gzip` (and `x-gzip`), `deflate` (zlib, RFC 9110
//! §8.4.1.2), `br` and `zstd`, one at a time; stacked codings get 415. All decoders are pure
//! Rust (flate2 with miniz_oxide, brotli-decompressor, ruzstd), so nothing here needs a C build.

mod inflate;
mod stage;

use std::io::{self, Write};

use http::header::{self, HeaderMap};
use rampart_core::{ErrorKind, ProxyError};

pub use stage::{DecompressStage, DecompressStages, READ_AHEAD};

/// Decompressed bytes allowed before the ratio cap applies: small bodies compress well without
/// being bombs.
pub const RATIO_GRACE: u64 = 64 * 1024;

/// Largest zstd window accepted (memory one stream may use), whatever the frame asks for.
const MAX_ZSTD_WINDOW: u64 = 8 << 20;

/// Compressed zstd bytes buffered while waiting for a whole block (a block is at most 128 KiB).
const MAX_ZSTD_PENDING: usize = 256 * 1024;

/// The caps of one body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecompressLimits {
    /// Most decompressed bytes.
    pub max_size: u64,
    /// Most decompressed bytes per compressed byte (once past [`RATIO_GRACE`]).
    pub max_ratio: u64,
}

impl Default for DecompressLimits {
    /// 10 MiB and a ratio of 100.
    fn default() -> Self {
        Self {
            max_size: 10 << 20,
            max_ratio: 100,
        }
    }
}

/// A body's content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Not compressed (no `Content-Encoding`, or `identity`).
    Identity,
    /// `gzip` / `x-gzip`.
    Gzip,
    /// `deflate` (the zlib format).
    Deflate,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
}

impl Coding {
    /// The coding `headers` declare.
    ///
    /// # Errors
    /// 415 `unsupported_content_encoding` for an unknown coding or several stacked ones.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ProxyError> {
        let mut found = Self::Identity;
        for value in headers.get_all(header::CONTENT_ENCODING) {
            for token in value.as_bytes().split(|b| *b == b',') {
                let token = token.trim_ascii();
                let coding = match token.to_ascii_lowercase().as_slice() {
                    b"" | b"identity" => continue,
                    b"gzip" | b"x-gzip" => Self::Gzip,
                    b"deflate" => Self::Deflate,
                    b"br" => Self::Brotli,
                    b"zstd" => Self::Zstd,
                    _ => {
                        return Err(unsupported(format!(
                            "content coding {:?}",
                            String::from_utf8_lossy(token)
                        )));
                    }
                };
                if found != Self::Identity {
                    return Err(unsupported("stacked content codings".into()));
                }
                found = coding;
            }
        }
        Ok(found)
    }
}

fn unsupported(detail: String) -> ProxyError {
    ProxyError::new(ErrorKind::UnsupportedContentEncoding, detail)
}

/// Streams one body through its decoder within the caps.
pub struct Decompressor {
    engine: Engine,
}

enum Engine {
    Identity(Sink),
    Gzip(flate2::write::GzDecoder<Sink>),
    Deflate(flate2::write::ZlibDecoder<Sink>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Sink>>),
    Zstd(Box<Zstd>),
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sink = self.sink();
        f.debug_struct("Decompressor")
            .field("consumed", &sink.consumed)
            .field("produced", &sink.produced)
            .finish_non_exhaustive()
    }
}

impl Decompressor {
    /// A decompressor for `coding` within `limits`.
    #[must_use]
    pub fn new(coding: Coding, limits: DecompressLimits) -> Self {
        let sink = Sink::new(limits);
        let engine = match coding {
            Coding::Identity => Engine::Identity(sink),
            Coding::Gzip => Engine::Gzip(flate2::write::GzDecoder::new(sink)),
            Coding::Deflate => Engine::Deflate(flate2::write::ZlibDecoder::new(sink)),
            Coding::Brotli => Engine::Brotli(Box::new(
                brotli_decompressor::DecompressorWriter::new(sink, 16 * 1024),
            )),
            Coding::Zstd => Engine::Zstd(Box::new(Zstd::new(sink))),
        };
        Self { engine }
    }

    /// Feeds the next compressed chunk; the decompressed bytes are appended to `out`.
    ///
    /// # Errors
    /// 413 `decompression_limit` past a cap, 400 `bad_content_encoding` for corrupt data.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ProxyError> {
        self.sink_mut().consumed += input.len() as u64;
        let result = match &mut self.engine {
            Engine::Identity(sink) => sink.write_all(input),
            Engine::Gzip(d) => d.write_all(input),
            Engine::Deflate(d) => d.write_all(input),
            Engine::Brotli(d) => d.write_all(input),
            Engine::Zstd(d) => d.write(input),
        };
        self.collect(result, out)
    }

    /// Ends the body: flushes what the decoder holds and checks the stream was complete.
    /// Returns the total of decompressed bytes.
    ///
    /// # Errors
    /// As [`Self::push`]; a truncated stream is `bad_content_encoding`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<u64, ProxyError> {
        let result = match &mut self.engine {
            Engine::Identity(_) => Ok(()),
            Engine::Gzip(d) => d.try_finish().and_then(|()| {
                // A gzip stream cut before its trailer finishes "successfully" with no
                // header or a partial one; the decoder then has not seen the whole member.
                if d.get_ref().produced == 0 && d.get_ref().consumed == 0 {
                    Ok(())
                } else {
                    d.flush()
                }
            }),
            Engine::Deflate(d) => d.try_finish(),
            Engine::Brotli(d) => d.close(),
            Engine::Zstd(d) => d.finish(),
        };
        self.collect(result, out)?;
        Ok(self.sink().produced)
    }

    fn collect(&mut self, result: io::Result<()>, out: &mut Vec<u8>) -> Result<(), ProxyError> {
        let sink = self.sink_mut();
        out.append(&mut sink.buf);
        match (result, sink.over.take()) {
            (_, Some(detail)) => Err(ProxyError::new(ErrorKind::DecompressionLimit, detail)),
            (Ok(()), None) => Ok(()),
            (Err(e), None) => Err(ProxyError::new(
                ErrorKind::BadContentEncoding,
                format!("corrupt compressed body: {e}"),
            )),
        }
    }

    fn sink(&self) -> &Sink {
        match &self.engine {
            Engine::Identity(s) => s,
            Engine::Gzip(d) => d.get_ref(),
            Engine::Deflate(d) => d.get_ref(),
            Engine::Brotli(d) => d.get_ref(),
            Engine::Zstd(d) => &d.sink,
        }
    }

    fn sink_mut(&mut self) -> &mut Sink {
        match &mut self.engine {
            Engine::Identity(s) => s,
            Engine::Gzip(d) => d.get_mut(),
            Engine::Deflate(d) => d.get_mut(),
            Engine::Brotli(d) => d.get_mut(),
            Engine::Zstd(d) => &mut d.sink,
        }
    }
}

/// Where decoders write: counts, enforces the caps, and holds output until collected.
struct Sink {
    buf: Vec<u8>,
    limits: DecompressLimits,
    consumed: u64,
    produced: u64,
    /// Why a cap was crossed (the decoder only sees an I/O error).
    over: Option<String>,
}

impl Sink {
    const fn new(limits: DecompressLimits) -> Self {
        Self {
            buf: Vec::new(),
            limits,
            consumed: 0,
            produced: 0,
            over: None,
        }
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let produced = self.produced.saturating_add(data.len() as u64);
        let over = if produced > self.limits.max_size {
            Some(format!(
                "decompressed body over {} bytes",
                self.limits.max_size
            ))
        } else if produced > RATIO_GRACE
            && produced > self.consumed.saturating_mul(self.limits.max_ratio)
        {
            Some(format!(
                "decompression ratio over {} ({produced} bytes from {})",
                self.limits.max_ratio, self.consumed
            ))
        } else {
            None
        };
        if let Some(why) = over {
            self.over = Some(why);
            return Err(io::Error::other("decompression cap"));
        }
        self.produced = produced;
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// zstd with a push API: ruzstd decodes whole blocks from a slice, so compressed bytes wait in
/// `pending` until a block is complete.
struct Zstd {
    decoder: ruzstd::decoding::FrameDecoder,
    pending: Vec<u8>,
    started: bool,
    sink: Sink,
}

/// Longest zstd frame header (magic number included).
const ZSTD_MAX_HEADER: usize = 18;

impl Zstd {
    fn new(sink: Sink) -> Self {
        let mut decoder = ruzstd::decoding::FrameDecoder::new();
        decoder.set_max_window_size(MAX_ZSTD_WINDOW);
        Self {
            decoder,
            pending: Vec::new(),
            started: false,
            sink,
        }
    }

    fn write(&mut self, input: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(input);
        if self.pending.len() > MAX_ZSTD_PENDING {
            return Err(io::Error::other("zstd block larger than the format allows"));
        }
        if !self.started && self.pending.len() < ZSTD_MAX_HEADER {
            return Ok(());
        }
        self.drain()
    }

    fn drain(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let (read, written) = match self.decoder.decode_from_to(&self.pending, &mut chunk) {
                Ok(n) => n,
                Err(ruzstd::decoding::errors::FrameDecoderError::WindowSizeTooBig {
                    requested,
                    max,
                }) => {
                    self.sink.over =
                        Some(format!("zstd window of {requested} bytes (at most {max})"));
                    return Err(io::Error::other("zstd window too big"));
                }
                Err(e) => return Err(io::Error::other(e.to_string())),
            };
            self.started = true;
            if read > self.pending.len() {
                // ruzstd counts a frame checksum it has not received yet as read: wait for
                // more input (taking it at its word would loop forever on a body cut there).
                return Ok(());
            }
            self.pending.drain(..read);
            self.sink.write_all(&chunk[..written])?;
            if read == 0 && written == 0 {
                return Ok(());
            }
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if !self.started && self.pending.is_empty() {
            return Ok(());
        }
        self.drain()?;
        if !self.decoder.is_finished() || !self.pending.is_empty() {
            return Err(io::Error::other(
                "truncated zstd stream or data after its frame",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const SAMPLE: &[u8] = include_bytes!("../testdata/sample.json");
    const SAMPLE_BR: &[u8] = include_bytes!("../testdata/sample.json.br");
    const SAMPLE_ZST: &[u8] = include_bytes!("../testdata/sample.json.zst");
    /// 1 GiB of zeros in 841 bytes of brotli.
    const BOMB_BR: &[u8] = include_bytes!("../testdata/zeros-1g.br");
    /// 1 GiB of zeros in 33 KB of zstd.
    const BOMB_ZST: &[u8] = include_bytes!("../testdata/zeros-1g.zst");

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A gzip bomb made on the fly: `mib` MiB of zeros, streamed so the test never holds them.
    fn gzip_bomb(mib: usize) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..mib {
            e.write_all(&zeros).unwrap();
        }
        e.finish().unwrap()
    }

    /// Pushes `data` in `chunk`-byte pieces, then finishes.
    fn run(
        coding: Coding,
        limits: DecompressLimits,
        data: &[u8],
        chunk: usize,
    ) -> Result<Vec<u8>, (ErrorKind, usize)> {
        let mut d = Decompressor::new(coding, limits);
        let mut out = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            d.push(piece, &mut out).map_err(|e| (e.kind, out.len()))?;
        }
        d.finish(&mut out).map_err(|e| (e.kind, out.len()))?;
        Ok(out)
    }

    fn limits(max_size: u64, max_ratio: u64) -> DecompressLimits {
        DecompressLimits {
            max_size,
            max_ratio,
        }
    }

    #[test]
    fn every_coding_round_trips_in_any_chunking() {
        let big = DecompressLimits::default();
        for chunk in [1, 3, 4096, 1 << 20] {
            assert_eq!(
                run(Coding::Gzip, big, &gzip(SAMPLE), chunk).unwrap(),
                SAMPLE
            );
            assert_eq!(
                run(Coding::Deflate, big, &zlib(SAMPLE), chunk).unwrap(),
                SAMPLE
            );
            assert_eq!(run(Coding::Brotli, big, SAMPLE_BR, chunk).unwrap(), SAMPLE);
            assert_eq!(run(Coding::Zstd, big, SAMPLE_ZST, chunk).unwrap(), SAMPLE);
            assert_eq!(run(Coding::Identity, big, SAMPLE, chunk).unwrap(), SAMPLE);
        }
    }

    #[test]
    fn bombs_stop_at_the_size_cap_without_inflating_further() {
        let cap = limits(1 << 20, 1_000_000);
        let gz = gzip_bomb(64);
        for (coding, data) in [
            (Coding::Gzip, gz.as_slice()),
            (Coding::Brotli, BOMB_BR),
            (Coding::Zstd, BOMB_ZST),
        ] {
            let (kind, produced) = run(coding, cap, data, 8192).unwrap_err();
            assert_eq!(kind, ErrorKind::DecompressionLimit, "{coding:?}");
            assert!(produced <= 1 << 20, "{coding:?} produced {produced} bytes");
        }
    }

    #[test]
    fn bombs_stop_at_the_ratio_cap() {
        let ratio = limits(1 << 30, 100);
        for (coding, data) in [(Coding::Brotli, BOMB_BR), (Coding::Zstd, BOMB_ZST)] {
            let (kind, produced) = run(coding, ratio, data, 4096).unwrap_err();
            assert_eq!(kind, ErrorKind::DecompressionLimit, "{coding:?}");
            assert!(
                produced as u64 <= (data.len() as u64 * 100).max(RATIO_GRACE),
                "{coding:?} produced {produced}"
            );
        }
        // Small, highly compressible bodies stay within the grace allowance.
        let small = gzip(&[b'a'; 60_000]);
        assert_eq!(
            run(Coding::Gzip, ratio, &small, 1024).unwrap().len(),
            60_000
        );
    }

    #[test]
    fn size_cap_applies_to_plain_bodies_too() {
        let (kind, _) = run(Coding::Identity, limits(100, 1), SAMPLE, 64).unwrap_err();
        assert_eq!(kind, ErrorKind::DecompressionLimit);
    }

    #[test]
    fn corrupt_and_truncated_streams_are_bad_content_encoding() {
        let big = DecompressLimits::default();
        let gz = gzip(SAMPLE);
        for (coding, data) in [
            (Coding::Gzip, &b"not gzip at all"[..]),
            (Coding::Gzip, &gz[..gz.len() / 2]),
            (Coding::Deflate, &b"\x78\x9c\xff\xff\xff"[..]),
            (Coding::Brotli, &SAMPLE_BR[..SAMPLE_BR.len() / 2]),
            (Coding::Brotli, &b"\xff\xff\xff\xff\xff\xff"[..]),
            (Coding::Zstd, &SAMPLE_ZST[..SAMPLE_ZST.len() / 2]),
            (Coding::Zstd, &b"abc"[..]),
        ] {
            let (kind, _) = run(coding, big, data, 16).unwrap_err();
            assert_eq!(
                kind,
                ErrorKind::BadContentEncoding,
                "{coding:?} {:?}",
                &data[..data.len().min(8)]
            );
        }
        // A zstd frame declaring an enormous window is refused as a resource cap.
        let huge_window =
            b"\x28\xb5\x2f\xfd\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
        assert_eq!(
            run(Coding::Zstd, big, huge_window, 64).unwrap_err().0,
            ErrorKind::DecompressionLimit
        );
        // Cut inside the 4-byte checksum, pushed in pieces that end there: refused, no hang.
        for cut in 1..4 {
            let data = &SAMPLE_ZST[..SAMPLE_ZST.len() - cut];
            for chunk in [1, 3, data.len()] {
                assert_eq!(
                    run(Coding::Zstd, big, data, chunk).unwrap_err().0,
                    ErrorKind::BadContentEncoding
                );
            }
        }
        let mut trailing = SAMPLE_ZST.to_vec();
        trailing.extend_from_slice(b"junk");
        assert_eq!(
            run(Coding::Zstd, big, &trailing, 64).unwrap_err().0,
            ErrorKind::BadContentEncoding
        );
    }

    #[test]
    fn content_encoding_headers_pick_one_coding() {
        let coding = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(v));
            Coding::from_headers(&h).map_err(|e| e.kind)
        };
        assert_eq!(
            Coding::from_headers(&HeaderMap::new()).unwrap(),
            Coding::Identity
        );
        assert_eq!(coding("gzip"), Ok(Coding::Gzip));
        assert_eq!(coding("X-GZIP"), Ok(Coding::Gzip));
        assert_eq!(coding("identity, br"), Ok(Coding::Brotli));
        assert_eq!(coding("zstd"), Ok(Coding::Zstd));
        assert_eq!(coding("deflate"), Ok(Coding::Deflate));
        assert_eq!(
            coding("gzip, gzip"),
            Err(ErrorKind::UnsupportedContentEncoding)
        );
        assert_eq!(
            coding("compress"),
            Err(ErrorKind::UnsupportedContentEncoding)
        );
    }
}

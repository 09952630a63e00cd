//! [`Encoder`]: one response body's compressor, fed chunk by chunk. Each call hands back
//! the compressed bytes produced so far, so nothing accumulates beyond the compressor's own
//! window and one chunk of output.
//!
//! Memory per stream is bounded by the window each algorithm is given: 32 KiB for gzip,
//! 256 KiB for brotli (`lgwin` 18) and 1 MiB for zstd (window log 20), plus the match tables
//! of the level.

use std::io::{self, Write};

use crate::negotiate::Encoding;

/// brotli's window: 2^18 bytes.
const BROTLI_LGWIN: u32 = 18;
/// zstd's window: 2^20 bytes.
const ZSTD_WINDOW_LOG: u32 = 20;
/// brotli's internal buffer.
const BROTLI_BUFFER: usize = 16 * 1024;

/// The level of each algorithm, validated (gzip 1–9, brotli 0–11, zstd 1–19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// gzip.
    pub gzip: u32,
    /// brotli.
    pub brotli: u32,
    /// zstd.
    pub zstd: u32,
}

impl Default for Levels {
    fn default() -> Self {
        Self {
            gzip: 6,
            brotli: 4,
            zstd: 3,
        }
    }
}

impl Levels {
    /// The level of `encoding`.
    #[must_use]
    pub const fn of(self, encoding: Encoding) -> u32 {
        match encoding {
            Encoding::Gzip => self.gzip,
            Encoding::Brotli => self.brotli,
            Encoding::Zstd => self.zstd,
        }
    }
}

/// A streaming compressor writing into a buffer that [`Encoder::write`], [`Encoder::flush`]
/// and [`Encoder::finish`] drain.
pub struct Encoder {
    engine: Engine,
}

enum Engine {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.engine {
            Engine::Gzip(_) => "gzip",
            Engine::Brotli(_) => "br",
            Engine::Zstd(_) => "zstd",
        };
        f.debug_tuple("Encoder").field(&name).finish()
    }
}

impl Encoder {
    /// A compressor for `encoding` at `level`.
    ///
    /// # Errors
    /// zstd could not set up its context (out of memory, or a level it refuses).
    pub fn new(encoding: Encoding, level: u32) -> io::Result<Self> {
        let engine = match encoding {
            Encoding::Gzip => Engine::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.clamp(1, 9)),
            )),
            Encoding::Brotli => Engine::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                level.min(11),
                BROTLI_LGWIN,
            ))),
            Encoding::Zstd => {
                let level = i32::try_from(level.clamp(1, 19)).unwrap_or(3);
                let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), level)?;
                encoder.window_log(ZSTD_WINDOW_LOG)?;
                Engine::Zstd(encoder)
            }
        };
        Ok(Self { engine })
    }

    /// Compresses `input`; returns what the compressor has produced (may be empty).
    ///
    /// # Errors
    /// The compressor failed (it only fails on internal errors: its output is memory).
    pub fn write(&mut self, input: &[u8]) -> io::Result<Vec<u8>> {
        match &mut self.engine {
            Engine::Gzip(e) => e.write_all(input)?,
            Engine::Brotli(e) => e.write_all(input)?,
            Engine::Zstd(e) => e.write_all(input)?,
        }
        Ok(self.take())
    }

    /// Emits everything given so far in a form the client can decode now (a sync flush);
    /// returns the bytes produced.
    ///
    /// # Errors
    /// As [`Self::write`].
    pub fn flush(&mut self) -> io::Result<Vec<u8>> {
        match &mut self.engine {
            Engine::Gzip(e) => e.flush()?,
            Engine::Brotli(e) => e.flush()?,
            Engine::Zstd(e) => e.flush()?,
        }
        Ok(self.take())
    }

    /// Ends the stream; returns its last bytes.
    ///
    /// # Errors
    /// As [`Self::write`].
    pub fn finish(self) -> io::Result<Vec<u8>> {
        match self.engine {
            Engine::Gzip(e) => e.finish(),
            Engine::Brotli(e) => Ok(e.into_inner()),
            Engine::Zstd(e) => e.finish(),
        }
    }

    fn take(&mut self) -> Vec<u8> {
        let out = match &mut self.engine {
            Engine::Gzip(e) => e.get_mut(),
            Engine::Brotli(e) => e.get_mut(),
            Engine::Zstd(e) => e.get_mut(),
        };
        std::mem::take(out)
    }
}

/// Compresses `input` whole (tests, benchmarks and precompressing tools).
///
/// # Errors
/// As [`Encoder::write`].
pub fn compress(encoding: Encoding, level: u32, input: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = Encoder::new(encoding, level)?;
    let mut out = encoder.write(input)?;
    out.extend(encoder.finish()?);
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Read;

    use super::*;

    /// Decodes `data` compressed with `encoding`.
    pub(crate) fn decode(encoding: Encoding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match encoding {
            Encoding::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Encoding::Brotli => {
                brotli_decompressor::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Encoding::Zstd => out = zstd::stream::decode_all(data).unwrap(),
        }
        out
    }

    const ALL: [Encoding; 3] = [Encoding::Gzip, Encoding::Brotli, Encoding::Zstd];

    #[test]
    fn every_algorithm_round_trips_at_its_extreme_levels() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(2000);
        for encoding in ALL {
            for level in [0, 1, 9, 11, 19] {
                let packed = compress(encoding, level, text.as_bytes()).unwrap();
                assert!(packed.len() < text.len() / 10, "{encoding:?} {level}");
                assert_eq!(decode(encoding, &packed), text.as_bytes());
            }
        }
    }

    #[test]
    fn a_flush_makes_everything_so_far_decodable() {
        for encoding in ALL {
            let mut encoder = Encoder::new(encoding, Levels::default().of(encoding)).unwrap();
            let mut out = encoder.write(b"data: first event\n\n").unwrap();
            out.extend(encoder.flush().unwrap());
            // A streaming decoder given only the flushed bytes yields the first event.
            let seen = match encoding {
                Encoding::Gzip => {
                    let mut d = flate2::write::GzDecoder::new(Vec::new());
                    d.write_all(&out).unwrap();
                    d.flush().unwrap();
                    d.get_ref().clone()
                }
                Encoding::Brotli => {
                    let mut d = brotli_decompressor::DecompressorWriter::new(Vec::new(), 4096);
                    d.write_all(&out).unwrap();
                    d.flush().unwrap();
                    d.get_ref().clone()
                }
                Encoding::Zstd => {
                    let mut d = zstd::stream::write::Decoder::new(Vec::new()).unwrap();
                    d.write_all(&out).unwrap();
                    d.flush().unwrap();
                    d.get_ref().clone()
                }
            };
            assert_eq!(seen, b"data: first event\n\n", "{encoding:?}");
            out.extend(encoder.write(b"data: second\n\n").unwrap());
            out.extend(encoder.finish().unwrap());
            assert_eq!(
                decode(encoding, &out),
                b"data: first event\n\ndata: second\n\n"
            );
        }
    }
}

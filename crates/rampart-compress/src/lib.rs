//! Response compression and static files, as a feature crate on the Stage API: it depends on
//! `rampart-core` and `rampart-config`, never on the server.
//!
//! - [`CompressStage`] (built by [`CompressStages`] for routes with `compress`) compresses
//!   responses with gzip, brotli or zstd, negotiated from `Accept-Encoding`, as they stream.
//! - [`StaticFiles`] is the `static` handler: files under a root, with index files, SPA
//!   fallback, `try_files`, conditional and range requests, precompressed siblings and an
//!   open-file cache; the pipeline only calls [`StaticFiles::serve`].

#![forbid(unsafe_code)]

mod body;
mod encoder;
mod negotiate;
mod stage;
pub mod static_files;
mod types;

pub use body::{CHUNK, CompressBody};
pub use encoder::{Encoder, Levels, compress};
pub use negotiate::{Encoding, choose};
pub use stage::{CompressStage, CompressStages};
pub use static_files::StaticFiles;
pub use types::TypeList;

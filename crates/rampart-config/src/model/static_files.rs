//! `static`: the handler that serves files from a directory.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Located;
use crate::units::HumanDuration;

/// `static = { root = "/srv/www", ... }`: answers `GET` and `HEAD` with files under `root`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticFiles {
    /// The directory served (relative paths are relative to the config file's directory).
    pub root: Located<String>,
    /// Removed from the start of the request path before it is looked up under `root`.
    #[serde(default)]
    pub strip_prefix: Option<Located<String>>,
    /// Files served for a directory, tried in order (default `["index.html"]`).
    #[serde(default = "default_index")]
    pub index: Vec<Located<String>>,
    /// A file (path under `root`, such as `/index.html`) served with 200 when nothing else
    /// matches: the single-page-application fallback.
    #[serde(default)]
    pub fallback: Option<Located<String>>,
    /// Candidates tried in order, like nginx's `try_files`: `$uri` is the request path, an
    /// entry ending in `/` is a directory (its index), and the last entry may be `=404` (or
    /// another status) instead of a file.
    #[serde(default)]
    pub try_files: Vec<Located<String>>,
    /// Directory listings (HTML, or JSON for clients that prefer it); off by default.
    #[serde(default)]
    pub listing: bool,
    /// `Cache-Control` sent with every file.
    #[serde(default)]
    pub cache_control: Option<Located<String>>,
    /// Serve `file.br`, `file.zst` or `file.gz` next to `file` to clients that accept that
    /// coding; off by default.
    #[serde(default)]
    pub precompressed: bool,
    /// Serve files and directories whose name starts with a dot (`.well-known` is always
    /// served); off by default.
    #[serde(default)]
    pub hidden: bool,
    /// Follow symbolic links that lead outside `root`; off by default (links inside `root`
    /// are followed).
    #[serde(default)]
    pub symlinks_outside_root: bool,
    /// Extra or overriding MIME types by file extension (`{ "webmanifest" =
    /// "application/manifest+json" }`).
    #[serde(default)]
    pub mime_types: BTreeMap<String, Located<String>>,
    /// The open-file cache: files kept open with their metadata (and small files' content).
    #[serde(default)]
    pub open_file_cache: OpenFileCache,
}

/// `open_file_cache = { max_entries = 1024, valid = "2s" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenFileCache {
    /// Most files kept open (0 turns the cache off; default 1024).
    #[serde(default = "default_max_entries")]
    pub max_entries: Located<u32>,
    /// How long a cached file is used before its path is looked up again (default `"2s"`).
    #[serde(default = "default_valid")]
    pub valid: HumanDuration,
}

impl Default for OpenFileCache {
    fn default() -> Self {
        Self {
            max_entries: default_max_entries(),
            valid: default_valid(),
        }
    }
}

fn default_index() -> Vec<Located<String>> {
    vec![Located::new("index.html".to_owned())]
}

const fn default_max_entries() -> Located<u32> {
    Located::new(1024)
}

const fn default_valid() -> HumanDuration {
    HumanDuration::secs(2)
}

//! The filesystem side: resolving a path under the root to an open regular file or a
//! directory, refusing what leaves the root, and [`OpenFiles`], the bounded cache of open
//! files with their metadata.
//!
//! A path is resolved with every symbolic link followed (`canonicalize`); the result must lie
//! under the (canonical) root unless the route allows links out. A file is opened without
//! blocking (a FIFO swapped in cannot hang a thread), and on Linux the opened descriptor's own
//! path is checked again, so a link swapped in between the check and the open is still caught.
//! Only regular files are served: devices, sockets and FIFOs are refused.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::path::has_hidden_component;

/// Where a resolved path leads.
#[derive(Debug, Clone)]
pub(crate) enum Found {
    /// A regular file, open.
    File(Arc<OpenFile>),
    /// A directory (its canonical path).
    Dir(Arc<Path>),
}

/// Why a path leads nowhere servable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// Nothing there: 404.
    NotFound,
    /// Something not to serve (a link out of the root, a device, a hidden target): 403.
    Forbidden(&'static str),
}

/// An open regular file and what the response needs of it.
#[derive(Debug)]
pub(crate) struct OpenFile {
    /// Shared by every request reading it (reads are positional).
    pub(crate) file: Arc<File>,
    /// Its length when opened.
    pub(crate) len: u64,
    /// Its modification time.
    pub(crate) modified: Option<SystemTime>,
    /// The strong entity tag of this version (`"mtime-len"` in hex).
    pub(crate) etag: String,
    /// `Last-Modified`, formatted once.
    pub(crate) last_modified: Option<String>,
    /// The whole content of a file of at most [`SMALL_FILE`] bytes, read when it was opened
    /// (a cached small file is then answered without a read).
    pub(crate) content: Option<Bytes>,
    /// Device and inode, to notice a file replaced under the same name.
    identity: (u64, u64),
}

/// What resolution needs of the route.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// The canonical root.
    pub(crate) root: PathBuf,
    /// Follow links out of the root.
    pub(crate) symlinks_outside_root: bool,
    /// Serve hidden names.
    pub(crate) hidden: bool,
}

/// Resolves `relative` (decoded, no leading `/`) under the root. Blocking: call it off the
/// async workers.
pub(crate) fn resolve(rules: &Rules, relative: &Path) -> Result<Found, Miss> {
    let joined = rules.root.join(relative);
    let real = std::fs::canonicalize(&joined).map_err(|_| Miss::NotFound)?;
    check_inside(rules, &real)?;
    let meta = std::fs::metadata(&real).map_err(|_| Miss::NotFound)?;
    if meta.is_dir() {
        return Ok(Found::Dir(Arc::from(real)));
    }
    if !meta.is_file() {
        return Err(Miss::Forbidden("not a regular file"));
    }
    open(rules, &real).map(|f| Found::File(Arc::new(f)))
}

fn check_inside(rules: &Rules, real: &Path) -> Result<(), Miss> {
    match real.strip_prefix(&rules.root) {
        Ok(inside) => {
            if !rules.hidden && has_hidden_component(inside) {
                return Err(Miss::Forbidden("link to a hidden name"));
            }
            Ok(())
        }
        Err(_) if rules.symlinks_outside_root => Ok(()),
        Err(_) => Err(Miss::Forbidden("symbolic link out of the root")),
    }
}

/// Files up to this size are kept in memory with their open-file entry.
pub(crate) const SMALL_FILE: u64 = 16 * 1024;

/// All `len` bytes of `file`, or `None` if it does not have exactly that many now.
fn read_whole(file: &File, len: u64) -> Option<Bytes> {
    let mut buf = vec![0u8; usize::try_from(len).ok()?];
    file.read_exact_at(&mut buf, 0).ok()?;
    // One byte more would mean the file grew since its length was taken.
    let mut probe = [0u8; 1];
    matches!(file.read_at(&mut probe, len), Ok(0)).then(|| Bytes::from(buf))
}

/// `O_NONBLOCK`: opening a FIFO must not wait for a writer (regular files ignore it).
const O_NONBLOCK: i32 = 0o4000;

fn open(rules: &Rules, real: &Path) -> Result<OpenFile, Miss> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(real)
        .map_err(|_| Miss::NotFound)?;
    #[cfg(target_os = "linux")]
    {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // Without /proc mounted the check before the open stands alone.
        if let Ok(opened) = std::fs::read_link(format!("/proc/self/fd/{fd}")) {
            check_inside(rules, &opened)?;
        }
    }
    let meta = file.metadata().map_err(|_| Miss::NotFound)?;
    if !meta.is_file() {
        return Err(Miss::Forbidden("not a regular file"));
    }
    Ok(OpenFile::new(file, &meta))
}

impl OpenFile {
    fn new(file: File, meta: &Metadata) -> Self {
        let content = (meta.len() <= SMALL_FILE)
            .then(|| read_whole(&file, meta.len()))
            .flatten();
        let modified = meta.modified().ok();
        let stamp = modified
            .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
            .unwrap_or_default();
        Self {
            file: Arc::new(file),
            len: meta.len(),
            modified,
            etag: format!(
                "\"{:x}{:05x}-{:x}\"",
                stamp.as_secs(),
                stamp.subsec_micros(),
                meta.len()
            ),
            last_modified: modified.map(httpdate::fmt_http_date),
            content,
            identity: (meta.dev(), meta.ino()),
        }
    }

    /// True when `meta` (of the path now) is still this file, unchanged.
    fn same_as(&self, meta: &Metadata) -> bool {
        (meta.dev(), meta.ino()) == self.identity
            && meta.len() == self.len
            && meta.modified().ok() == self.modified
    }
}

/// Open files by path under the root, at most `max_entries`, each trusted for `valid` before
/// its path is looked up again. A lookup that finds the file changed opens it again.
#[derive(Debug)]
pub(crate) struct OpenFiles {
    max_entries: usize,
    valid: Duration,
    entries: Mutex<HashMap<PathBuf, (Found, Instant)>>,
}

impl OpenFiles {
    /// A cache of at most `max_entries` files (0: none kept).
    pub(crate) fn new(max_entries: usize, valid: Duration) -> Self {
        Self {
            max_entries,
            valid,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached entry for `relative`, if it is still within its validity.
    pub(crate) fn fresh(&self, relative: &Path) -> Option<Found> {
        if self.max_entries == 0 {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let (found, checked) = entries.get(relative)?;
        (checked.elapsed() < self.valid).then(|| found.clone())
    }

    /// Resolves `relative` (blocking), reusing a cached entry whose path still leads to it.
    pub(crate) fn resolve(&self, rules: &Rules, relative: &Path) -> Result<Found, Miss> {
        if self.max_entries > 0 {
            let cached = self
                .entries
                .lock()
                .ok()
                .and_then(|e| e.get(relative).map(|(f, _)| f.clone()));
            if let Some(found) = cached
                && let Ok(real) = std::fs::canonicalize(rules.root.join(relative))
                && check_inside(rules, &real).is_ok()
                && std::fs::metadata(&real).is_ok_and(|m| match &found {
                    Found::File(file) => file.same_as(&m),
                    Found::Dir(dir) => m.is_dir() && **dir == *real,
                })
            {
                self.insert(relative, &found);
                return Ok(found);
            }
        }
        let found = resolve(rules, relative);
        match &found {
            Ok(found) => self.insert(relative, found),
            Err(_) => self.forget(relative),
        }
        found
    }

    fn insert(&self, relative: &Path, file: &Found) {
        if self.max_entries == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.max_entries && !entries.contains_key(relative) {
            // The entry checked longest ago goes (a scan only when the cache is full and a
            // new file comes in).
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (_, checked))| *checked)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(relative.to_path_buf(), (file.clone(), Instant::now()));
    }

    fn forget(&self, relative: &Path) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(relative);
        }
    }

    /// Files held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

//! MIME types by file extension: a built-in table of the types the web uses, which a route
//! may extend or override. Text types get `; charset=utf-8`.

use std::collections::HashMap;

/// The type of files whose extension is unknown.
pub(crate) const DEFAULT_TYPE: &str = "application/octet-stream";

const BUILTIN: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("webmanifest", "application/manifest+json"),
    ("xml", "application/xml"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/x-icon"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("wav", "audio/wav"),
];

/// Extension → `Content-Type`.
#[derive(Debug, Clone)]
pub(crate) struct MimeTypes {
    by_extension: HashMap<String, String>,
}

impl MimeTypes {
    /// The built-in table with `extra` (extension → type) on top.
    pub(crate) fn new<'a>(extra: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut by_extension: HashMap<String, String> = BUILTIN
            .iter()
            .map(|(e, t)| ((*e).to_owned(), (*t).to_owned()))
            .collect();
        for (ext, ty) in extra {
            by_extension.insert(
                ext.trim_start_matches('.').to_ascii_lowercase(),
                ty.to_owned(),
            );
        }
        Self { by_extension }
    }

    /// The type of a file named `name`.
    pub(crate) fn of(&self, name: &[u8]) -> &str {
        let Some(dot) = name.iter().rposition(|b| *b == b'.') else {
            return DEFAULT_TYPE;
        };
        let ext = &name[dot + 1..];
        // Lowercased on the stack: no allocation per request.
        let mut lower = [0u8; 24];
        if ext.len() > lower.len() {
            return DEFAULT_TYPE;
        }
        for (to, from) in lower.iter_mut().zip(ext) {
            *to = from.to_ascii_lowercase();
        }
        std::str::from_utf8(&lower[..ext.len()])
            .ok()
            .and_then(|e| self.by_extension.get(e))
            .map_or(DEFAULT_TYPE, String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_map_to_types_and_overrides_win() {
        let types = MimeTypes::new([
            ("foo", "application/x-foo"),
            (".js", "application/javascript"),
        ]);
        assert_eq!(types.of(b"index.HTML"), "text/html; charset=utf-8");
        assert_eq!(types.of(b"app.js"), "application/javascript");
        assert_eq!(types.of(b"a.foo"), "application/x-foo");
        assert_eq!(types.of(b"README"), DEFAULT_TYPE);
        assert_eq!(types.of(b"archive.tar.unknown"), DEFAULT_TYPE);
    }
}

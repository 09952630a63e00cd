//! Directory listings, for routes with `listing = true`: an HTML page, or JSON for clients
//! whose `Accept` asks for `application/json` and not for HTML. Hidden names are left out
//! unless the route serves them; at most [`MAX_ENTRIES`] entries are listed. Neither form
//! shows a filesystem path: names are relative to the directory.

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

/// Most entries listed.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// One entry of a directory.
#[derive(Debug)]
pub(crate) struct Entry {
    name: String,
    dir: bool,
    size: u64,
    modified: Option<SystemTime>,
}

/// Reads the entries of `dir` (blocking), sorted by name.
pub(crate) fn read(dir: &Path, hidden: bool) -> std::io::Result<(Vec<Entry>, bool)> {
    let mut entries = Vec::new();
    let mut truncated = false;
    for item in std::fs::read_dir(dir)? {
        let Ok(item) = item else { continue };
        let name = item.file_name().to_string_lossy().into_owned();
        if !hidden && name.starts_with('.') {
            continue;
        }
        if entries.len() == MAX_ENTRIES {
            truncated = true;
            break;
        }
        let meta = item.metadata().ok();
        entries.push(Entry {
            dir: meta.as_ref().is_some_and(std::fs::Metadata::is_dir),
            size: meta.as_ref().map_or(0, std::fs::Metadata::len),
            modified: meta.and_then(|m| m.modified().ok()),
            name,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((entries, truncated))
}

/// The listing as JSON.
pub(crate) fn json(entries: &[Entry], truncated: bool) -> String {
    let list: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": e.name,
                "type": if e.dir { "directory" } else { "file" },
                "size": e.size,
                "modified": e.modified.map(httpdate::fmt_http_date),
            })
        })
        .collect();
    let doc = serde_json::json!({ "entries": list, "truncated": truncated });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// The listing as an HTML page titled with the request path `shown`.
pub(crate) fn html(shown: &str, entries: &[Entry], truncated: bool) -> String {
    let title = escape(shown);
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
    );
    if shown != "/" {
        page.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for e in entries {
        let slash = if e.dir { "/" } else { "" };
        let _ = writeln!(
            page,
            "<tr><td><a href=\"{}{slash}\">{}{slash}</a></td><td>{}</td><td>{}</td></tr>",
            href(&e.name),
            escape(&e.name),
            if e.dir {
                String::new()
            } else {
                e.size.to_string()
            },
            e.modified.map(httpdate::fmt_http_date).unwrap_or_default(),
        );
    }
    page.push_str("</table>\n");
    if truncated {
        let _ = writeln!(
            page,
            "<p>Only the first {MAX_ENTRIES} entries are listed.</p>"
        );
    }
    page.push_str("</body></html>\n");
    page
}

/// HTML text escaping.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A name as a relative link: everything but unreserved characters percent-encoded.
fn href(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_links_encoded() {
        let entries = vec![Entry {
            name: "<b>&\"x y\".txt".into(),
            dir: false,
            size: 3,
            modified: None,
        }];
        let page = html("/a/<script>/", &entries, false);
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;b&gt;&amp;&quot;x y&quot;.txt"));
        assert!(page.contains("href=\"%3Cb%3E%26%22x%20y%22.txt\""));
        let doc: serde_json::Value = serde_json::from_str(&json(&entries, true)).unwrap();
        assert_eq!(doc["entries"][0]["name"], "<b>&\"x y\".txt");
        assert_eq!(doc["truncated"], true);
    }
}

//! Reading one source file for the module graph: a small tokenizer that drops comments,
//! literals and lifetimes, and a scanner that collects the `crate::`/`self::`/`super::` paths
//! (use trees included) outside `#[cfg(test)]` modules, resolved to absolute paths.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

/// Turns Rust source into identifiers, `::` and single punctuation, with line numbers; comments,
/// string, byte-string, raw-string and character literals and lifetimes leave nothing behind.
fn tokenize(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let is_ident = |ch: char| ch == '_' || ch.is_alphanumeric();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0usize;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_quoted(&c, i + 1, '"', &mut line);
        } else if ch == '\'' {
            i = skip_char_or_lifetime(&c, i);
        } else if ch == ':' && at(i + 1) == ':' {
            out.push((Tok::PathSep, line));
            i += 2;
        } else if is_ident(ch) {
            let start = i;
            while i < c.len() && is_ident(c[i]) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
            let hashes = c[i..].iter().take_while(|&&h| h == '#').count();
            if raw_prefix && at(i + hashes) == '"' {
                i = skip_raw(&c, i + hashes + 1, hashes, &mut line);
            } else if word == "r" && hashes == 1 && is_ident(at(i + 1)) {
                let start = i + 1;
                i = start;
                while i < c.len() && is_ident(c[i]) {
                    i += 1;
                }
                out.push((Tok::Ident(c[start..i].iter().collect()), line));
            } else if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                i = skip_quoted(&c, i + 1, '"', &mut line);
            } else if word == "b" && at(i) == '\'' {
                i = skip_quoted(&c, i + 1, '\'', &mut line);
            } else {
                out.push((Tok::Ident(word), line));
            }
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

/// Skips a raw string whose body starts at `i`, up to `"` and `hashes` times `#`.
fn skip_raw(c: &[char], mut i: usize, hashes: usize, line: &mut usize) -> usize {
    while i < c.len() {
        if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        if c[i] == '\n' {
            *line += 1;
        }
        i += 1;
    }
    i
}

/// Skips a quoted literal whose body starts at `i`, honouring backslash escapes.
fn skip_quoted(c: &[char], mut i: usize, quote: char, line: &mut usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            ch if ch == quote => return i + 1,
            '\n' => {
                *line += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    i
}

/// At a `'`: skips a character literal (`'a'`, `'\n'`, `'\u{..}'`) or just the quote of a
/// lifetime or label.
fn skip_char_or_lifetime(c: &[char], i: usize) -> usize {
    let at = |j: usize| c.get(j).copied().unwrap_or('\0');
    if at(i + 1) == '\\' {
        let mut j = i + 3;
        while j < c.len() && c[j] != '\'' {
            j += 1;
        }
        j + 1
    } else if at(i + 2) == '\'' {
        i + 3
    } else {
        i + 1
    }
}

/// What one file says: the absolute paths it names, and its test-only parts.
#[derive(Debug, Default)]
pub(super) struct Scanned {
    /// Absolute paths (from the crate root) with the line they start on.
    pub(super) refs: Vec<(Vec<String>, usize)>,
    /// Modules declared `#[cfg(test)] mod x;` here, as absolute paths.
    pub(super) test_children: Vec<Vec<String>>,
    /// The file starts with `#![cfg(test)]`.
    pub(super) whole_file_is_test: bool,
}

/// What the file `text` of module `file_module` (its path from the crate root) refers to.
pub(super) fn scan_file(text: &str, file_module: &[String]) -> Scanned {
    scan(&tokenize(text), file_module)
}

fn ident(toks: &[(Tok, usize)], i: usize) -> Option<&str> {
    match toks.get(i) {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

fn punct(toks: &[(Tok, usize)], i: usize, p: char) -> bool {
    matches!(toks.get(i), Some((Tok::Punct(q), _)) if *q == p)
}

/// Index just past the group opened at `i` (`{`, `[` or `(`).
fn skip_group(toks: &[(Tok, usize)], i: usize, open: char, close: char) -> usize {
    let mut depth = 0usize;
    for (j, (t, _)) in toks.iter().enumerate().skip(i) {
        match t {
            Tok::Punct(p) if *p == open => depth += 1,
            Tok::Punct(p) if *p == close => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// Walks a file's tokens; `file_module` is the file's own module path.
fn scan(toks: &[(Tok, usize)], file_module: &[String]) -> Scanned {
    let mut out = Scanned::default();
    // One entry per open brace: the inline module it opened, if any.
    let mut braces: Vec<Option<String>> = Vec::new();
    let mut next_brace_mod: Option<String> = None;
    let mut pending_test = false;
    let scope = |braces: &[Option<String>]| -> Vec<String> {
        let mut s = file_module.to_vec();
        s.extend(braces.iter().flatten().cloned());
        s
    };
    let mut i = 0;
    while i < toks.len() {
        let (tok, line) = &toks[i];
        match tok {
            Tok::Punct('#') => {
                let inner = punct(toks, i + 1, '!');
                let open = i + 1 + usize::from(inner);
                if !punct(toks, open, '[') {
                    i += 1;
                    continue;
                }
                let end = skip_group(toks, open, '[', ']');
                let body: Vec<&Tok> = toks[open + 1..end - 1].iter().map(|(t, _)| t).collect();
                let cfg_test = matches!(
                    body.as_slice(),
                    [Tok::Ident(c), Tok::Punct('('), Tok::Ident(t), Tok::Punct(')')]
                        if c == "cfg" && t == "test"
                );
                if cfg_test && inner && braces.is_empty() {
                    out.whole_file_is_test = true;
                    return out;
                }
                pending_test |= cfg_test && !inner;
                // Paths inside attributes (`#[derive(crate::x::Trait)]`) are references too.
                let here = scope(&braces);
                let mut j = open + 1;
                while j < end {
                    if path_start(toks, j) {
                        let mut paths = Vec::new();
                        let line = toks[j].1;
                        j = use_tree(toks, j, Vec::new(), &mut paths);
                        out.refs.extend(
                            paths
                                .iter()
                                .filter_map(|p| resolve(&here, p))
                                .map(|p| (p, line)),
                        );
                    } else {
                        j += 1;
                    }
                }
                i = end;
            }
            Tok::Ident(w) if w == "pub" => {
                i += 1;
                if punct(toks, i, '(') {
                    i = skip_group(toks, i, '(', ')');
                }
            }
            Tok::Ident(w) if w == "mod" && ident(toks, i + 1).is_some() => {
                let name = ident(toks, i + 1).unwrap_or_default().to_owned();
                if punct(toks, i + 2, '{') {
                    if pending_test {
                        i = skip_group(toks, i + 2, '{', '}');
                    } else {
                        next_brace_mod = Some(name);
                        i += 2;
                    }
                } else {
                    if pending_test {
                        let mut child = scope(&braces);
                        child.push(name);
                        out.test_children.push(child);
                    }
                    i += 2;
                }
                pending_test = false;
            }
            Tok::Punct('{') => {
                braces.push(next_brace_mod.take());
                pending_test = false;
                i += 1;
            }
            Tok::Punct('}') => {
                braces.pop();
                i += 1;
            }
            Tok::Ident(_) if path_start(toks, i) => {
                let mut paths = Vec::new();
                i = use_tree(toks, i, Vec::new(), &mut paths);
                let here = scope(&braces);
                out.refs.extend(
                    paths
                        .iter()
                        .filter_map(|p| resolve(&here, p))
                        .map(|p| (p, *line)),
                );
                pending_test = false;
            }
            _ => {
                pending_test = false;
                i += 1;
            }
        }
    }
    out
}

/// Whether a `crate::`, `self::` or `super::` path starts at `i` (and not in the middle of
/// another path).
fn path_start(toks: &[(Tok, usize)], i: usize) -> bool {
    matches!(ident(toks, i), Some("crate" | "self" | "super"))
        && matches!(toks.get(i + 1), Some((Tok::PathSep, _)))
        && !matches!(i.checked_sub(1).map(|p| &toks[p].0), Some(Tok::PathSep))
}

/// Reads a path or use tree starting at `i` (`a::b::{c, d::*, self}`), pushing each full path
/// onto `out`; returns the index just past it.
fn use_tree(
    toks: &[(Tok, usize)],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        match toks.get(i) {
            Some((Tok::Ident(seg), _)) => {
                prefix.push(seg.clone());
                i += 1;
                if matches!(toks.get(i), Some((Tok::PathSep, _))) {
                    i += 1;
                } else {
                    out.push(prefix);
                    return i;
                }
            }
            Some((Tok::Punct('{'), _)) => {
                i += 1;
                while i < toks.len() && !punct(toks, i, '}') {
                    if punct(toks, i, ',') {
                        i += 1;
                        continue;
                    }
                    let next = use_tree(toks, i, prefix.clone(), out);
                    i = if next == i { i + 1 } else { next };
                    if ident(toks, i) == Some("as") {
                        i += 2;
                    }
                }
                return i + 1;
            }
            _ => {
                out.push(prefix);
                return if punct(toks, i, '*') { i + 1 } else { i };
            }
        }
    }
}

/// `crate::`/`self::`/`super::` path → absolute path from the crate root, seen from `scope`.
fn resolve(scope: &[String], path: &[String]) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut abs = match first.as_str() {
        "crate" => Vec::new(),
        "self" => scope.to_vec(),
        "super" => {
            let mut s = scope.to_vec();
            s.pop()?;
            s
        }
        _ => return None,
    };
    for seg in rest {
        match seg.as_str() {
            "super" => {
                abs.pop()?;
            }
            "self" => {}
            _ => abs.push(seg.clone()),
        }
    }
    Some(abs)
}

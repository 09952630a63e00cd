//! The module graph of one crate's `src/` directory and the circles in it (DESIGN §2: "no module
//! circle anywhere").
//!
//! **Modules** are files: `a/b.rs` and `a/b/mod.rs` are module `a::b`; `lib.rs` (or `main.rs`
//! when there is no `lib.rs`) is the root, shown as `crate`. `src/bin/` holds other crates and is
//! skipped. Inline `mod x { ... }` blocks belong to the file that contains them.
//!
//! **Edges**: module A → module B when A's file names a path starting with `crate::`, `self::` or
//! `super::` (in `use` trees, grouped forms such as `use crate::{x, y::{z, self}}` included, and
//! in code such as `crate::b::f()`). `self`/`super` resolve against the enclosing module, inline
//! modules included. A path goes to the deepest module that exists as a file
//! (`crate::a::b::Item` → `a::b` if that file exists, else `a`). Comments, string and character
//! literals are ignored. Bare paths (`child::X`) are not followed: they can only name the
//! module's own children (see the rule below) or other crates. `mod child;` is a declaration,
//! not an edge.
//!
//! **Test code may reach anywhere**: an inline module marked `#[cfg(test)]` is skipped, and a
//! file module declared `#[cfg(test)] mod x;` (with everything below it) contributes no edges.
//!
//! **The rule**: a circle is a strongly connected component of more than one module in the graph
//! where every module is one node and edges between a module and its own ancestors or
//! descendants are dropped. A folder module's `mod.rs` naturally re-exports its children, and
//! children use their parent's shared items; neither is a circle. A circle is always between
//! modules of which neither contains the other, e.g. `explain ↔ router` or `set → health →
//! discovery → set`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

mod scan;

/// One reference from one module to another, where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    /// The module whose file holds the reference (`a::b`, or `crate` for the root).
    pub from: String,
    /// The deepest existing module the path names.
    pub to: String,
    /// The file, relative to the `src/` directory.
    pub file: PathBuf,
    /// The 1-based line of the path's first segment.
    pub line: usize,
}

/// The modules of one crate and the edges between them.
#[derive(Clone, Debug, Default)]
pub struct ModuleGraph {
    src_dir: PathBuf,
    /// Module path → file, relative to `src_dir`.
    modules: BTreeMap<String, PathBuf>,
    edges: Vec<Edge>,
}

/// Every circle in the crate whose sources are in `src_dir`: each a sorted list of module paths.
///
/// # Panics
///
/// When `src_dir` or a file below it cannot be read.
#[must_use]
pub fn cycles(src_dir: &Path) -> Vec<Vec<String>> {
    load(src_dir).cycles()
}

/// A short explanation of every circle in `src_dir` (one concrete path per circle, each edge with
/// its file and line), or an empty string when there is none.
///
/// # Panics
///
/// When `src_dir` or a file below it cannot be read.
#[must_use]
pub fn explain(src_dir: &Path) -> String {
    load(src_dir).explain()
}

fn load(src_dir: &Path) -> ModuleGraph {
    ModuleGraph::from_src_dir(src_dir)
        .unwrap_or_else(|e| panic!("reading the modules of {}: {e}", src_dir.display()))
}

impl ModuleGraph {
    /// Reads every `.rs` file under `src_dir` and builds the graph.
    ///
    /// # Errors
    ///
    /// When a directory or file cannot be read.
    pub fn from_src_dir(src_dir: &Path) -> io::Result<Self> {
        let mut files = Vec::new();
        collect_rs(src_dir, Path::new(""), &mut files)?;
        let has_lib = files.iter().any(|f| f == Path::new("lib.rs"));
        let mut modules = BTreeMap::new();
        for file in files {
            if let Some(name) = module_name(&file, has_lib) {
                modules.entry(name).or_insert(file);
            }
        }
        let mut raw = Vec::new();
        let mut test_modules = BTreeSet::new();
        for (name, file) in &modules {
            let text = fs::read_to_string(src_dir.join(file))?;
            let scanned = scan::scan_file(&text, &segments(name));
            if scanned.whole_file_is_test {
                test_modules.insert(name.clone());
            }
            test_modules.extend(scanned.test_children.iter().map(|s| s.join("::")));
            raw.push((name.clone(), file.clone(), scanned.refs));
        }
        let mut edges = Vec::new();
        for (from, file, refs) in raw {
            if test_modules
                .iter()
                .any(|t| from == *t || is_ancestor(t, &from))
            {
                continue;
            }
            for (path, line) in refs {
                let to = deepest(&modules, &path);
                if to != from {
                    edges.push(Edge {
                        from: from.clone(),
                        to,
                        file: file.clone(),
                        line,
                    });
                }
            }
        }
        Ok(Self {
            src_dir: src_dir.to_path_buf(),
            modules,
            edges,
        })
    }

    /// Every module path, sorted (`crate` is the root).
    pub fn modules(&self) -> impl Iterator<Item = &str> {
        self.modules.keys().map(String::as_str)
    }

    /// Every edge found, in file order, ancestor/descendant edges included.
    #[must_use]
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// The edges the circle rule looks at: those between modules neither of which contains the
    /// other.
    fn counted_edges(&self) -> impl Iterator<Item = &Edge> {
        self.edges
            .iter()
            .filter(|e| !is_ancestor(&e.from, &e.to) && !is_ancestor(&e.to, &e.from))
    }

    /// Every strongly connected component of more than one module, each sorted, the list sorted.
    #[must_use]
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let names: Vec<&str> = self.modules.keys().map(String::as_str).collect();
        let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut adj = vec![BTreeSet::new(); names.len()];
        for e in self.counted_edges() {
            if let (Some(&a), Some(&b)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) {
                adj[a].insert(b);
            }
        }
        let mut out: Vec<Vec<String>> = tarjan(&adj)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut c: Vec<String> = c.into_iter().map(|i| names[i].to_owned()).collect();
                c.sort();
                c
            })
            .collect();
        out.sort();
        out
    }

    /// For each circle, one shortest path from its first module back to it, each edge with the
    /// file and line of its first occurrence; empty when there is no circle.
    #[must_use]
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for cycle in self.cycles() {
            let members: BTreeSet<&str> = cycle.iter().map(String::as_str).collect();
            // First occurrence of each counted edge inside the component, and how many there are.
            let mut first: BTreeMap<(&str, &str), (&Edge, usize)> = BTreeMap::new();
            for e in self.counted_edges() {
                if members.contains(e.from.as_str()) && members.contains(e.to.as_str()) {
                    first.entry((&e.from, &e.to)).or_insert((e, 0)).1 += 1;
                }
            }
            let _ = writeln!(
                out,
                "module circle in {} among {{{}}}:",
                self.src_dir.display(),
                cycle.join(", ")
            );
            for (from, to) in shortest_loop(&cycle[0], &first) {
                if let Some((e, n)) = first.get(&(from, to)) {
                    let more = if *n > 1 {
                        format!(" (+{} more)", n - 1)
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        out,
                        "  {from} -> {to}  at {}:{}{more}",
                        e.file.display(),
                        e.line
                    );
                }
            }
        }
        out
    }
}

/// Breadth-first from `start` over the component's edges until an edge leads back to `start`.
fn shortest_loop<'a>(
    start: &'a str,
    edges: &BTreeMap<(&'a str, &'a str), (&Edge, usize)>,
) -> Vec<(&'a str, &'a str)> {
    let mut prev: HashMap<&str, &str> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &(from, to) in edges.keys().filter(|(f, _)| *f == node) {
            if to == start {
                let mut path = vec![(from, to)];
                let mut at = from;
                while at != start {
                    let p = prev[at];
                    path.push((p, at));
                    at = p;
                }
                path.reverse();
                return path;
            }
            if !prev.contains_key(to) {
                prev.insert(to, from);
                queue.push_back(to);
            }
        }
    }
    Vec::new()
}

/// Tarjan's strongly connected components over an adjacency list.
fn tarjan(adj: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        adj: &'a [BTreeSet<usize>],
        next: usize,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in &s.adj[v] {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let n = adj.len();
    let mut s = State {
        adj,
        next: 0,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

fn collect_rs(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(root.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = rel.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            if path != Path::new("bin") {
                collect_rs(root, &path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `a/b.rs` and `a/b/mod.rs` → `a::b`; the crate root → `crate`; `main.rs` beside a `lib.rs` is
/// another crate and has no name here.
fn module_name(file: &Path, has_lib: bool) -> Option<String> {
    let mut parts: Vec<String> = file
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if parts.is_empty() && (stem == "lib" || (stem == "main" && !has_lib)) {
        return Some("crate".to_owned());
    }
    if parts.is_empty() && stem == "main" {
        return None;
    }
    if stem != "mod" {
        parts.push(stem.to_owned());
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("::"))
    }
}

/// `crate` → `[]`, `a::b` → `[a, b]`.
fn segments(module: &str) -> Vec<String> {
    if module == "crate" {
        Vec::new()
    } else {
        module.split("::").map(str::to_owned).collect()
    }
}

/// Whether `a` strictly contains `b`.
fn is_ancestor(a: &str, b: &str) -> bool {
    a != b && (a == "crate" || b.strip_prefix(a).is_some_and(|rest| rest.starts_with("::")))
}

/// The deepest existing module named by a prefix of the absolute path `path`.
fn deepest(modules: &BTreeMap<String, PathBuf>, path: &[String]) -> String {
    (1..=path.len())
        .rev()
        .map(|k| path[..k].join("::"))
        .find(|name| modules.contains_key(name))
        .unwrap_or_else(|| "crate".to_owned())
}

#[cfg(test)]
mod tests;

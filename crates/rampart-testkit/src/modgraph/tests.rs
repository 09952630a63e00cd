//! The module-graph checker on small synthetic trees.

use super::{ModuleGraph, cycles, explain};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A `src/` directory under the system temp dir, removed when dropped.
struct Tree(PathBuf);

impl Tree {
    fn new(files: &[(&str, &str)]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rampart-modgraph-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (path, text) in files {
            let file = dir.join(path);
            fs::create_dir_all(file.parent().unwrap_or(&dir)).unwrap_or_else(|e| panic!("{e}"));
            fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
        }
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn graph(&self) -> ModuleGraph {
        ModuleGraph::from_src_dir(&self.0).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every edge as `from -> to`, sorted and deduplicated.
    fn edges(&self) -> Vec<String> {
        let mut e: Vec<String> = self
            .graph()
            .edges()
            .iter()
            .map(|e| format!("{} -> {}", e.from, e.to))
            .collect();
        e.sort();
        e.dedup();
        e
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn sets(list: &[&[&str]]) -> Vec<Vec<String>> {
    list.iter()
        .map(|c| c.iter().map(|s| (*s).to_owned()).collect())
        .collect()
}

#[test]
fn two_file_circle() {
    let t = Tree::new(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::B;\npub struct A;\n"),
        (
            "b.rs",
            "pub struct B;\n\nfn f() -> crate::a::A { crate::a::A }\n",
        ),
    ]);
    assert_eq!(cycles(t.path()), sets(&[&["a", "b"]]));
    let text = explain(t.path());
    assert!(text.contains("a -> b  at a.rs:1\n"), "{text}");
    assert!(text.contains("b -> a  at b.rs:3 (+1 more)\n"), "{text}");
}

#[test]
fn three_file_circle_and_a_chain_beside_it() {
    let t = Tree::new(&[
        ("lib.rs", "mod a; mod b; mod c; mod d;\n"),
        ("a.rs", "use crate::b::B;\n"),
        ("b.rs", "use crate::c::C;\n"),
        ("c.rs", "fn f() { crate::a::g(); crate::d::h(); }\n"),
        ("d.rs", "pub fn h() {}\n"),
    ]);
    assert_eq!(cycles(t.path()), sets(&[&["a", "b", "c"]]));
    let text = explain(t.path());
    let lines: Vec<&str> = text.lines().skip(1).map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "a -> b  at a.rs:1",
            "b -> c  at b.rs:1",
            "c -> a  at c.rs:1"
        ],
        "{text}"
    );
}

#[test]
fn no_circle_explains_nothing() {
    let t = Tree::new(&[
        ("main.rs", "mod a;\nuse a::A;\n"),
        ("a.rs", "use crate::A;\n"),
    ]);
    assert!(cycles(t.path()).is_empty());
    assert_eq!(explain(t.path()), "");
}

#[test]
fn grouped_use_trees() {
    let t = Tree::new(&[
        ("lib.rs", ""),
        ("w.rs", "use crate::{x::X, y::{self, z::{Z as Zed, *}}};\n"),
        ("x.rs", ""),
        ("y/mod.rs", ""),
        ("y/z.rs", "use crate::{w};\n"),
    ]);
    assert_eq!(t.edges(), ["w -> x", "w -> y", "w -> y::z", "y::z -> w"]);
    assert_eq!(cycles(t.path()), sets(&[&["w", "y::z"]]));
}

#[test]
fn super_and_self_paths() {
    let t = Tree::new(&[
        ("lib.rs", ""),
        ("p/mod.rs", "pub use self::a::A;\npub struct Shared;\n"),
        (
            "p/a.rs",
            "use super::b::B;\nuse super::Shared;\npub struct A;\n",
        ),
        (
            "p/b.rs",
            "fn f() -> super::a::A { todo!() }\nuse super::super::q::Q;\n",
        ),
        ("q.rs", "pub struct Q;\n"),
    ]);
    assert_eq!(
        t.edges(),
        [
            "p -> p::a",
            "p::a -> p",
            "p::a -> p::b",
            "p::b -> p::a",
            "p::b -> q"
        ]
    );
    // p <-> p::a is parent and child: not a circle.
    assert_eq!(cycles(t.path()), sets(&[&["p::a", "p::b"]]));
}

#[test]
fn comments_strings_and_chars_do_not_count() {
    let src = r####"
// crate::b::X in a line comment
/// crate::b::X in a doc comment
//! crate::b
/* crate::b /* nested crate::b */ still a comment crate::b */
const S: &str = "crate::b::X \" crate::b";
const R: &str = r#"crate::b "quoted" crate::b"#;
const B: &[u8] = b"crate::b";
const C: char = '"';
const D: char = '\'';
fn f<'a>(x: &'a str) -> &'a str { x }
const E: u8 = b'"';
pub fn g() { crate::c::h(); }
"####;
    let t = Tree::new(&[("lib.rs", ""), ("a.rs", src), ("b.rs", ""), ("c.rs", "")]);
    let g = t.graph();
    let e: Vec<_> = g.edges().iter().map(|e| (e.to.as_str(), e.line)).collect();
    assert_eq!(e, [("c", 13)]);
}

#[test]
fn cfg_test_modules_do_not_count_but_other_inline_modules_do() {
    let t = Tree::new(&[
        ("lib.rs", ""),
        (
            "a.rs",
            "#[cfg(test)]\n#[allow(dead_code)]\nmod tests {\n    use crate::b::B;\n    mod deeper { \
             fn f() { crate::b::g(); } }\n}\n#[cfg(test)]\nmod file_tests;\n\
             mod inner {\n    use super::super::c::C;\n    fn f() -> self::X { todo!() }\n}\n",
        ),
        ("a/file_tests.rs", "use crate::b::B;\n"),
        ("a/file_tests/more.rs", "use crate::b::B;\n"),
        ("b.rs", "use crate::a;\n"),
        ("c.rs", "#![cfg(test)]\nuse crate::a;\n"),
    ]);
    assert_eq!(t.edges(), ["a -> c", "b -> a"]);
    assert!(cycles(t.path()).is_empty());
}

#[test]
fn nested_folder_modules_and_deepest_existing_target() {
    let t = Tree::new(&[
        ("lib.rs", "pub mod net;\n"),
        (
            "net/mod.rs",
            "pub mod tcp;\npub mod udp;\npub use self::tcp::accept::f;\n",
        ),
        ("net/tcp/mod.rs", "pub mod accept;\npub struct Tcp;\n"),
        (
            "net/tcp/accept.rs",
            "use crate::net::udp::Sock;\nuse crate::net::Shared;\n\
             fn g() { crate::net::tcp::missing::h(); }\n",
        ),
        (
            "net/udp.rs",
            "use super::tcp::accept::f;\nuse super::tcp::accept::Nope::X;\n",
        ),
    ]);
    assert_eq!(
        t.edges(),
        [
            "net -> net::tcp::accept",
            "net::tcp::accept -> net",
            "net::tcp::accept -> net::tcp",
            "net::tcp::accept -> net::udp",
            "net::udp -> net::tcp::accept",
        ]
    );
    assert_eq!(cycles(t.path()), sets(&[&["net::tcp::accept", "net::udp"]]));
}

#[test]
fn raw_identifiers_and_macro_crate_paths() {
    let t = Tree::new(&[
        ("lib.rs", ""),
        (
            "a.rs",
            "macro_rules! m { () => { $crate::r#b::f() }; }\nfn r#fn() {}\n",
        ),
        ("b.rs", "#[derive(crate::a::Derive)]\nstruct S;\n"),
    ]);
    assert_eq!(t.edges(), ["a -> b", "b -> a"]);
}

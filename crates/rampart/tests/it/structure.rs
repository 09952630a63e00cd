//! The shape of the code (DESIGN §2), checked so it cannot drift: no module circle in any
//! crate, imports between rampart-server's rooms pointing one way, the dependency rules
//! between crates, and every integration test in this one binary.

use std::fs;
use std::path::{Path, PathBuf};

use rampart_testkit::modgraph::ModuleGraph;

/// The workspace root (this crate is `<root>/crates/rampart`).
fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// Every crate directory under `crates/`, sorted.
fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root().join("crates"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn no_crate_has_a_module_circle() {
    let crates = crate_dirs();
    assert!(
        crates.len() > 1,
        "no crates found under {}",
        root().display()
    );
    let report: String = crates
        .iter()
        .map(|dir| dir.join("src"))
        .filter(|src| src.is_dir())
        .map(|src| rampart_testkit::modgraph::explain(&src))
        .collect();
    assert!(report.is_empty(), "module circles (DESIGN §2):\n{report}");
}

/// rampart-server's rooms, lowest first: a room may import only rooms below it.
const ROOMS: [&str; 5] = ["observe", "pipeline", "http", "listen", "runtime"];

#[test]
fn server_rooms_import_one_way() {
    let src = root().join("crates/rampart-server/src");
    let graph = ModuleGraph::from_src_dir(&src).unwrap();
    let rank = |module: &str| {
        let room = module.split("::").next().unwrap_or(module);
        ROOMS.iter().position(|r| *r == room)
    };
    let modules: Vec<&str> = graph.modules().collect();
    for room in ROOMS {
        assert!(
            modules.contains(&room),
            "room {room} is missing: {modules:?}"
        );
    }
    let upward: Vec<String> = graph
        .edges()
        .iter()
        .filter(|e| match (rank(&e.from), rank(&e.to)) {
            (Some(from), Some(to)) => to > from,
            _ => false,
        })
        .map(|e| format!("{} -> {} at {}:{}", e.from, e.to, e.file.display(), e.line))
        .collect();
    assert!(
        upward.is_empty(),
        "imports must point {} (DESIGN §2); these point up:\n{}",
        ROOMS.iter().rev().copied().collect::<Vec<_>>().join(" -> "),
        upward.join("\n")
    );
}

/// The Rampart crates each crate may depend on (DESIGN §2). A crate not listed is a feature
/// crate on the Stage API: it may use only rampart-core and rampart-config.
const ALLOWED: &[(&str, &[&str])] = &[
    ("rampart-config", &[]),
    ("rampart-core", &["rampart-config"]),
    ("rampart-router", &["rampart-config", "rampart-core"]),
    ("rampart-upstream", &["rampart-config", "rampart-core"]),
    ("rampart-filters", &["rampart-config", "rampart-core"]),
    (
        "rampart-server",
        &[
            "rampart-config",
            "rampart-core",
            "rampart-router",
            "rampart-upstream",
            "rampart-filters",
            "rampart-auth",
        ],
    ),
    ("rampart-admin", &["rampart-config", "rampart-server"]),
];

/// The Rampart crates in the `[dependencies]` table of a manifest.
fn internal_dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or("");
        if in_deps && name.starts_with("rampart-") {
            out.push(name.to_owned());
        }
    }
    out
}

#[test]
fn crates_depend_only_downwards() {
    let mut wrong = Vec::new();
    for dir in crate_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name == "rampart" || name == "rampart-testkit" {
            continue; // the binary and the test kit may use everything
        }
        let allowed: &[&str] = ALLOWED
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(&["rampart-config", "rampart-core"], |(_, a)| a);
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        for dep in internal_dependencies(&manifest) {
            if !allowed.contains(&dep.as_str()) {
                wrong.push(format!("{name} depends on {dep}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependency rules (DESIGN §2):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_dependency_reader_sees_only_the_dependencies_table() {
    let manifest = "[package]\nname = \"x\"\n\n[dependencies]\nrampart-core.workspace = true\n\
        rampart-server = { path = \"../s\" }\nbytes = \"1\"\n\n[dev-dependencies]\n\
        rampart-testkit.workspace = true\n";
    assert_eq!(
        internal_dependencies(manifest),
        ["rampart-core", "rampart-server"]
    );
}

/// `autotests = false` keeps Cargo from building anything but this binary, so a test file put
/// directly in `tests/` (or a second `tests/*/main.rs`) would silently never run; this fails
/// instead.
#[test]
fn every_integration_test_is_part_of_this_binary() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut stray = Vec::new();
    for entry in fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        let is_rs = path.extension().is_some_and(|e| e == "rs");
        let other_main = path.is_dir() && path.file_name() != Some("it".as_ref());
        if is_rs || (other_main && path.join("main.rs").exists()) {
            stray.push(path);
        }
    }
    assert!(
        stray.is_empty(),
        "{stray:?} would not be built; make each a module of tests/it/main.rs"
    );
}

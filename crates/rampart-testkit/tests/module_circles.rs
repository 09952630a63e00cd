//! DESIGN §2: no module circle in any crate of the workspace (see `rampart_testkit::modgraph`
//! for what counts as an edge and as a circle).

use std::fs;
use std::path::Path;

#[test]
fn no_crate_has_a_module_circle() {
    // CARGO_MANIFEST_DIR is <root>/crates/rampart-testkit.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.ancestors().nth(2).unwrap_or(manifest);
    let mut crates: Vec<_> = fs::read_dir(root.join("crates"))
        .unwrap_or_else(|e| panic!("listing crates/: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.path().join("src"))
        .filter(|src| src.is_dir())
        .collect();
    crates.sort();
    assert!(crates.len() > 1, "no crates found under {}", root.display());
    let report: String = crates
        .iter()
        .map(|src| rampart_testkit::modgraph::explain(src))
        .collect();
    assert!(report.is_empty(), "module circles (DESIGN §2):\n{report}");
}

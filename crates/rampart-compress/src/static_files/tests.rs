//! Template expansion and the open-file cache's bound.

use std::time::Duration;

use super::fs::{Found, OpenFiles, Rules};
use super::*;

#[test]
fn templates_expand_the_request_path() {
    let t = Template::parse("$uri.html").unwrap();
    assert_eq!(t.expand(b"about"), Path::new("about.html"));
    let t = Template::parse("/index.html").unwrap();
    assert_eq!(t.expand(b"deep/link"), Path::new("index.html"));
    assert!(uri_template(true).dir);
    assert_eq!(uri_template(false).expand(b""), Path::new(""));
    for bad in ["index.html", "/../x", "/a/./b", "$path", "/$uri$x"] {
        assert!(Template::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_open_file_cache_keeps_at_most_its_entries() {
    let dir = std::env::temp_dir().join(format!("rampart-ofc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..10 {
        std::fs::write(dir.join(format!("f{i}")), b"x").unwrap();
    }
    let rules = Rules {
        root: std::fs::canonicalize(&dir).unwrap(),
        symlinks_outside_root: false,
        hidden: false,
    };
    let cache = OpenFiles::new(4, Duration::from_secs(60));
    for i in 0..10 {
        let found = cache.resolve(&rules, Path::new(&format!("f{i}"))).unwrap();
        assert!(matches!(found, Found::File(_)));
        assert!(cache.len() <= 4);
    }
    assert!(cache.fresh(Path::new("f9")).is_some());
    // A replaced file is noticed on the next lookup.
    std::fs::write(dir.join("f9"), b"longer").unwrap();
    let Ok(Found::File(file)) = cache.resolve(&rules, Path::new("f9")) else {
        panic!("f9 not found");
    };
    assert_eq!(file.len, 6);
    std::fs::remove_dir_all(&dir).unwrap();
}

//! `rampart --version`, `--help`, `config default` and `config schema`.

use serde_json::Value;

use super::run_cli;
use crate::support::TempDir;

// ---------------------------------------------------------------------------------------------
// --version, --help, config
// ---------------------------------------------------------------------------------------------

#[test]
fn version_prints_the_package_version() {
    let out = run_cli(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        out.stdout.trim(),
        format!("rampart {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_shows_commands_and_examples() {
    let out = run_cli(&["--help"]);
    assert!(out.status.success(), "{}", out.stderr);
    for needle in [
        "run",
        "check",
        "proxy",
        "explain",
        "config",
        "--log-level",
        "Examples:",
        "rampart check -c rampart.toml",
    ] {
        assert!(
            out.stdout.contains(needle),
            "{needle:?} missing from --help:\n{}",
            out.stdout
        );
    }
    for sub in ["run", "check", "proxy", "explain"] {
        let out = run_cli(&[sub, "--help"]);
        assert!(out.status.success());
        assert!(
            out.stdout.contains("Examples:"),
            "`{sub} --help` has no examples:\n{}",
            out.stdout
        );
    }
}

#[test]
fn config_default_prints_a_config_that_check_accepts() {
    let out = run_cli(&["config", "default"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("[[listeners]]"), "{}", out.stdout);
    let dir = TempDir::new("cli");
    let path = dir.file("default.toml", &out.stdout);
    let check = run_cli(&["check", "-c", path.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "the default config fails check:\n{}",
        check.stderr
    );
    assert!(check.stdout.contains(": ok"), "{}", check.stdout);
}

/// Follows `$ref` (into `$defs`), `allOf`/`anyOf` and array `items` to the object schema.
fn resolve<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        if let Some(r) = schema["$ref"].as_str() {
            let name = r.rsplit('/').next().unwrap();
            schema = &root["$defs"][name];
        } else if schema["items"].is_object() {
            schema = &schema["items"];
        } else if let Some(first) = schema["allOf"]
            .as_array()
            .or_else(|| schema["anyOf"].as_array())
            .and_then(|a| a.first())
        {
            schema = first;
        } else {
            break;
        }
    }
    schema
}

#[test]
fn config_schema_describes_every_section() {
    let out = run_cli(&["config", "schema"]);
    assert!(out.status.success(), "{}", out.stderr);
    let schema: Value = serde_json::from_str(&out.stdout).expect("config schema prints JSON");
    let props = schema["properties"]
        .as_object()
        .expect("top-level properties");
    for section in [
        "server",
        "log",
        "access_log",
        "limits",
        "timeouts",
        "listeners",
        "upstreams",
        "routes",
    ] {
        let def = resolve(
            &schema,
            props
                .get(section)
                .unwrap_or_else(|| panic!("no section {section}")),
        );
        let fields = def["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{section} has no properties: {def}"));
        assert!(!fields.is_empty(), "{section}");
    }
    assert!(resolve(&schema, &props["listeners"])["properties"]["bind"].is_object());
    assert!(resolve(&schema, &props["routes"])["properties"]["path_prefix"].is_object());
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown top-level keys must be refused"
    );
}

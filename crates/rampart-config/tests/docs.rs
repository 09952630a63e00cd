//! Every config key is documented in docs/configuration.md, and every TOML example there parses.

#![allow(clippy::expect_used)]

use serde_json::Value;

fn keys(schema: &Value, defs: &Value, out: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        if let Some(def) = defs.get(name) {
            keys(def, defs, out, depth + 1);
        }
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        for s in schema
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            keys(s, defs, out, depth + 1);
        }
    }
    if let Some(items) = schema.get("items") {
        keys(items, defs, out, depth + 1);
    }
    for (name, prop) in schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        out.push(name.clone());
        keys(prop, defs, out, depth + 1);
    }
}

fn docs() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
    std::fs::read_to_string(path).expect("docs/configuration.md exists")
}

#[test]
fn every_config_key_is_documented() {
    let schema = rampart_config::json_schema();
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let mut all = Vec::new();
    keys(&schema, &defs, &mut all, 0);
    all.sort();
    all.dedup();
    assert!(all.len() > 40, "schema walk found too few keys: {all:?}");
    let docs = docs();
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| {
            ![
                format!("`{k}`"),
                format!(".{k}`"),
                format!("`[{k}]`"),
                format!("`[[{k}]]`"),
            ]
            .iter()
            .any(|f| docs.contains(f.as_str()))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys missing from docs/configuration.md: {missing:?}"
    );
}

#[test]
fn every_toml_example_in_the_docs_parses() {
    let docs = docs();
    let mut blocks = 0;
    for block in docs.split("```toml").skip(1) {
        let body = block.split("```").next().unwrap_or_default();
        toml::from_str::<toml::Table>(body)
            .unwrap_or_else(|e| panic!("example does not parse: {e}\n{body}"));
        blocks += 1;
    }
    assert!(
        blocks >= 5,
        "expected TOML examples in docs/configuration.md"
    );
}

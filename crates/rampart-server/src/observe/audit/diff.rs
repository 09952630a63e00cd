//! What changed between two configs, by name: listeners, upstreams and routes added, removed or
//! changed, and the other top-level sections that changed. Only names appear, never values, so
//! the summary cannot leak secrets.

use rampart_config::RawConfig;
use serde::Serialize;
use serde_json::Value;

/// Names added, removed and changed in one list section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NameDiff {
    /// Present in the new config only.
    pub added: Vec<String>,
    /// Present in the old config only.
    pub removed: Vec<String>,
    /// Present in both, with different settings.
    pub changed: Vec<String>,
}

impl NameDiff {
    /// True when nothing was added, removed or changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// A summary of a configuration change, as written to the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChangeSummary {
    /// `[[listeners]]` by name.
    pub listeners: NameDiff,
    /// `[[upstreams]]` by name.
    pub upstreams: NameDiff,
    /// `[[routes]]` by name.
    pub routes: NameDiff,
    /// Other top-level sections whose settings changed (`limits`, `tracing`, …).
    pub sections: Vec<String>,
}

impl ChangeSummary {
    /// What changed from `old` to `new`; with no `old` (startup), everything in `new` is added.
    #[must_use]
    pub fn between(old: Option<&RawConfig>, new: &RawConfig) -> Self {
        let old = old.map_or(Value::Null, to_value);
        let new = to_value(new);
        let mut summary = Self {
            listeners: list_diff(&old, &new, "listeners"),
            upstreams: list_diff(&old, &new, "upstreams"),
            routes: list_diff(&old, &new, "routes"),
            sections: Vec::new(),
        };
        if let (Value::Object(o), Value::Object(n)) = (&old, &new) {
            for (key, value) in n {
                let is_list = matches!(key.as_str(), "listeners" | "upstreams" | "routes");
                if !is_list && o.get(key) != Some(value) {
                    summary.sections.push(key.clone());
                }
            }
        }
        summary
    }

    /// True when the configs are the same.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
            && self.upstreams.is_empty()
            && self.routes.is_empty()
            && self.sections.is_empty()
    }
}

fn to_value(raw: &RawConfig) -> Value {
    serde_json::to_value(raw).unwrap_or(Value::Null)
}

/// The items of list `section`, keyed by their `name`.
fn named<'a>(config: &'a Value, section: &str) -> Vec<(&'a str, &'a Value)> {
    config
        .get(section)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| Some((item.get("name")?.as_str()?, item)))
        .collect()
}

fn find<'a>(list: &[(&str, &'a Value)], name: &str) -> Option<&'a Value> {
    list.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn list_diff(old: &Value, new: &Value, section: &str) -> NameDiff {
    let old = named(old, section);
    let new = named(new, section);
    let mut diff = NameDiff::default();
    for (name, value) in &new {
        match find(&old, name) {
            None => diff.added.push((*name).to_owned()),
            Some(before) if before != *value => diff.changed.push((*name).to_owned()),
            Some(_) => {}
        }
    }
    for (name, _) in &old {
        if find(&new, name).is_none() {
            diff.removed.push((*name).to_owned());
        }
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawConfig {
        rampart_config::load_str(text, "test")
            .unwrap()
            .raw()
            .clone()
    }

    const BASE: &str = r#"
[[listeners]]
name = "web"
bind = "127.0.0.1:0"
[[upstreams]]
name = "app"
targets = ["127.0.0.1:9"]
[[routes]]
name = "a"
path_prefix = "/a"
upstream = "app"
[[routes]]
name = "b"
path_prefix = "/b"
upstream = "app"
"#;

    #[test]
    fn startup_lists_everything_as_added() {
        let s = ChangeSummary::between(None, &raw(BASE));
        assert_eq!(s.listeners.added, ["web"]);
        assert_eq!(s.upstreams.added, ["app"]);
        assert_eq!(s.routes.added, ["a", "b"]);
        assert!(s.sections.is_empty());
    }

    #[test]
    fn reload_names_added_removed_and_changed_items_and_sections() {
        let old = raw(BASE);
        let text = BASE
            .replace("path_prefix = \"/b\"", "path_prefix = \"/bee\"")
            .replace("name = \"a\"", "name = \"c\"")
            + "[limits]\nmax_header_count = 50\n";
        let s = ChangeSummary::between(Some(&old), &raw(&text));
        assert_eq!(s.routes.added, ["c"]);
        assert_eq!(s.routes.removed, ["a"]);
        assert_eq!(s.routes.changed, ["b"]);
        assert!(s.listeners.is_empty() && s.upstreams.is_empty());
        assert_eq!(s.sections, ["limits"]);
        assert!(ChangeSummary::between(Some(&old), &old).is_empty());
    }
}

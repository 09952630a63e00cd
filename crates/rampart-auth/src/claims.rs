//! Claim requirements (`claims = [{ name = "role", value = "admin" }]`), compiled from the
//! config and tested against a principal's claims.

use rampart_config::model::ClaimRule;
use rampart_core::principal::claim_at;
use serde_json::{Map, Value};

/// What a claim must be.
#[derive(Debug, Clone)]
enum Test {
    Present,
    Equals(String),
    OneOf(Vec<String>),
    Contains(String),
}

/// One compiled claim requirement.
#[derive(Debug, Clone)]
pub(crate) struct ClaimMatcher {
    path: String,
    test: Test,
}

/// True when a scalar claim equals `want` (strings as they are, numbers and booleans as JSON
/// writes them).
fn scalar_is(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Number(n) => n.to_string() == want,
        Value::Bool(b) => want == if *b { "true" } else { "false" },
        _ => false,
    }
}

impl ClaimMatcher {
    /// Compiles `rule`.
    ///
    /// # Errors
    /// A rule with more than one of `value`, `one_of`, `contains`.
    pub(crate) fn new(rule: &ClaimRule) -> Result<Self, String> {
        let forms = usize::from(rule.value.is_some())
            + usize::from(!rule.one_of.is_empty())
            + usize::from(rule.contains.is_some());
        if forms > 1 {
            return Err("give at most one of `value`, `one_of`, `contains`".to_owned());
        }
        if rule.name.get().is_empty() {
            return Err("the claim name is empty".to_owned());
        }
        let test = if let Some(v) = &rule.value {
            Test::Equals(v.clone())
        } else if let Some(c) = &rule.contains {
            Test::Contains(c.clone())
        } else if rule.one_of.is_empty() {
            Test::Present
        } else {
            Test::OneOf(rule.one_of.clone())
        };
        Ok(Self {
            path: rule.name.get().clone(),
            test,
        })
    }

    /// True when `claims` meet this requirement.
    pub(crate) fn matches(&self, claims: &Map<String, Value>) -> bool {
        let Some(v) = claim_at(claims, &self.path) else {
            return false;
        };
        match &self.test {
            Test::Present => !v.is_null(),
            Test::Equals(want) => scalar_is(v, want),
            Test::OneOf(options) => options.iter().any(|o| scalar_is(v, o)),
            Test::Contains(want) => match v {
                Value::Array(items) => items.iter().any(|i| scalar_is(i, want)),
                Value::String(s) => s.split_whitespace().any(|w| w == want),
                _ => false,
            },
        }
    }
}

/// A claim as a header value: strings as they are, arrays joined with `,`, other values as
/// JSON.
pub(crate) fn claim_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(claim_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_config::Located;

    fn rule(
        name: &str,
        value: Option<&str>,
        one_of: &[&str],
        contains: Option<&str>,
    ) -> ClaimMatcher {
        ClaimMatcher::new(&ClaimRule {
            name: Located::new(name.to_owned()),
            value: value.map(str::to_owned),
            one_of: one_of.iter().map(|s| (*s).to_owned()).collect(),
            contains: contains.map(str::to_owned),
        })
        .unwrap()
    }

    #[test]
    fn each_form_of_claim_rule() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"role":"admin","level":3,"scope":"read write","groups":["a","b"],"realm":{"roles":["ops"]}}"#,
        )
        .unwrap();
        assert!(rule("role", Some("admin"), &[], None).matches(&claims));
        assert!(!rule("role", Some("user"), &[], None).matches(&claims));
        assert!(rule("level", None, &["2", "3"], None).matches(&claims));
        assert!(rule("scope", None, &[], Some("write")).matches(&claims));
        assert!(!rule("scope", None, &[], Some("wri")).matches(&claims));
        assert!(rule("groups", None, &[], Some("b")).matches(&claims));
        assert!(rule("realm.roles", None, &[], Some("ops")).matches(&claims));
        assert!(rule("groups", None, &[], None).matches(&claims));
        assert!(!rule("missing", None, &[], None).matches(&claims));
        assert_eq!(claim_text(&claims["groups"]), "a,b");
        assert!(
            ClaimMatcher::new(&ClaimRule {
                name: Located::new("x".to_owned()),
                value: Some("a".to_owned()),
                one_of: vec![],
                contains: Some("b".to_owned()),
            })
            .is_err()
        );
    }
}

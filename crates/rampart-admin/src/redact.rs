//! `GET /config`: the effective config as JSON with secrets replaced by `"<redacted>"`.
//!
//! A value is a secret when its key names one (`token`, `password`, `secret`, `key`, `*_key`,
//! `authorization`, `credentials`) or when it contains the value of a `${VAR}` the config text
//! interpolates (secrets are meant to come from the environment).

use serde_json::Value;

use rampart_server::Runtime;

const REDACTED: &str = "<redacted>";

/// The redacted effective config of `rt`.
pub(crate) fn config(rt: &Runtime) -> Value {
    let mut value = serde_json::to_value(rt.config().raw()).unwrap_or(Value::Null);
    let secrets = interpolated_values(&rt.config().source().text);
    redact(&mut value, &secrets, false);
    value
}

fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "key"
        || k.ends_with("_key")
        || ["token", "password", "secret", "authorization", "credential"]
            .iter()
            .any(|s| k.contains(s))
}

fn redact(value: &mut Value, secrets: &[String], under_secret_key: bool) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                redact(v, secrets, under_secret_key || secret_key(k));
            }
        }
        Value::Array(items) => {
            for v in items {
                redact(v, secrets, under_secret_key);
            }
        }
        Value::String(s) => {
            if under_secret_key || secrets.iter().any(|x| s.contains(x.as_str())) {
                *s = REDACTED.to_owned();
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {
            if under_secret_key && !value.is_null() {
                *value = Value::String(REDACTED.to_owned());
            }
        }
    }
}

/// The values `${VAR}` references in `text` expand to now (at least 3 bytes long, so that a
/// short value does not redact everything).
fn interpolated_values(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find("${") {
        let after = &rest[pos + 2..];
        let Some(end) = after.find('}') else { break };
        let reference = &after[..end];
        let (name, fallback) = match reference.split_once(":-") {
            Some((n, f)) => (n, Some(f)),
            None => (reference, None),
        };
        let value = std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| fallback.map(str::to_owned));
        if let Some(v) = value
            && v.len() >= 3
            && !out.contains(&v)
        {
            out.push(v);
        }
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys_and_interpolated_values_are_redacted() {
        let mut v = json!({
            "admin": { "token": "abc", "listen": "127.0.0.1:9901" },
            "redis": { "url": "redis://:hunter22@127.0.0.1" },
            "tls": { "key": "/etc/k.pem", "cert": "/etc/c.pem" },
            "n": { "password": 5 }
        });
        redact(&mut v, &["hunter22".to_owned()], false);
        assert_eq!(v["admin"]["token"], REDACTED);
        assert_eq!(v["admin"]["listen"], "127.0.0.1:9901");
        assert_eq!(v["redis"]["url"], REDACTED);
        assert_eq!(v["tls"]["key"], REDACTED);
        assert_eq!(v["tls"]["cert"], "/etc/c.pem");
        assert_eq!(v["n"]["password"], REDACTED);
    }

    #[test]
    fn references_resolve_with_fallbacks_and_skip_short_values() {
        let text = "a = \"${RAMPART_TEST_SURELY_UNSET:-fallback-secret}\"\nb = \"${RAMPART_TEST_UNSET2:-x}\"";
        assert_eq!(
            interpolated_values(text),
            vec!["fallback-secret".to_owned()]
        );
    }
}

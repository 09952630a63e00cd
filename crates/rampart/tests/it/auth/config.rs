//! Auth config that cannot work is a `rampart check` error at the offending value, with
//! `file:line:col`, the key path and what to do: `alg = none`, mixed algorithm families, a key
//! file that cannot be read, a JWKS URL in plain http outside loopback, HMAC with a JWKS, a
//! missing or short secret, an unknown provider, a header that cannot carry a claim.

use crate::cli::run_cli;
use crate::support::TempDir;

const BASE: &str = r#"[[listeners]]
name = "web"
bind = "127.0.0.1:8080"

[[upstreams]]
name = "app"
targets = ["127.0.0.1:3000"]
"#;

/// Runs `check` on BASE + `rest` and asserts an error at the line and column where `at` first
/// appears in `rest`, naming `key` and saying `message`.
fn assert_check_error(rest: &str, at: &str, key: &str, message: &str) {
    let dir = TempDir::new("auth");
    let text = format!("{BASE}{rest}");
    let path = dir.file("rampart.toml", &text);
    let file = path.display().to_string();
    let out = run_cli(&["check", "-c", &file]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    let offset = text.find(at).unwrap();
    let line = text[..offset].matches('\n').count() + 1;
    let col = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
    let location = format!("{file}:{line}:{col}:");
    let found = out
        .stderr
        .lines()
        .find(|l| l.starts_with(&location))
        .unwrap_or_else(|| panic!("no error at {location} in:\n{}", out.stderr));
    assert!(
        found.contains(key) && found.contains(message),
        "{found}\n(full output:\n{})",
        out.stderr
    );
}

#[test]
fn unusable_auth_config_is_a_check_error_at_its_value() {
    assert_check_error(
        "[[auth.jwt]]\nname = \"a\"\nalgorithms = [\"none\"]\njwks_url = \"https://idp.example.com/jwks\"\n",
        "\"none\"",
        "auth.jwt[0].algorithms",
        "unknown value `none`",
    );
    assert_check_error(
        "[[auth.jwt]]\nname = \"a\"\nalgorithms = [\"RS256\", \"ES256\"]\nkey_file = \"/etc/rampart/rsa.pem\"\n",
        "\"ES256\"",
        "auth.jwt[0].algorithms",
        "the key's family",
    );
    assert_check_error(
        "[[auth.jwt]]\nname = \"a\"\nalgorithms = [\"RS256\"]\nkey_file = \"/nonexistent/rampart/key.pem\"\n",
        "\"/nonexistent",
        "auth.jwt[0].key_file",
        "cannot read key file",
    );
    assert_check_error(
        "[[auth.jwt]]\nname = \"a\"\nalgorithms = [\"RS256\"]\njwks_url = \"http://idp.example.com/jwks\"\n",
        "\"http://idp",
        "auth.jwt[0].jwks_url",
        "must use https",
    );
    assert_check_error(
        "[[auth.jwt]]\nname = \"a\"\nalgorithms = [\"HS256\"]\njwks_url = \"https://idp.example.com/jwks\"\n",
        "\"HS256\"",
        "auth.jwt[0].algorithms",
        "shared secret",
    );
    assert_check_error(
        "[[auth.jwt]]\nname = \"a\"\nalgorithms = [\"HS256\"]\nsecret_env = \"RAMPART_TEST_UNSET_SECRET\"\n",
        "\"RAMPART_TEST_UNSET_SECRET\"",
        "auth.jwt[0].secret_env",
        "is not set",
    );
    assert_check_error(
        "[[auth.jwt]]\nname = \"a\"\nalgorithms = [\"RS256\"]\nsecret_env = \"PATH\"\n",
        "\"PATH\"",
        "auth.jwt[0].secret_env",
        "HMAC algorithms",
    );
    assert_check_error(
        "[[auth.jwt]]\nname = \"a\"\nalgorithms = [\"RS256\"]\njwks_url = \"https://idp.example.com/jwks\"\n\n[[routes]]\nname = \"app\"\nupstream = \"app\"\nauth = { providers = [\"b\"] }\n",
        "\"b\"",
        "routes[0].auth.providers[0]",
        "unknown auth provider",
    );
    assert_check_error(
        "[[auth.jwt]]\nname = \"a\"\nalgorithms = [\"RS256\"]\njwks_url = \"https://idp.example.com/jwks\"\n\n[[routes]]\nname = \"app\"\nupstream = \"app\"\nauth = { providers = [\"a\"], headers = { \"Host\" = \"sub\" } }\n",
        "\"sub\"",
        "routes[0].auth.headers.Host",
        "cannot carry a claim",
    );
    assert_check_error(
        "[[auth.api_keys]]\nname = \"k\"\nkeys = [{ name = \"ci\", sha256 = \"abc123\" }]\n",
        "\"abc123\"",
        "auth.api_keys[0].keys[0].sha256",
        "64 hex digits",
    );
}

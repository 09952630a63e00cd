//! Every class of config error is reported with file:line:col, key path and expectation, and
//! all errors of a file are reported at once.

use rampart_config::{Diagnostics, load_str_with_env};

const BASE: &str = r#"
[[listeners]]
name = "web"
bind = "127.0.0.1:8080"

[[upstreams]]
name = "app"
targets = ["127.0.0.1:3000"]
"#;

fn env(name: &str) -> Option<String> {
    (name == "SECRET").then(|| "hunter2".to_owned())
}

fn errors_of(extra: &str) -> Diagnostics {
    let text = format!("{BASE}{extra}");
    match load_str_with_env(&text, "test.toml", &env) {
        Ok(_) => panic!("config should have been refused:\n{text}"),
        Err(d) => d,
    }
}

/// Asserts one error mentions `path` and `needle` and sits on the line containing `line_text`.
fn assert_error(d: &Diagnostics, path: &str, needle: &str, line_text: &str) {
    let rendered = d.to_string();
    let err = d
        .errors()
        .iter()
        .find(|e| e.path == path && e.message.contains(needle))
        .unwrap_or_else(|| panic!("no error at {path} containing {needle:?} in:\n{rendered}"));
    let span = err
        .span
        .clone()
        .unwrap_or_else(|| panic!("error without location:\n{rendered}"));
    let (line, col) = d.line_col(span.start);
    let header = if path.is_empty() {
        format!("test.toml:{line}:{col}: error: ")
    } else {
        format!("test.toml:{line}:{col}: error: {path}: ")
    };
    assert!(
        rendered.contains(&header),
        "missing {header:?} in:\n{rendered}"
    );
    assert!(
        rendered.contains(line_text),
        "snippet {line_text:?} missing in:\n{rendered}"
    );
}

#[test]
fn valid_config_loads() {
    let cfg = load_str_with_env(
        &format!("{BASE}\n[[routes]]\nname = \"r\"\nupstream = \"app\"\n"),
        "test.toml",
        &env,
    )
    .unwrap();
    assert_eq!(cfg.raw().routes.len(), 1);
}

#[test]
fn syntax_errors_have_a_location() {
    let d = errors_of("[[routes]\nname = ");
    assert!(d.errors()[0].message.starts_with("invalid TOML"), "{d}");
    assert!(d.errors()[0].span.is_some());
}

#[test]
fn unknown_keys_are_errors_with_a_suggestion() {
    let d = errors_of("[[routes]]\nname = \"r\"\nupstrem = \"app\"\n");
    assert_error(
        &d,
        "routes[0].upstrem",
        "unknown key `upstrem`",
        "upstrem = \"app\"",
    );
    assert!(d.to_string().contains("did you mean `upstream`"), "{d}");
}

#[test]
fn unknown_sections_are_errors() {
    let d = errors_of("[limit]\nmax_body_size = \"1MiB\"\n");
    assert_error(&d, "", "unknown section `limit`", "[limit]");
    assert!(d.to_string().contains("did you mean `limits`"), "{d}");
}

#[test]
fn wrong_types_are_errors() {
    let d = errors_of("[server]\nworkers = \"four\"\n");
    assert_error(
        &d,
        "server.workers",
        "expected a whole number",
        "workers = \"four\"",
    );
}

#[test]
fn bad_durations_and_sizes_are_errors() {
    let d = errors_of("[timeouts]\nkeepalive = \"75\"\n[limits]\nmax_body_size = \"10 parsecs\"\n");
    assert_error(
        &d,
        "timeouts.keepalive",
        "invalid duration",
        "keepalive = \"75\"",
    );
    assert_error(
        &d,
        "limits.max_body_size",
        "invalid size",
        "max_body_size = \"10 parsecs\"",
    );
}

#[test]
fn bad_regexes_are_errors() {
    let d =
        errors_of("[[routes]]\nname = \"r\"\npath_regex = \"^/(unclosed\"\nupstream = \"app\"\n");
    assert_error(
        &d,
        "routes[0].path_regex",
        "invalid regular expression",
        "path_regex = \"^/(unclosed\"",
    );
}

#[test]
fn bad_addresses_are_errors() {
    let d = errors_of("[[listeners]]\nname = \"other\"\nbind = \"localhost:80:80\"\n");
    assert_error(
        &d,
        "listeners[1].bind",
        "invalid socket address",
        "bind = \"localhost:80:80\"",
    );
}

#[test]
fn bad_targets_are_errors() {
    let d = errors_of("[[upstreams]]\nname = \"b\"\ntargets = [\"no-port\"]\n");
    assert_error(
        &d,
        "upstreams[1].targets[0]",
        "invalid target",
        "targets = [\"no-port\"]",
    );
}

#[test]
fn undefined_upstreams_are_errors_with_a_suggestion() {
    let d = errors_of("[[routes]]\nname = \"r\"\nupstream = \"ap\"\n");
    assert_error(
        &d,
        "routes[0].upstream",
        "unknown upstream \"ap\"",
        "upstream = \"ap\"",
    );
    assert!(d.to_string().contains("did you mean \"app\""), "{d}");
}

#[test]
fn undefined_listeners_are_errors() {
    let d = errors_of("[[routes]]\nname = \"r\"\nlisteners = [\"nope\"]\nupstream = \"app\"\n");
    assert_error(
        &d,
        "routes[0].listeners[0]",
        "unknown listener \"nope\"",
        "listeners = [\"nope\"]",
    );
}

#[test]
fn duplicate_names_are_errors() {
    let d = errors_of("[[upstreams]]\nname = \"app\"\ntargets = [\"127.0.0.1:1\"]\n");
    assert_error(
        &d,
        "upstreams[1].name",
        "duplicate name \"app\"",
        "name = \"app\"",
    );
}

#[test]
fn conflicting_listeners_are_errors() {
    let d = errors_of("[[listeners]]\nname = \"all\"\nbind = \"0.0.0.0:8080\"\n");
    assert_error(
        &d,
        "listeners[1].bind",
        "conflicts with listener \"web\"",
        "bind = \"0.0.0.0:8080\"",
    );
}

#[test]
fn undefined_environment_variables_are_errors() {
    let d = errors_of("[[routes]]\nname = \"r\"\nrespond = { body = \"${NOT_SET}\" }\n");
    assert_error(
        &d,
        "routes[0].respond.body",
        "NOT_SET is not set",
        "${NOT_SET}",
    );
}

#[test]
fn environment_variables_are_interpolated() {
    let text =
        format!("{BASE}[[routes]]\nname = \"r\"\nrespond = {{ body = \"k=${{SECRET}}\" }}\n");
    let cfg = load_str_with_env(&text, "t", &env).unwrap();
    assert_eq!(
        cfg.raw().routes[0].respond.as_ref().unwrap().body,
        "k=hunter2"
    );
}

#[test]
fn routes_need_exactly_one_handler() {
    let d = errors_of(
        "[[routes]]\nname = \"none\"\n[[routes]]\nname = \"two\"\nupstream = \"app\"\necho = true\n",
    );
    assert_error(
        &d,
        "routes[0]",
        "needs exactly one handler",
        "name = \"none\"",
    );
    assert_error(
        &d,
        "routes[1]",
        "exactly one handler; found upstream, echo",
        "name = \"two\"",
    );
}

#[test]
fn bad_templates_hosts_and_methods_are_errors() {
    let d = errors_of(
        "[[routes]]\nname = \"r\"\npath_template = \"/a/{*rest}/b\"\nhosts = [\"a.*.com\"]\nmethods = [\"get\"]\nupstream = \"app\"\n",
    );
    assert_error(
        &d,
        "routes[0].path_template",
        "must be the last segment",
        "path_template",
    );
    assert_error(&d, "routes[0].hosts[0]", "invalid host", "hosts = ");
    assert_error(&d, "routes[0].methods[0]", "case-sensitive", "methods = ");
}

#[test]
fn bad_redirect_status_is_an_error() {
    let d = errors_of("[[routes]]\nname = \"r\"\nredirect = { to = \"/x\", status = 200 }\n");
    assert_error(
        &d,
        "routes[0].redirect.status",
        "not a redirect status",
        "status = 200",
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let d = errors_of(
        "[server]\nworkers = \"x\"\n[[routes]]\nname = \"a\"\nupstream = \"missing\"\n[[routes]]\nname = \"b\"\nbogus = 1\nupstream = \"app\"\n[[routes]]\nname = \"a\"\nupstream = \"app\"\n",
    );
    let paths: Vec<&str> = d.errors().iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"server.workers"), "{d}");
    assert!(paths.contains(&"routes[1].bogus"), "{d}");
    assert!(paths.contains(&"routes[0].upstream"), "{d}");
    assert!(paths.contains(&"routes[2].name"), "{d}");
    assert_eq!(d.errors().len(), 4, "{d}");
    assert!(d.to_string().contains("errors found"), "{d}");
}

#[test]
fn a_config_without_listeners_is_refused() {
    let d = load_str_with_env("[server]\nworkers = 1\n", "t.toml", &env).unwrap_err();
    assert!(d.to_string().contains("no listener is defined"), "{d}");
}

#[test]
fn the_embedded_default_config_is_valid() {
    rampart_config::load_default().unwrap();
}

#[test]
fn the_json_schema_describes_every_section() {
    let schema = rampart_config::json_schema();
    let props = schema["properties"].as_object().unwrap();
    let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut sections = rampart_config::model::SECTIONS.to_vec();
    sections.sort_unstable();
    assert_eq!(keys, sections);
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
}

#[test]
fn a_proxy_protocol_header_is_refused_on_multiplexed_upstreams() {
    let d = errors_of(
        "\n[[upstreams]]\nname = \"grpc\"\ntargets = [\"127.0.0.1:50051\"]\nprotocol = \"h2c\"\nproxy_protocol = \"v2\"\n",
    );
    assert_error(
        &d,
        "upstreams[1].proxy_protocol",
        "use protocol = \"http1\"",
        "proxy_protocol = \"v2\"",
    );
    let d = errors_of(
        "\n[[upstreams]]\nname = \"x\"\ntargets = [\"127.0.0.1:1\"]\nproxy_protocol = \"v3\"\n",
    );
    assert!(d.to_string().contains("proxy_protocol"), "{d}");
}

#[test]
fn five_independent_mistakes_give_five_messages_in_file_order() {
    // A misspelled key, two wrong types in one route, a wrong type in an upstream and an unknown
    // upstream: none hides another.
    let d = errors_of(
        r#"
[[upstreams]]
name = "api"
targets = ["127.0.0.1:3001"]
connect_timeout = 5

[[routes]]
name = "a"
priority = "high"
methods = "GET"
upstream = "app"

[[routes]]
name = "b"
upstrem = "app"
upstream = "nowhere"
"#,
    );
    let rendered = d.to_string();
    assert_eq!(d.errors().len(), 5, "{rendered}");
    assert_error(
        &d,
        "upstreams[1].connect_timeout",
        "expected a duration",
        "connect_timeout = 5",
    );
    assert_error(
        &d,
        "routes[0].priority",
        "expected a whole number, found \"high\"",
        "priority = \"high\"",
    );
    assert_error(
        &d,
        "routes[0].methods",
        "expected a list of strings, found \"GET\"",
        "methods = \"GET\"",
    );
    assert_error(
        &d,
        "routes[1].upstrem",
        "did you mean `upstream`?",
        "upstrem = \"app\"",
    );
    assert_error(
        &d,
        "routes[1].upstream",
        "unknown upstream \"nowhere\"",
        "upstream = \"nowhere\"",
    );
    let lines: Vec<usize> = d
        .errors()
        .iter()
        .map(|e| d.line_col(e.span.clone().unwrap().start).0)
        .collect();
    assert!(lines.is_sorted(), "{rendered}");
    assert!(
        !rendered.contains("sequence") && !rendered.contains("i32"),
        "{rendered}"
    );
}

#[test]
fn a_key_set_aside_for_its_type_is_not_reported_again() {
    // `upstream = 7` is wrong; the route must not also be told it has no handler.
    let d = errors_of("[[routes]]\nname = \"r\"\nupstream = 7\n");
    assert_eq!(d.errors().len(), 1, "{d}");
    assert_error(
        &d,
        "routes[0].upstream",
        "expected a string, found 7",
        "upstream = 7",
    );
}

#[test]
fn client_cert_errors_point_at_the_client_cert_key() {
    let d = errors_of("[[routes]]\nname = \"r\"\nupstream = \"app\"\nclient_cert = { }\n");
    assert_error(
        &d,
        "routes[0].client_cert",
        "needs `required = true`",
        "client_cert = { }",
    );
}

#[test]
fn client_cert_required_alone_is_accepted() {
    let text = format!(
        "{BASE}\n[[routes]]\nname = \"r\"\nupstream = \"app\"\nclient_cert = {{ required = true }}\n"
    );
    let config = load_str_with_env(&text, "test.toml", &env).unwrap_or_else(|d| panic!("{d}"));
    let cc = config.raw().routes[0].client_cert.as_ref().unwrap();
    assert!(cc.required && cc.subjects.is_empty());
}

#[test]
fn references_into_a_section_that_read_cleanly_are_checked() {
    let d = errors_of(
        "[[rate_limits]]\nname = \"p\"\nrequests = 5\n\n[[routes]]\nname = \"r\"\nupstream = \"app\"\nrate_limits = [\"q\"]\n",
    );
    assert_error(
        &d,
        "routes[0].rate_limits[0]",
        "unknown rate-limit policy \"q\"",
        "rate_limits = [\"q\"]",
    );
}

#[test]
fn a_send_timeout_of_zero_or_of_the_wrong_type_is_refused_at_its_key() {
    let d = errors_of("\n[timeouts]\nsend = \"0s\"\n");
    assert_error(&d, "timeouts.send", "greater than 0s", "send = \"0s\"");
    let d = errors_of("\n[timeouts]\nsend = 60\n");
    assert_error(&d, "timeouts.send", "duration", "send = 60");
}

#[test]
fn a_defer_accept_that_is_not_a_bool_is_refused_at_its_key() {
    let text = "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\ndefer_accept = \"yes\"\n";
    let d = load_str_with_env(text, "test.toml", &env).expect_err("refused");
    assert_error(
        &d,
        "listeners[0].defer_accept",
        "`true` or `false`",
        "defer_accept = \"yes\"",
    );
}

#[test]
fn a_fast_open_queue_longer_than_the_backlog_is_refused_at_its_key() {
    let text = "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\nbacklog = 128\nfast_open = 256\n";
    let d = load_str_with_env(text, "test.toml", &env).expect_err("refused");
    assert_error(
        &d,
        "listeners[0].fast_open",
        "backlog of 128",
        "fast_open = 256",
    );
    let text = "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\nfast_open = -1\n";
    let d = load_str_with_env(text, "test.toml", &env).expect_err("refused");
    assert_error(&d, "listeners[0].fast_open", "", "fast_open = -1");
}

//! Each predicate kind: hosts, paths, methods, headers, query.

use super::*;

// ---- hosts ---------------------------------------------------------------------------------

#[test]
fn exact_host_ignores_case_port_and_trailing_dot() {
    let r = build(&[r#"name = "api"
hosts = ["API.example.com"]"#]);
    for host in [
        "api.example.com",
        "Api.Example.COM",
        "api.example.com:8443",
        "api.example.com.",
        "API.EXAMPLE.COM.:80",
    ] {
        assert_eq!(win(&r, host, "/").as_deref(), Some("api"), "{host}");
    }
    for host in [
        "example.com",
        "xapi.example.com",
        "api.example.co",
        "api.example.com.evil",
    ] {
        assert_eq!(win(&r, host, "/"), None, "{host}");
    }
}

#[test]
fn wildcard_host_matches_one_or_more_labels_but_not_the_bare_domain() {
    let r = build(&[r#"name = "wild"
hosts = ["*.example.com"]"#]);
    assert_eq!(win(&r, "a.example.com", "/").as_deref(), Some("wild"));
    assert_eq!(win(&r, "a.b.c.EXAMPLE.com:1", "/").as_deref(), Some("wild"));
    assert_eq!(win(&r, "example.com", "/"), None);
    assert_eq!(win(&r, "aexample.com", "/"), None);
    assert_eq!(win(&r, ".example.com", "/"), None);
    assert_eq!(win(&r, "", "/"), None);
}

#[test]
fn star_or_missing_hosts_match_any_host_and_requests_without_host() {
    let r = build(&[
        r#"name = "star"
hosts = ["*"]
path = "/a""#,
        r#"name = "none"
path = "/b""#,
    ]);
    for host in ["x.org", "", "127.0.0.1:9"] {
        assert_eq!(win(&r, host, "/a").as_deref(), Some("star"), "{host:?}");
        assert_eq!(win(&r, host, "/b").as_deref(), Some("none"), "{host:?}");
    }
}

#[test]
fn requests_without_host_match_only_any_host_routes() {
    let r = build(&[
        r#"name = "named"
hosts = ["api.example.com"]
priority = 5"#,
        r#"name = "wild"
hosts = ["*.example.com"]
priority = 5"#,
        r#"name = "fallback""#,
    ]);
    assert_eq!(win(&r, "", "/").as_deref(), Some("fallback"));
    assert_eq!(win(&r, "api.example.com", "/").as_deref(), Some("named"));
}

#[test]
fn exact_host_beats_wildcard_beats_any_host() {
    let r = build(&[
        r#"name = "any""#,
        r#"name = "wild"
hosts = ["*.example.com"]"#,
        r#"name = "exact"
hosts = ["api.example.com"]"#,
    ]);
    assert_eq!(win(&r, "api.example.com", "/").as_deref(), Some("exact"));
    assert_eq!(win(&r, "www.example.com", "/").as_deref(), Some("wild"));
    assert_eq!(win(&r, "other.org", "/").as_deref(), Some("any"));
}

#[test]
fn deeper_wildcard_beats_shallower_wildcard() {
    let r = build(&[
        r#"name = "shallow"
hosts = ["*.example.com"]"#,
        r#"name = "deep"
hosts = ["*.eu.example.com"]"#,
    ]);
    assert_eq!(win(&r, "api.eu.example.com", "/").as_deref(), Some("deep"));
    assert_eq!(win(&r, "eu.example.com", "/").as_deref(), Some("shallow"));
    assert_eq!(
        win(&r, "api.us.example.com", "/").as_deref(),
        Some("shallow")
    );
}

#[test]
fn a_route_ranks_by_its_most_specific_matching_host_pattern() {
    let r = build(&[
        r#"name = "both"
hosts = ["*.example.com", "api.example.com"]"#,
        r#"name = "wild"
hosts = ["*.example.com"]
methods = ["GET"]"#,
    ]);
    // Via its exact pattern `both` beats `wild`; via the wildcard, `wild` has more predicates.
    assert_eq!(win(&r, "api.example.com", "/").as_deref(), Some("both"));
    assert_eq!(win(&r, "www.example.com", "/").as_deref(), Some("wild"));
}

#[test]
fn host_specificity_beats_path_specificity() {
    let r = build(&[
        r#"name = "exact-path"
path = "/login""#,
        r#"name = "host-only"
hosts = ["api.example.com"]"#,
    ]);
    assert_eq!(
        win(&r, "api.example.com", "/login").as_deref(),
        Some("host-only")
    );
    assert_eq!(
        win(&r, "other.org", "/login").as_deref(),
        Some("exact-path")
    );
}

// ---- paths ---------------------------------------------------------------------------------

#[test]
fn exact_path_matches_only_itself() {
    let r = build(&[r#"name = "login"
path = "/login""#]);
    assert_eq!(win(&r, "h", "/login").as_deref(), Some("login"));
    for p in ["/login/", "/login/x", "/logi", "/Login"] {
        assert_eq!(win(&r, "h", p), None, "{p}");
    }
}

#[test]
fn prefix_matches_on_segment_boundaries() {
    let r = build(&[r#"name = "api"
path_prefix = "/api""#]);
    for p in ["/api", "/api/", "/api/x", "/api/x/y"] {
        assert_eq!(win(&r, "h", p).as_deref(), Some("api"), "{p}");
    }
    for p in ["/apix", "/ap", "/", "/x/api"] {
        assert_eq!(win(&r, "h", p), None, "{p}");
    }
}

#[test]
fn prefix_ending_in_slash_matches_itself_and_below_only() {
    let r = build(&[r#"name = "api"
path_prefix = "/api/""#]);
    assert_eq!(win(&r, "h", "/api/").as_deref(), Some("api"));
    assert_eq!(win(&r, "h", "/api/x").as_deref(), Some("api"));
    assert_eq!(win(&r, "h", "/api"), None);
}

#[test]
fn no_path_key_matches_every_path() {
    let r = build(&[r#"name = "all""#]);
    for p in ["/", "/a/b/c", "/%20", "*"] {
        assert_eq!(win(&r, "h", p).as_deref(), Some("all"), "{p}");
    }
}

#[test]
fn template_params_take_one_segment_and_catch_all_matches_an_empty_rest() {
    let r = build(&[
        r#"name = "user"
path_template = "/users/{id}""#,
        r#"name = "files"
path_template = "/files/{*rest}""#,
    ]);
    assert_eq!(win(&r, "h", "/users/42").as_deref(), Some("user"));
    assert_eq!(win(&r, "h", "/users/"), None);
    assert_eq!(win(&r, "h", "/users/42/x"), None);
    for p in ["/files", "/files/", "/files/a", "/files/a/b.txt"] {
        assert_eq!(win(&r, "h", p).as_deref(), Some("files"), "{p}");
    }
    assert_eq!(win(&r, "h", "/filesx"), None);
}

#[test]
fn regex_is_an_unanchored_search_as_written() {
    let r = build(&[
        r#"name = "img"
path_regex = '\.(png|jpg)$'"#,
        r#"name = "anchored"
path_regex = '^/v[0-9]+/'"#,
    ]);
    assert_eq!(win(&r, "h", "/a/b/c.png").as_deref(), Some("img"));
    assert_eq!(win(&r, "h", "/v2/x").as_deref(), Some("anchored"));
    assert_eq!(win(&r, "h", "/x/v2/x"), None);
    assert_eq!(win(&r, "h", "/c.png.txt"), None);
}

#[test]
fn path_kinds_rank_exact_template_prefix_regex_none() {
    let routes = [
        r#"name = "none""#,
        r#"name = "regex"
path_regex = "^/a/""#,
        r#"name = "prefix"
path_prefix = "/a/b""#,
        r#"name = "template"
path_template = "/a/{x}""#,
        r#"name = "exact"
path = "/a/b""#,
    ];
    // Removing the winner each time reveals the next kind in order.
    for n in (1..=routes.len()).rev() {
        let r = build(&routes[..n]);
        let expected = routes[n - 1]
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("name = ")
            .trim_matches('"');
        assert_eq!(win(&r, "h", "/a/b").as_deref(), Some(expected));
    }
}

#[test]
fn longer_prefix_wins_regardless_of_order() {
    let r = build(&[
        r#"name = "deep"
path_prefix = "/api/v1/users""#,
        r#"name = "short"
path_prefix = "/api""#,
        r#"name = "mid"
path_prefix = "/api/v1""#,
    ]);
    assert_eq!(
        win(&r, "h", "/api/v1/users/7/posts").as_deref(),
        Some("deep")
    );
    assert_eq!(win(&r, "h", "/api/v1/orders").as_deref(), Some("mid"));
    assert_eq!(win(&r, "h", "/api/v2").as_deref(), Some("short"));
}

#[test]
fn templates_with_more_literal_segments_win() {
    let r = build(&[
        r#"name = "general"
path_template = "/{a}/{b}/{c}""#,
        r#"name = "specific"
path_template = "/users/{id}/posts""#,
    ]);
    assert_eq!(win(&r, "h", "/users/1/posts").as_deref(), Some("specific"));
    assert_eq!(win(&r, "h", "/users/1/likes").as_deref(), Some("general"));
}

#[test]
fn templates_with_fewer_params_win_on_equal_literals() {
    let r = build(&[
        r#"name = "two"
path_template = "/a/{x}/{y}/{*rest}""#,
        r#"name = "one"
path_template = "/a/{x}/{y}""#,
    ]);
    // "one" has 1 literal and 2 params; "two" 1 literal and 3 params (catch-all included).
    assert_eq!(win(&r, "h", "/a/1/2").as_deref(), Some("one"));
    assert_eq!(win(&r, "h", "/a/1/2/3").as_deref(), Some("two"));
}

#[test]
fn plain_template_beats_catch_all_with_the_same_counts() {
    let r = build(&[
        r#"name = "rest"
path_template = "/a/b/{*rest}""#,
        r#"name = "plain"
path_template = "/a/{x}/c""#,
    ]);
    assert_eq!(win(&r, "h", "/a/b/c").as_deref(), Some("plain"));
    assert_eq!(win(&r, "h", "/a/b/d").as_deref(), Some("rest"));
}

#[test]
fn template_beats_a_longer_prefix() {
    let r = build(&[
        r#"name = "prefix"
path_prefix = "/users/me""#,
        r#"name = "template"
path_template = "/users/{id}""#,
    ]);
    assert_eq!(win(&r, "h", "/users/me").as_deref(), Some("template"));
    assert_eq!(win(&r, "h", "/users/me/x").as_deref(), Some("prefix"));
}

#[test]
fn a_param_and_a_catch_all_at_the_same_position_can_coexist() {
    let r = build(&[
        r#"name = "one"
path_template = "/users/{id}""#,
        r#"name = "rest"
path_template = "/users/{*rest}""#,
    ]);
    assert_eq!(win(&r, "h", "/users/1").as_deref(), Some("one"));
    assert_eq!(win(&r, "h", "/users/1/2").as_deref(), Some("rest"));
    assert_eq!(win(&r, "h", "/users").as_deref(), Some("rest"));
}

#[test]
fn a_more_specific_template_that_fails_its_predicates_falls_back_to_a_general_one() {
    let r = build(&[
        r#"name = "general"
path_template = "/users/{id}""#,
        r#"name = "me-post"
path_template = "/users/me"
methods = ["POST"]"#,
    ]);
    assert_eq!(
        winner(&r, &req("h", "/users/me").method("POST")).as_deref(),
        Some("me-post")
    );
    assert_eq!(win(&r, "h", "/users/me").as_deref(), Some("general"));
}

#[test]
fn a_longer_prefix_that_fails_its_predicates_falls_back_to_a_shorter_one() {
    let r = build(&[
        r#"name = "short"
path_prefix = "/api""#,
        r#"name = "long"
path_prefix = "/api/admin"
headers = [{ name = "x-admin", value = "1" }]"#,
    ]);
    assert_eq!(win(&r, "h", "/api/admin/x").as_deref(), Some("short"));
    assert_eq!(
        winner(&r, &req("h", "/api/admin/x").header("x-admin", b"1")).as_deref(),
        Some("long")
    );
}

// ---- methods, headers, query ----------------------------------------------------------------

#[test]
fn methods_match_any_of_the_list_and_no_list_means_any() {
    let r = build(&[
        r#"name = "write"
methods = ["POST", "PUT"]"#,
        r#"name = "any"
priority = -1"#,
    ]);
    assert_eq!(
        winner(&r, &req("h", "/").method("PUT")).as_deref(),
        Some("write")
    );
    assert_eq!(
        winner(&r, &req("h", "/").method("POST")).as_deref(),
        Some("write")
    );
    assert_eq!(
        winner(&r, &req("h", "/").method("DELETE")).as_deref(),
        Some("any")
    );
    assert_eq!(
        winner(&r, &req("h", "/").method("BREW")).as_deref(),
        Some("any")
    );
}

#[test]
fn header_predicates_value_regex_present_absent() {
    let r = build(&[
        r#"name = "prod"
headers = [{ name = "X-Env", value = "prod" }]
priority = 4"#,
        r#"name = "beta"
headers = [{ name = "x-env", regex = "^beta-[0-9]+$" }]
priority = 3"#,
        r#"name = "traced"
headers = [{ name = "traceparent" }]
priority = 2"#,
        r#"name = "anon"
headers = [{ name = "authorization", present = false }]
priority = 1"#,
        r#"name = "rest""#,
    ]);
    assert_eq!(
        winner(&r, &req("h", "/").header("x-env", b"prod")).as_deref(),
        Some("prod")
    );
    assert_eq!(
        winner(&r, &req("h", "/").header("x-env", b"beta-12")).as_deref(),
        Some("beta")
    );
    assert_eq!(
        winner(
            &r,
            &req("h", "/")
                .header("x-env", b"beta-x")
                .header("traceparent", b"")
        )
        .as_deref(),
        Some("traced")
    );
    assert_eq!(win(&r, "h", "/").as_deref(), Some("anon"));
    assert_eq!(
        winner(&r, &req("h", "/").header("authorization", b"Bearer x")).as_deref(),
        Some("rest")
    );
}

#[test]
fn any_of_multiple_header_values_suffices_and_non_utf8_never_matches_a_regex() {
    let r = build(&[
        r#"name = "tagged"
headers = [{ name = "x-tag", value = "b" }]"#,
        r#"name = "pattern"
headers = [{ name = "x-bin", regex = ".*" }]"#,
    ]);
    assert_eq!(
        winner(
            &r,
            &req("h", "/").header("x-tag", b"a").header("x-tag", b"b")
        )
        .as_deref(),
        Some("tagged")
    );
    assert_eq!(winner(&r, &req("h", "/").header("x-bin", b"\xff")), None);
    assert_eq!(
        winner(&r, &req("h", "/").header("x-bin", "é".as_bytes())).as_deref(),
        Some("pattern")
    );
}

#[test]
fn query_predicates_decode_values_and_treat_bare_params_as_empty() {
    let r = build(&[
        r#"name = "search"
query = [{ name = "q", value = "a b&c" }]
priority = 3"#,
        r#"name = "debug"
query = [{ name = "debug", value = "" }]
priority = 2"#,
        r#"name = "page"
query = [{ name = "page", regex = "^[0-9]+$" }, { name = "draft", present = false }]
priority = 1"#,
        r#"name = "rest""#,
    ]);
    assert_eq!(win(&r, "h", "/?q=a+b%26c").as_deref(), Some("search"));
    assert_eq!(win(&r, "h", "/?q=a%20b%26c&x").as_deref(), Some("search"));
    assert_eq!(win(&r, "h", "/?q=a+b&c").as_deref(), Some("rest"));
    assert_eq!(win(&r, "h", "/?debug").as_deref(), Some("debug"));
    assert_eq!(win(&r, "h", "/?debug=").as_deref(), Some("debug"));
    assert_eq!(win(&r, "h", "/?page=%33%34").as_deref(), Some("page"));
    assert_eq!(win(&r, "h", "/?page=2&draft").as_deref(), Some("rest"));
    assert_eq!(win(&r, "h", "/").as_deref(), Some("rest"));
}

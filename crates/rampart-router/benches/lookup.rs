//! Router lookup cost with 1,000 routes: ~100 hosts (exact and wildcard), exact paths,
//! prefixes, templates, a few regexes, and some method/header predicates.
//!
//! Run: `cargo bench -p rampart-router --bench lookup -- --warm-up-time 1 --measurement-time 3`

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use rampart_router::{Matcher, RequestView, Router};

/// Config text with 1,000 routes.
fn config_text() -> String {
    let mut t = String::from("[[listeners]]\nname = \"main\"\nbind = \"127.0.0.1:8080\"\n");
    let mut n = 0;
    let mut route = |t: &mut String, body: String| {
        let _ = write!(t, "\n[[routes]]\nname = \"r{n}\"\n{body}echo = true\n");
        n += 1;
    };
    // 300 exact paths over 60 exact hosts.
    for i in 0..300 {
        route(
            &mut t,
            format!(
                "hosts = [\"svc{}.example.com\"]\npath = \"/v1/exact/{i}\"\n",
                i % 60
            ),
        );
    }
    // 300 templates: half on exact hosts, half on any host.
    for i in 0..300 {
        let host = if i % 2 == 0 {
            format!("hosts = [\"svc{}.example.com\"]\n", i % 60)
        } else {
            String::new()
        };
        let tpl = if i % 3 == 0 {
            format!("/api/v{}/res{i}/{{id}}", i % 5)
        } else {
            format!("/users/{{uid}}/items{i}/{{item}}")
        };
        route(&mut t, format!("{host}path_template = \"{tpl}\"\n"));
    }
    // 250 prefixes of varying depth: 40 wildcard hosts, the rest any host.
    for i in 0..250 {
        let host = if i % 5 == 0 {
            format!("hosts = [\"*.t{}.example.com\"]\n", i % 40)
        } else {
            String::new()
        };
        let prefix = match i % 3 {
            0 => format!("/p{i}"),
            1 => format!("/p{i}/a/b"),
            _ => format!("/p{i}/a/b/c/d"),
        };
        route(&mut t, format!("{host}path_prefix = \"{prefix}\"\n"));
    }
    // 140 prefixes with method or header predicates.
    for i in 0..140 {
        let pred = if i % 2 == 0 {
            "methods = [\"POST\", \"PUT\"]\n".to_owned()
        } else {
            format!("headers = [{{ name = \"x-tenant\", value = \"t{i}\" }}]\n")
        };
        route(&mut t, format!("path_prefix = \"/q{i}/x\"\n{pred}"));
    }
    // 10 regexes.
    for i in 0..10 {
        route(&mut t, format!("path_regex = '^/re{i}/[0-9]+$'\n"));
    }
    assert_eq!(n, 1000);
    t
}

fn router() -> Router<usize> {
    let config =
        rampart_config::load_str(&config_text(), "bench.toml").unwrap_or_else(|d| panic!("{d}"));
    let entries = config
        .raw()
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                Matcher::from_config(r, &format!("routes[{i}]"))
                    .unwrap_or_else(|e| panic!("{e:?}")),
                i,
            )
        })
        .collect();
    Router::new(entries).unwrap_or_else(|e| panic!("{e:?}"))
}

/// One measured lookup and the route it must find.
struct Case<'a> {
    label: &'a str,
    host: Option<&'a str>,
    path: &'a str,
    headers: &'a HeaderMap,
    expected: Option<&'a str>,
}

fn bench(c: &mut Criterion) {
    let router = router();
    assert_eq!(router.len(), 1000);
    let none = HeaderMap::new();
    let mut tenant = HeaderMap::new();
    tenant.insert("x-tenant", HeaderValue::from_static("t7"));
    let get = Method::GET;
    let case = |label, host, path, headers, expected| Case {
        label,
        host: Some(host),
        path,
        headers,
        expected,
    };
    let cases = [
        case(
            "exact_path_hit",
            "svc7.example.com",
            "/v1/exact/127",
            &none,
            Some("r127"),
        ),
        case(
            "template_hit",
            "svc1.example.com:8080",
            "/users/42/items121/9",
            &none,
            Some("r421"),
        ),
        case(
            "deep_prefix_hit",
            "API.t5.example.com",
            "/p205/a/b/c/d/e/f/g/h/i",
            &none,
            Some("r805"),
        ),
        case(
            "header_prefix_hit",
            "svc1.example.com",
            "/q7/x/y",
            &tenant,
            Some("r857"),
        ),
        case(
            "regex_hit",
            "svc2.example.com",
            "/re7/123456",
            &none,
            Some("r997"),
        ),
        case(
            "miss",
            "unknown.example.org",
            "/nothing/here/at/all",
            &none,
            None,
        ),
    ];
    let mut group = c.benchmark_group("lookup_1000_routes");
    for Case {
        label,
        host,
        path,
        headers,
        expected,
    } in cases
    {
        let view = RequestView {
            method: &get,
            host,
            path,
            query: None,
            headers,
        };
        let got = router
            .lookup(&view)
            .and_then(|m| router.get(m.index))
            .map(|(m, _)| m.name().to_owned());
        assert_eq!(
            got.as_deref(),
            expected,
            "{label}: the bench must measure what it claims"
        );
        group.bench_function(label, |b| {
            b.iter(|| router.lookup(black_box(&view)).map(|m| m.index));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

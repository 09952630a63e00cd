//! Storing and reuse: freshness, what is never stored, `Vary`, `HEAD` from `GET`,
//! `Authorization`, unsafe methods, bypass rules, the status header and the access log.

use super::{Answer, Origin, gateway, get, send};
use crate::support::within;

fn counted(cache_control: &'static str) -> impl Fn(&http::request::Parts, u64) -> Answer {
    move |_, n| Answer::ok(format!("v{n}"), &[("cache-control", cache_control)])
}

#[tokio::test]
async fn a_fresh_response_is_served_from_the_cache_with_its_age() {
    let origin = Origin::start(counted("max-age=60")).await;
    let gw = gateway(origin.addr(), "", "");
    let first = get(&gw, "/a", &[]).await;
    assert_eq!(
        (first.status, first.cache(), first.body.as_str()),
        (200, "MISS", "v1")
    );
    let second = get(&gw, "/a", &[]).await;
    assert_eq!((second.cache(), second.body.as_str()), ("HIT", "v1"));
    assert!(second.header("age").is_some());
    assert_eq!(origin.requests(), 1);
    // Another URL, and a route without cache (no status header at all).
    assert_eq!(get(&gw, "/b", &[]).await.cache(), "MISS");
    let plain = get(&gw, "/plain/x", &[]).await;
    assert!(plain.header("x-cache").is_none());
    // The access log shows the same value.
    let lines = gw.access_log_json(4);
    let caches: Vec<&str> = lines
        .iter()
        .map(|l| l["cache"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(caches[..3], ["MISS", "HIT", "MISS"]);
    assert_eq!(lines[1]["reason"], "cache_hit");
}

#[tokio::test]
async fn no_store_private_set_cookie_and_vary_star_are_never_stored() {
    let origin = Origin::start(|parts, n| {
        let headers: &[(&'static str, &str)] = match parts.uri.path() {
            "/no-store" => &[("cache-control", "max-age=60, no-store")],
            "/private" => &[("cache-control", "max-age=60, private")],
            "/cookie" => &[("cache-control", "max-age=60"), ("set-cookie", "s=1")],
            _ => &[("cache-control", "max-age=60"), ("vary", "*")],
        };
        Answer::ok(format!("v{n}"), headers)
    })
    .await;
    let gw = gateway(origin.addr(), "", "");
    for path in ["/no-store", "/private", "/cookie", "/vary-star"] {
        assert_eq!(get(&gw, path, &[]).await.cache(), "MISS", "{path}");
        assert_eq!(get(&gw, path, &[]).await.cache(), "MISS", "{path} again");
    }
    assert_eq!(origin.requests(), 8);
}

#[tokio::test]
async fn a_request_no_store_or_no_cache_skips_reuse() {
    let origin = Origin::start(counted("max-age=60")).await;
    let gw = gateway(origin.addr(), "", "");
    assert_eq!(
        get(&gw, "/r", &[("cache-control", "no-store")])
            .await
            .cache(),
        "MISS"
    );
    assert_eq!(get(&gw, "/r", &[]).await.cache(), "MISS");
    assert_eq!(get(&gw, "/r", &[]).await.cache(), "HIT");
    let again = get(&gw, "/r", &[("cache-control", "no-cache")]).await;
    assert_eq!((again.cache(), again.body.as_str()), ("MISS", "v3"));
    let picky = get(&gw, "/r", &[("cache-control", "min-fresh=120")]).await;
    assert_eq!(picky.body, "v4");
    assert_eq!(origin.requests(), 4);
}

#[tokio::test]
async fn vary_keeps_one_variant_per_value_and_a_client_without_the_header_gets_its_own() {
    let origin = Origin::start(|parts, n| {
        let lang = parts
            .headers
            .get("accept-language")
            .map_or("none", |v| v.to_str().unwrap());
        Answer::ok(
            format!("{lang}-{n}"),
            &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
        )
    })
    .await;
    let gw = gateway(origin.addr(), "", "");
    let fr = [("accept-language", "fr")];
    let de = [("accept-language", "de")];
    assert_eq!(get(&gw, "/v", &fr).await.body, "fr-1");
    assert_eq!(get(&gw, "/v", &de).await.body, "de-2");
    let omitted = get(&gw, "/v", &[]).await;
    assert_eq!((omitted.cache(), omitted.body.as_str()), ("MISS", "none-3"));
    assert_eq!(get(&gw, "/v", &[]).await.body, "none-3");
    assert_eq!(get(&gw, "/v", &fr).await.body, "fr-1");
    assert_eq!(get(&gw, "/v", &de).await.body, "de-2");
    assert_eq!(origin.requests(), 3);
}

#[tokio::test]
async fn malformed_cache_control_never_fails_and_is_not_fresh() {
    let origin = Origin::start(|_, n| {
        Answer::ok(
            format!("v{n}"),
            &[("cache-control", "max-age=abc, ,,=, \"unclosed, s-maxage=")],
        )
    })
    .await;
    let gw = gateway(origin.addr(), "", "");
    let odd_request = [("cache-control", "max-age=-5,,=,max-stale=x, \"")];
    for _ in 0..2 {
        let got = get(&gw, "/m", &odd_request).await;
        assert_eq!((got.status, got.cache()), (200, "MISS"));
    }
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn head_is_answered_from_a_get_entry() {
    let origin = Origin::start(counted("max-age=60")).await;
    let gw = gateway(origin.addr(), "", "");
    assert_eq!(get(&gw, "/h", &[]).await.body, "v1");
    let head = send(&gw, "HEAD", "/h", &[]).await;
    assert_eq!(
        (head.status, head.cache(), head.body.as_str()),
        (200, "HIT", "")
    );
    assert_eq!(head.header("content-length"), Some("2"));
    assert_eq!(origin.requests(), 1);
}

#[tokio::test]
async fn authorized_requests_are_stored_only_when_the_response_allows_it() {
    let origin = Origin::start(|parts, n| {
        let cc = if parts.uri.path() == "/public" {
            "public, max-age=60"
        } else {
            "max-age=60"
        };
        Answer::ok(format!("v{n}"), &[("cache-control", cc)])
    })
    .await;
    let gw = gateway(origin.addr(), "", "");
    let auth = [("authorization", "Bearer x")];
    get(&gw, "/secret", &auth).await;
    assert_eq!(get(&gw, "/secret", &auth).await.cache(), "MISS");
    get(&gw, "/public", &auth).await;
    assert_eq!(get(&gw, "/public", &auth).await.cache(), "HIT");
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_uri_and_its_location() {
    let origin = Origin::start(|parts, n| {
        if parts.method == http::Method::POST {
            return Answer::ok("done", &[("location", "/other")]).status(201);
        }
        Answer::ok(format!("v{n}"), &[("cache-control", "max-age=60")])
    })
    .await;
    let gw = gateway(origin.addr(), "", "");
    get(&gw, "/item", &[]).await;
    get(&gw, "/other", &[]).await;
    assert_eq!(get(&gw, "/item", &[]).await.cache(), "HIT");
    assert_eq!(send(&gw, "POST", "/item", &[]).await.status, 201);
    assert_eq!(get(&gw, "/item", &[]).await.cache(), "MISS");
    assert_eq!(get(&gw, "/other", &[]).await.cache(), "MISS");
}

#[tokio::test]
async fn bypass_rules_key_headers_and_ignored_query_parameters() {
    let origin = Origin::start(counted("max-age=60")).await;
    let rules = r#"bypass_cookies = ["session"], exclude_extensions = ["php"], key_headers = ["x-tenant"], ignore_query = ["utm_source"]"#;
    let gw = gateway(origin.addr(), rules, "");
    let session = [("cookie", "session=abc")];
    assert_eq!(get(&gw, "/p", &session).await.cache(), "BYPASS");
    assert_eq!(get(&gw, "/index.php", &[]).await.cache(), "BYPASS");
    let a = [("x-tenant", "a")];
    let b = [("x-tenant", "b")];
    assert_eq!(get(&gw, "/t?utm_source=x", &a).await.body, "v3");
    assert_eq!(get(&gw, "/t", &a).await.cache(), "HIT");
    assert_eq!(get(&gw, "/t?utm_source=y", &b).await.body, "v4");
    let lines = gw.access_log_json(5);
    assert_eq!(lines[0]["cache"], "BYPASS");
}

#[tokio::test]
async fn only_if_cached_without_an_object_is_504_and_metrics_count() {
    let origin = Origin::start(counted("max-age=60")).await;
    let gw = gateway(origin.addr(), "", "");
    let got = get(&gw, "/o", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(got.status, 504);
    assert_eq!(origin.requests(), 0);
    get(&gw, "/o", &[]).await;
    get(&gw, "/o", &[]).await;
    let text = within(async { gw.handle().metrics_text() }).await;
    assert!(
        text.contains("rampart_cache_requests_total{status=\"hit\"} 1"),
        "{text}"
    );
    assert!(text.contains("rampart_cache_stored_total 1"), "{text}");
}

#[tokio::test]
async fn objects_over_the_size_cap_stream_through_unstored() {
    let origin =
        Origin::start(|_, _| Answer::ok("x".repeat(4096), &[("cache-control", "max-age=60")]))
            .await;
    let gw = gateway(origin.addr(), r#"max_object_size = "1KiB""#, "");
    for _ in 0..2 {
        let got = get(&gw, "/big", &[]).await;
        assert_eq!((got.cache(), got.body.len()), ("MISS", 4096));
    }
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn surrogate_control_speaks_to_the_cache_and_is_not_passed_on() {
    let origin = Origin::start(|_, n| {
        Answer::ok(
            format!("v{n}"),
            &[
                ("cache-control", "no-store"),
                ("surrogate-control", "max-age=60"),
            ],
        )
    })
    .await;
    let gw = gateway(origin.addr(), "", "");
    let first = get(&gw, "/s", &[]).await;
    assert!(first.header("surrogate-control").is_none());
    let second = get(&gw, "/s", &[]).await;
    assert_eq!((second.cache(), second.body.as_str()), ("HIT", "v1"));
    assert!(second.header("surrogate-control").is_none());
    assert_eq!(second.header("cache-control"), Some("no-store"));
}

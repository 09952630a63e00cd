//! Conditional revalidation with the stored validators (304 merged into the object) and the
//! client's own conditionals answered from the cache (304 / 412).

use super::{Answer, Origin, gateway, get};

/// An origin whose object has `ETag: "v1"` and must be revalidated on every use; a
/// revalidation that matches gets a 304 carrying `x-checked: {n}`.
async fn validating_origin() -> Origin {
    Origin::start(|parts, n| {
        let matches = parts
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"");
        if matches {
            let checked = n.to_string();
            return Answer::ok(
                "",
                &[
                    ("etag", "\"v1\""),
                    ("cache-control", "max-age=0"),
                    ("x-checked", &checked),
                ],
            )
            .status(304);
        }
        Answer::ok(
            "body-v1",
            &[
                ("etag", "\"v1\""),
                ("cache-control", "max-age=0"),
                ("last-modified", "Mon, 07 Dec 2026 10:00:00 GMT"),
            ],
        )
    })
    .await
}

#[tokio::test]
async fn a_stale_object_is_revalidated_and_the_304_merged() {
    let origin = validating_origin().await;
    let gw = gateway(origin.addr(), "", "");
    let first = get(&gw, "/r", &[]).await;
    assert_eq!((first.cache(), first.body.as_str()), ("MISS", "body-v1"));
    let second = get(&gw, "/r", &[]).await;
    assert_eq!(
        (second.status, second.cache(), second.body.as_str()),
        (200, "REVALIDATED", "body-v1")
    );
    // The 304's fields replace the stored ones.
    assert_eq!(second.header("x-checked"), Some("2"));
    let third = get(&gw, "/r", &[]).await;
    assert_eq!(third.header("x-checked"), Some("3"));
    assert_eq!(origin.requests(), 3);
}

#[tokio::test]
async fn client_conditionals_are_answered_from_the_object() {
    let origin = validating_origin().await;
    let gw = gateway(origin.addr(), "", "");
    get(&gw, "/c", &[]).await;
    // Revalidated with the cache's validators, then answered 304 for the client's.
    let not_modified = get(&gw, "/c", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(
        (not_modified.status, not_modified.cache()),
        (304, "REVALIDATED")
    );
    assert_eq!(not_modified.header("etag"), Some("\"v1\""));
    let other = get(&gw, "/c", &[("if-none-match", "\"v0\"")]).await;
    assert_eq!((other.status, other.body.as_str()), (200, "body-v1"));
    let failed = get(&gw, "/c", &[("if-match", "\"nope\"")]).await;
    assert_eq!(failed.status, 412);
}

#[tokio::test]
async fn a_fresh_object_answers_conditionals_without_the_origin() {
    let origin = Origin::start(|_, _| {
        Answer::ok(
            "fresh",
            &[
                ("etag", "\"f\""),
                ("cache-control", "max-age=60"),
                ("last-modified", "Mon, 07 Dec 2026 10:00:00 GMT"),
            ],
        )
    })
    .await;
    let gw = gateway(origin.addr(), "", "");
    get(&gw, "/f", &[]).await;
    let by_tag = get(&gw, "/f", &[("if-none-match", "W/\"f\"")]).await;
    assert_eq!((by_tag.status, by_tag.cache()), (304, "HIT"));
    let by_date = get(
        &gw,
        "/f",
        &[("if-modified-since", "Tue, 08 Dec 2026 10:00:00 GMT")],
    )
    .await;
    assert_eq!(by_date.status, 304);
    let changed = get(
        &gw,
        "/f",
        &[("if-unmodified-since", "Sun, 06 Dec 2026 10:00:00 GMT")],
    )
    .await;
    assert_eq!(changed.status, 412);
    assert_eq!(origin.requests(), 1);
}

//! Stale objects: `stale-while-revalidate` (served while one background request refreshes
//! them, also when the origin dies meanwhile), `stale-if-error` (served for a failing or dead
//! origin), from the response and as route defaults. Objects are made stale at once by an
//! `Age` older than their `max-age`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Answer, Origin, eventually, gateway, get};

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_behind() {
    let origin = Origin::start(|_, n| {
        if n == 1 {
            Answer::ok(
                "old",
                &[
                    ("cache-control", "max-age=60, stale-while-revalidate=600"),
                    ("age", "100"),
                ],
            )
        } else {
            Answer::ok(format!("new{n}"), &[("cache-control", "max-age=60")])
        }
    })
    .await;
    let gw = gateway(origin.addr(), "", "");
    assert_eq!(get(&gw, "/swr", &[]).await.body, "old");
    let stale = get(&gw, "/swr", &[]).await;
    assert_eq!((stale.cache(), stale.body.as_str()), ("STALE", "old"));
    assert!(
        eventually(|| origin.requests() == 2).await,
        "one background refresh"
    );
    // The refreshed object is stored once its body is read; poll until it is served.
    let mut refreshed = None;
    for _ in 0..100 {
        let got = get(&gw, "/swr", &[]).await;
        if got.cache() == "HIT" {
            refreshed = Some(got.body);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(refreshed.as_deref(), Some("new2"));
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn an_origin_dying_during_the_refresh_leaves_the_stale_object_served() {
    let origin =
        Origin::start(|_, _| Answer::ok("old", &[("cache-control", "max-age=60"), ("age", "100")]))
            .await;
    let gw = gateway(origin.addr(), r#"stale_while_revalidate = "10m""#, "");
    assert_eq!(get(&gw, "/dies", &[]).await.body, "old");
    origin.stop();
    for _ in 0..3 {
        let got = get(&gw, "/dies", &[]).await;
        assert_eq!(
            (got.status, got.cache(), got.body.as_str()),
            (200, "STALE", "old")
        );
    }
}

#[tokio::test]
async fn stale_if_error_stands_in_for_a_failing_then_dead_origin() {
    let failing = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&failing);
    let origin = Origin::start(move |_, _| {
        if flag.load(Ordering::SeqCst) {
            Answer::ok("oops", &[]).status(500)
        } else {
            Answer::ok(
                "good",
                &[
                    ("cache-control", "max-age=60, stale-if-error=600"),
                    ("age", "100"),
                ],
            )
        }
    })
    .await;
    let gw = gateway(origin.addr(), "", "");
    assert_eq!(get(&gw, "/sie", &[]).await.body, "good");
    failing.store(true, Ordering::SeqCst);
    let on_500 = get(&gw, "/sie", &[]).await;
    assert_eq!(
        (on_500.status, on_500.cache(), on_500.body.as_str()),
        (200, "STALE", "good")
    );
    origin.stop();
    let on_dead = get(&gw, "/sie", &[]).await;
    assert_eq!(
        (on_dead.status, on_dead.cache(), on_dead.body.as_str()),
        (200, "STALE", "good")
    );
}

#[tokio::test]
async fn without_stale_if_error_the_error_goes_through() {
    let origin = Origin::start(|_, n| {
        if n == 1 {
            Answer::ok("good", &[("cache-control", "max-age=60"), ("age", "100")])
        } else {
            Answer::ok("oops", &[]).status(500)
        }
    })
    .await;
    let gw = gateway(origin.addr(), "", "");
    get(&gw, "/e", &[]).await;
    let got = get(&gw, "/e", &[]).await;
    assert_eq!((got.status, got.cache()), (500, "MISS"));
}

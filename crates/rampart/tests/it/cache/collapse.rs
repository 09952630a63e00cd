//! Request collapsing: concurrent misses for one object make one upstream request; an
//! uncacheable answer lets the waiters go upstream themselves.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::join_all;

use super::{Answer, Origin, gateway, get, store};

/// Concurrent clients.
const CLIENTS: usize = 6;

#[tokio::test]
async fn concurrent_misses_wait_for_one_response_even_if_it_changes_meanwhile() {
    // Each origin answer differs ("v1", "v2", ...): every collapsed client must get the one
    // response the first request got, not a newer one.
    let origin = Origin::start(|_, n| {
        Answer::ok(format!("v{n}"), &[("cache-control", "max-age=60")])
            .after(Duration::from_millis(400))
    })
    .await;
    let gw = gateway(origin.addr(), "", "");
    let all = join_all((0..CLIENTS).map(|_| get(&gw, "/slow", &[]))).await;
    assert!(
        all.iter().all(|g| g.status == 200 && g.body == "v1"),
        "{:?}",
        all.iter().map(|g| &g.body).collect::<Vec<_>>()
    );
    assert_eq!(origin.requests(), 1);
    let collapsed = store(&gw).counters().collapsed.load(Ordering::Relaxed);
    assert!(collapsed >= 1, "collapsed {collapsed}");
    assert_eq!(all.iter().filter(|g| g.cache() == "MISS").count(), 1);
}

#[tokio::test]
async fn an_uncacheable_answer_releases_the_waiters_upstream() {
    let origin = Origin::start(|_, n| {
        Answer::ok(format!("v{n}"), &[("cache-control", "no-store")])
            .after(Duration::from_millis(300))
    })
    .await;
    let gw = gateway(origin.addr(), "", "");
    let all = join_all((0..CLIENTS).map(|_| get(&gw, "/nostore", &[]))).await;
    assert!(all.iter().all(|g| g.status == 200));
    assert_eq!(origin.requests(), CLIENTS as u64);
}

#[tokio::test]
async fn a_failing_leader_releases_the_waiters() {
    let origin = Origin::start(|_, n| {
        if n == 1 {
            Answer::ok("broken", &[])
                .status(503)
                .after(Duration::from_millis(300))
        } else {
            Answer::ok(format!("v{n}"), &[("cache-control", "max-age=60")])
        }
    })
    .await;
    let gw = gateway(origin.addr(), r#"collapse_timeout = "10s""#, "");
    let all = join_all((0..CLIENTS).map(|_| get(&gw, "/fails", &[]))).await;
    assert_eq!(all.iter().filter(|g| g.status == 503).count(), 1);
    assert!(all.iter().filter(|g| g.status == 200).count() == CLIENTS - 1);
}

//! The byte bound: filling the store past `cache.max_size` keeps it within it, and a scan of
//! URLs asked for once does not push out an object asked for often (the admission filter
//! counts requests once the store is half full).

use std::sync::atomic::Ordering;

use super::{Answer, Origin, gateway, get, store};

/// Body size of each object.
const OBJECT: usize = 48 * 1024;

/// Distinct URLs scanned: about three times the bound.
const SCAN: usize = 64;

#[tokio::test]
async fn filling_past_the_bound_keeps_the_store_within_it_and_the_hot_object_in() {
    let origin =
        Origin::start(|_, _| Answer::ok("z".repeat(OBJECT), &[("cache-control", "max-age=600")]))
            .await;
    let gw = gateway(
        origin.addr(),
        r#"max_object_size = "64KiB""#,
        "[cache]\nmax_size = \"1MiB\"\n",
    );
    // The store counts how often objects are asked for once it is half full.
    for i in 0..12 {
        get(&gw, &format!("/warm/{i}"), &[]).await;
    }
    for _ in 0..8 {
        get(&gw, "/hot", &[]).await;
    }
    assert_eq!(get(&gw, "/hot", &[]).await.cache(), "HIT");
    let bound = store(&gw).max_size();
    for i in 0..SCAN {
        let got = get(&gw, &format!("/cold/{i}"), &[]).await;
        assert_eq!(got.body.len(), OBJECT);
        assert!(
            store(&gw).size() <= bound,
            "{} > {bound} after {i}",
            store(&gw).size()
        );
    }
    let s = store(&gw);
    assert!(s.size() <= bound);
    assert!(s.objects() < (SCAN + 13) as u64, "{} objects", s.objects());
    let refused_or_evicted =
        s.counters().stored.load(Ordering::Relaxed) as usize - s.objects() as usize;
    assert!(refused_or_evicted > 0);
    assert_eq!(
        get(&gw, "/hot", &[]).await.cache(),
        "HIT",
        "the hot object stayed"
    );
}

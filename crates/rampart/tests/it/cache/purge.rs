//! Purging: the admin API by key, prefix and `Surrogate-Key`, and the `PURGE` method behind
//! its access list.

use super::{Answer, Origin, gateway, get, send};
use crate::support::{client, within};

const ADMIN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\n";

async fn tagged_origin() -> Origin {
    Origin::start(|parts, n| {
        let tag = if parts.uri.path().starts_with("/news") {
            "news"
        } else {
            "other"
        };
        Answer::ok(
            format!("v{n}"),
            &[("cache-control", "max-age=60"), ("surrogate-key", tag)],
        )
    })
    .await
}

async fn admin_delete(url: &str) -> (u16, serde_json::Value) {
    let resp = within(client().delete(url).send()).await.unwrap();
    let status = resp.status().as_u16();
    let text = within(resp.text()).await.unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

#[tokio::test]
async fn the_admin_api_purges_by_key_prefix_and_surrogate_key() {
    let origin = tagged_origin().await;
    let gw = gateway(origin.addr(), "", ADMIN);
    let host = gw.addr("public");
    for path in ["/news/1", "/news/2", "/docs/a", "/docs/b", "/x"] {
        get(&gw, path, &[]).await;
        assert_eq!(get(&gw, path, &[]).await.cache(), "HIT");
    }
    let key = format!("http%3A%2F%2F{host}%2Fx");
    let (status, body) = admin_delete(&gw.admin_url(&format!("/cache?key={key}"))).await;
    assert_eq!((status, body["purged"].as_u64()), (200, Some(1)));
    assert_eq!(get(&gw, "/x", &[]).await.cache(), "MISS");
    let prefix = format!("http://{host}/docs/");
    let (_, body) = admin_delete(&gw.admin_url(&format!("/cache?prefix={prefix}"))).await;
    assert_eq!(body["purged"].as_u64(), Some(2));
    assert_eq!(get(&gw, "/docs/a", &[]).await.cache(), "MISS");
    let (_, body) = admin_delete(&gw.admin_url("/cache?tag=news")).await;
    assert_eq!(body["purged"].as_u64(), Some(2));
    assert_eq!(get(&gw, "/news/1", &[]).await.cache(), "MISS");
    assert_eq!(get(&gw, "/news/2", &[]).await.cache(), "MISS");
    let (bad, _) = admin_delete(&gw.admin_url("/cache?what=1")).await;
    assert_eq!(bad, 400);
    let stats: serde_json::Value = within(async {
        let text = client()
            .get(gw.admin_url("/cache"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    })
    .await;
    assert_eq!(stats["purged"].as_u64(), Some(5));
}

#[tokio::test]
async fn purge_method_is_honoured_only_from_the_access_list() {
    let origin = tagged_origin().await;
    let allowed = gateway(
        origin.addr(),
        "",
        "[cache]\npurge_allow = [\"127.0.0.1\"]\n",
    );
    get(&allowed, "/p", &[]).await;
    let purged = send(&allowed, "PURGE", "/p", &[]).await;
    assert_eq!(purged.status, 200);
    assert_eq!(send(&allowed, "PURGE", "/p", &[]).await.status, 404);
    assert_eq!(get(&allowed, "/p", &[]).await.cache(), "MISS");
    let denied = gateway(
        origin.addr(),
        "",
        "[cache]\npurge_allow = [\"10.0.0.0/8\"]\n",
    );
    get(&denied, "/p", &[]).await;
    assert_eq!(send(&denied, "PURGE", "/p", &[]).await.status, 403);
    assert_eq!(get(&denied, "/p", &[]).await.cache(), "HIT");
}

//! `compress` config: what is refused at load (with the key named), and that levels, types
//! and the minimum size given in a table are the ones applied.

use super::{ShapingOrigin, decode, fetch_encoded, text};

/// The diagnostics of compiling a config whose one route has `compress = {value}`.
fn refusal(value: &str) -> String {
    let text = format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[routes]]
name = "r"
path_prefix = "/"
echo = true
compress = {value}
"#
    );
    match rampart_config::load_str(&text, "t.toml").and_then(|c| rampart_server::compile(&c)) {
        Ok(_) => panic!("compress = {value} was accepted"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn bad_compress_tables_are_refused_with_their_key() {
    for (value, expected) in [
        ("{ levels = { gzip = 10 } }", "compress.levels.gzip"),
        ("{ levels = { br = 12 } }", "compress.levels.br"),
        ("{ levels = { zstd = 0 } }", "compress.levels.zstd"),
        (r#"{ algorithms = ["gzip", "gzip"] }"#, "listed twice"),
        ("{ algorithms = [] }", "at least one algorithm"),
        (r#"{ types = ["html"] }"#, "compress.types"),
        (r#"{ algorithms = ["deflate"] }"#, "deflate"),
        (r#"{ min_size = "lots" }"#, "invalid size"),
        ("{ level = 3 }", "level"),
    ] {
        let message = refusal(value);
        assert!(message.contains(expected), "{value}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_sets_the_order_types_minimum_and_levels() {
    let origin = ShapingOrigin::start().await;
    let table = r#"{ algorithms = ["gzip", "br"], types = ["application/json"], min_size = "10KiB", levels = { gzip = 1 } }"#;
    let gw = super::gateway(origin.addr, table);
    let addr = gw.addr("public");
    let all = "zstd, br, gzip";
    // zstd is not offered; gzip comes first in the server's order.
    let resp = fetch_encoded(addr, "/x?type=application/json&len=20000", all).await;
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    assert_eq!(decode("gzip", &resp.body), text(20_000));
    let fast = resp.body.len();
    // Under the minimum size, or of a type not listed: as it is.
    let small = fetch_encoded(addr, "/x?type=application/json&len=5000", all).await;
    assert_eq!(small.header("content-encoding"), None);
    let html = fetch_encoded(addr, "/x?len=20000", all).await;
    assert_eq!(html.header("content-encoding"), None);
    // Level 9 packs the same text tighter than level 1 does.
    let origin9 = ShapingOrigin::start().await;
    let gw9 = super::gateway(
        origin9.addr,
        r#"{ algorithms = ["gzip"], types = ["application/json"], levels = { gzip = 9 } }"#,
    );
    let best = fetch_encoded(
        gw9.addr("public"),
        "/x?type=application/json&len=20000",
        "gzip",
    )
    .await;
    assert!(
        best.body.len() < fast,
        "level 9: {} bytes, level 1: {fast}",
        best.body.len()
    );
}

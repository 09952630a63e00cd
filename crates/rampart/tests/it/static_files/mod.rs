//! The `static` handler through a real gateway on real files: index files, MIME types,
//! `Cache-Control`, the trailing-slash redirect, the SPA fallback, `try_files`, conditional
//! requests, listings, precompressed siblings, HEAD and 405. Ranges (and a 10 GiB sparse
//! file) are in [`ranges`]; escapes from the root, hidden and non-regular files in [`safety`].

mod ranges;
mod safety;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rampart_testkit::{RawResponse, TestGateway, raw_request};

use crate::support::TempDir;

/// Bound on every wait in this area.
const WAIT: Duration = Duration::from_secs(20);

/// A site: `index.html`, assets, a sub-directory with its own index, an `about.html`.
pub(crate) fn site() -> TempDir {
    let dir = TempDir::new("static");
    let root = dir.0.join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>\n").unwrap();
    std::fs::write(root.join("about.html"), "<h1>about</h1>\n").unwrap();
    std::fs::write(root.join("sub/index.html"), "<h1>sub</h1>\n").unwrap();
    std::fs::write(
        root.join("assets/app.js"),
        "console.log('app');\n".repeat(100),
    )
    .unwrap();
    std::fs::write(root.join("assets/style.css"), "body { margin: 0 }\n").unwrap();
    std::fs::write(root.join("assets/data.json"), "{\"a\":1}\n").unwrap();
    std::fs::write(root.join("assets/blob.weird"), [0u8, 1, 2, 3]).unwrap();
    dir
}

/// A gateway with one `static` route on `/` whose table is `root = "…" ` plus `extra`.
pub(crate) fn gateway(root: &Path, extra: &str) -> TestGateway {
    gateway_with(root, extra, "")
}

/// As [`gateway`], with the route's other keys `route_keys` (lines after `static`).
pub(crate) fn gateway_with(root: &Path, extra: &str, route_keys: &str) -> TestGateway {
    TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[routes]]
name = "site"
path_prefix = "/"
static = {{ root = {root:?}{extra} }}
{route_keys}
"#,
        root = root.display().to_string()
    ))
    .start()
}

/// A raw request (`method path`, extra header lines) on a fresh connection.
pub(crate) async fn send(addr: SocketAddr, method: &str, path: &str, headers: &str) -> RawResponse {
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n");
    let raw = tokio::time::timeout(WAIT, raw_request(addr, request.as_bytes()))
        .await
        .expect("an answer in time")
        .unwrap();
    RawResponse::parse_for(&raw, method == "HEAD").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_index_files_and_types_are_served() {
    let site = site();
    let gw = gateway(
        &site.0.join("www"),
        r#", cache_control = "public, max-age=60""#,
    );
    let addr = gw.addr("public");
    for (path, body, ty) in [
        ("/", "<h1>home</h1>\n", "text/html; charset=utf-8"),
        ("/index.html", "<h1>home</h1>\n", "text/html; charset=utf-8"),
        ("/sub/", "<h1>sub</h1>\n", "text/html; charset=utf-8"),
        (
            "/assets/style.css",
            "body { margin: 0 }\n",
            "text/css; charset=utf-8",
        ),
        ("/assets/data.json", "{\"a\":1}\n", "application/json"),
        (
            "/assets/blob.weird",
            "\0\u{1}\u{2}\u{3}",
            "application/octet-stream",
        ),
    ] {
        let resp = send(addr, "GET", path, "").await;
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.body_text(), body, "{path}");
        assert_eq!(resp.header("content-type"), Some(ty), "{path}");
        assert_eq!(
            resp.header("content-length"),
            Some(&*body.len().to_string()),
            "{path}"
        );
        assert_eq!(
            resp.header("cache-control"),
            Some("public, max-age=60"),
            "{path}"
        );
        assert_eq!(resp.header("accept-ranges"), Some("bytes"), "{path}");
        assert!(
            resp.header("etag").is_some_and(|t| t.starts_with('"')),
            "{path}"
        );
        assert!(resp.header("last-modified").is_some(), "{path}");
    }
    // A directory without its slash is redirected, query kept.
    let resp = send(addr, "GET", "/sub?x=1", "").await;
    assert_eq!(resp.status, 301);
    assert_eq!(resp.header("location"), Some("/sub/?x=1"));
    // HEAD: the same headers, no body.
    let resp = send(addr, "HEAD", "/assets/app.js", "").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("2000"));
    assert_eq!(
        resp.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(resp.body.is_empty());
    // Missing files are 404; other methods 405 with Allow.
    assert_eq!(send(addr, "GET", "/nope.html", "").await.status, 404);
    let resp = send(addr, "POST", "/index.html", "Content-Length: 0\r\n").await;
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("GET, HEAD"));
    // Through reqwest too.
    let resp = crate::support::client()
        .get(gw.url("public", "/about.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "<h1>about</h1>\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spa_fallback_and_try_files_work_like_nginx() {
    let site = site();
    let root = site.0.join("www");
    let spa = gateway(&root, r#", fallback = "/index.html""#);
    for path in ["/deep/link/in/the/app", "/settings", "/"] {
        let resp = send(spa.addr("public"), "GET", path, "").await;
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.body_text(), "<h1>home</h1>\n", "{path}");
    }
    let resp = send(spa.addr("public"), "GET", "/assets/app.js", "").await;
    assert_eq!(
        resp.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let tries = gateway(
        &root,
        r#", try_files = ["$uri", "$uri.html", "$uri/", "=404"]"#,
    );
    let addr = tries.addr("public");
    assert_eq!(
        send(addr, "GET", "/about", "").await.body_text(),
        "<h1>about</h1>\n"
    );
    assert_eq!(
        send(addr, "GET", "/sub/", "").await.body_text(),
        "<h1>sub</h1>\n"
    );
    assert_eq!(send(addr, "GET", "/missing", "").await.status, 404);
    let gone = gateway(&root, r#", try_files = ["$uri", "=410"]"#);
    assert_eq!(
        send(gone.addr("public"), "GET", "/missing", "")
            .await
            .status,
        410
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_requests_get_304_and_412() {
    let site = site();
    let gw = gateway(&site.0.join("www"), r#", cache_control = "no-cache""#);
    let addr = gw.addr("public");
    let first = send(addr, "GET", "/about.html", "").await;
    let etag = first.header("etag").unwrap().to_owned();
    let modified = first.header("last-modified").unwrap().to_owned();
    for headers in [
        format!("If-None-Match: {etag}\r\n"),
        format!("If-None-Match: \"other\", W/{etag}\r\n"),
        "If-None-Match: *\r\n".to_owned(),
        format!("If-Modified-Since: {modified}\r\n"),
    ] {
        let resp = send(addr, "GET", "/about.html", &headers).await;
        assert_eq!(resp.status, 304, "{headers}");
        assert!(resp.body.is_empty());
        assert_eq!(resp.header("etag"), Some(&*etag), "{headers}");
        assert_eq!(resp.header("cache-control"), Some("no-cache"), "{headers}");
    }
    let old = "Sat, 01 Jan 2000 00:00:00 GMT";
    for headers in [
        "If-Match: \"other\"\r\n".to_owned(),
        format!("If-Match: W/{etag}\r\n"),
        format!("If-Unmodified-Since: {old}\r\n"),
    ] {
        assert_eq!(
            send(addr, "GET", "/about.html", &headers).await.status,
            412,
            "{headers}"
        );
    }
    for headers in [
        format!("If-Match: {etag}\r\n"),
        "If-None-Match: \"other\"\r\n".to_owned(),
        format!("If-Modified-Since: {old}\r\n"),
        "If-Modified-Since: yesterday-ish\r\n".to_owned(),
    ] {
        assert_eq!(
            send(addr, "GET", "/about.html", &headers).await.status,
            200,
            "{headers}"
        );
    }
    // A changed file gets a new tag: the old one no longer matches.
    std::fs::write(site.0.join("www/about.html"), "<h1>about, changed</h1>\n").unwrap();
    let mut changed = None;
    // Bounded: the open-file cache looks at the file again within its validity (2 s).
    for _ in 0..60 {
        let resp = send(
            addr,
            "GET",
            "/about.html",
            &format!("If-None-Match: {etag}\r\n"),
        )
        .await;
        if resp.status == 200 {
            changed = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let changed = changed.expect("the changed file is served");
    assert_eq!(changed.body_text(), "<h1>about, changed</h1>\n");
    assert_ne!(changed.header("etag"), Some(&*etag));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_are_off_by_default_and_html_or_json_when_on() {
    let site = site();
    let root = site.0.join("www");
    std::fs::write(root.join("assets/.secret"), "hidden").unwrap();
    std::fs::write(root.join("assets/<b>.txt"), "x").unwrap();
    let off = gateway(&root, "");
    assert_eq!(
        send(off.addr("public"), "GET", "/assets/", "").await.status,
        404
    );
    let on = gateway(&root, ", listing = true");
    let addr = on.addr("public");
    let html = send(addr, "GET", "/assets/", "Accept: text/html\r\n").await;
    assert_eq!(html.status, 200);
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = html.body_text();
    assert!(
        page.contains("app.js") && page.contains("style.css"),
        "{page}"
    );
    assert!(
        page.contains("&lt;b&gt;.txt") && !page.contains("<b>.txt"),
        "{page}"
    );
    assert!(!page.contains(".secret"), "{page}");
    assert!(!page.contains(&*root.display().to_string()), "{page}");
    let json = send(addr, "GET", "/assets/", "Accept: application/json\r\n").await;
    assert_eq!(json.header("content-type"), Some("application/json"));
    let doc: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    let names: Vec<&str> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["<b>.txt", "app.js", "blob.weird", "data.json", "style.css"]
    );
    // A directory with an index file shows the file, not a listing.
    assert_eq!(
        send(addr, "GET", "/sub/", "").await.body_text(),
        "<h1>sub</h1>\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precompressed_siblings_follow_accept_encoding() {
    let site = site();
    let root = site.0.join("www");
    let js = std::fs::read(root.join("assets/app.js")).unwrap();
    let br = rampart_compress::compress(rampart_compress::Encoding::Brotli, 11, &js).unwrap();
    let gz = rampart_compress::compress(rampart_compress::Encoding::Gzip, 9, &js).unwrap();
    std::fs::write(root.join("assets/app.js.br"), &br).unwrap();
    std::fs::write(root.join("assets/app.js.gz"), &gz).unwrap();
    let gw = gateway(&root, ", precompressed = true");
    let addr = gw.addr("public");
    for (accept, coding, body) in [
        ("br, gzip", Some("br"), &br),
        ("gzip", Some("gzip"), &gz),
        ("gzip;q=1, br;q=0.1", Some("gzip"), &gz),
        ("zstd", None, &js),
        ("", None, &js),
    ] {
        let headers = if accept.is_empty() {
            String::new()
        } else {
            format!("Accept-Encoding: {accept}\r\n")
        };
        let resp = send(addr, "GET", "/assets/app.js", &headers).await;
        assert_eq!(resp.status, 200, "{accept}");
        assert_eq!(resp.header("content-encoding"), coding, "{accept}");
        assert_eq!(&resp.body, body, "{accept}");
        assert_eq!(
            resp.header("content-type"),
            Some("text/javascript; charset=utf-8"),
            "{accept}"
        );
        assert_eq!(resp.header("vary"), Some("accept-encoding"), "{accept}");
    }
    let plain = send(addr, "GET", "/assets/app.js", "").await;
    let packed = send(addr, "GET", "/assets/app.js", "Accept-Encoding: br\r\n").await;
    assert_ne!(plain.header("etag"), packed.header("etag"));
    // Off by default: the sibling is not used.
    let off = gateway(&root, "");
    let resp = send(
        off.addr("public"),
        "GET",
        "/assets/app.js",
        "Accept-Encoding: br\r\n",
    )
    .await;
    assert_eq!(resp.header("content-encoding"), None);
    assert_eq!(resp.body, js);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_applies_to_static_files_with_a_weak_tag_and_not_to_siblings() {
    let site = site();
    let root = site.0.join("www");
    let js = std::fs::read(root.join("assets/app.js")).unwrap();
    std::fs::write(
        root.join("assets/app.js.gz"),
        rampart_compress::compress(rampart_compress::Encoding::Gzip, 9, &js).unwrap(),
    )
    .unwrap();
    let gw = gateway_with(&root, ", precompressed = true", "compress = true");
    let addr = gw.addr("public");
    let plain = send(addr, "GET", "/assets/app.js", "").await;
    let tag = plain.header("etag").unwrap().to_owned();
    let zstd = send(addr, "GET", "/assets/app.js", "Accept-Encoding: zstd\r\n").await;
    assert_eq!(zstd.header("content-encoding"), Some("zstd"));
    assert_eq!(zstd.header("etag"), Some(&*format!("W/{tag}")));
    assert_eq!(crate::compress::decode("zstd", &zstd.body), js);
    let gz = send(addr, "GET", "/assets/app.js", "Accept-Encoding: gzip\r\n").await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(
        gz.header("etag").is_some_and(|t| t.starts_with('"')),
        "a sibling keeps its strong tag"
    );
    assert_eq!(crate::compress::decode("gzip", &gz.body), js);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_compressed_files_are_served_over_http2() {
    let site = site();
    let root = site.0.join("www");
    let gw = gateway_with(&root, "", "compress = true");
    let client = rampart_testkit::reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(WAIT)
        .build()
        .unwrap();
    let js = std::fs::read(root.join("assets/app.js")).unwrap();
    let url = gw.url("public", "/assets/app.js");
    let plain = client.get(&url).send().await.unwrap();
    assert_eq!(plain.version(), http::Version::HTTP_2);
    assert_eq!(plain.headers()["content-length"], "2000");
    assert_eq!(plain.bytes().await.unwrap(), js);
    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.headers()["content-length"], "2000");
    let packed = client
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(packed.headers()["content-encoding"], "gzip");
    assert_eq!(
        crate::compress::decode("gzip", &packed.bytes().await.unwrap()),
        js
    );
    let ranged = client
        .get(&url)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap(), js[..10]);
}

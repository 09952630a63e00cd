//! Nothing leaves the root: traversal attempts sent as raw bytes, symbolic links out of the
//! root (refused unless allowed), hidden files (refused unless served), non-regular files; and
//! no answer shows a filesystem path.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{WAIT, gateway, send, site};

/// The secret next to the root that no request may read.
const SECRET: &str = "top secret: outside the root";

/// Sends `request` as raw bytes and returns the raw answer.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut out))
        .await
        .expect("an answer in time")
        .ok();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_attempts_in_raw_bytes_never_leave_the_root() {
    let site = site();
    let root = site.0.join("www");
    std::fs::write(site.0.join("secret.txt"), SECRET).unwrap();
    let gw = gateway(&root, ", listing = true");
    let addr = gw.addr("public");
    let targets: &[&[u8]] = &[
        b"/../secret.txt",
        b"/../../../../etc/passwd",
        b"/%2e%2e/secret.txt",
        b"/%2E%2E%2Fsecret.txt",
        b"/..%2fsecret.txt",
        b"/assets/..%2f..%2fsecret.txt",
        b"/assets%2f..%2f..%2fsecret.txt",
        b"/..%5csecret.txt",
        b"/assets\\..\\..\\secret.txt",
        b"/%252e%252e/secret.txt",
        b"/.%2e/secret.txt",
        b"//../secret.txt",
        b"/assets/%00../secret.txt",
        b"/assets/\x00/../secret.txt",
        b"/%c0%ae%c0%ae/secret.txt",
        b"/assets/../../secret.txt%00.html",
        b"http://t/../secret.txt",
        b"/./../secret.txt",
        b"/\xff\xfe/../../secret.txt",
    ];
    for target in targets {
        let mut request = b"GET ".to_vec();
        request.extend_from_slice(target);
        request.extend_from_slice(b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let answer = raw(addr, &request).await;
        let text = String::from_utf8_lossy(&answer);
        let shown = String::from_utf8_lossy(target);
        assert!(!answer.is_empty(), "{shown}: no answer");
        let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(matches!(status, 400 | 404), "{shown}: {text}");
        assert!(!text.contains(SECRET), "{shown}: the secret was served");
        assert!(!text.contains("root:"), "{shown}: /etc/passwd was served");
        assert!(
            !text.contains(&*site.0.display().to_string()),
            "{shown}: a path was shown: {text}"
        );
    }
    // The gateway still serves normal requests afterwards.
    assert_eq!(send(addr, "GET", "/index.html", "").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbolic_links_out_of_the_root_are_refused_unless_allowed() {
    let site = site();
    let root = site.0.join("www");
    std::fs::write(site.0.join("secret.txt"), SECRET).unwrap();
    std::os::unix::fs::symlink(site.0.join("secret.txt"), root.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(&site.0, root.join("up")).unwrap();
    std::os::unix::fs::symlink(root.join("about.html"), root.join("alias.html")).unwrap();
    let strict = gateway(&root, "");
    let addr = strict.addr("public");
    for path in ["/leak.txt", "/up/secret.txt"] {
        let resp = send(addr, "GET", path, "").await;
        assert_eq!(resp.status, 403, "{path}");
        assert!(!resp.body_text().contains(SECRET), "{path}");
        assert!(
            !resp.body_text().contains(&*site.0.display().to_string()),
            "{path}"
        );
    }
    // A link inside the root is followed.
    assert_eq!(
        send(addr, "GET", "/alias.html", "").await.body_text(),
        "<h1>about</h1>\n"
    );
    let open = gateway(&root, ", symlinks_outside_root = true");
    assert_eq!(
        send(open.addr("public"), "GET", "/leak.txt", "")
            .await
            .body_text(),
        SECRET
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_and_non_regular_files_are_refused() {
    let site = site();
    let root = site.0.join("www");
    std::fs::write(root.join(".env"), "PASSWORD=hunter2").unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config"), "[core]").unwrap();
    std::fs::create_dir_all(root.join(".well-known")).unwrap();
    std::fs::write(
        root.join(".well-known/security.txt"),
        "Contact: ops@example.com\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(root.join(".env"), root.join("env-link")).unwrap();
    let fifo = root.join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    let strict = gateway(&root, "");
    let addr = strict.addr("public");
    for path in ["/.env", "/.git/config", "/assets/../.env", "/%2eenv"] {
        let resp = send(addr, "GET", path, "").await;
        assert!(matches!(resp.status, 400 | 404), "{path}: {}", resp.status);
        assert!(!resp.body_text().contains("hunter2"), "{path}");
    }
    // A link to a hidden file is refused as well.
    assert_eq!(send(addr, "GET", "/env-link", "").await.status, 403);
    assert_eq!(
        send(addr, "GET", "/.well-known/security.txt", "")
            .await
            .status,
        200
    );
    if made.is_ok_and(|s| s.success()) {
        // A FIFO is not a regular file: refused at once, never opened for reading.
        assert_eq!(send(addr, "GET", "/pipe", "").await.status, 403);
        assert_eq!(send(addr, "GET", "/index.html", "").await.status, 200);
    }
    let served = gateway(&root, ", hidden = true");
    assert_eq!(
        send(served.addr("public"), "GET", "/.env", "")
            .await
            .body_text(),
        "PASSWORD=hunter2"
    );
}

#[test]
fn a_root_that_is_not_a_directory_is_refused_at_load() {
    let site = site();
    for (root, expected) in [
        (site.0.join("missing"), "cannot open"),
        (site.0.join("www/index.html"), "is not a directory"),
    ] {
        let text = format!(
            "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nstatic = {{ root = {:?} }}\n",
            root.display().to_string()
        );
        let Err(d) =
            rampart_config::load_str(&text, "t.toml").and_then(|c| rampart_server::compile(&c))
        else {
            panic!("{} accepted", root.display());
        };
        let message = d.to_string();
        assert!(
            message.contains("static.root") && message.contains(expected),
            "{message}"
        );
    }
    let text = "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nstatic = { root = \"/\", try_files = [\"=404\", \"$uri\"] }\n";
    let message = rampart_config::load_str(text, "t.toml")
        .and_then(|c| rampart_server::compile(&c))
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("must come last"), "{message}");
}

//! Basic authentication against an htpasswd file with bcrypt and argon2 hashes: right
//! passwords pass as a named principal, wrong ones and unknown users get 401 with a `Basic`
//! challenge; an MD5 line is a `check` error naming the htpasswd file's line and column.

use argon2::PasswordHasher as _;
use base64::Engine as _;
use rampart_testkit::{RecordingOrigin, TestGateway};

use super::get;
use crate::support::TempDir;

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {token}\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_users_with_bcrypt_and_argon2_hashes_sign_in() {
    let origin = RecordingOrigin::start().await.unwrap();
    let dir = TempDir::new("auth");
    let salt = argon2::password_hash::SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap();
    let argon = argon2::Argon2::default()
        .hash_password(b"bob's passphrase", &salt)
        .unwrap()
        .to_string();
    let htpasswd = dir.file(
        "users.htpasswd",
        &format!(
            "# staff\nalice:{}\nbob:{argon}\n",
            bcrypt::hash("alice's password", 4).unwrap()
        ),
    );
    let gw = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "api"
targets = ["{}"]

[[auth.basic]]
name = "staff"
htpasswd = {:?}

[[routes]]
name = "staff"
upstream = "api"
auth = {{ providers = ["staff"], realm = "staff" }}
"#,
        origin.addr(),
        htpasswd.display().to_string()
    ))
    .access_log()
    .start();
    let addr = gw.addr("public");
    let challenge = Some("Basic realm=\"staff\", charset=\"UTF-8\"");
    assert_eq!(
        get(addr, "/a", &basic("alice", "alice's password"))
            .await
            .status,
        200
    );
    // Again: from the verified-credentials cache.
    assert_eq!(
        get(addr, "/a", &basic("alice", "alice's password"))
            .await
            .status,
        200
    );
    assert_eq!(
        get(addr, "/b", &basic("bob", "bob's passphrase"))
            .await
            .status,
        200
    );
    for (user, password) in [
        ("alice", "alice's Password"),
        ("bob", "alice's password"),
        ("carol", "x"),
    ] {
        let resp = get(addr, "/c", &basic(user, password)).await;
        assert_eq!(resp.status, 401, "{user}");
        assert_eq!(resp.header("www-authenticate"), challenge);
    }
    let resp = get(addr, "/d", "").await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.header("www-authenticate"), challenge);
    assert_eq!(origin.requests().len(), 3);
    let lines = gw.access_log_json(7);
    let who: Vec<(&str, &str)> = lines[..3]
        .iter()
        .map(|l| {
            (
                l["auth_method"].as_str().unwrap(),
                l["auth_subject"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [("basic", "alice"), ("basic", "alice"), ("basic", "bob")]
    );
    assert!(lines[3].get("auth_subject").is_none(), "{}", lines[3]);
}

#[test]
fn an_md5_htpasswd_line_is_a_check_error_at_its_place() {
    let dir = TempDir::new("auth");
    let htpasswd = dir.file(
        "old.htpasswd",
        "alice:$2y$05$abcdefghijklmnopqrstuuAbCdEfGhIjKlMnOpQrStUvWxYzAbCdE\nbob:$apr1$x0abcdef$0123456789abcdefghijkl\n",
    );
    let htpasswd = htpasswd.display().to_string();
    let config = dir.file(
        "rampart.toml",
        &format!(
            "[[listeners]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\n\n[[auth.basic]]\nname = \"old\"\nhtpasswd = {htpasswd:?}\n"
        ),
    );
    let file = config.display().to_string();
    let out = crate::cli::run_cli(&["check", "-c", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with(&format!("{file}:7:12:")))
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(line.contains("auth.basic[0].htpasswd"), "{line}");
    assert!(line.contains(&format!("{htpasswd}:2:5:")), "{line}");
    assert!(line.contains("MD5"), "{line}");
}

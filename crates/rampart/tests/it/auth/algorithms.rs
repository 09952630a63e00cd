//! Every algorithm a provider may pin verifies with its kind of key: RSA (PKCS#1 v1.5 and PSS),
//! EC (P-256, P-384) and Ed25519 keys from PEM files; HMAC secrets from an environment
//! variable (through the binary, which reads the variable at startup).

use std::process::{Child, Command, Stdio};
use std::time::Instant;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rampart_testkit::{RecordingOrigin, TestGateway, free_port_closed};

use super::{SigningKey, WAIT, claims, get_with};
use crate::support::TempDir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_public_key_algorithm_verifies_with_a_key_file() {
    let origin = RecordingOrigin::start().await.unwrap();
    let dir = TempDir::new("auth");
    let rsa = SigningKey::new(Algorithm::RS256, "rsa");
    let p256 = SigningKey::new(Algorithm::ES256, "p256");
    let p384 = SigningKey::new(Algorithm::ES384, "p384");
    let ed = SigningKey::new(Algorithm::EdDSA, "ed");
    let mut config = format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n",
        origin.addr()
    );
    let providers = [
        (
            "rsa",
            &rsa,
            r#"["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]"#,
        ),
        ("p256", &p256, r#"["ES256"]"#),
        ("p384", &p384, r#"["ES384"]"#),
        ("ed", &ed, r#"["EdDSA"]"#),
    ];
    for (name, key, algs) in providers {
        let file = dir.file(&format!("{name}.pem"), &key.public_pem);
        config.push_str(&format!(
            "\n[[auth.jwt]]\nname = \"{name}\"\nalgorithms = {algs}\nkey_file = {:?}\n\n[[routes]]\nname = \"{name}\"\npath_prefix = \"/{name}\"\nupstream = \"api\"\nauth = {{ providers = [\"{name}\"] }}\n",
            file.display().to_string()
        ));
    }
    let gw = TestGateway::builder(config).start();
    let addr = gw.addr("public");
    let cases = [
        ("rsa", &rsa, Algorithm::RS256),
        ("rsa", &rsa, Algorithm::RS384),
        ("rsa", &rsa, Algorithm::RS512),
        ("rsa", &rsa, Algorithm::PS256),
        ("rsa", &rsa, Algorithm::PS384),
        ("rsa", &rsa, Algorithm::PS512),
        ("p256", &p256, Algorithm::ES256),
        ("p384", &p384, Algorithm::ES384),
        ("ed", &ed, Algorithm::EdDSA),
    ];
    for (route, key, alg) in cases {
        let token = key.sign_as(alg, &claims("alice"));
        let resp = get_with(addr, &format!("/{route}/x"), &token).await;
        assert_eq!(
            resp.status,
            200,
            "{alg:?} on /{route}: {}",
            resp.body_text()
        );
    }
    // A key of another family is never tried: an EC token on the RSA route, an RSA token on
    // the EC route.
    let resp = get_with(addr, "/rsa/x", &p256.sign(&claims("alice"))).await;
    assert_eq!(resp.status, 401);
    let resp = get_with(addr, "/p256/x", &rsa.sign(&claims("alice"))).await;
    assert_eq!(resp.status, 401);
    // P-384 token on the P-256 route.
    let resp = get_with(addr, "/p256/x", &p384.sign(&claims("alice"))).await;
    assert_eq!(resp.status, 401);
    assert_eq!(origin.requests().len(), 9);
}

/// A `rampart run` child, killed on drop.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_algorithms_verify_with_a_secret_from_the_environment() {
    let origin = RecordingOrigin::start().await.unwrap();
    let dir = TempDir::new("auth");
    let addr = free_port_closed().unwrap();
    let secret = "0123456789abcdef0123456789abcdef-hmac-test";
    let config = dir.file(
        "rampart.toml",
        &format!(
            r#"
[access_log]
enabled = false

[[listeners]]
name = "public"
bind = "{addr}"

[[upstreams]]
name = "api"
targets = ["{}"]

[[auth.jwt]]
name = "shared"
algorithms = ["HS256", "HS384", "HS512"]
secret_env = "RAMPART_TEST_JWT_SECRET"

[[routes]]
name = "api"
upstream = "api"
auth = {{ providers = ["shared"] }}
"#,
            origin.addr()
        ),
    );
    let _gw = Gateway(
        Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["run", "-c"])
            .arg(&config)
            .env("RAMPART_TEST_JWT_SECRET", secret)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "rampart did not listen on {addr}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let key = EncodingKey::from_secret(secret.as_bytes());
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let token = jsonwebtoken::encode(&Header::new(alg), &claims("svc"), &key).unwrap();
        let resp = get_with(addr, "/x", &token).await;
        assert_eq!(resp.status, 200, "{alg:?}: {}", resp.body_text());
    }
    let wrong = EncodingKey::from_secret(b"another secret of the same length, more or less");
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims("svc"), &wrong).unwrap();
    let resp = get_with(addr, "/x", &token).await;
    assert_eq!(resp.status, 401);
    assert!(
        resp.header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\""),
        "{:?}",
        resp.header("www-authenticate")
    );
}

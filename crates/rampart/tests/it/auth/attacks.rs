//! What a JWT route refuses, and how: `alg=none`, HMAC signed with the RSA public key, an
//! algorithm the provider does not pin, a forged payload, expired, not yet valid, issued in the
//! future, wrong issuer or audience, oversized; missing credentials get a bare challenge.
//! What it lets through: tokens from a cookie or a query parameter (taken out of the URI sent
//! upstream and of the access log), any of several audiences and providers; claims become
//! headers (client copies removed), claim rules give 403.

use std::net::SocketAddr;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rampart_testkit::{RecordingOrigin, TestGateway};

use super::{SigningKey, claims, get, get_with, now};
use crate::support::{TempDir, header_values, request_line};

/// base64url without padding.
fn b64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

struct Setup {
    gw: TestGateway,
    origin: RecordingOrigin,
    main: SigningKey,
    other: SigningKey,
    _dir: TempDir,
}

impl Setup {
    fn addr(&self) -> SocketAddr {
        self.gw.addr("public")
    }
}

async fn setup() -> Setup {
    let origin = RecordingOrigin::start().await.unwrap();
    let dir = TempDir::new("auth");
    let main = SigningKey::new(Algorithm::RS256, "main");
    let other = SigningKey::new(Algorithm::ES256, "other");
    let main_pem = dir.file("main.pem", &main.public_pem);
    let other_pem = dir.file("other.pem", &other.public_pem);
    let gw = TestGateway::builder(format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "api"
targets = ["{origin}"]

[[auth.jwt]]
name = "main"
algorithms = ["RS256"]
key_file = {main_pem:?}
issuers = ["https://idp.test"]
audiences = ["api", "api2"]
leeway = "5s"
max_token_size = "2KiB"
token_from = ["header", "cookie:session", "query:access_token"]

[[auth.jwt]]
name = "other"
algorithms = ["ES256"]
key_file = {other_pem:?}
required_claims = ["tenant"]
claims = [{{ name = "tenant", one_of = ["a", "b"] }}]

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "api"
auth = {{ providers = ["main", "other"], realm = "api", headers = {{ "X-User" = "sub", "X-Groups" = "groups" }} }}

[[routes]]
name = "admin"
path_prefix = "/admin"
upstream = "api"
auth = {{ providers = ["main"], claims = [{{ name = "role", value = "admin" }}] }}

[[routes]]
name = "open"
path_prefix = "/open"
upstream = "api"
"#,
        origin = origin.addr(),
        main_pem = main_pem.display().to_string(),
        other_pem = other_pem.display().to_string(),
    ))
    .access_log()
    .start();
    Setup {
        gw,
        origin,
        main,
        other,
        _dir: dir,
    }
}

/// Asserts a 401 whose challenge says `invalid_token` with `description`.
fn assert_invalid(resp: &rampart_testkit::RawResponse, description: &str) {
    assert_eq!(resp.status, 401, "{description}: {}", resp.body_text());
    let challenge = resp.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer realm=\"api\", error=\"invalid_token\"")
            && challenge.contains(description),
        "{description}: {challenge}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_invalid_tokens_are_refused_with_a_reason() {
    let s = setup().await;
    let addr = s.addr();
    let good = s.main.sign(&claims("alice"));

    // No credentials: a bare challenge, nothing forwarded.
    let resp = get(addr, "/api/x", "").await;
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"api\"")
    );

    // alg=none, with the payload of a good token and no signature.
    let payload = good.split('.').nth(1).unwrap();
    let none = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
    assert_invalid(&get_with(addr, "/api/x", &none).await, "malformed token");

    // HS256 keyed with the RSA public key (the classic confusion).
    let hs = EncodingKey::from_secret(s.main.public_pem.as_bytes());
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("main".into());
    let confused = jsonwebtoken::encode(&header, &claims("alice"), &hs).unwrap();
    assert_invalid(
        &get_with(addr, "/api/x", &confused).await,
        "algorithm not allowed",
    );

    // Signed with the right key but an algorithm the provider does not pin.
    let ps = s.main.sign_as(Algorithm::PS256, &claims("alice"));
    assert_invalid(
        &get_with(addr, "/api/x", &ps).await,
        "algorithm not allowed",
    );

    // A payload changed after signing.
    let mut forged: Vec<&str> = good.split('.').collect();
    let admin = b64(
        serde_json::to_string(&serde_json::json!({"sub": "root", "exp": now() + 3600, "iss": "https://idp.test", "aud": "api"}))
            .unwrap()
            .as_bytes(),
    );
    forged[1] = &admin;
    assert_invalid(
        &get_with(addr, "/api/x", &forged.join(".")).await,
        "bad signature",
    );

    let mut c = claims("alice");
    c["exp"] = (now() - 60).into();
    assert_invalid(
        &get_with(addr, "/api/x", &s.main.sign(&c)).await,
        "token expired",
    );
    let mut c = claims("alice");
    c["nbf"] = (now() + 600).into();
    assert_invalid(
        &get_with(addr, "/api/x", &s.main.sign(&c)).await,
        "token not yet valid",
    );
    let mut c = claims("alice");
    c["iat"] = (now() + 600).into();
    assert_invalid(
        &get_with(addr, "/api/x", &s.main.sign(&c)).await,
        "issued in the future",
    );
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("exp");
    assert_invalid(
        &get_with(addr, "/api/x", &s.main.sign(&c)).await,
        "missing claim",
    );
    let mut c = claims("alice");
    c["aud"] = "billing".into();
    assert_invalid(
        &get_with(addr, "/api/x", &s.main.sign(&c)).await,
        "wrong audience",
    );
    let mut c = claims("alice");
    c["iss"] = "https://evil.test".into();
    assert_invalid(
        &get_with(addr, "/api/x", &s.main.sign(&c)).await,
        "wrong issuer",
    );
    let mut c = claims("alice");
    c["padding"] = "x".repeat(3000).into();
    assert_invalid(
        &get_with(addr, "/api/x", &s.main.sign(&c)).await,
        "token too large",
    );

    // The second provider's own rules: a required claim with allowed values.
    let mut c = claims("bob");
    c["tenant"] = "z".into();
    assert_invalid(
        &get_with(addr, "/api/x", &s.other.sign(&c)).await,
        "claim requirement not met",
    );

    assert!(
        s.origin.requests().is_empty(),
        "nothing refused reached the origin"
    );
    // The log says why, and never holds a token.
    let lines = s.gw.access_log_lines(14);
    assert!(
        lines
            .iter()
            .all(|l| l.contains("\"reason\":\"unauthenticated\"")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("token expired")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains(payload)), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_tokens_pass_from_every_source_and_claims_become_headers() {
    let s = setup().await;
    let addr = s.addr();
    let mut c = claims("alice");
    c["aud"] = serde_json::json!(["other", "api2"]);
    c["groups"] = serde_json::json!(["dev", "ops"]);
    let token = s.main.sign(&c);

    // Bearer, with forged copies of the mapped headers: only the claims arrive.
    let resp = get(
        addr,
        "/api/a",
        &format!("Authorization: Bearer {token}\r\nX-User: mallory\r\nX-Groups: admins\r\n"),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    // Cookie.
    let resp = get(
        addr,
        "/api/b",
        &format!("Cookie: theme=dark; session={token}\r\n"),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    // Query parameter: taken out before forwarding and logging.
    let resp = get(addr, &format!("/api/c?x=1&access_token={token}&y=2"), "").await;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    // The second provider, with its own key and rules.
    let mut c = claims("bob");
    c["tenant"] = "b".into();
    let resp = get_with(addr, "/api/d", &s.other.sign(&c)).await;
    assert_eq!(resp.status, 200, "{}", resp.body_text());

    let reqs = s.origin.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(header_values(&reqs[0], "x-user"), vec!["alice"]);
    assert_eq!(header_values(&reqs[0], "x-groups"), vec!["dev,ops"]);
    assert_eq!(request_line(&reqs[2]), "GET /api/c?x=1&y=2 HTTP/1.1");
    assert_eq!(header_values(&reqs[3], "x-user"), vec!["bob"]);
    assert!(header_values(&reqs[3], "x-groups").is_empty());

    let lines = s.gw.access_log_json(4);
    for line in &lines {
        assert_eq!(line["auth_method"], "jwt", "{line}");
    }
    let subjects: Vec<&str> = lines
        .iter()
        .map(|l| l["auth_subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["alice", "alice", "alice", "bob"]);
    assert_eq!(lines[0]["auth_key"], "main");
    assert_eq!(lines[2]["uri"], "/api/c?x=1&access_token=REDACTED&y=2");
    let raw = s.gw.access_log_lines(4).join("\n");
    assert!(!raw.contains(&token), "a token reached the access log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_rules_refuse_valid_principals_with_403_and_open_routes_need_nothing() {
    let s = setup().await;
    let addr = s.addr();
    let resp = get_with(addr, "/admin/x", &s.main.sign(&claims("alice"))).await;
    assert_eq!(resp.status, 403);
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"rampart\", error=\"insufficient_scope\"")
    );
    let mut c = claims("root");
    c["role"] = "admin".into();
    let resp = get_with(addr, "/admin/x", &s.main.sign(&c)).await;
    assert_eq!(resp.status, 200);
    let resp = get(addr, "/open/x", "").await;
    assert_eq!(resp.status, 200);
    let lines = s.gw.access_log_json(3);
    assert_eq!(lines[0]["reason"], "auth_forbidden");
    assert_eq!(lines[0]["auth_subject"], "alice");
    assert!(lines[2].get("auth_method").is_none(), "{}", lines[2]);
}

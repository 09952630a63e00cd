//! Authentication at the edge through a real gateway: tokens signed here with jsonwebtoken
//! (keys made with rcgen), checked by Rampart against key files, secrets and a JWKS endpoint
//! this module serves (rotation, unknown `kid`, endpoint down or slow); the attacks a gateway
//! must refuse; API keys; claims to headers and the principal in the access log; bad config as `check`
//! errors with `file:line:col`.

mod algorithms;
mod api_keys;
mod attacks;
mod basic;
mod config;
mod jwks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rampart_testkit::RawResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::send_within;

/// Bound on every wait in this area.
const WAIT: Duration = Duration::from_secs(10);

/// A key pair tokens are signed with, and its public half as PEM and as a JWK.
struct SigningKey {
    alg: Algorithm,
    kid: String,
    private: EncodingKey,
    public_pem: String,
    jwk: Option<Jwk>,
}

impl SigningKey {
    /// A fresh key for `alg` (one RSA key serves every RSA algorithm).
    fn new(alg: Algorithm, kid: &str) -> Self {
        let kind = match alg {
            Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Algorithm::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Algorithm::EdDSA => &rcgen::PKCS_ED25519,
            _ => &rcgen::PKCS_RSA_SHA256,
        };
        let pair = rcgen::KeyPair::generate_for(kind).unwrap();
        let pem = pair.serialize_pem();
        let private = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .unwrap();
        // Ed25519 keys come as PKCS#8 v2, which the JWK helper does not take: those are
        // published as PEM only.
        let jwk = Jwk::from_encoding_key(&private, alg).ok().map(|mut jwk| {
            jwk.common.key_id = Some(kid.to_owned());
            jwk
        });
        Self {
            alg,
            kid: kid.to_owned(),
            private,
            public_pem: pair.public_key_pem(),
            jwk,
        }
    }

    /// A token with `claims`, signed with `alg` (one of this key's family) and naming this
    /// key's `kid`.
    fn sign_as(&self, alg: Algorithm, claims: &serde_json::Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.private).unwrap()
    }

    /// A token with `claims`, signed with this key's algorithm.
    fn sign(&self, claims: &serde_json::Value) -> String {
        self.sign_as(self.alg, claims)
    }
}

/// Unix time now, in seconds.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims valid for an hour, for `sub`.
fn claims(sub: &str) -> serde_json::Value {
    serde_json::json!({ "sub": sub, "iat": now(), "exp": now() + 3600, "iss": "https://idp.test", "aud": "api" })
}

/// The SHA-256 of `text`, in lowercase hex (what `sha256sum` prints).
fn sha256_hex(text: &str) -> String {
    use std::fmt::Write as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A JWKS set as a document.
fn jwks_doc(keys: &[&SigningKey]) -> String {
    serde_json::to_string(&JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone().unwrap()).collect(),
    })
    .unwrap()
}

/// What the JWKS endpoint serves next.
struct JwksState {
    body: String,
    cache_control: Option<String>,
    status: u16,
    delay: Duration,
}

/// A JWKS endpoint on loopback whose document, status and delay the test changes.
struct JwksServer {
    addr: SocketAddr,
    state: Arc<Mutex<JwksState>>,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(body: String) -> Self {
        Self::start_with(body, None).await
    }

    /// The endpoint over TLS with `config`.
    async fn start_tls(body: String, config: rustls::ServerConfig) -> Self {
        Self::start_with(
            body,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn start_with(body: String, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(JwksState {
            body,
            cache_control: None,
            status: 200,
            delay: Duration::ZERO,
        }));
        let hits = Arc::new(AtomicU64::new(0));
        let (s, h) = (Arc::clone(&state), Arc::clone(&hits));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, h, tls) = (Arc::clone(&s), Arc::clone(&h), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_jwks(stream, &s, &h).await;
                            }
                        }
                        None => serve_jwks(stream, &s, &h).await,
                    }
                });
            }
        });
        Self {
            addr,
            state,
            hits,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    fn set(&self, f: impl FnOnce(&mut JwksState)) {
        f(&mut self.state.lock().unwrap());
    }
}

/// Answers one request on `stream` with what `state` says.
async fn serve_jwks<S>(mut stream: S, state: &Mutex<JwksState>, hits: &AtomicU64)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") && got < buf.len() {
        match stream.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => got += n,
        }
    }
    hits.fetch_add(1, Ordering::SeqCst);
    let (body, cc, status, delay) = {
        let st = state.lock().unwrap();
        (
            st.body.clone(),
            st.cache_control.clone(),
            st.status,
            st.delay,
        )
    };
    tokio::time::sleep(delay).await;
    let cc = cc
        .map(|c| format!("Cache-Control: {c}\r\n"))
        .unwrap_or_default();
    let resp = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{cc}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.shutdown().await;
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `GET path` with `extra` header lines, answered within [`WAIT`].
async fn get(addr: SocketAddr, path: &str, extra: &str) -> RawResponse {
    send_within(
        WAIT,
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n{extra}\r\n"),
    )
    .await
}

/// `GET path` with `Authorization: Bearer token`.
async fn get_with(addr: SocketAddr, path: &str, token: &str) -> RawResponse {
    get(addr, path, &format!("Authorization: Bearer {token}\r\n")).await
}

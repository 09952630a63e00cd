//! The response cache (RFC 9111) through a real gateway, with a scripted origin whose every
//! answer a test decides, and real clients: storing and freshness, `Vary`, conditional
//! requests, collapsing, stale serving, purges and the byte bound.

mod basics;
mod bounds;
mod collapse;
mod purge;
mod revalidate;
mod stale;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rampart_testkit::TestGateway;
use tokio::task::JoinHandle;

use crate::support::{client, within};

/// What the origin answers: status, headers, body, and how long to wait first.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
    pub(crate) delay: Duration,
}

impl Answer {
    /// 200 with `body` and these headers.
    pub(crate) fn ok(body: impl Into<String>, headers: &[(&'static str, &str)]) -> Self {
        Self {
            status: 200,
            headers: headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// This answer with `status`.
    pub(crate) fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// This answer after `delay`.
    pub(crate) fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Script = dyn Fn(&Parts, u64) -> Answer + Send + Sync;

/// An HTTP/1.1 origin answering each request with what `script` returns for it and the
/// request's 1-based number.
pub(crate) struct Origin {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Origin {
    pub(crate) async fn start(
        script: impl Fn(&Parts, u64) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let script: Arc<Script> = Arc::new(script);
        let counter = Arc::clone(&requests);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let script = Arc::clone(&script);
                let counter = Arc::clone(&counter);
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let script = Arc::clone(&script);
                        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                        async move {
                            let (parts, _) = req.into_parts();
                            let answer = script(&parts, n);
                            if !answer.delay.is_zero() {
                                tokio::time::sleep(answer.delay).await;
                            }
                            let mut resp = Response::new(Full::new(Bytes::from(answer.body)));
                            *resp.status_mut() = StatusCode::from_u16(answer.status).unwrap();
                            for (name, value) in answer.headers {
                                resp.headers_mut().append(name, value.parse().unwrap());
                            }
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let conn =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = stopped.wait_for(|s| *s) => {}
                    }
                });
            }
        });
        Self {
            addr,
            requests,
            task,
            stop,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Dies: stops accepting and closes every open connection.
    pub(crate) fn stop(&self) {
        self.task.abort();
        let _ = self.stop.send(true);
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A gateway in front of `origin` whose route `cached` (prefix `/`) has `cache = {rules}`,
/// with `extra` top-level config (a `[cache]` section, `[admin]`).
pub(crate) fn gateway(origin: SocketAddr, rules: &str, extra: &str) -> TestGateway {
    TestGateway::builder(format!(
        r#"
{extra}

[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[upstreams]]
name = "origin"
targets = ["{origin}"]

[[routes]]
name = "plain"
path_prefix = "/plain"
upstream = "origin"

[[routes]]
name = "cached"
path_prefix = "/"
upstream = "origin"
cache = {{ {rules} }}
"#
    ))
    .access_log()
    .start()
}

/// A response as a test reads it.
pub(crate) struct Got {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Got {
    /// The cache status header.
    pub(crate) fn cache(&self) -> &str {
        self.headers
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends `method` to `path` on the gateway with `headers`.
pub(crate) async fn send(
    gw: &TestGateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Got {
    let mut req = client().request(method.parse().unwrap(), gw.url("public", path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = within(req.send()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = within(resp.text()).await.unwrap();
    Got {
        status,
        headers,
        body,
    }
}

/// `GET path` with `headers`.
pub(crate) async fn get(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> Got {
    send(gw, "GET", path, headers).await
}

/// The gateway's cache store.
pub(crate) fn store(gw: &TestGateway) -> rampart_server::CacheStore {
    gw.handle()
        .admin_handle()
        .runtime()
        .cache()
        .cloned()
        .expect("a route caches")
}

/// Polls `cond` every 20 ms, for at most 10 s.
pub(crate) async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

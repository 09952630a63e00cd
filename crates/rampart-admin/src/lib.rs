//! Rampart's admin API: its own small HTTP/1.1 listener (127.0.0.1:9901 by default) on its own
//! thread, so that neither a slow scrape nor a reload ever runs on a data-plane worker.
//!
//! `GET /status`, `/routes`, `/upstreams`, `/config` (secrets redacted), `/metrics`;
//! `POST /reload`, `/drain`, `/upgrade`; `GET /cache` and `DELETE /cache?key=|prefix=|tag=`. With `[admin] token`, every request must carry
//! `Authorization: Bearer <token>`.
//!
//! It reaches the data plane only through [`AdminHandle`]; it depends on `rampart-server` for
//! that handle and on `rampart-config` for its own section, and nothing depends on it but the
//! binary and the test kit.

#![forbid(unsafe_code)]

mod api;
mod cache;
mod redact;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rampart_config::Config;
use rampart_config::model::AdminSection;
use rampart_server::audit::Initiator;
use rampart_server::{AdminHandle, METRICS_CONTENT_TYPE, ServerHandle};
use tokio::sync::watch;

/// The name the admin API's listening socket travels under when a binary upgrade hands the
/// sockets to the new process (listener names cannot start with `@`).
pub const ADMIN_SOCKET: &str = "@admin";

/// Starts the admin API of `server` when `config` enables `[admin]`. `inherited` holds the
/// sockets handed over by the process being upgraded; the admin API's ([`ADMIN_SOCKET`]) is
/// taken from it.
///
/// # Errors
/// The admin address cannot be bound, or its thread cannot start.
pub fn start(
    config: &Config,
    server: &ServerHandle,
    inherited: &mut Vec<(String, Vec<std::net::TcpListener>)>,
) -> std::io::Result<Option<AdminServer>> {
    let socket = inherited
        .iter()
        .position(|(n, _)| n == ADMIN_SOCKET)
        .and_then(|i| inherited.swap_remove(i).1.into_iter().next());
    match &config.raw().admin {
        Some(a) if a.enabled => AdminServer::start(a, server.admin_handle(), socket).map(Some),
        _ => Ok(None),
    }
}

/// The running admin listener; dropping it stops it.
pub struct AdminServer {
    addr: SocketAddr,
    /// A duplicate of the listening socket, handed to a new binary on upgrade.
    socket: std::net::TcpListener,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AdminServer {
    /// Binds the admin listener and serves it on a thread of its own.
    /// `inherited` is the socket a previous binary served the admin API on.
    ///
    /// # Errors
    /// The address cannot be bound, or the thread cannot start.
    pub fn start(
        cfg: &AdminSection,
        control: AdminHandle,
        inherited: Option<std::net::TcpListener>,
    ) -> std::io::Result<Self> {
        let std_listener = match inherited {
            Some(s) => s,
            None => std::net::TcpListener::bind(*cfg.listen.get()).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("admin listener {}: {e}", cfg.listen.get()),
                )
            })?,
        };
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let token: Option<Arc<str>> = cfg
            .token
            .as_ref()
            .map(|t| t.get().trim())
            .filter(|t| !t.is_empty())
            .map(Arc::from);
        let socket = std_listener.try_clone()?;
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("rampart-admin".into())
            .spawn(move || serve(std_listener, control, token, stopped))?;
        tracing::info!("admin API on http://{addr}");
        Ok(Self {
            addr,
            socket,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A duplicate of the listening socket, for handing to a new binary on upgrade (under
    /// [`ADMIN_SOCKET`]).
    ///
    /// # Errors
    /// The socket cannot be duplicated (out of file descriptors).
    pub fn socket(&self) -> std::io::Result<std::net::TcpListener> {
        self.socket.try_clone()
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    listener: std::net::TcpListener,
    control: AdminHandle,
    token: Option<Arc<str>>,
    mut stopped: watch::Receiver<bool>,
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        tracing::error!("admin API: cannot start its runtime");
        return;
    };
    rt.block_on(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let control = control.clone();
                    let token = token.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            let control = control.clone();
                            let token = token.clone();
                            async move { Ok::<_, Infallible>(handle(req, peer, &control, token.as_deref()).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                _ = stopped.changed() => return,
            }
        }
    });
}

/// A response of the admin API.
pub(crate) type AdminResponse = Response<Full<Bytes>>;

/// A response with `body` and `content_type`.
pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> AdminResponse {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> AdminResponse {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    respond(status, "application/json", body)
}

/// A JSON error response.
pub(crate) fn error(status: StatusCode, message: &str) -> AdminResponse {
    json(status, &serde_json::json!({ "error": message }))
}

/// True when `req` carries the bearer token (compared in constant time).
fn authorized(req: &Request<Incoming>, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    let want = token.as_bytes();
    let mut diff = u8::from(given.len() != want.len());
    for (i, w) in want.iter().enumerate() {
        diff |= w ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    control: &AdminHandle,
    token: Option<&str>,
) -> AdminResponse {
    if !authorized(&req, token) {
        let mut resp = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        return resp;
    }
    let path = req.uri().path();
    let method = req.method();
    let get = method == Method::GET || method == Method::HEAD;
    match path {
        "/status" if get => json(StatusCode::OK, &api::status(control)),
        "/routes" if get => json(StatusCode::OK, &api::routes(control)),
        "/upstreams" if get => json(StatusCode::OK, &api::upstreams(&control.runtime())),
        "/config" if get => json(StatusCode::OK, &redact::config(&control.runtime())),
        "/metrics" if get => respond(StatusCode::OK, METRICS_CONTENT_TYPE, control.metrics_text()),
        "/reload" if method == Method::POST => {
            let control = control.clone();
            let result =
                tokio::task::spawn_blocking(move || control.reload(Initiator::admin(peer)))
                    .await
                    .unwrap_or_else(|e| Err(format!("reload task failed: {e}")));
            match result {
                Ok(report) => json(
                    StatusCode::OK,
                    &serde_json::json!({ "ok": true, "generation": report.generation,
                        "listeners_added": report.listeners_added,
                        "listeners_removed": report.listeners_removed }),
                ),
                Err(e) => json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &serde_json::json!({ "ok": false, "error": e }),
                ),
            }
        }
        "/drain" if method == Method::POST => {
            control.drain();
            tracing::info!("draining requested on the admin API: /readyz now answers 503");
            json(StatusCode::OK, &serde_json::json!({ "draining": true }))
        }
        "/upgrade" if method == Method::POST => match control.request_upgrade() {
            Ok(()) => json(
                StatusCode::ACCEPTED,
                &serde_json::json!({ "upgrading": true }),
            ),
            Err(e) => error(StatusCode::CONFLICT, &e),
        },
        "/cache" if get => cache::status(control),
        "/cache" if method == Method::DELETE => cache::purge(control, req.uri().query()),
        "/status" | "/routes" | "/upstreams" | "/config" | "/metrics" | "/reload" | "/drain"
        | "/upgrade" | "/cache" => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => error(StatusCode::NOT_FOUND, "no such admin endpoint"),
    }
}

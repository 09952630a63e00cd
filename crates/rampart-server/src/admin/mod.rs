//! The admin API: its own small HTTP/1.1 listener (127.0.0.1:9901 by default) on its own
//! thread, so that neither a slow scrape nor a reload ever runs on a data-plane worker.
//!
//! `GET /status`, `/routes`, `/upstreams`, `/config` (secrets redacted), `/metrics`;
//! `POST /reload`, `/drain`, `/upgrade`. With `[admin] token`, every request must carry
//! `Authorization: Bearer <token>`.

mod api;
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
use rampart_config::model::AdminSection;
use tokio::sync::watch;

use crate::control::Control;

/// The running admin listener; dropping it stops it.
pub(crate) struct AdminServer {
    addr: SocketAddr,
    /// A duplicate of the listening socket, handed to a new binary on upgrade.
    pub(crate) socket: std::net::TcpListener,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AdminServer {
    /// Binds the admin listener and serves it on a thread of its own.
    /// `inherited` is the socket a previous binary served the admin API on.
    pub(crate) fn start(
        cfg: &AdminSection,
        control: Arc<Control>,
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
    pub(crate) const fn addr(&self) -> SocketAddr {
        self.addr
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
    control: Arc<Control>,
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
                    let Ok((stream, _)) = accepted else { continue };
                    let control = control.clone();
                    let token = token.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            let control = control.clone();
                            let token = token.clone();
                            async move { Ok::<_, Infallible>(handle(req, &control, token.as_deref()).await) }
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

type AdminResponse = Response<Full<Bytes>>;

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

fn error(status: StatusCode, message: &str) -> AdminResponse {
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
    control: &Arc<Control>,
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
        "/routes" if get => json(StatusCode::OK, &api::routes(&control.shared.runtime())),
        "/upstreams" if get => json(StatusCode::OK, &api::upstreams(&control.shared.runtime())),
        "/config" if get => json(StatusCode::OK, &redact::config(&control.shared.runtime())),
        "/metrics" if get => respond(
            StatusCode::OK,
            crate::metrics::expo::CONTENT_TYPE,
            crate::metrics::expo::encode(&control.metrics, &control.shared.runtime()),
        ),
        "/reload" if method == Method::POST => {
            let control = control.clone();
            let result = tokio::task::spawn_blocking(move || {
                control.reload_file(crate::audit::Trigger::AdminApi)
            })
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
            control.shared.set_draining();
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
        "/status" | "/routes" | "/upstreams" | "/config" | "/metrics" | "/reload" | "/drain"
        | "/upgrade" => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => error(StatusCode::NOT_FOUND, "no such admin endpoint"),
    }
}

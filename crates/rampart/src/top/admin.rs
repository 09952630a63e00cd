//! Reading the admin API: `GET /status`, `/upstreams` and `/metrics` with an optional bearer
//! token, each bounded in time, on a thread of its own so the dashboard never waits on it.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::model::Scrape;
use super::prom;

/// Longest wait for one admin API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the admin API is and how to authenticate.
#[derive(Debug, Clone)]
pub(crate) struct AdminApi {
    authority: String,
    base: String,
    token: Option<HeaderValue>,
}

impl AdminApi {
    /// `url` is `http://host:port[/prefix]`.
    pub(crate) fn new(url: &str, token: Option<&str>) -> Result<Self, String> {
        let (authority, path) = rampart_config::split_endpoint(url)?;
        let token = token
            .map(|t| {
                HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| "the token has characters a header cannot carry".to_owned())
            })
            .transpose()?;
        Ok(Self {
            authority,
            base: path.trim_end_matches('/').to_owned(),
            token,
        })
    }

    async fn get(&self, path: &str) -> Result<Bytes, String> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.authority))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = Request::get(format!("{}{path}", self.base))
            .header(http::header::HOST, &self.authority)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        if let Some(t) = &self.token {
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, t.clone());
        }
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        match status {
            StatusCode::OK => Ok(body),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(format!(
                "{path}: {status}: pass the admin token with --token or RAMPART_ADMIN_TOKEN"
            )),
            _ => Err(format!("{path}: {status}")),
        }
    }

    async fn scrape(&self) -> Result<Scrape, String> {
        let bounded = |path: &'static str| async move {
            tokio::time::timeout(REQUEST_TIMEOUT, self.get(path))
                .await
                .unwrap_or_else(|_| Err(format!("{path}: no answer within {REQUEST_TIMEOUT:?}")))
        };
        let (status, upstreams, metrics) = tokio::join!(
            bounded("/status"),
            bounded("/upstreams"),
            bounded("/metrics")
        );
        let metrics = metrics?;
        Ok(Scrape {
            at: Instant::now(),
            status: serde_json::from_slice(&status?).map_err(|e| format!("/status: {e}"))?,
            // Upstreams are optional to the dashboard: an older server may not have them.
            upstreams: upstreams
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
            metrics: prom::parse(&String::from_utf8_lossy(&metrics)),
        })
    }
}

/// Scrapes every `interval` on a background thread until the receiver is dropped.
pub(crate) fn spawn_poller(
    api: AdminApi,
    interval: Duration,
) -> std::io::Result<Receiver<Result<Scrape, String>>> {
    let (tx, rx) = channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("rampart-top-poll".into())
        .spawn(move || poll(&rt, &api, interval, &tx))?;
    Ok(rx)
}

fn poll(
    rt: &tokio::runtime::Runtime,
    api: &AdminApi,
    interval: Duration,
    tx: &Sender<Result<Scrape, String>>,
) {
    loop {
        let started = Instant::now();
        if tx.send(rt.block_on(api.scrape())).is_err() {
            return;
        }
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
}

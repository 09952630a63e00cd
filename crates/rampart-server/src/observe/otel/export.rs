//! The exporter thread: batches spans and sends them to the collector over OTLP/HTTP
//! (protobuf body) or OTLP/gRPC (HTTP/2), one bounded attempt per batch.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_config::model::{OtlpProtocol, TracingSection};

use super::{Msg, SpanRecord, proto};

/// Spans per export request at most.
const BATCH: usize = 512;
/// Longest a span waits in a partial batch.
const LINGER: Duration = Duration::from_secs(1);
/// The gRPC method of the OTLP trace service.
const GRPC_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Export outcomes, for the tracer's counters.
#[derive(Debug, Default)]
pub(super) struct Stats {
    exported: AtomicU64,
    failed: AtomicU64,
}

impl Stats {
    pub(super) fn exported_spans(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    pub(super) fn failed_spans(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Where and how to send.
struct Exporter {
    authority: String,
    path: String,
    protocol: OtlpProtocol,
    service_name: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    stats: Arc<Stats>,
}

/// Starts the exporter thread reading `rx`.
pub(super) fn spawn(cfg: &TracingSection, rx: Receiver<Msg>, stats: Arc<Stats>) -> io::Result<()> {
    let (authority, path) = rampart_config::split_endpoint(cfg.endpoint.get())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let headers = cfg
        .headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect();
    let exporter = Exporter {
        authority,
        path: match cfg.protocol {
            OtlpProtocol::Http => path,
            OtlpProtocol::Grpc => GRPC_PATH.to_owned(),
        },
        protocol: cfg.protocol,
        service_name: cfg.service_name.clone(),
        headers,
        timeout: cfg.export_timeout.get(),
        stats,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("rampart-otlp".into())
        .spawn(move || exporter.run(&rx, &rt))?;
    Ok(())
}

impl Exporter {
    fn run(&self, rx: &Receiver<Msg>, rt: &tokio::runtime::Runtime) {
        let mut batch: Vec<SpanRecord> = Vec::with_capacity(BATCH);
        let mut deadline: Option<Instant> = None;
        loop {
            let msg = match deadline {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
            };
            match msg {
                Ok(Msg::Span(span)) => {
                    batch.push(*span);
                    deadline.get_or_insert_with(|| Instant::now() + LINGER);
                    if batch.len() >= BATCH {
                        self.send(rt, &mut batch);
                        deadline = None;
                    }
                }
                Ok(Msg::Flush(done)) => {
                    while let Ok(Msg::Span(span)) = rx.try_recv() {
                        batch.push(*span);
                    }
                    self.send(rt, &mut batch);
                    deadline = None;
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.send(rt, &mut batch);
                    deadline = None;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.send(rt, &mut batch);
                    return;
                }
            }
        }
    }

    fn send(&self, rt: &tokio::runtime::Runtime, batch: &mut Vec<SpanRecord>) {
        if batch.is_empty() {
            return;
        }
        let count = batch.len() as u64;
        let body = proto::export_request(&self.service_name, batch);
        batch.clear();
        let result = rt.block_on(async {
            tokio::time::timeout(self.timeout, self.post(body))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {:?}", self.timeout)))
        });
        match result {
            Ok(()) => {
                self.stats.exported.fetch_add(count, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.failed.fetch_add(count, Ordering::Relaxed);
                tracing::warn!(collector = %self.authority, error = %e, spans = count, "OTLP export failed; spans dropped");
            }
        }
    }

    async fn post(&self, message: Vec<u8>) -> Result<(), String> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        let (content_type, body) = match self.protocol {
            OtlpProtocol::Http => ("application/x-protobuf", message),
            OtlpProtocol::Grpc => ("application/grpc", proto::grpc_frame(&message)),
        };
        // HTTP/1.1 sends origin-form (`POST /v1/traces` with a Host header), as a client to an
        // origin server must (RFC 9112 §3.2.1); HTTP/2 carries the authority in `:authority`.
        let builder = match self.protocol {
            OtlpProtocol::Http => Request::post(self.path.as_str())
                .header(http::header::HOST, self.authority.as_str()),
            OtlpProtocol::Grpc => Request::post(format!("http://{}{}", self.authority, self.path)),
        };
        let mut req = builder
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        let resp = match self.protocol {
            OtlpProtocol::Http => {
                let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|e| format!("HTTP/1.1: {e}"))?;
                tokio::spawn(conn);
                send.send_request(req).await
            }
            OtlpProtocol::Grpc => {
                req.headers_mut()
                    .insert(http::header::TE, HeaderValue::from_static("trailers"));
                let (mut send, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .map_err(|e| format!("HTTP/2: {e}"))?;
                tokio::spawn(conn);
                send.send_request(req).await
            }
        }
        .map_err(|e| format!("request: {e}"))?;
        let status = resp.status();
        let grpc_status = resp.headers().get("grpc-status").cloned();
        let collected = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("response: {e}"))?;
        if !status.is_success() {
            return Err(format!("collector answered {status}"));
        }
        if self.protocol == OtlpProtocol::Grpc {
            let grpc_status = grpc_status.or_else(|| {
                collected
                    .trailers()
                    .and_then(|t| t.get("grpc-status").cloned())
            });
            match grpc_status.as_ref().map(HeaderValue::as_bytes) {
                Some(b"0") => {}
                Some(other) => {
                    return Err(format!("grpc-status {}", String::from_utf8_lossy(other)));
                }
                None => return Err("no grpc-status in the answer".to_owned()),
            }
        }
        Ok(())
    }
}

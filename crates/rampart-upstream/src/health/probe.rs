//! Active health probes: HTTP/1.1 request, TCP connect, or `grpc.health.v1.Health/Check`.
//! Each target has its own probe task on the health thread; thresholds of consecutive
//! results move it between `unhealthy` and the states that take requests. What to probe and
//! what passes is the compiled check ([`HealthCheckRt`]).

use std::sync::Weak;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use rampart_config::model::HealthCheckKind;
use rampart_config::syntax::Target as TargetSpec;
use rampart_core::Body;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::check::HealthCheckRt;
use super::{Reason, SLOW_START_SHARE, State, TargetStats};
use crate::members::{Members, Target};
use crate::set::UpstreamSet;

/// Most response bytes an HTTP probe reads.
const MAX_PROBE_READ: usize = 64 * 1024;

/// Probes one target (known by its stats) until its set is dropped or discovery removes it.
pub(crate) async fn run(set: Weak<UpstreamSet>, stats: Weak<TargetStats>, check: HealthCheckRt) {
    let mut passes = 0u32;
    let mut fails = 0u32;
    loop {
        tokio::time::sleep(check.next_delay()).await;
        let (Some(set), Some(stats)) = (set.upgrade(), stats.upgrade()) else {
            return;
        };
        let m = set.members();
        let Some(i) = m.index_of(&stats) else {
            return;
        };
        let target = &m.targets[i];
        let result = match tokio::time::timeout(check.timeout, probe(&set, target, &check)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", check.timeout)),
        };
        match result {
            Ok(()) => {
                passes += 1;
                fails = 0;
                if passes >= check.healthy_threshold {
                    mark_passing(&set, &m, i);
                }
            }
            Err(why) => {
                fails += 1;
                passes = 0;
                tracing::debug!(upstream = %set.name, target = %target.label, why, "health probe failed");
                if fails >= check.unhealthy_threshold {
                    mark_failing(&set, &m, i, &why);
                }
            }
        }
    }
}

fn mark_failing(set: &UpstreamSet, m: &Members, i: usize, why: &str) {
    let s = &m.stats[i];
    let from = s.state();
    if from == State::Unhealthy || !s.transition(from, State::Unhealthy, Reason::ActiveCheckFailed)
    {
        return;
    }
    tracing::warn!(upstream = %set.name, target = %m.targets[i].label, from = from.as_str(), to = "unhealthy", reason = Reason::ActiveCheckFailed.code(), detail = why, "target unhealthy");
    set.health.refresh_panic(&set.name, m);
}

fn mark_passing(set: &UpstreamSet, m: &Members, i: usize) {
    let s = &m.stats[i];
    if s.state() != State::Unhealthy {
        return;
    }
    let to = if set.health.outlier.slow_start_ms > 0 {
        s.share
            .store(SLOW_START_SHARE, std::sync::atomic::Ordering::Relaxed);
        State::SlowStart
    } else {
        State::Healthy
    };
    if s.transition(State::Unhealthy, to, Reason::ActiveCheckPassed) {
        tracing::info!(upstream = %set.name, target = %m.targets[i].label, from = "unhealthy", to = to.as_str(), reason = Reason::ActiveCheckPassed.code(), "target healthy again");
        set.health.refresh_panic(&set.name, m);
    }
}

async fn probe(set: &UpstreamSet, target: &Target, check: &HealthCheckRt) -> Result<(), String> {
    match check.kind {
        HealthCheckKind::Tcp => match &target.spec {
            TargetSpec::Unix(path) => crate::connect::unix(target, path, check.timeout)
                .await
                .map(drop)
                .map_err(|e| e.detail.into_owned()),
            _ => crate::connect::tcp(target, check.timeout)
                .await
                .map(drop)
                .map_err(|e| e.detail.into_owned()),
        },
        HealthCheckKind::Http => probe_http(set, target, check).await,
        HealthCheckKind::Grpc => probe_grpc(set, target, check).await,
    }
}

async fn probe_http(
    set: &UpstreamSet,
    target: &Target,
    check: &HealthCheckRt,
) -> Result<(), String> {
    let mut io = crate::connect::stream(target, set, None)
        .await
        .map_err(|e| e.detail.into_owned())?;
    let host = match (&check.host, &target.spec) {
        (Some(host), _) => host.as_str(),
        (None, TargetSpec::Unix(_)) => "localhost",
        (None, _) => &target.label,
    };
    let request = format!(
        "{} {} HTTP/1.1\r\nhost: {host}\r\nuser-agent: rampart-health-check\r\nconnection: close\r\n\r\n",
        check.method, check.path
    );
    io.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    while buf.len() < MAX_PROBE_READ {
        match io.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() => return Err(format!("read: {e}")),
            Err(_) => break,
        }
    }
    check.judge_http(&buf)
}

/// `grpc.health.v1.Health/Check` over HTTP/2; healthy when the answer is `SERVING` (1).
async fn probe_grpc(
    set: &UpstreamSet,
    target: &Target,
    check: &HealthCheckRt,
) -> Result<(), String> {
    let mut sender = crate::connect::http2(target, set)
        .await
        .map_err(|e| e.detail.into_owned())?;
    let scheme = if set.tls.is_some() { "https" } else { "http" };
    let uri = format!("{scheme}://{}/grpc.health.v1.Health/Check", target.label);
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        )
        .header(header::TE, HeaderValue::from_static("trailers"))
        .body(Body::full(grpc_request(&check.grpc_service)))
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    if resp.status() != StatusCode::OK {
        return Err(format!("status {}", resp.status()));
    }
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.map_err(|e| format!("body: {e}"))?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let grpc_status = trailers
        .get("grpc-status")
        .or_else(|| parts.headers.get("grpc-status"))
        .map(HeaderValue::as_bytes);
    if grpc_status != Some(b"0") {
        return Err(format!("grpc-status {grpc_status:?}"));
    }
    match grpc_serving_status(&collected.to_bytes()) {
        Some(1) => Ok(()),
        other => Err(format!("serving status {other:?}")),
    }
}

/// A length-prefixed gRPC message holding `HealthCheckRequest { service }`.
fn grpc_request(service: &str) -> Bytes {
    let mut msg = BytesMut::new();
    if !service.is_empty() {
        msg.put_u8(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.put_slice(service.as_bytes());
    }
    let mut out = BytesMut::with_capacity(5 + msg.len());
    out.put_u8(0); // not compressed
    out.put_u32(u32::try_from(msg.len()).unwrap_or(u32::MAX));
    out.put_slice(&msg);
    out.freeze()
}

fn put_varint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// The `status` of a length-prefixed `HealthCheckResponse` (field 1, varint; 0 when absent).
fn grpc_serving_status(frame: &[u8]) -> Option<u64> {
    let msg = frame.get(5..)?;
    let Some((&key, rest)) = msg.split_first() else {
        // An empty message: every field has its default (0, UNKNOWN).
        return Some(0);
    };
    // Only field 1 (varint) is expected in this message.
    if key != 0x08 {
        return None;
    }
    let mut v = 0u64;
    for (n, &b) in rest.iter().take(10).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * n);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_encode_and_decode() {
        assert_eq!(&grpc_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(&grpc_request("a")[..], &[0, 0, 0, 0, 3, 0x0a, 1, b'a']);
        assert_eq!(grpc_serving_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(grpc_serving_status(&[0, 0, 0, 0, 0]), Some(0));
        assert_eq!(grpc_serving_status(&[0, 0, 0, 0, 2, 0x08, 0x80]), None);
        assert_eq!(grpc_serving_status(&[0, 0]), None);
    }
}

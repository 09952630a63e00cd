//! The access log: one line per request, JSON or combined format, to stdout, stderr or a file.
//!
//! Workers format the line and hand it to a writer thread over a bounded channel, so a slow
//! disk or a blocked terminal never stalls the event loop; when the channel is full the line is
//! dropped and counted instead.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use rampart_config::model::{AccessLogFormat, AccessLogSection};
use rampart_core::{Outcome, RequestCtx};
use serde::Serialize;

use crate::observe::timefmt;

/// Lines buffered between the workers and the writer thread.
const QUEUE: usize = 64 * 1024;

/// A running access log.
#[derive(Debug)]
pub struct AccessLog {
    tx: SyncSender<String>,
    format: AccessLogFormat,
    dropped: AtomicU64,
}

/// Where a log's lines go: `stdout`, `stderr`, or a file opened for appending (created when
/// missing). The access and audit logs share it.
pub(crate) fn open_sink(path: &str) -> io::Result<Box<dyn Write + Send>> {
    Ok(match path {
        "stdout" => Box::new(io::stdout()),
        "stderr" => Box::new(io::stderr()),
        path => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
    })
}

impl AccessLog {
    /// Opens the log described by `cfg`, or `None` when it is disabled.
    ///
    /// # Errors
    /// The log file cannot be opened for appending.
    pub fn open(cfg: &AccessLogSection) -> io::Result<Option<Self>> {
        if !cfg.enabled {
            return Ok(None);
        }
        let out = open_sink(&cfg.path)?;
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("rampart-access-log".into())
            .spawn(move || write_lines(&rx, out))?;
        Ok(Some(Self {
            tx,
            format: cfg.format,
            dropped: AtomicU64::new(0),
        }))
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes the line for a finished request.
    pub(crate) fn record(&self, ctx: &RequestCtx, outcome: Outcome) {
        let line = match self.format {
            AccessLogFormat::Json => json_line(ctx, outcome),
            AccessLogFormat::Combined => combined_line(ctx, outcome),
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn write_lines(rx: &Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = rx.recv() {
        let _ = out.write_all(line.as_bytes());
        while let Ok(more) = rx.try_recv() {
            let _ = out.write_all(more.as_bytes());
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}

fn header_str(v: Option<&HeaderValue>) -> Option<&str> {
    v.and_then(|v| v.to_str().ok())
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[derive(Serialize)]
struct JsonLine<'a> {
    ts: String,
    request_id: &'a str,
    trace_id: String,
    client_ip: String,
    country: Option<&'a str>,
    asn: Option<u32>,
    listener: &'a str,
    method: &'a str,
    uri: String,
    host: Option<&'a str>,
    protocol: &'static str,
    status: u16,
    bytes_sent: u64,
    bytes_received: u64,
    duration_ms: f64,
    upstream_ms: Option<f64>,
    route: Option<&'a str>,
    upstream: Option<&'a str>,
    upstream_target: Option<&'a str>,
    retries: u8,
    grpc_status: Option<u8>,
    reason: Option<&'static str>,
    stage: Option<&'static str>,
    cache: Option<&'static str>,
    detail: Option<&'a str>,
    completed: bool,
    user_agent: Option<&'a str>,
    referer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_key: Option<&'a str>,
}

fn started_at(ctx: &RequestCtx) -> SystemTime {
    SystemTime::now()
        .checked_sub(ctx.started.elapsed())
        .unwrap_or_else(SystemTime::now)
}

fn json_line(ctx: &RequestCtx, o: Outcome) -> String {
    let line = JsonLine {
        ts: timefmt::rfc3339_millis(started_at(ctx)),
        request_id: ctx.request_id.to_str().unwrap_or(""),
        trace_id: ctx.trace.trace_id_hex(),
        client_ip: ctx.client_ip.to_string(),
        country: ctx.country.as_ref().map(rampart_core::CountryCode::as_str),
        asn: ctx.asn,
        listener: &ctx.conn.listener,
        method: ctx.method.as_str(),
        uri: ctx.uri.to_string(),
        host: header_str(ctx.host.as_ref()),
        protocol: protocol(ctx),
        status: o.status,
        bytes_sent: o.bytes_sent,
        bytes_received: o.bytes_received,
        duration_ms: millis(ctx.started.elapsed()),
        upstream_ms: ctx.upstream_duration.map(millis),
        route: ctx.route.as_deref(),
        upstream: ctx.upstream.as_deref(),
        upstream_target: ctx.upstream_target.as_deref(),
        retries: ctx.retries,
        grpc_status: ctx.grpc_status,
        reason: ctx.reason.map(rampart_core::ErrorKind::code).or(ctx.answer),
        stage: ctx.stage,
        cache: ctx.cache,
        detail: ctx.detail.as_deref(),
        completed: o.completed,
        user_agent: header_str(ctx.user_agent.as_ref()),
        referer: header_str(ctx.referer.as_ref()),
        auth_method: ctx.principal.as_ref().map(|p| p.method),
        auth_subject: ctx.principal.as_ref().map(|p| &*p.subject),
        auth_key: ctx.principal.as_ref().and_then(|p| p.key_name.as_deref()),
    };
    let mut s = serde_json::to_string(&line).unwrap_or_default();
    s.push('\n');
    s
}

fn protocol(ctx: &RequestCtx) -> &'static str {
    match ctx.version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Quotes a value for the combined format, escaping `"`, `\` and non-printable bytes as nginx
/// does (`\xHH`), so a hostile header cannot forge log lines.
fn quoted(out: &mut String, value: Option<&[u8]>) {
    out.push('"');
    match value {
        None => out.push('-'),
        Some(bytes) => {
            for &b in bytes {
                match b {
                    b'"' | b'\\' => {
                        let _ = write!(out, "\\x{b:02X}");
                    }
                    0x20..=0x7e => out.push(char::from(b)),
                    _ => {
                        let _ = write!(out, "\\x{b:02X}");
                    }
                }
            }
        }
    }
    out.push('"');
}

fn combined_line(ctx: &RequestCtx, o: Outcome) -> String {
    let mut s = String::with_capacity(256);
    let _ = write!(s, "{} - ", ctx.client_ip);
    // The authenticated user, as nginx logs `$remote_user`: escaped like the quoted fields,
    // since a token's subject is client-chosen text.
    match ctx.principal.as_ref().filter(|p| !p.subject.is_empty()) {
        Some(p) => {
            for &b in p.subject.as_bytes() {
                if b.is_ascii_graphic() && b != b'"' && b != b'\\' {
                    s.push(char::from(b));
                } else {
                    let _ = write!(s, "\\x{b:02X}");
                }
            }
        }
        None => s.push('-'),
    }
    let _ = write!(s, " [{}] ", timefmt::common_log(started_at(ctx)));
    let request = format!("{} {} {}", ctx.method, ctx.uri, protocol(ctx));
    quoted(&mut s, Some(request.as_bytes()));
    if o.status == Outcome::NOTHING_SENT {
        let _ = write!(s, " - {} ", o.bytes_sent);
    } else {
        let _ = write!(s, " {} {} ", o.status, o.bytes_sent);
    }
    quoted(&mut s, ctx.referer.as_ref().map(HeaderValue::as_bytes));
    s.push(' ');
    quoted(&mut s, ctx.user_agent.as_ref().map(HeaderValue::as_bytes));
    // Every field is always there (`-` when empty), so one fixed pattern parses every line.
    let _ = write!(
        s,
        " rid={} route={} upstream={} target={} rt={:.3}",
        ctx.request_id.to_str().unwrap_or("-"),
        ctx.route.as_deref().unwrap_or("-"),
        ctx.upstream.as_deref().unwrap_or("-"),
        ctx.upstream_target.as_deref().unwrap_or("-"),
        ctx.started.elapsed().as_secs_f64(),
    );
    match ctx.upstream_duration {
        Some(d) => {
            let _ = write!(s, " urt={:.3}", d.as_secs_f64());
        }
        None => s.push_str(" urt=-"),
    }
    match &ctx.country {
        Some(country) => {
            let _ = write!(s, " country={country}");
        }
        None => s.push_str(" country=-"),
    }
    let reason = ctx.reason.map(rampart_core::ErrorKind::code).or(ctx.answer);
    let _ = write!(s, " reason={}", reason.unwrap_or("-"));
    if let Some(code) = ctx.grpc_status {
        let _ = write!(s, " grpc_status={code}");
    }
    if let Some(cache) = ctx.cache {
        let _ = write!(s, " cache={cache}");
    }
    if !o.completed {
        s.push_str(" aborted");
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::{ConnInfo, ErrorKind};
    use std::sync::Arc;

    fn ctx() -> RequestCtx {
        let conn = Arc::new(ConnInfo::new(
            "192.0.2.7:5555".parse().unwrap(),
            "127.0.0.1:8080".parse().unwrap(),
            Arc::from("public"),
            "http",
        ));
        let mut ctx = RequestCtx::new(
            conn,
            http::Method::GET,
            "/a?b=1".parse().unwrap(),
            http::Version::HTTP_11,
        );
        ctx.request_id = HeaderValue::from_static("rid-1");
        ctx.user_agent = Some(HeaderValue::from_static("evil\" agent"));
        ctx.route = Some(Arc::from("api"));
        ctx.reason = Some(ErrorKind::UpstreamTimeout);
        ctx
    }

    #[test]
    fn json_lines_carry_every_field() {
        let line = json_line(
            &ctx(),
            Outcome {
                status: 504,
                bytes_sent: 12,
                bytes_received: 0,
                completed: true,
            },
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["status"], 504);
        assert_eq!(v["route"], "api");
        assert_eq!(v["reason"], "upstream_timeout");
        assert_eq!(v["client_ip"], "192.0.2.7");
        assert_eq!(v["uri"], "/a?b=1");
        assert_eq!(v["request_id"], "rid-1");
        assert!(line.ends_with('\n'));
    }

    #[test]
    fn a_grpc_status_is_logged_in_both_formats_only_when_there_is_one() {
        let o = Outcome {
            status: 200,
            bytes_sent: 0,
            bytes_received: 0,
            completed: true,
        };
        let mut c = ctx();
        let plain: serde_json::Value = serde_json::from_str(&json_line(&c, o)).unwrap();
        assert!(plain["grpc_status"].is_null());
        assert!(!combined_line(&c, o).contains("grpc_status"));
        c.grpc_status = Some(4);
        let grpc: serde_json::Value = serde_json::from_str(&json_line(&c, o)).unwrap();
        assert_eq!(grpc["grpc_status"], 4);
        assert!(combined_line(&c, o).contains(" grpc_status=4"));
    }

    #[test]
    fn combined_lines_escape_quotes() {
        let line = combined_line(
            &ctx(),
            Outcome {
                status: 200,
                bytes_sent: 5,
                bytes_received: 0,
                completed: false,
            },
        );
        assert!(line.starts_with("192.0.2.7 - - ["), "{line}");
        assert!(
            line.contains("\"GET /a?b=1 HTTP/1.1\" 200 5 \"-\" \"evil\\x22 agent\""),
            "{line}"
        );
        assert!(
            line.contains("reason=upstream_timeout") && line.contains(" aborted"),
            "{line}"
        );
    }
}

//! The built-in `echo` handler: answers with a JSON description of the request as Rampart sees
//! it (after rewrites), the way "whoami" services do. Handy to see what an upstream receives.

use http::{Request, Response, header};
use http_body_util::BodyExt;
use rampart_core::body_error::client_body_reason;
use rampart_core::{Body, ErrorKind, ProxyError, RequestCtx};
use serde_json::{Map, Value, json};

/// Reads (and counts) the request body, then describes the request.
pub(super) async fn run(
    req: Box<Request<Body>>,
    ctx: &mut RequestCtx,
) -> Result<Response<Body>, ProxyError> {
    let (parts, mut body) = req.into_parts();
    let mut body_bytes = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => body_bytes += f.data_ref().map_or(0, |d| d.len() as u64),
            Err(e) if client_body_reason(&*e).is_some() => {
                let kind = client_body_reason(&*e).unwrap_or(ErrorKind::ClientBodyError);
                return Err(ProxyError::new(kind, e.to_string()));
            }
            Err(e) => return Err(ProxyError::new(ErrorKind::ClientBodyError, e.to_string())),
        }
    }
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let value = Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match headers.get_mut(name.as_str()) {
            Some(Value::Array(values)) => values.push(value),
            _ => {
                headers.insert(name.as_str().to_owned(), Value::Array(vec![value]));
            }
        }
    }
    let doc = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "uri": ctx.uri.to_string(),
        "protocol": format!("{:?}", parts.version),
        "host": ctx.host.as_ref().and_then(|h| h.to_str().ok()),
        "headers": headers,
        "client": { "ip": ctx.client_ip.to_string(), "port": ctx.conn.peer.port() },
        "listener": &*ctx.conn.listener,
        "route": ctx.route.as_deref(),
        "request_id": ctx.request_id.to_str().unwrap_or(""),
        "trace_id": ctx.trace.trace_id_hex(),
        "body_bytes": body_bytes,
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    let mut resp = Response::new(Body::full(text));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

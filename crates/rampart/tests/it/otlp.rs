//! OpenTelemetry export: a real OTLP receiver in this process (OTLP/HTTP and OTLP/gRPC on
//! 127.0.0.1:0, decoding `ExportTraceServiceRequest` with prost) receives Rampart's request
//! spans with the caller's trace ID; sampling is parent-based and the ratio is respected.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message as _;
use rampart_testkit::{RecordingOrigin, TestGateway, reqwest};

use crate::support::{header_values, request_line};

/// Bound on waiting for spans (the exporter sends a partial batch after 1 s).
const WAIT: Duration = Duration::from_secs(15);

/// The OTLP messages, as far as these tests read them (field numbers from the OTLP protos).
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub(crate) resource_spans: Vec<ResourceSpans>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub(crate) resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub(crate) scope_spans: Vec<ScopeSpans>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub(crate) attributes: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct ScopeSpans {
        #[prost(message, optional, tag = "1")]
        pub(crate) scope: Option<Scope>,
        #[prost(message, repeated, tag = "2")]
        pub(crate) spans: Vec<Span>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Scope {
        #[prost(string, tag = "1")]
        pub(crate) name: String,
        #[prost(string, tag = "2")]
        pub(crate) version: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub(crate) trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub(crate) span_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "4")]
        pub(crate) parent_span_id: Vec<u8>,
        #[prost(string, tag = "5")]
        pub(crate) name: String,
        #[prost(int32, tag = "6")]
        pub(crate) kind: i32,
        #[prost(fixed64, tag = "7")]
        pub(crate) start_time_unix_nano: u64,
        #[prost(fixed64, tag = "8")]
        pub(crate) end_time_unix_nano: u64,
        #[prost(message, repeated, tag = "9")]
        pub(crate) attributes: Vec<KeyValue>,
        #[prost(message, optional, tag = "15")]
        pub(crate) status: Option<Status>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Status {
        #[prost(string, tag = "2")]
        pub(crate) message: String,
        #[prost(int32, tag = "3")]
        pub(crate) code: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct KeyValue {
        #[prost(string, tag = "1")]
        pub(crate) key: String,
        #[prost(message, optional, tag = "2")]
        pub(crate) value: Option<AnyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct AnyValue {
        #[prost(oneof = "Value", tags = "1, 2, 3, 4")]
        pub(crate) value: Option<Value>,
    }
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum Value {
        #[prost(string, tag = "1")]
        String(String),
        #[prost(bool, tag = "2")]
        Bool(bool),
        #[prost(int64, tag = "3")]
        Int(i64),
        #[prost(double, tag = "4")]
        Double(f64),
    }
}

/// What the receiver got: every export request, decoded, with the path it was posted to.
#[derive(Default)]
struct Received {
    requests: Vec<(String, String, proto::ExportTraceServiceRequest)>,
}

/// An OTLP collector on 127.0.0.1:0: OTLP/HTTP (HTTP/1.1, protobuf) or OTLP/gRPC (HTTP/2).
struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(grpc: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Received::default()));
        let state = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(receive(req, &state, grpc).await) }
                });
                tokio::spawn(async move {
                    let io = TokioIo::new(stream);
                    if grpc {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    }
                });
            }
        });
        Self {
            addr,
            received,
            task,
        }
    }

    fn spans(&self) -> Vec<proto::Span> {
        self.received
            .lock()
            .unwrap()
            .requests
            .iter()
            .flat_map(|(_, _, r)| &r.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| ss.spans.clone())
            .collect()
    }

    /// Waits (bounded) until at least `n` spans arrived.
    async fn wait_for_spans(&self, n: usize) -> Vec<proto::Span> {
        let deadline = Instant::now() + WAIT;
        loop {
            let spans = self.spans();
            if spans.len() >= n || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    req: Request<hyper::body::Incoming>,
    state: &Mutex<Received>,
    grpc: bool,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    // gRPC frames the message: a compression flag and a 4-byte length first.
    let message = if grpc {
        assert_eq!(body[0], 0, "uncompressed");
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, body.len() - 5);
        body.slice(5..)
    } else {
        body
    };
    let decoded = proto::ExportTraceServiceRequest::decode(message).expect("valid protobuf");
    state
        .lock()
        .unwrap()
        .requests
        .push((path, content_type, decoded));
    let mut resp = Response::new(Full::new(Bytes::new()));
    if grpc {
        let h = resp.headers_mut();
        h.insert("content-type", "application/grpc".parse().unwrap());
        h.insert("grpc-status", "0".parse().unwrap());
    } else {
        resp.headers_mut()
            .insert("content-type", "application/x-protobuf".parse().unwrap());
    }
    resp
}

fn gateway(origin: &RecordingOrigin, tracing: &str) -> TestGateway {
    TestGateway::builder(format!(
        r#"
[tracing]
enabled = true
service_name = "edge-test"
{tracing}

[[listeners]]
name = "web"
bind = "127.0.0.1:0"

[[upstreams]]
name = "app"
targets = ["{origin}"]

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "app"
"#,
        origin = origin.addr(),
    ))
    .start()
}

fn attr<'a>(span: &'a proto::Span, key: &str) -> Option<&'a proto::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn str_attr(span: &proto::Span, key: &str) -> String {
    match attr(span, key) {
        Some(proto::Value::String(s)) => s.clone(),
        other => panic!("{key}: {other:?} in {span:?}"),
    }
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn get(url: &str, traceparent: Option<&str>) -> u16 {
    let client = reqwest::Client::new();
    let mut req = client.get(url);
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Checks one received span against the request that made it and what the upstream saw.
fn check_span(span: &proto::Span, origin_request: &[u8], status: i64) {
    assert_eq!(hex(&span.trace_id), TRACE_ID);
    assert_eq!(hex(&span.parent_span_id), PARENT_ID);
    assert_eq!(span.span_id.len(), 8);
    assert_eq!(span.name, "GET api");
    assert_eq!(span.kind, 2, "server span");
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    assert!(span.start_time_unix_nano > 1_600_000_000_000_000_000);
    assert_eq!(str_attr(span, "http.request.method"), "GET");
    assert_eq!(str_attr(span, "url.path"), "/api/items");
    assert_eq!(str_attr(span, "rampart.route"), "api");
    assert_eq!(str_attr(span, "rampart.upstream"), "app");
    assert_eq!(str_attr(span, "client.address"), "127.0.0.1");
    assert_eq!(str_attr(span, "rampart.listener"), "web");
    assert!(
        matches!(attr(span, "http.response.status_code"), Some(proto::Value::Int(s)) if *s == status)
    );
    assert!(
        matches!(attr(span, "rampart.upstream_duration_ms"), Some(proto::Value::Double(d)) if *d >= 0.0)
    );
    // The upstream's parent is Rampart's span: the exported span ID.
    let tp = header_values(origin_request, "traceparent");
    assert_eq!(tp.len(), 1, "{tp:?}");
    assert_eq!(tp[0], format!("00-{TRACE_ID}-{}-01", hex(&span.span_id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_receives_the_span_with_the_callers_trace_id() {
    let receiver = Receiver::start(false).await;
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        &origin,
        &format!(
            "endpoint = \"http://{}/v1/traces\"\nheaders = {{ \"x-api-key\" = \"secret\" }}",
            receiver.addr
        ),
    );
    let tp = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    assert_eq!(get(&gw.url("web", "/api/items"), Some(&tp)).await, 200);
    let spans = receiver.wait_for_spans(1).await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    let requests = origin.wait_for_requests(1, WAIT).await;
    check_span(&spans[0], &requests[0], 200);
    let received = receiver.received.lock().unwrap();
    let (path, content_type, request) = &received.requests[0];
    assert_eq!(path, "/v1/traces");
    assert_eq!(content_type, "application/x-protobuf");
    let resource = request.resource_spans[0].resource.as_ref().unwrap();
    let service = resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .unwrap();
    assert_eq!(
        service.value.as_ref().unwrap().value,
        Some(proto::Value::String("edge-test".into()))
    );
    let scope = request.resource_spans[0].scope_spans[0]
        .scope
        .as_ref()
        .unwrap();
    assert_eq!(scope.name, "rampart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_receives_the_span_and_errors_are_marked() {
    let receiver = Receiver::start(true).await;
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        &origin,
        &format!(
            "endpoint = \"http://{}\"\nprotocol = \"grpc\"",
            receiver.addr
        ),
    );
    let tp = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    assert_eq!(get(&gw.url("web", "/api/items"), Some(&tp)).await, 200);
    // No route: a 404 span without route attributes.
    assert_eq!(get(&gw.url("web", "/elsewhere"), Some(&tp)).await, 404);
    let spans = receiver.wait_for_spans(2).await;
    assert_eq!(spans.len(), 2, "{spans:?}");
    let requests = origin.wait_for_requests(1, WAIT).await;
    let ok = spans.iter().find(|s| s.name == "GET api").unwrap();
    check_span(ok, &requests[0], 200);
    let miss = spans.iter().find(|s| s.name == "GET").unwrap();
    assert!(matches!(
        attr(miss, "http.response.status_code"),
        Some(proto::Value::Int(404))
    ));
    assert_eq!(str_attr(miss, "error.type"), "no_route");
    assert!(attr(miss, "rampart.route").is_none());
    let received = receiver.received.lock().unwrap();
    assert_eq!(
        received.requests[0].0,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    );
    assert_eq!(received.requests[0].1, "application/grpc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_ratio_exports_no_new_traces_but_follows_sampled_parents() {
    let receiver = Receiver::start(false).await;
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        &origin,
        &format!(
            "endpoint = \"http://{}/v1/traces\"\nsampling_ratio = 0.0",
            receiver.addr
        ),
    );
    let url = gw.url("web", "/api/items");
    for _ in 0..20 {
        assert_eq!(get(&url, None).await, 200);
    }
    // A caller that did not sample: not exported either.
    let unsampled = format!("00-{TRACE_ID}-{PARENT_ID}-00");
    assert_eq!(get(&url, Some(&unsampled)).await, 200);
    // A caller that sampled: exported (parent-based), after all the others were queued.
    let sampled = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    assert_eq!(get(&url, Some(&sampled)).await, 200);
    let spans = receiver.wait_for_spans(1).await;
    // Give a wrongly exported span of an earlier request the same chance to show up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let spans_after = receiver.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans_after.len(), 1, "{spans_after:?}");
    assert_eq!(hex(&spans[0].trace_id), TRACE_ID);
    // Upstreams are told the decision: unsampled new traces carry flags 00.
    let requests = origin.wait_for_requests(22, WAIT).await;
    assert_eq!(requests.len(), 22);
    for r in &requests[..21] {
        let tp = header_values(r, "traceparent");
        assert!(tp[0].ends_with("-00"), "{tp:?}");
    }
    assert!(header_values(&requests[21], "traceparent")[0].ends_with("-01"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ratio_samples_new_traces_and_tells_the_upstream() {
    let receiver = Receiver::start(false).await;
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        &origin,
        &format!("endpoint = \"http://{}/v1/traces\"", receiver.addr),
    );
    for _ in 0..5 {
        assert_eq!(get(&gw.url("web", "/api/items"), None).await, 200);
    }
    let spans = receiver.wait_for_spans(5).await;
    assert_eq!(spans.len(), 5);
    let requests = origin.wait_for_requests(5, WAIT).await;
    for request in &requests {
        let tp = &header_values(request, "traceparent")[0];
        assert!(tp.ends_with("-01"), "{tp}");
        let span = spans
            .iter()
            .find(|s| tp == &format!("00-{}-{}-01", hex(&s.trace_id), hex(&s.span_id)))
            .unwrap_or_else(|| panic!("no span for {tp}: {spans:?}"));
        assert!(span.parent_span_id.is_empty(), "a new trace has no parent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_sends_an_origin_form_request_with_a_host_header() {
    // A plain origin that records the bytes on the wire stands in for the collector.
    let collector = RecordingOrigin::start().await.unwrap();
    let origin = RecordingOrigin::start().await.unwrap();
    let gw = gateway(
        &origin,
        &format!("endpoint = \"http://{}/v1/traces\"", collector.addr()),
    );
    assert_eq!(get(&gw.url("web", "/api/items"), None).await, 200);
    let exports = collector.wait_for_requests(1, WAIT).await;
    assert!(!exports.is_empty(), "no export request arrived");
    assert_eq!(request_line(&exports[0]), "POST /v1/traces HTTP/1.1");
    assert_eq!(
        header_values(&exports[0], "host"),
        vec![collector.addr().to_string()]
    );
}

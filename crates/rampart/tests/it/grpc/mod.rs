//! gRPC through Rampart end to end: a real tonic origin served over h2c (prior knowledge) on
//! 127.0.0.1:0, a real Rampart whose listener takes h2c and whose upstream has
//! `protocol = "h2c"`, and a real tonic client talking HTTP/2 to Rampart. Unary, server
//! streaming (messages arrive while the origin still streams), client streaming, bidirectional
//! streaming, trailers (errors and custom metadata), and gRPC-shaped failures from Rampart
//! itself (origin down, no route, upstream timeout).
//!
//! No codegen: the message is a hand-written prost struct and the service is tonic's generic
//! server and client machinery (`tonic::server::Grpc`, `tonic::client::Grpc`) with the prost
//! codec, served and connected with hyper.

mod calls;
mod failures;
mod streaming;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt as _};
use http::uri::PathAndQuery;
use http::{HeaderMap, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_testkit::TestGateway;
use tokio::sync::mpsc;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::server::{
    ClientStreamingService, ServerStreamingService, StreamingService, UnaryService,
};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

/// Bound on every wait in this file.
const WAIT: Duration = Duration::from_secs(10);

/// The one message every method takes and returns.
#[derive(Clone, PartialEq, prost::Message)]
struct Msg {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(uint32, tag = "2")]
    seq: u32,
}

fn msg(text: &str, seq: u32) -> Msg {
    Msg {
        text: text.to_owned(),
        seq,
    }
}

// ---------------------------------------------------------------------------------------------
// The origin: a tonic service on hyper's HTTP/2 server.

/// What the origin saw and the gate its streaming method waits on.
#[derive(Default)]
struct OriginState {
    /// Request headers of every call, in arrival order.
    requests: Mutex<Vec<(String, HeaderMap)>>,
    /// Messages the gated stream has produced so far.
    sent: AtomicUsize,
    /// Permits for the gated stream: it produces message `n + 1` only after a permit.
    gate: Mutex<Option<mpsc::UnboundedReceiver<()>>>,
    /// Set when the gated stream is dropped before its end (the call was cancelled).
    cancelled: AtomicBool,
    /// How each client stream to `Sum` ended: its message count, or the error reading it.
    sums: Mutex<Vec<Result<usize, Code>>>,
    /// Messages `Sum` has received, over all calls.
    sum_messages: AtomicUsize,
}

/// Marks the gated stream cancelled when dropped before it finished.
struct CancelFlag(Arc<OriginState>, bool);

impl CancelFlag {
    fn finished(&mut self) {
        self.1 = true;
    }
}

impl Drop for CancelFlag {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.store(true, Ordering::SeqCst);
        }
    }
}

/// A tonic origin on `127.0.0.1:0`, stopped when dropped.
struct GrpcOrigin {
    addr: SocketAddr,
    state: Arc<OriginState>,
    gate: mpsc::UnboundedSender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GrpcOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GrpcOrigin {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (gate, permits) = mpsc::unbounded_channel();
        let state = Arc::new(OriginState {
            gate: Mutex::new(Some(permits)),
            ..OriginState::default()
        });
        let task = tokio::spawn(serve(listener, state.clone()));
        Self {
            addr,
            state,
            gate,
            task,
        }
    }

    /// The headers of the last call to `path` the origin saw.
    fn last_request(&self, path: &str) -> HeaderMap {
        let requests = self.state.requests.lock().unwrap();
        let found = requests.iter().rev().find(|(p, _)| p == path);
        found.map(|(_, h)| h.clone()).unwrap_or_default()
    }

    fn calls(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }
}

async fn serve(listener: tokio::net::TcpListener, state: Arc<OriginState>) {
    let mut conns = tokio::task::JoinSet::new();
    while let Ok((tcp, _)) = listener.accept().await {
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| dispatch(state.clone(), req));
        conns.spawn(async move {
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

type Reply = http::Response<tonic::body::Body>;

async fn dispatch(
    state: Arc<OriginState>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<Reply, Infallible> {
    let path = req.uri().path().to_owned();
    state
        .requests
        .lock()
        .unwrap()
        .push((path.clone(), req.headers().clone()));
    let mut grpc = tonic::server::Grpc::new(ProstCodec::<Msg, Msg>::default());
    Ok(match path.as_str() {
        "/test.Echo/Unary" => grpc.unary(Unary, req).await,
        "/test.Echo/Gated" => grpc.server_streaming(Gated(state), req).await,
        "/test.Echo/Trailing" => grpc.server_streaming(Trailing, req).await,
        "/test.Echo/Sum" => grpc.client_streaming(Sum(state), req).await,
        "/test.Echo/Chat" => grpc.streaming(Chat, req).await,
        "/test.Echo/Stall" => {
            tokio::time::sleep(WAIT * 3).await;
            Status::aborted("stalled").into_http()
        }
        _ => Status::unimplemented("no such method at the origin").into_http(),
    })
}

type UnaryFuture = Pin<Box<dyn Future<Output = Result<Response<Msg>, Status>> + Send>>;
type StreamFuture = Pin<
    Box<
        dyn Future<Output = Result<Response<BoxStream<'static, Result<Msg, Status>>>, Status>>
            + Send,
    >,
>;

/// Echoes; `"missing"` fails with NOT_FOUND, a message and metadata (a trailers-only
/// response); a reply carries a response header of the origin's.
struct Unary;

impl UnaryService<Msg> for Unary {
    type Response = Msg;
    type Future = UnaryFuture;

    fn call(&mut self, request: Request<Msg>) -> Self::Future {
        Box::pin(async move {
            let m = request.into_inner();
            if m.text == "missing" {
                let mut md = MetadataMap::new();
                md.insert("x-detail", MetadataValue::from_static("gone"));
                md.insert_bin("x-blob-bin", MetadataValue::from_bytes(&[0, 1, 2, 255]));
                return Err(Status::with_metadata(
                    Code::NotFound,
                    "no such thing: missing",
                    md,
                ));
            }
            let mut resp = Response::new(msg(&format!("echo: {}", m.text), m.seq));
            resp.metadata_mut()
                .insert("x-origin", MetadataValue::from_static("unary"));
            Ok(resp)
        })
    }
}

/// Streams `seq` messages; each after the first waits for a permit from the test.
struct Gated(Arc<OriginState>);

impl ServerStreamingService<Msg> for Gated {
    type Response = Msg;
    type ResponseStream = BoxStream<'static, Result<Msg, Status>>;
    type Future = StreamFuture;

    fn call(&mut self, request: Request<Msg>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            let count = request.into_inner().seq;
            let Some(permits) = state.gate.lock().unwrap().take() else {
                return Err(Status::failed_precondition("the gate is taken"));
            };
            let flag = CancelFlag(state.clone(), false);
            let out = stream::unfold((permits, 0u32, flag), move |(mut permits, i, mut flag)| {
                let state = state.clone();
                async move {
                    if i == count {
                        flag.finished();
                        return None;
                    }
                    if i > 0 {
                        permits.recv().await?;
                    }
                    state.sent.fetch_add(1, Ordering::SeqCst);
                    Some((Ok(msg("part", i)), (permits, i + 1, flag)))
                }
            });
            Ok(Response::new(out.boxed()))
        })
    }
}

/// Two messages, then the trailers: `"ok"` ends with status OK and custom trailing metadata;
/// anything else with NOT_FOUND, a message and metadata after the messages.
struct Trailing;

impl ServerStreamingService<Msg> for Trailing {
    type Response = Msg;
    type ResponseStream = BoxStream<'static, Result<Msg, Status>>;
    type Future = StreamFuture;

    fn call(&mut self, request: Request<Msg>) -> Self::Future {
        Box::pin(async move {
            let mode = request.into_inner().text;
            let mut md = MetadataMap::new();
            md.insert("x-checksum", MetadataValue::from_static("c0ffee"));
            md.insert_bin("x-blob-bin", MetadataValue::from_bytes(&[9, 0, 255]));
            let end = if mode == "ok" {
                Status::with_metadata(Code::Ok, "", md)
            } else {
                Status::with_metadata(Code::NotFound, "ran out after two", md)
            };
            let items = vec![Ok(msg("a", 0)), Ok(msg("b", 1)), Err(end)];
            Ok(Response::new(stream::iter(items).boxed()))
        })
    }
}

/// Joins the texts of every message the client streamed; `seq` is their count.
/// Each outcome is recorded in `sums`.
struct Sum(Arc<OriginState>);

/// Records how one `Sum` call ended when dropped: its result, or `CANCELLED` when hyper
/// dropped the call because the stream was reset before it answered.
struct SumOutcome(Arc<OriginState>, Option<Result<usize, Code>>);

impl SumOutcome {
    fn record(&mut self, outcome: Result<usize, Code>) {
        self.1 = Some(outcome);
    }
}

impl Drop for SumOutcome {
    fn drop(&mut self) {
        let outcome = self.1.unwrap_or(Err(Code::Cancelled));
        self.0.sums.lock().unwrap().push(outcome);
    }
}

impl ClientStreamingService<Msg> for Sum {
    type Response = Msg;
    type Future = UnaryFuture;

    fn call(&mut self, request: Request<Streaming<Msg>>) -> Self::Future {
        let state = self.0.clone();
        let mut outcome = SumOutcome(self.0.clone(), None);
        Box::pin(async move {
            let mut incoming = request.into_inner();
            let mut texts = Vec::new();
            loop {
                match incoming.message().await {
                    Ok(Some(m)) => {
                        state.sum_messages.fetch_add(1, Ordering::SeqCst);
                        texts.push(m.text);
                    }
                    Ok(None) => break,
                    Err(status) => {
                        outcome.record(Err(status.code()));
                        return Err(status);
                    }
                }
            }
            outcome.record(Ok(texts.len()));
            let count = u32::try_from(texts.len()).unwrap_or(u32::MAX);
            Ok(Response::new(msg(&texts.join("+"), count)))
        })
    }
}

/// Answers each message as it arrives.
struct Chat;

impl StreamingService<Msg> for Chat {
    type Response = Msg;
    type ResponseStream = BoxStream<'static, Result<Msg, Status>>;
    type Future = StreamFuture;

    fn call(&mut self, request: Request<Streaming<Msg>>) -> Self::Future {
        Box::pin(async move {
            let replies = request
                .into_inner()
                .map(|m| m.map(|m| msg(&format!("re: {}", m.text), m.seq)));
            Ok(Response::new(replies.boxed()))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Gateway and client.

/// Rampart with one h2c listener and a catch-all route (or `route_extra`) to `origin` over h2c.
fn gateway(origin: SocketAddr, route_extra: &str) -> TestGateway {
    let config = format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"grpc\"\ntargets = [\"{origin}\"]\nprotocol = \"h2c\"\n\n\
         [[routes]]\nname = \"grpc\"\nupstream = \"grpc\"\n{route_extra}\n"
    );
    TestGateway::builder(config).access_log().start()
}

type GrpcClient = tonic::client::Grpc<Client<HttpConnector, tonic::body::Body>>;

/// A tonic client speaking HTTP/2 with prior knowledge to `addr`.
fn client(addr: SocketAddr) -> GrpcClient {
    let http = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let origin: Uri = format!("http://{addr}").parse().unwrap();
    tonic::client::Grpc::with_origin(http, origin)
}

fn codec() -> ProstCodec<Msg, Msg> {
    ProstCodec::default()
}

fn path(method: &str) -> PathAndQuery {
    format!("/test.Echo/{method}").parse().unwrap()
}

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .expect("timed out waiting through the gateway")
}

async fn unary(
    client: &mut GrpcClient,
    method: &str,
    req: Request<Msg>,
) -> Result<Response<Msg>, Status> {
    within(client.ready()).await.unwrap();
    within(client.unary(req, path(method), codec())).await
}

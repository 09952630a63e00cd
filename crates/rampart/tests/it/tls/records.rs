//! How responses over TLS are packed into records: an HTTP/2 client speaking raw frames over a
//! rustls connection whose TLS records are counted as they arrive.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_testkit::{HttpOrigin, TestGateway, TestPki};
use rustls::ClientConnection;
use rustls::pki_types::ServerName;

/// TLS content type of application data (every record after a TLS 1.3 handshake).
const APPLICATION_DATA: u8 = 23;
const FRAME_DATA: u8 = 0x0;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_RST_STREAM: u8 = 0x3;
const FRAME_SETTINGS: u8 = 0x4;
const FRAME_GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// A raw HTTP/2 client over TLS that counts the records it receives.
struct RecordCountingH2 {
    tcp: TcpStream,
    tls: ClientConnection,
    /// Received bytes not yet split into records.
    raw: Vec<u8>,
    /// Decrypted bytes not yet split into frames.
    plain: Vec<u8>,
    records: usize,
}

impl RecordCountingH2 {
    fn connect(gw: &TestGateway, pki: &TestPki) -> Self {
        let config = Arc::new(pki.client_config(&[b"h2"]));
        let mut tcp = TcpStream::connect(gw.addr("https")).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls =
            ClientConnection::new(config, ServerName::try_from("h2.test").unwrap()).unwrap();
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp).unwrap();
        }
        assert_eq!(tls.alpn_protocol(), Some(&b"h2"[..]));
        let mut client = Self {
            tcp,
            tls,
            raw: Vec::new(),
            plain: Vec::new(),
            records: 0,
        };
        let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        preface.extend(frame(FRAME_SETTINGS, 0, 0, &[]));
        client.send(&preface);
        client
    }

    fn send(&mut self, bytes: &[u8]) {
        self.tls.writer().write_all(bytes).unwrap();
        while self.tls.wants_write() {
            self.tls.write_tls(&mut self.tcp).unwrap();
        }
    }

    /// Sends a GET of `path` for each stream, all in one write.
    fn send_gets(&mut self, path: &str, streams: &[u32]) {
        let mut batch = Vec::new();
        for id in streams {
            batch.extend(frame(
                FRAME_HEADERS,
                END_STREAM | END_HEADERS,
                *id,
                &get_block(path),
            ));
        }
        self.send(&batch);
    }

    /// Sends a GET for each stream in one write, then reads until every one of them has ended
    /// with a DATA frame; returns the records received meanwhile.
    fn get_all(&mut self, streams: &[u32]) -> usize {
        self.records = 0;
        self.send_gets("/", streams);
        let mut open: Vec<u32> = streams.to_vec();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !open.is_empty() {
            assert!(Instant::now() < deadline, "streams {open:?} never ended");
            for (kind, flags, id) in self.read_frames() {
                if kind == FRAME_DATA && flags & END_STREAM != 0 {
                    open.retain(|s| *s != id);
                }
            }
        }
        self.records
    }

    /// Reads once from the socket and returns the complete frames it finished (answering
    /// SETTINGS; failing on a reset or GOAWAY).
    fn read_frames(&mut self) -> Vec<(u8, u8, u32)> {
        let mut buf = [0u8; 64 * 1024];
        let n = self.tcp.read(&mut buf).unwrap();
        assert!(n > 0, "the gateway closed the connection");
        self.raw.extend_from_slice(&buf[..n]);
        while self.raw.len() >= 5 {
            let len = usize::from(u16::from_be_bytes([self.raw[3], self.raw[4]]));
            if self.raw.len() < 5 + len {
                break;
            }
            let record: Vec<u8> = self.raw.drain(..5 + len).collect();
            if record[0] == APPLICATION_DATA {
                self.records += 1;
            }
            // rustls takes a record in pieces, and holds a bounded amount of plaintext.
            let mut rest = record.as_slice();
            while !rest.is_empty() {
                self.tls.read_tls(&mut rest).unwrap();
                self.tls.process_new_packets().unwrap();
                self.take_plaintext();
            }
        }
        let mut frames = Vec::new();
        while self.plain.len() >= 9 {
            let len = usize::from(self.plain[0]) << 16
                | usize::from(self.plain[1]) << 8
                | usize::from(self.plain[2]);
            if self.plain.len() < 9 + len {
                break;
            }
            let head: Vec<u8> = self.plain.drain(..9 + len).take(9).collect();
            let (kind, flags) = (head[3], head[4]);
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            assert!(
                kind != FRAME_RST_STREAM && kind != FRAME_GOAWAY,
                "the gateway sent frame type {kind} on stream {id}"
            );
            if kind == FRAME_SETTINGS && flags & ACK == 0 {
                self.send(&frame(FRAME_SETTINGS, ACK, 0, &[]));
            }
            frames.push((kind, flags, id));
        }
        frames
    }

    /// Moves what rustls decrypted into the frame buffer.
    fn take_plaintext(&mut self) {
        let mut chunk = Vec::new();
        match self.tls.reader().read_to_end(&mut chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("reading plaintext: {e}"),
        }
        self.plain.extend(chunk);
    }
}

/// An HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend(stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK for `GET https://h2.test{path}`: static-table entries and literals never indexed.
fn get_block(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x87];
    for (name_index, value) in [(4u8, path.as_bytes()), (1, b"h2.test".as_slice())] {
        block.extend([name_index, u8::try_from(value.len()).unwrap()]);
        block.extend_from_slice(value);
    }
    block
}

/// A gateway with one TLS listener (`https`, one worker) and `routes`, logging requests.
fn tls_gateway(pki: &TestPki, routes: &str) -> TestGateway {
    let cert = pki.server("h2", &["h2.test"]);
    TestGateway::builder(format!(
        r#"
[server]
workers = 1
[[listeners]]
name = "https"
bind = "127.0.0.1:0"
[[listeners.tls.certificates]]
cert = {:?}
key = {:?}
default = true
{routes}
"#,
        cert.cert, cert.key
    ))
    .access_log()
    .start()
}

/// Stream IDs 3, 5, ... for `n` requests after the first.
fn next_streams(n: u32) -> Vec<u32> {
    (1..=n).map(|i| 2 * i + 1).collect()
}

#[test]
fn responses_ready_together_share_tls_records() {
    let pki = TestPki::new();
    // A fixed answer larger than the 256 bytes above which the HTTP/2 codec flushes after
    // each DATA frame.
    let body = "x".repeat(1024);
    let gw = tls_gateway(
        &pki,
        &format!("[[routes]]\nname = \"fixed\"\nrespond = {{ status = 200, body = \"{body}\" }}"),
    );
    let mut client = RecordCountingH2::connect(&gw, &pki);
    // The first request also takes in the server's SETTINGS and its session tickets.
    client.get_all(&[1]);
    let streams = next_streams(16);
    let records = client.get_all(&streams);
    // Sealed per flush, 16 responses of 1 KiB each took at least 16 records.
    assert!(
        records <= streams.len() / 2,
        "{records} records for {} responses",
        streams.len()
    );
}

/// A client that sends requests and leaves before their answers come: each is logged as
/// closed by the client (499), and the gateway goes on serving.
#[test]
fn a_tls_client_leaving_before_its_answers_is_logged_499_and_others_are_served() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let origin = runtime.block_on(HttpOrigin::start()).unwrap();
    let pki = TestPki::new();
    let gw = tls_gateway(
        &pki,
        &format!(
            r#"
[[upstreams]]
name = "origin"
targets = ["{}"]
[[routes]]
name = "all"
upstream = "origin"
"#,
            origin.addr()
        ),
    );
    let mut client = RecordCountingH2::connect(&gw, &pki);
    client.get_all(&[1]);
    let streams = next_streams(16);
    client.send_gets("/delay/300", &streams);
    let deadline = Instant::now() + Duration::from_secs(5);
    while origin.requests() < 17 {
        assert!(
            Instant::now() < deadline,
            "the requests never reached the origin"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Closing with received bytes unread makes the kernel answer with a reset.
    drop(client);

    let lines = gw.access_log_json(17);
    assert_eq!(
        lines.len(),
        17,
        "requests missing from the access log: {lines:#?}"
    );
    let statuses: Vec<Option<u64>> = lines.iter().map(|l| l["status"].as_u64()).collect();
    let closed = statuses.iter().filter(|s| **s == Some(499)).count();
    assert_eq!(
        closed, 16,
        "the abandoned requests are logged 499: {statuses:?}"
    );
    let mut next = RecordCountingH2::connect(&gw, &pki);
    next.get_all(&[1]);
}

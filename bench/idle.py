#!/usr/bin/env python3
"""RSS per idle connection: HTTP/1.1 keep-alive (--proto h1), or HTTP/2 (--proto h2, the
default): h2c with prior knowledge, and TLS with ALPN h2.

Starts a small HTTP/1.1 origin (in this process) and Rampart with one plain and one TLS
listener, then for each listener opens N connections one after another, does one GET on each
(reading the whole response) and holds them all idle, and reads Rampart's RSS (VmRSS) before
and after. Prints KiB per idle connection. Bounded: every socket has a timeout, the run ends by
itself.

  python3 bench/idle.py --rampart target/release/rampart --conns 5000
  python3 bench/idle.py --rampart target/release/rampart --proto h1 --only plain
  python3 bench/idle.py --rampart target/release/rampart --extra-config extra.toml

--extra-config appends TOML (e.g. an [http2] table) to the generated configuration.
"""
import argparse
import http.server
import os
import resource
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True

BODY = (b"0123456789abcdef" * 64)[:1024]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (the handler's name is fixed by http.server)
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *_):
        pass


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(
        ">I", stream) + payload


def literal(index, value):
    """HPACK literal without indexing, name from the static table (index < 15)."""
    v = value.encode()
    return bytes([index]) + bytes([len(v)]) + v


def request_block(scheme_https, path):
    return (b"\x82" + (b"\x87" if scheme_https else b"\x86") + literal(4, path)
            + literal(1, "localhost"))


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def one_request(s, https, path):
    """Preface, SETTINGS, one GET on stream 1; read frames until the response ends."""
    s.sendall(PREFACE + frame(4, 0, 0) + frame(1, 0x5, 1, request_block(https, path)))
    status_seen = False
    while True:
        head = recv_exact(s, 9)
        length = int.from_bytes(head[:3], "big")
        kind, flags = head[3], head[4]
        stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        payload = recv_exact(s, length) if length else b""
        if kind == 4 and not flags & 1:
            s.sendall(frame(4, 1, 0))
        elif kind == 6 and not flags & 1:
            s.sendall(frame(6, 1, 0, payload))
        elif kind == 7:
            raise ConnectionError("GOAWAY")
        elif kind == 3 and stream == 1:
            raise ConnectionError("RST_STREAM")
        elif stream == 1 and kind in (0, 1):
            status_seen |= kind == 1
            if flags & 1:
                return status_seen


def one_h1_request(s, path):
    """One keep-alive GET; reads the head and the Content-Length body."""
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if len(body) < length:
        body += recv_exact(s, length - len(body))
    return head.startswith(b"HTTP/1.1 200")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def hold(n, port, tls_ctx, path, proto):
    socks, bad = [], 0
    for _ in range(n):
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            s = tls_ctx.wrap_socket(raw, server_hostname="localhost") if tls_ctx else raw
            if tls_ctx and s.selected_alpn_protocol() != proto_alpn(proto):
                raise ConnectionError(f"ALPN did not pick {proto_alpn(proto)}")
            ok = one_h1_request(s, path) if proto == "h1" else one_request(s, bool(tls_ctx), path)
            if not ok:
                bad += 1
            socks.append(s)
        except OSError as e:
            print(f"error {e}", file=sys.stderr, flush=True)
            bad += 1
    return socks, bad


def proto_alpn(proto):
    return "http/1.1" if proto == "h1" else "h2"


def wait_port(port, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def measure(args, work, origin_port, tls):
    port = free_port()
    cfg = os.path.join(work, "tls.toml" if tls else "plain.toml")
    tls_block = ""
    if tls:
        tls_block = (f'[listeners.tls]\n[[listeners.tls.certificates]]\n'
                     f'cert = "{work}/cert.pem"\nkey = "{work}/key.pem"\ndefault = true\n')
    extra = open(args.extra_config).read() if args.extra_config else ""
    with open(cfg, "w") as f:
        f.write(f"""[server]
workers = 1
drain_timeout = "1s"
[log]
level = "warn"
[access_log]
enabled = false
[timeouts]
keepalive = "300s"
[limits]
max_connections = 19000
max_connections_per_ip = 0
{extra}
[[listeners]]
name = "bench"
bind = "127.0.0.1:{port}"
backlog = 4096
{tls_block}
[[upstreams]]
name = "origin"
targets = ["127.0.0.1:{origin_port}"]
idle_timeout = "300s"
max_idle_per_target = 8

[[routes]]
name = "all"
upstream = "origin"
""")
    proc = subprocess.Popen([args.rampart, "run", "-c", cfg], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, "rampart.log"), "a"))
    try:
        if not wait_port(port, proc):
            sys.exit(f"rampart did not listen; see {work}/rampart.log")
        ctx = None
        if tls:
            ctx = ssl.create_default_context(cafile=os.path.join(work, "cert.pem"))
            ctx.set_alpn_protocols([proto_alpn(args.proto)])
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        # one connection first, so the upstream pool and the first-use allocations are made
        warm, _ = hold(1, port, ctx, "/1k", args.proto)
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        socks, bad = hold(args.conns, port, ctx, "/1k", args.proto)
        time.sleep(args.settle)
        after = rss_kib(proc.pid)
        per = (after - before) / max(1, len(socks))
        if args.proto == "h1":
            name = "TLS 1.3 + HTTP/1.1" if tls else "HTTP/1.1"
        else:
            name = "TLS 1.3 + h2" if tls else "h2c (prior knowledge)"
        print(f"{name:24} {len(socks):6} conns ({bad} bad): RSS {before / 1024:.1f} -> "
              f"{after / 1024:.1f} MiB, {per:.2f} KiB per idle connection", flush=True)
        for s in socks + warm:
            s.close()
        return per
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rampart", required=True)
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--settle", type=float, default=2.0, help="seconds before reading RSS")
    ap.add_argument("--extra-config", default=None)
    ap.add_argument("--only", choices=["plain", "tls"], default=None)
    ap.add_argument("--proto", choices=["h1", "h2"], default="h2")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="h2idle-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{work}/key.pem",
                    "-out", f"{work}/cert.pem", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    for tls in (False, True):
        if args.only and args.only != ("tls" if tls else "plain"):
            continue
        measure(args, work, origin.server_address[1], tls)
    origin.shutdown()


if __name__ == "__main__":
    main()

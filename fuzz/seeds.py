#!/usr/bin/env python3
"""Writes the hand-made seed corpora of the fuzz targets into fuzz/corpus/<target>/.

Run from anywhere; files are named by the hash of their content, so running it again adds
nothing new. Inputs the fuzzers found are added beside these by scripts/fuzz."""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


HEADS = [
    "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "GET /a?b=1&c=%2F HTTP/1.1\r\nHost: example.com\r\nUser-Agent: x\r\nAccept: */*\r\n\r\n",
    "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello",
    "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    "GET / HTTP/1.1\nHost: a\n\n",
    "\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET http://example.com:8080/p?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "GET / HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n",
    "GET / HTTP/1.1\r\nX-Empty:\r\nX-Tab:\tv\t\r\nX-High: \xc3\xa9\r\n\r\n",
    "GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "GET / HTTP/1.1\r\n" + "".join(f"X-{i}: v\r\n" for i in range(140)) + "\r\n",
    "POST / HTTP/1.1\r\nContent-Length: 00000000000000000001\r\n\r\nx",
    "GET /%2e%2e/admin HTTP/1.1\r\nHost: a\r\n\r\n",
]
for h in HEADS:
    write("request_head", h.encode("latin-1"))

STREAMS = [
    HEADS[0] + HEADS[2] + HEADS[3],
    "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=\"a b\"\r\nabc\r\n1A\r\n"
    + "z" * 26 + "\r\n0\r\nTrailer: 1\r\n\r\nGET /b HTTP/1.1\nHost: a\n\n",
    "POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n1GET /b HTTP/1.1\r\n\r\n",
    "POST / HTTP/1.1\r\nContent-Length: 25\r\n\r\nGET /b HTTP/1.1\nHost: a\n\nGET /c HTTP/1.1\r\n\r\n",
    "POST / HTTP/1.1\r\ncontent-length:1 , 1\r\n\r\nxGET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\n",
    "\r\n\r\nGET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
]
for s in STREAMS + HEADS[:6]:
    write("stream_scan", s.encode("latin-1"))

CHUNKED = [
    b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n",
    b"2\r\nok\r\n0\r\ngrpc-status: 0\r\nx-b: two\r\n\r\n",
    b"0\r\n\r\nleftover",
    b"a;name=\"quoted ; value\"\r\n0123456789\r\n0;last\r\n\r\n",
    b"zz\r\nab\r\n0\r\n\r\n",
    b"5;a\nb\r\nhello\r\n0\r\n\r\n",
    b"ffffffffffffffffff\r\n",
    b"0\r\nbad trailer\r\n\r\n",
    b"\x07" + b"round trip body with \x00 and \xff bytes",
    b"1;" + b"e" * 5000 + b"\r\nx\r\n0\r\n\r\n",
    b"0\r\nx: " + b"v" * 17000 + b"\r\n\r\n",
]
for c in CHUNKED:
    write("chunked", c)

RESPONSES = [
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nbody",
    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    "HTTP/1.1 200 OK\r\nConnection: close, x-hop\r\nX-Hop: 1\r\nProxy-Connection: x\r\nTE: trailers\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\ncontent-length: 4\r\n\r\nbody",
    "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
    "HTTP/1.1 999 Odd\r\n\r\n",
    "HTTP/1.1 200 OK\nX-Bare: lf\n\n",
    "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Tag: a\r\n\r\n",
]
for r in RESPONSES:
    write("upstream_response", r)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd, fam, body, crc=False):
    if crc:
        body += b"\x03\x00\x04\x00\x00\x00\x00"
    hdr = SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + body
    if crc:
        c = crc32c(hdr)
        hdr = hdr[:-4] + struct.pack(">I", c)
    return hdr


PROXY = [
    b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n",
    b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n",
    b"PROXY UNKNOWN\r\n",
    b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
    b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
    v2(1, 0x11, bytes([192, 0, 2, 1, 198, 51, 100, 2]) + struct.pack(">HH", 1234, 443)),
    v2(1, 0x21, bytes(range(32)) + struct.pack(">HH", 1, 2), crc=True),
    v2(0, 0x00, b""),
    v2(1, 0x11, bytes(8) + bytes(4) + b"\x01\x00\x02h2" + b"\x20\x00\x05\x01\x00\x00\x00\x00"),
    v2(1, 0x31, bytes(216)),
    v2(1, 0x11, bytes(12) + b"\x05\x00"),
]
for p in PROXY:
    write("proxy_protocol", p)


def hello(exts, record_split=None):
    body = b"\x03\x03" + bytes([7] * 32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    body += struct.pack(">H", len(exts)) + exts
    msg = b"\x01" + struct.pack(">I", len(body))[1:] + body
    if record_split:
        a, b = msg[:record_split], msg[record_split:]
        return (b"\x16\x03\x01" + struct.pack(">H", len(a)) + a
                + b"\x16\x03\x01" + struct.pack(">H", len(b)) + b)
    return b"\x16\x03\x01" + struct.pack(">H", len(msg)) + msg


def sni(name, kind=0):
    entry = bytes([kind]) + struct.pack(">H", len(name)) + name
    lst = struct.pack(">H", len(entry)) + entry
    return b"\x00\x00" + struct.pack(">H", len(lst)) + lst


GROUPS = b"\x00\x0a\x00\x04\x00\x02\x00\x1d"
VERSIONS = b"\x00\x2b\x00\x03\x02\x03\x04"
for ext in [sni(b"example.com"), GROUPS + sni(b"API.Example.com."), b"", GROUPS,
            sni(b"bad name"), sni(b"x", kind=1) + sni(b"y.example"), sni(b"a_b.example"),
            sni(b"192.0.2.1"), VERSIONS + GROUPS + sni(b"tls13.example")]:
    write("client_hello_sni", hello(ext))
write("client_hello_sni", hello(sni(b"split.example"), record_split=20))
write("client_hello_sni", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")

PATHS = ["/", "*", "/a/b/c", "/a/./b/../c", "/api/%2e%2e/admin", "/a/%2F/b", "/%7euser/%41",
         "/a/..", "/..", "/a/b/.", "/%00", "/%zz", "/%e2%82%ac", "/%C3", "relative", "//a//b/",
         "/a/.../b", "/./", "/%2E/%2e%2E/x"]
for p in PATHS:
    write("path_normalize", p)

REQUESTS = [
    "GET\napi.example.com\n/v1/users",
    "POST\nq.api.example.com:443\n/v1",
    "GET\nu.example.com\n/users/42/posts/7",
    "GET\n\n/files/a/b.txt\nx-env: prod",
    "GET\nx.org\n/r/12/ab?v=1",
    "GET\nx.org.\n/a/b/c?q=1\nx-debug: 1",
    "DELETE\nX.ORG\n/a/b",
    "GET\nexample.com\n/",
    '[[routes]]\nname = "t"\npath_template = "/u/{id}/{*rest}"\necho = true\n\n[[routes]]\nname = "p"\npath_prefix = "/u/"\nhosts = ["*.a.b"]\necho = true\n---\nGET\nx.a.b\n/u/1/2/3',
    '[[routes]]\nname = "e"\npath = "/x"\nmethods = ["GET"]\nheaders = [{ name = "h", value = "v" }]\necho = true\n[[routes]]\nname = "r"\npath_regex = "x$"\necho = true\n---\nGET\n\n/x\nh: v',
]
for r in REQUESTS:
    write("router", r)

CLIENT_IP = [
    b"\x00203.0.113.7, 10.0.0.2",
    b"\x00198.51.100.1, 192.0.2.9\n10.1.1.1",
    b"\x02unknown, 10.0.0.1",
    b"\x00[2001:db8::5]:443, 192.0.2.1:80",
    b"\x01for=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\"",
    b"\x01for=_hidden, for=10.0.0.3",
    b"\x01for=1.1.1.1;for=2.2.2.2",
    b"\x04::ffff:203.0.113.1, ::1",
    b"\x06" + b", ".join([b"10.0.0.%d" % i for i in range(40)]),
]
for c in CLIENT_IP:
    write("client_ip", c)

for name in sorted(os.listdir(os.path.join(ROOT, "examples"))):
    if name.endswith(".toml"):
        with open(os.path.join(ROOT, "examples", name), "rb") as f:
            write("config_load", f.read())
with open(os.path.join(ROOT, "crates/rampart-config/src/default.toml"), "rb") as f:
    write("config_load", f.read())
for text in [
    '[[listeners]]\nname = "a"\nbind = "127.0.0.1:0"\n[[routes]]\npath = "/"\necho = true\n',
    '[[listeners]]\nname = "a"\nbind = "${ADDR:-127.0.0.1:0}"\nbogus = 1\n',
    '[[listeners]]\nname = "é"\nbind = "nope"\n[[routes]]\nupstream = "missing"\n',
    '[server]\nworkers = "many"\n[limits]\nmax_header_size = "12 parsecs"\n',
    'key = "${UNSET}"\n[[routes]]\npath_regex = "("\necho = true\n',
    '\u00e9\u00e9 = [\n',
]:
    write("config_load", text)

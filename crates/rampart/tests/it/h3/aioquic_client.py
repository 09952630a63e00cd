"""One HTTP/3 request with aioquic's client, for Rampart's HTTP/3 tests.

Usage: aioquic_client.py HOST PORT SNI CA_FILE METHOD PATH [BODY]
Prints the status line, then each response header as `name: value`, a blank line, the body.
Exits 2 when no answer came within 20 seconds.
"""

import asyncio
import sys

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.headers = []
        self.body = bytearray()
        self.done = asyncio.get_event_loop().create_future()

    def quic_event_received(self, event):
        for ev in self.h3.handle_event(event):
            if isinstance(ev, HeadersReceived):
                self.headers.extend(ev.headers)
                if ev.stream_ended and not self.done.done():
                    self.done.set_result(True)
            elif isinstance(ev, DataReceived):
                self.body.extend(ev.data)
                if ev.stream_ended and not self.done.done():
                    self.done.set_result(True)


async def main(host, port, sni, ca, method, path, body):
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=sni)
    config.load_verify_locations(ca)
    async with connect(host, port, configuration=config, create_protocol=Client) as client:
        stream = client._quic.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", sni.encode()),
            (b":path", path.encode()),
            (b"user-agent", b"aioquic"),
        ]
        if body:
            headers.append((b"content-length", str(len(body)).encode()))
        client.h3.send_headers(stream, headers, end_stream=not body)
        if body:
            client.h3.send_data(stream, body, end_stream=True)
        client.transmit()
        await asyncio.wait_for(client.done, 20)
        for name, value in client.headers:
            if name == b":status":
                print("status", value.decode())
        for name, value in client.headers:
            if not name.startswith(b":"):
                print(f"{name.decode()}: {value.decode()}")
        print()
        sys.stdout.write(client.body.decode(errors="replace"))


if __name__ == "__main__":
    host, port, sni, ca, method, path = sys.argv[1:7]
    body = sys.argv[7].encode() if len(sys.argv) > 7 else b""
    try:
        asyncio.run(main(host, int(port), sni, ca, method, path, body))
    except asyncio.TimeoutError:
        sys.exit(2)

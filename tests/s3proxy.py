"""A fault-injecting HTTP proxy in front of the real S3 server, for the lake fault tests.

Each client connection carries one request (the proxy answers with `Connection: close`). Per
request, drawn from a seeded random stream: answer `503 SlowDown` without forwarding (`fail_rate`),
drop the connection without any answer (`drop_rate`), or forward it after a delay of up to
`max_delay` seconds. Requests (bodies with a length, or chunked, as PyArrow's S3 client sends the
Iceberg table's files) and responses are passed through byte for byte otherwise, so the S3
signatures (made for the proxy's host:port) stay valid.

`mode` cuts the link on purpose: "cut" drops every request; "hold" reads each request whole and
parks it until the mode changes, then forwards it even if its client gave up long ago: a *late*
request, as a zombie writer's upload reaches the lake after its partition moved on.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter

SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>injected by the test proxy</Message></Error>"


class FlakyS3Proxy:
    def __init__(
        self,
        upstream: str,
        fail_rate: float = 0.2,
        drop_rate: float = 0.05,
        max_delay: float = 0.4,
        seed: int = 1,
    ) -> None:
        host, _, port = upstream.removeprefix("http://").rstrip("/").partition(":")
        self.upstream = (host, int(port))
        self.fail_rate, self.drop_rate, self.max_delay = fail_rate, drop_rate, max_delay
        self.rng = random.Random(seed)
        self.mode = "pass"  # "cut": drop every request; "hold": park requests until the mode changes
        self.counts: Counter[str] = Counter()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="s3proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FlakyS3Proxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the S3 proxy did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._read_request(reader, writer)
            if request is None:
                return
            if self.mode == "hold":
                self.counts["held"] += 1
                while self.mode == "hold":
                    await asyncio.sleep(0.05)
                await self._forward_late(request)
                return
            if self.mode == "cut":
                self.counts["cut"] += 1
                writer.transport.abort()
                return
            draw = self.rng.random()
            if draw < self.fail_rate:
                self.counts["503"] += 1
                writer.write(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(SLOW_DOWN), SLOW_DOWN)
                )
                await writer.drain()
                return
            if draw < self.fail_rate + self.drop_rate:
                self.counts["dropped"] += 1
                writer.transport.abort()  # no answer at all: a reset connection
                return
            self.counts["forwarded"] += 1
            await asyncio.sleep(self.rng.uniform(0, self.max_delay))
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            up_writer.write(request)
            await up_writer.drain()
            while chunk := await up_reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            up_writer.close()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.counts["client-gone"] += 1
        finally:
            writer.close()

    async def _forward_late(self, request: bytes) -> None:
        """Deliver a held request to S3 whatever became of its client; the answer goes nowhere."""
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        up_writer.write(request)
        await up_writer.drain()
        status = (await up_reader.readline()).split(b" ", 2)[1:2]
        self.counts[f"late {status[0].decode() if status else '?'}"] += 1
        while await up_reader.read(65536):
            pass
        up_writer.close()

    async def _read_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        """The whole request, re-headed with `Connection: close` and without `Expect` (answered here)."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # the client closed an idle connection
        lines = head[:-4].split(b"\r\n")
        headers = [
            line
            for line in lines[1:]
            if line.split(b":", 1)[0].strip().lower() not in (b"connection", b"expect")
        ]
        fields = {
            line.split(b":", 1)[0].strip().lower(): line.split(b":", 1)[1].strip() for line in lines[1:]
        }
        if fields.get(b"expect", b"").lower() == b"100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = await self._read_chunked(reader)  # as it came, framing and all (PyArrow's uploads)
        else:
            body = await reader.readexactly(int(fields.get(b"content-length", b"0")))
        return b"\r\n".join([lines[0], *headers, b"Connection: close"]) + b"\r\n\r\n" + body

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        """A chunked body, byte for byte: chunks up to the empty one, then the trailers' end."""
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            parts.append(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            parts.append(await reader.readexactly(size + 2))  # the chunk and its CRLF
        while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
            parts.append(trailer)
        parts.append(b"\r\n")
        return b"".join(parts)

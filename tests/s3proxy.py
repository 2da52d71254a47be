"""A fault-injecting HTTP proxy in front of the real S3 server, for the lake fault tests.

Each client connection carries one request (the proxy answers with `Connection: close`). Per
request, drawn from a seeded random stream: answer `503 SlowDown` without forwarding (`fail_rate`),
drop the connection without any answer (`drop_rate`), or forward it after a delay of up to
`max_delay` seconds. Requests (bodies with a length, or chunked, as PyArrow's S3 client sends the
Iceberg table's files) and responses are passed through byte for byte otherwise, so the S3
signatures (made for the proxy's host:port) stay valid.

`mode` cuts the link on purpose: "cut" drops every request; "hold" reads each request whole and
parks it until the mode changes, then forwards it even if its client gave up long ago: a *late*
request, as a zombie writer's upload reaches the lake after its partition moved on. "hold-puts" parks
the PUTs only (claims, objects, bookkeeping) and passes every read: an upload provably in flight.
`parked` lists the requests parked at this moment ("PUT /bucket/key"), `counts` what became of all.

`refusals` answer chosen requests with an S3 error instead of forwarding them (`Refusal`): e.g. a lake
that takes the writer's bookkeeping but not its objects (`refuse_objects`), or the 409
`ConditionalRequestConflict` AWS gives a conditional write racing another of the same key
(`conflict_claims`). `requests` keeps every request seen (method, path and query, headers).
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>injected by the test proxy</Message></Error>"


@dataclass
class Request:
    method: str
    path: str  # with the query, as the request line has it: "/bucket/key?query"
    headers: dict[str, str]  # names in lower case


@dataclass
class Refusal:
    """Answer requests that `matches` with HTTP `status` and S3 error `code`, not forwarding them; the
    first `times` such requests (None: all of them)."""

    matches: Callable[[Request], bool]
    status: int
    code: str
    times: int | None = None
    answered: int = 0

    def takes(self, request: Request) -> bool:
        if self.times is not None and self.answered >= self.times:
            return False
        if not self.matches(request):
            return False
        self.answered += 1
        return True

    def response(self) -> bytes:
        body = (
            b"<Error><Code>%s</Code><Message>injected by the test proxy</Message></Error>"
            % self.code.encode()
        )
        return (
            b"HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (self.status, self.code.encode(), len(body), body)
        )


def refuse_objects() -> Refusal:
    """503 SlowDown to every PUT of a key outside `_loglake/`: claims are written, their objects never."""
    return Refusal(lambda r: r.method == "PUT" and "/_loglake/" not in r.path, 503, "SlowDown")


def conflict_claims(times: int) -> Refusal:
    """409 ConditionalRequestConflict to the first `times` conditional PUTs of claim keys."""
    return Refusal(
        lambda r: r.method == "PUT" and "/_loglake/claims/" in r.path and "if-none-match" in r.headers,
        409,
        "ConditionalRequestConflict",
        times,
    )


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
        # "cut": drop every request; "hold": park requests until the mode changes; "hold-puts": park PUTs
        self.mode = "pass"
        self.counts: Counter[str] = Counter()
        self.refusals: list[Refusal] = []
        self.requests: list[Request] = []
        self.parked: list[str] = []  # the request lines of the requests parked now, in arrival order
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="s3proxy", daemon=True)

    @classmethod
    def passing(cls, env: dict[str, str]) -> FlakyS3Proxy:
        """A proxy in front of the S3 server of stack environment `env` that injects nothing until its
        `mode` changes."""
        return cls(env["AWS_ENDPOINT_URL"], fail_rate=0, drop_rate=0, max_delay=0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, env: dict[str, str]) -> dict[str, str]:
        """Stack environment `env` with its S3 endpoint through this proxy."""
        return dict(env, AWS_ENDPOINT_URL=self.url)

    def __enter__(self) -> FlakyS3Proxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the S3 proxy did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        async def stop() -> None:
            # requests still being relayed end here (cancelled), not in a loop that is already closed
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), self.loop)
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
            read = await self._read_request(reader, writer)
            if read is None:
                return
            request, seen = read
            self.requests.append(seen)
            refusal = next((r for r in self.refusals if r.takes(seen)), None)
            if refusal is not None:
                self.counts[str(refusal.status)] += 1
                writer.write(refusal.response())
                await writer.drain()
                return
            line = request.split(b"\r\n", 1)[0].rsplit(b" ", 1)[0].decode()  # "PUT /bucket/key?query"
            if self._holds(line):
                self.counts["held"] += 1
                self.parked.append(line)
                try:
                    while self._holds(line):
                        await asyncio.sleep(0.05)
                finally:
                    self.parked.remove(line)
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

    def _holds(self, line: str) -> bool:
        return self.mode == "hold" or (self.mode == "hold-puts" and line.startswith("PUT "))

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

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[bytes, Request] | None:
        """The whole request, re-headed with `Connection: close` and without `Expect` (answered here),
        and what it asks for."""
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
        method, path, *_rest = [*lines[0].decode("latin-1").split(" "), "", ""]
        seen = Request(method, path, {k.decode("latin-1"): v.decode("latin-1") for k, v in fields.items()})
        return b"\r\n".join([lines[0], *headers, b"Connection: close"]) + b"\r\n\r\n" + body, seen

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

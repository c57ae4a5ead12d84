"""A minimal HTTP/1.1 benchmark client, shared by the tile and feature benchmarks.

httpx costs ~0.5-1 ms of client CPU per request, on the same 2 cores as the servers and
PostgreSQL; :class:`RawHTTP` costs a few tens of microseconds, so the servers, not the
client, are measured.  :func:`trivial_app` is the other half of the ceiling: the same client
against a one-function ASGI app on uvicorn shows what HTTP alone costs on the box
(``uvicorn --app-dir bench rawhttp:trivial_app``).
"""

from __future__ import annotations

import asyncio
import gzip
from typing import NamedTuple


class Reply(NamedTuple):
    """One response: status, lower-cased headers, body as sent (still compressed)."""

    status: int
    headers: dict[str, str]
    body: bytes

    def decoded(self) -> bytes:
        """The body with a gzip ``Content-Encoding`` undone (for both servers alike)."""
        if self.headers.get("content-encoding", "").strip().lower() == "gzip":
            return gzip.decompress(self.body)
        return self.body


class RawHTTP:
    """A keep-alive HTTP/1.1 client on asyncio streams (one connection per worker).

    It understands exactly what the benchmarked servers send: Content-Length or chunked
    bodies.  ``headers`` go with every request; paths must already be URL-encoded.
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items())
        self.reader = self.writer = None

    async def get(self, path: str) -> tuple[int, int]:
        """(status, body bytes as sent)."""
        reply = await self.fetch(path)
        return reply.status, len(reply.body)

    async def fetch(self, path: str) -> Reply:
        """GET ``path``; one reconnect if the server closed the kept-alive connection."""
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(f"GET {path} HTTP/1.1\r\n{self.head}\r\n".encode("latin-1"))
                return await self._response()
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _response(self) -> Reply:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k:
                headers[k.strip().lower()] = v.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                n = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunks.append((await self.reader.readexactly(n + 2))[:n])
                if n == 0:
                    break
            body = b"".join(chunks)
        else:
            length = int(headers.get("content-length") or 0)
            body = await self.reader.readexactly(length) if length else b""
        if "close" in headers.get("connection", "").lower():
            self.close()
        return Reply(status, headers, body)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def trivial_app(scope, receive, send) -> None:
    """The ceiling's server: a one-function ASGI app answering ``ok`` to everything."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})

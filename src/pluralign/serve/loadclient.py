"""A minimal HTTP/1.1 client for the load generator: one keep-alive connection per simulated
client, JSON bodies in, status and body bytes out.

Why not httpx: the load runs on the same two cores as the server, and httpx's AsyncClient spent
8-11 ms of CPU per request here (measured by ``benchmarks/serve_load.py``), more than the server
it was measuring; this client spends a few hundredths of that, so the cores go to the server.
It speaks only what the service answers: ``Content-Length`` or chunked bodies, keep-alive
unless the server says ``Connection: close`` (or the connection sat idle for a while). Any failure (refused, reset, a half answer, a
timeout) closes the connection and raises :class:`ClientError`, which the load counts as a
request with an unknown outcome.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit


#: a connection idle this long is reopened before the next request: uvicorn closes idle
#: keep-alive connections after 5 s, and a request sent as it does so fails (while 200 clients
#: create their users and wait for each other, the first ones sat idle that long)
IDLE_REOPEN_S = 2.0


class ClientError(Exception):
    """The request's outcome is unknown: no complete answer arrived."""


class Answer:
    """What came back: the status code and the body (``json()`` parses it)."""

    __slots__ = ("status_code", "content")

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code, self.content = status_code, content

    def json(self) -> Any:
        return json.loads(self.content)


class Connection:
    """One keep-alive connection to ``base_url`` (``http://host:port``); opened on first use
    and again after any failure. Not for concurrent use: one per simulated client."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"need an http://HOST:PORT URL, got {base_url!r}")
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        fixed = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._used = 0.0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, json_body: Any = None,
                      headers: dict[str, str] | None = None) -> Answer:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._request(method, path, json_body, headers)
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                TimeoutError) as err:
            self.close()
            raise ClientError(f"{type(err).__name__}: {err}") from err

    async def _request(self, method: str, path: str, json_body: Any, headers: dict[str, str] | None) -> Answer:
        if self._writer is not None and time.monotonic() - self._used > IDLE_REOPEN_S:
            self.close()  # the server may be closing it right now: a request on it could be lost
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        body = b"" if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        content_type = "Content-Type: application/json\r\n" if json_body is not None else ""
        head = f"{method} {path} HTTP/1.1\r\n{self._fixed}{extra}{content_type}Content-Length: {len(body)}\r\n\r\n"
        self._writer.write(head.encode("latin-1") + body)
        reader = self._reader
        status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        fields = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        if "chunked" in fields.get("transfer-encoding", "").lower():
            content = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                content += (await reader.readexactly(size + 2))[:-2]  # the chunk and its CRLF
                if size == 0:  # the last chunk (no trailers: the service sends none)
                    break
            data = bytes(content)
        else:
            data = await reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            self.close()
        self._used = time.monotonic()
        return Answer(status, data)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

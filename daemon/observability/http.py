"""`/metrics` (Prometheus text) and `/healthz` over a minimal asyncio HTTP/1.1 server.

Why no web framework: two read-only GET endpoints, one connection per scrape, on loopback by
default. `asyncio.start_server` plus a request-line parser is a page of code and no dependency;
every connection is bounded in size and time so a stuck client cannot hold the daemon.

`/healthz` means "data is flowing", not "the process is up": 503 with the reasons when a
breaker has been open longer than `breaker_open_max_s`, the event loop is stalled, or nothing
was written for `stale_after_s`.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import structlog

from daemon.config.loader import HttpConfig
from daemon.observability import events
from daemon.observability.health import HealthReporter
from daemon.observability.metrics import CONTENT_TYPE, build_registry, render

log = structlog.get_logger(__name__)

REQUEST_TIMEOUT_S = 5.0
MAX_HEADER_LINES = 100
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


class HealthServer:
    def __init__(
        self, config: HttpConfig, reporter: HealthReporter, *, loop_stall_s: float = 5.0
    ) -> None:
        self.config = config
        self.reporter = reporter
        self.loop_stall_s = loop_stall_s
        self._registry = build_registry(reporter)
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when the config asked for 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("HealthServer is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.config.host, self.config.port, limit=8192
        )
        log.info(events.HTTP_STARTED, host=self.config.host, port=self.port)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                await self._server.wait_closed()
        self._server = None

    def healthz(self) -> tuple[int, bytes]:
        problems = self.reporter.problems(
            stale_after_s=self.config.stale_after_s,
            breaker_open_max_s=self.config.breaker_open_max_s,
            loop_stall_s=self.loop_stall_s,
        )
        if problems:
            return 503, orjson.dumps({"status": "unhealthy", "reasons": problems})
        return 200, orjson.dumps({"status": "ok"})

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                try:
                    method, path = await _read_request(reader)
                except ValueError as exc:
                    method, (status, ctype, body) = "GET", _json(400, {"error": str(exc)})
                else:
                    status, ctype, body = self._route(method, path)
                writer.write(_response(status, ctype, body, head_only=method == "HEAD"))
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError) as exc:
            log.debug(events.HTTP_REQUEST_FAILED, error=repr(exc))
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return _json(405, {"error": f"method {method} not allowed"})
        if path == "/metrics":
            return 200, CONTENT_TYPE, render(self._registry)
        if path == "/healthz":
            status, body = self.healthz()
            return status, "application/json", body
        return _json(404, {"error": f"no such path {path}"})


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """(method, path) of one request; the headers are read and ignored. ValueError if bad."""
    request_line = (await reader.readline()).decode("latin-1").split()
    for _ in range(MAX_HEADER_LINES):
        if (await reader.readline()) in (b"\r\n", b"\n", b""):
            break
    else:
        raise ValueError("too many header lines")
    if len(request_line) != 3 or not request_line[2].startswith("HTTP/"):
        raise ValueError("malformed request line")
    method, target, _version = request_line
    return method, target.split("?", 1)[0]


def _json(status: int, obj: object) -> tuple[int, str, bytes]:
    return status, "application/json", orjson.dumps(obj)


def _response(status: int, ctype: str, body: bytes, *, head_only: bool) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        f"Content-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (b"" if head_only else body)

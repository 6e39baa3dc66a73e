"""`/metrics` (Prometheus text), `/healthz`, `/status` (JSON) and `/tap` (live records) over a
minimal asyncio HTTP/1.1 server.

Why no web framework: a few read-only GET endpoints, one connection per request, on loopback by
default. `asyncio.start_server` plus a request-line parser is a page of code and no dependency;
every connection is bounded in size and time so a stuck client cannot hold the daemon. The one
long-lived response, `/tap` (`tapstream.py`), is bounded in what it buffers instead, and ended
when the server stops.

`/healthz` means "data is flowing", not "the process is up": 503 with the reasons when a
breaker has been open longer than `breaker_open_max_s`, the event loop is stalled, or nothing
was written for `stale_after_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import orjson
import structlog

from daemon.config.loader import HttpConfig
from daemon.observability import events
from daemon.observability.health import HealthReporter
from daemon.observability.metrics import CONTENT_TYPE, build_registry, render
from daemon.observability.status import DetailedPipeline, StatusView
from daemon.observability.tap import Tap
from daemon.observability.tapstream import TapRequestError, parse_tap, stream_tap

log = structlog.get_logger(__name__)

REQUEST_TIMEOUT_S = 5.0
TAP_CLOSE_S = 1.0  # at stop: how long a /tap reader has to take its last lines
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
        self._status = StatusView(reporter, reporter.state.taps, self._problems)
        self._server: asyncio.Server | None = None
        # The handlers streaming /tap responses, and their connections.
        self._streams: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

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
        self.reporter.state.taps.close_all()  # each /tap stream ends with its last line
        if self._streams:
            _, stuck = await asyncio.wait(self._streams, timeout=TAP_CLOSE_S)
            for task in stuck:  # a reader that stopped reading: neither drain nor close returns
                self._streams[task].transport.abort()
            if stuck:
                await asyncio.wait(stuck)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                await self._server.wait_closed()
        self._server = None

    def _problems(self) -> list[str]:
        return self.reporter.problems(
            stale_after_s=self.config.stale_after_s,
            breaker_open_max_s=self.config.breaker_open_max_s,
            loop_stall_s=self.loop_stall_s,
        )

    def healthz(self) -> tuple[int, bytes]:
        problems = self._problems()
        if problems:
            return 503, orjson.dumps({"status": "unhealthy", "reasons": problems})
        return 200, orjson.dumps({"status": "ok"})

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tap: Tap | None = None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                try:
                    method, path, query = await _read_request(reader)
                except ValueError as exc:
                    method, (status, ctype, body) = "GET", _json(400, {"error": str(exc)})
                else:
                    if method == "GET" and path == "/tap":
                        tap, (status, ctype, body) = self._tap(query)
                    else:
                        tap, (status, ctype, body) = None, self._route(method, path)
                if tap is None:
                    writer.write(_response(status, ctype, body, head_only=method == "HEAD"))
                    await writer.drain()
            if tap is not None:  # no deadline: it streams until the reader or the server ends
                await self._streamed(
                    stream_tap(self.reporter.state.taps, tap, reader, writer), writer
                )
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError) as exc:
            log.debug(events.HTTP_REQUEST_FAILED, error=repr(exc))
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _streamed(
        self, stream: Coroutine[Any, Any, None], writer: asyncio.StreamWriter
    ) -> None:
        """Await `stream` as one of the handlers `stop()` ends (cutting its connection if
        the reader is stuck)."""
        handler = asyncio.current_task()
        assert handler is not None
        self._streams[handler] = writer
        try:
            await stream
        finally:
            self._streams.pop(handler, None)

    def _tap(self, query: str) -> tuple[Tap | None, tuple[int, str, bytes]]:
        """The tap a `/tap` request asks for, or no tap and the error response."""
        stages = list(self.reporter.stage_stats())
        pipeline = self.reporter.pipeline
        sinks: list[str] = []
        if isinstance(pipeline, DetailedPipeline):
            sinks = list(pipeline.sink_stats)
        try:
            return parse_tap(query, stages, sinks), (200, "", b"")
        except TapRequestError as exc:
            return None, _json(exc.status, {"error": str(exc)})

    def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return _json(405, {"error": f"method {method} not allowed"})
        if path == "/metrics":
            return 200, CONTENT_TYPE, render(self._registry)
        if path == "/status":
            return _json(200, self._status.document())
        if path == "/tap":
            return _json(405, {"error": "HEAD /tap: use GET"})
        if path == "/healthz":
            status, body = self.healthz()
            return status, "application/json", body
        return _json(404, {"error": f"no such path {path}"})


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, str]:
    """(method, path, query) of one request; the headers are read and ignored. ValueError if
    bad."""
    request_line = (await reader.readline()).decode("latin-1").split()
    for _ in range(MAX_HEADER_LINES):
        if (await reader.readline()) in (b"\r\n", b"\n", b""):
            break
    else:
        raise ValueError("too many header lines")
    if len(request_line) != 3 or not request_line[2].startswith("HTTP/"):
        raise ValueError("malformed request line")
    method, target, _version = request_line
    path, _, query = target.partition("?")
    return method, path, query


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

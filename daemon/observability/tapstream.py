"""`GET /tap?at=stages[2]&kind=reading&sample=0.01&limit=100`: live records as chunked JSON lines.

The request picks a hook point (`at`: a stage's output or a sink's delivery; default the last
stage's output, or `sinks[0]` when there are no stages), the record kind (absent: all), a
sampling probability and a limit. The response is `Transfer-Encoding: chunked` JSON lines:
records in the sinks' wire format, and status lines `{"tap": {...}}` (the point, what was sent
and dropped) that clients show apart from the records: one first, then one a second, and a last
one that says `"done": true`.

Why the writer may be slow without harm: it drains the tap's bounded buffer at the reader's
pace (`writer.drain()` waits for the socket); the pipeline only ever appends to that buffer or,
when it is full, counts drops (`tap.py`). A client that hangs up is noticed at once (a read on
its side of the connection ends) and its tap detached.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import orjson
import structlog

from daemon.batch import RECORD_KINDS
from daemon.observability import events
from daemon.observability.tap import Tap, TapBoard

log = structlog.get_logger(__name__)

NOTE_EVERY_S = 1.0
GATHER_S = 0.05  # what a reader waits at most for more records before they are encoded
_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/x-ndjson\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Cache-Control: no-store\r\n"
    b"Connection: close\r\n\r\n"
)


class TapRequestError(ValueError):
    """A `/tap` request that cannot be served: the HTTP status and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def parse_tap(query: str, stages: list[str], sinks: list[str]) -> Tap:
    """The tap a query asks for, at one of the current `stages` or `sinks` labels."""
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(params) - {"at", "kind", "sample", "limit"})
    if unknown:
        raise TapRequestError(
            400, f"unknown parameter {unknown[0]!r} (known: at, kind, limit, sample)"
        )
    points = [*stages, *sinks]
    if not points:
        raise TapRequestError(503, "no pipeline is running")
    at = params.get("at") or (stages[-1] if stages else sinks[0])
    if at not in points:
        raise TapRequestError(404, f"no tap point {at!r} (known: {', '.join(points)})")
    kind = params.get("kind") or None
    if kind is not None and kind not in RECORD_KINDS:
        raise TapRequestError(400, f"kind must be one of {', '.join(RECORD_KINDS)}, got {kind!r}")
    try:
        sample = float(params.get("sample") or 1.0)
        limit = int(params["limit"]) if params.get("limit") else None
        return Tap(at, kind=kind, sample=sample, limit=limit)
    except ValueError as exc:
        raise TapRequestError(400, str(exc)) from None


async def stream_tap(
    board: TapBoard, tap: Tap, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Attach `tap`, stream what it takes until its limit, a hang-up or `tap.close()`."""
    board.attach(tap)
    log.info(events.TAP_ATTACHED, **_fields(tap))
    hung_up = asyncio.create_task(_until_hang_up(reader))
    hung_up.add_done_callback(lambda _: tap.close())
    loop = asyncio.get_running_loop()
    try:
        writer.write(_HEAD + _chunk(_note(tap, done=False)))  # says where it is tapped first
        await writer.drain()
        noted = loop.time()
        while not tap.done:
            await tap.wait(max(0.0, noted + NOTE_EVERY_S - loop.time()))
            if tap.buffered and not tap.done:
                await asyncio.sleep(GATHER_S)  # let a few batches' records gather: one encode
            _, data = tap.take()
            if data:
                writer.write(_chunk(data))
            if loop.time() - noted >= NOTE_EVERY_S:
                writer.write(_chunk(_note(tap, done=False)))
                noted = loop.time()
            await writer.drain()  # a slow reader waits here; the pipeline never does
        if not hung_up.done():
            _, data = tap.take()
            writer.write(_chunk(data) + _chunk(_note(tap, done=True)) + b"0\r\n\r\n")
            await writer.drain()
    finally:
        hung_up.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await hung_up
        board.detach(tap)
        log.info(events.TAP_DETACHED, **_fields(tap))


async def _until_hang_up(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(4096):
            pass


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def _note(tap: Tap, *, done: bool) -> bytes:
    status: Mapping[str, Any] = {
        "at": tap.at,
        "sent": tap.sent,
        "dropped": tap.dropped,
        "buffered": tap.buffered,
        "done": done,
    }
    return orjson.dumps({"tap": status}, option=orjson.OPT_APPEND_NEWLINE)


def _fields(tap: Tap) -> dict[str, Any]:
    return {k: v for k, v in tap.describe().items() if k != "buffered"}

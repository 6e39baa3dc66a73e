"""The file source: replay a CSV or JSON-lines file of readings, in constant memory.

CSV has a header row naming the columns `sensor_id,seq,ts,value[,unit][,quality]` (any order;
other columns are ignored); JSON lines are objects with those keys (others ignored). `ts` is
epoch seconds or ISO-8601. Rows become multi-sensor batches of up to `max_batch`, in file
order. A malformed line is dead-lettered with its reason and line number and counted `read`
and `rejected`; the replay goes on. `rate_hz` paces the replay in readings per second. The replay
ends at the end of the file or on stop; a source rebuilt on reload resumes where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated, Literal

import aiofiles
from aiofiles.threadpool.binary import AsyncBufferedReader

from daemon.batch import Batch
from daemon.components import Source
from daemon.config.fields import Range
from daemon.runtime import ComponentContext, Token
from daemon.sources.file.line_reader import LineReader, Lines
from daemon.sources.file.parse import CsvParser, HeaderError, JsonlParser
from daemon.sources.file.rows import Rejection, Rows, RowsParser

_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_PACE_BATCH_S = 0.05  # when paced, a batch holds about this long's worth of readings


class FileSourceError(Exception):
    """The file cannot be replayed at all (missing, unreadable, no usable CSV header)."""


def file_format(path: str, fmt: str) -> str | None:
    """`fmt`, or for "auto" the format the extension names (None: it names none)."""
    if fmt != "auto":
        return fmt
    return _EXTENSIONS.get(PurePath(path).suffix.lower())


@dataclass
class ReplayPosition:
    """How far the replay of one file got. Kept in `ctx.carry`, so that a pipeline rebuilt on
    reload resumes where the last one stopped rather than replaying (and re-rejecting) the
    file from the start. Line numbers, not byte offsets: chunk boundaries may change."""

    next_line: int = 1  # the first line whose reading has not been yielded
    rejected_through: int = 0  # the rejects of lines up to here are recorded


@dataclass(frozen=True)
class FileConfig:
    """The `file` source's keys."""

    path: Annotated[str, "the CSV or JSON-lines file to replay"]
    format: Annotated[
        Literal["auto", "csv", "jsonl"], "auto: by extension (.csv, .jsonl, .ndjson, .json)"
    ] = "auto"
    rate_hz: Annotated[
        float, Range(ge=0), "readings per second; 0 = as fast as the pipeline takes them"
    ] = 0.0
    max_batch: Annotated[int, Range(ge=1, le=1_000_000), "readings per yielded batch"] = 4096
    read_bytes: Annotated[
        int, Range(ge=4096, le=256 * 1024 * 1024), "bytes read at a time (bounds memory)"
    ] = 1024 * 1024
    max_line_bytes: Annotated[
        int, Range(ge=64, le=64 * 1024 * 1024), "longer lines are rejected unread"
    ] = 64 * 1024

    def check(self) -> list[tuple[str, str]]:
        if not self.path:
            return [("path", "must not be empty")]
        if file_format(self.path, self.format) is None:
            suffix = PurePath(self.path).suffix or "(none)"
            return [("format", f"cannot tell from extension {suffix}; set csv or jsonl")]
        return []


class FileSource(Source[FileConfig], name="file"):
    """Replays readings from a CSV or JSON-lines file, optionally paced."""

    def __init__(self, config: FileConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._fh: AsyncBufferedReader | None = None
        self._reader: LineReader | None = None
        self._parser: RowsParser | None = None
        self._pending: Lines | None = None  # what was read past the CSV header

    async def open(self) -> None:
        """Open the file and, for CSV, read the header: a file that cannot be replayed fails
        here, before any data flows."""
        if self._reader is not None:
            return
        cfg = self.config
        try:
            self._fh = await aiofiles.open(cfg.path, "rb")
        except OSError as exc:
            raise FileSourceError(f"{cfg.path}: {exc.strerror or exc}") from None
        self._reader = LineReader(
            self._fh, read_bytes=cfg.read_bytes, max_line_bytes=cfg.max_line_bytes
        )
        if file_format(cfg.path, cfg.format) == "jsonl":
            self._parser = JsonlParser()
            return
        first = await self._reader.read()
        while first is not None and not any(first.lines):
            first = await self._reader.read()  # skip leading blank lines
        if first is None:
            raise FileSourceError(f"{cfg.path}: empty, expected a CSV header row")
        at = next(i for i, ln in enumerate(first.lines) if ln)
        try:
            self._parser = CsvParser(first.lines[at])
        except HeaderError as exc:
            raise FileSourceError(f"{cfg.path}: line {first.first + at}: {exc}") from None
        self._pending = Lines(first.first + at + 1, first.lines[at + 1 :], first.overlong)

    async def close(self) -> None:
        if self._fh is not None:
            await self._fh.close()
            self._fh = None

    async def stream(self) -> AsyncGenerator[Batch, None]:
        await self.open()
        assert self._reader is not None and self._parser is not None  # set by open()
        pos = self._position()
        stop = self.ctx.stop
        rate = self.config.rate_hz
        step = self.config.max_batch
        if rate > 0:
            step = max(1, min(step, int(rate * _PACE_BATCH_S)))
        loop = asyncio.get_running_loop()
        start = loop.time()
        emitted = 0
        while not stop.is_set():
            chunk, self._pending = self._pending, None
            if chunk is None:
                chunk = await self._reader.read()
                if chunk is None:
                    return
            rows = self._rows(self._parser, chunk, pos)
            for begin in range(0, len(rows), step):
                end = min(begin + step, len(rows))
                if rate > 0:
                    due = start + (emitted + end - begin - 1) / rate  # its last reading's time
                    if await _stopped_within(stop, due - loop.time()):
                        return
                elif stop.is_set():
                    return
                if self.ctx.force.is_set():
                    return
                yield rows.batch(begin, end)
                emitted += end - begin
                pos.next_line = int(rows.line[end - 1]) + 1

    def _position(self) -> ReplayPosition:
        key = f"file:{self.config.path}"
        pos = self.ctx.carry.get(key)
        if not isinstance(pos, ReplayPosition):
            pos = self.ctx.carry[key] = ReplayPosition()
        return pos

    def _rows(self, parser: RowsParser, chunk: Lines, pos: ReplayPosition) -> Rows:
        """The chunk's rows not yet yielded, after recording its rejects not yet recorded."""
        limit = self.config.max_line_bytes
        rejected = [
            Rejection(number, f"line longer than {limit} bytes", start.decode("utf-8", "replace"))
            for number, start in chunk.overlong
        ]
        last = chunk.first + len(chunk.lines) - 1
        if last >= pos.next_line:
            rows, bad = parser.parse(chunk.first, chunk.lines)
            rejected += bad
            rows = rows.since(pos.next_line)
        else:
            rows = Rows.empty()  # replayed before a reload
        fresh = sorted((r for r in rejected if r.line > pos.rejected_through), key=lambda r: r.line)
        self.ctx.reject((r.reason, r.raw, {"line": r.line}) for r in fresh)
        pos.rejected_through = max(pos.rejected_through, last, *(r.line for r in rejected))
        return rows


async def _stopped_within(stop: Token, seconds: float) -> bool:
    """Wait up to `seconds` (pacing); True as soon as `stop` is set."""
    if seconds > 0:
        try:
            async with asyncio.timeout(seconds):
                await stop.wait()
        except TimeoutError:
            return False
    return stop.is_set()

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
import os
import stat
import zlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Annotated, Literal

import aiofiles
from aiofiles.threadpool.binary import AsyncBufferedReader

from daemon.batch import Batch
from daemon.components import Source
from daemon.config.fields import Range
from daemon.observability import events
from daemon.resilience.retry import backoff_delay
from daemon.runtime import ComponentContext, Token
from daemon.sources.file.line_reader import LineReader, Lines
from daemon.sources.file.parse import CsvParser, HeaderError, JsonlParser
from daemon.sources.file.position import ReplayPosition, RunningCrc
from daemon.sources.file.rows import Rejection, Rows, RowsParser

_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_PACE_BATCH_S = 0.05  # when paced, a batch holds about this long's worth of readings


def _unreplayable(path: str) -> str | None:
    """Why the file at `path` can never be replayed, if it exists; None for a missing one (it
    may appear later: `on_error` says what to do meanwhile) or one that is fine."""
    try:
        mode = Path(path).stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if stat.S_ISDIR(mode):
        return f"is a directory: {path}"
    if not stat.S_ISREG(mode):
        return f"is not a regular file (a device, FIFO or socket): {path}"
    return None


class FileSourceError(Exception):
    """The file cannot be replayed at all (missing, unreadable, no usable CSV header)."""


def file_format(path: str, fmt: str) -> str | None:
    """`fmt`, or for "auto" the format the extension names (None: it names none)."""
    if fmt != "auto":
        return fmt
    return _EXTENSIONS.get(PurePath(path).suffix.lower())


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
    on_error: Annotated[
        Literal["retry", "exit"],
        "the file missing or unreadable at run time: retry (logged, with backoff) or exit 1",
    ] = "retry"
    retry_max_s: Annotated[float, Range(gt=0), "the longest wait between two tries"] = 30.0

    def check(self) -> list[tuple[str, str]]:
        if not self.path:
            return [("path", "must not be empty")]
        if file_format(self.path, self.format) is None:
            suffix = PurePath(self.path).suffix or "(none)"
            return [("format", f"cannot tell from extension {suffix}; set csv or jsonl")]
        problem = _unreplayable(self.path)
        return [("path", problem)] if problem else []


class FileSource(Source[FileConfig], name="file"):
    """Replays readings from a CSV or JSON-lines file, optionally paced."""

    def __init__(self, config: FileConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._fh: AsyncBufferedReader | None = None
        self._reader: LineReader | None = None
        self._parser: RowsParser | None = None
        self._pending: Lines | None = None  # what was read past the CSV header
        self._pos: ReplayPosition | None = None  # set by open()
        self._crc = RunningCrc(-1)

    async def open(self) -> None:
        """Open the file and, for CSV, read the header. A file that cannot be replayed fails
        here, before any data flows, with `on_error = "exit"`; with "retry" (the default) the
        stream waits for it, so a daemon started before its input exists does not restart-loop."""
        try:
            await self._open()
        except FileSourceError as exc:
            if self.config.on_error == "exit":
                raise
            await self._close_file()
            self._failed(exc, wait_s=0.0)

    async def _wait_until_open(self) -> bool:
        """Retry opening with the sinks' exponential backoff (from 0.1 s, capped at
        `retry_max_s`, no jitter: one daemon, one file), each failure logged; False once
        stopped."""
        delay, tries = 0.1, 0
        while self._reader is None:
            if await stopped_within(self.ctx.stop, delay):
                return False
            try:
                await self._open()
            except FileSourceError as exc:
                await self._close_file()
                tries += 1
                delay = backoff_delay(
                    tries, base_delay_s=0.1, max_delay_s=self.config.retry_max_s, jitter=False
                )
                self._failed(exc, wait_s=delay)
        return True

    def _failed(self, exc: FileSourceError, wait_s: float) -> None:
        self.ctx.log.warning(
            events.SOURCE_FAILED, source=self.ctx.label, error=str(exc), retry_in_s=wait_s
        )

    async def _close_file(self) -> None:
        if self._fh is not None:
            await self._fh.close()
        self._fh, self._reader, self._parser = None, None, None

    async def _open(self) -> None:
        if self._reader is not None:
            return
        cfg = self.config
        try:
            self._fh = await aiofiles.open(cfg.path, "rb")
            st = os.fstat(self._fh.fileno())
        except OSError as exc:
            raise FileSourceError(f"{cfg.path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise FileSourceError(f"{cfg.path}: not a regular file")
        self._reader = self._line_reader(self._fh)
        self._pos = await self._position(st)
        self._crc = RunningCrc(self._fh.fileno(), self._pos.chunk_offset, self._pos.head_crc)
        if file_format(cfg.path, cfg.format) == "jsonl":
            self._parser = JsonlParser()
            await self._seek_to_resume()
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
        # offset 0: resuming in the header's chunk means reading from the start again
        self._pending = Lines(first.first + at + 1, first.lines[at + 1 :], first.overlong, 0)
        await self._seek_to_resume()

    async def _seek_to_resume(self) -> None:
        """Resume at the saved chunk's start rather than reading the file up to it."""
        pos = self._pos
        if pos is None or pos.chunk_offset == 0 or self._fh is None:
            return
        await self._fh.seek(pos.chunk_offset)
        self._reader = self._line_reader(self._fh, pos.chunk_offset, pos.chunk_line)
        self._pending = None

    def _line_reader(self, fh: AsyncBufferedReader, offset: int = 0, line: int = 1) -> LineReader:
        cfg = self.config
        return LineReader(
            fh,
            read_bytes=cfg.read_bytes,
            max_line_bytes=cfg.max_line_bytes,
            offset=offset,
            line=line,
        )

    async def close(self) -> None:
        if self._fh is not None:
            await self._fh.close()
            self._fh = None

    async def stream(self) -> AsyncGenerator[Batch, None]:
        if self._reader is None and not await self._wait_until_open():
            return
        assert self._reader is not None and self._parser is not None  # set by open()
        pos = self._pos
        assert pos is not None
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
                    if await stopped_within(stop, due - loop.time()):
                        return
                elif stop.is_set():
                    return
                if self.ctx.force.is_set():
                    return
                pos.next_line = int(rows.line[end - 1]) + 1  # before the yield: checkpoint
                if chunk.offset != pos.chunk_offset:
                    pos.head_crc = self._crc.up_to(chunk.offset)
                pos.chunk_offset, pos.chunk_line = chunk.offset, chunk.first
                emitted += end - begin
                yield rows.batch(begin, end)

    def checkpoint(self, batch: Batch) -> object | None:
        return self._pos.saved(self.config.path) if self._pos is not None else None

    def taken(self, mark: object) -> None:
        self.ctx.persist(self._key, mark)

    @property
    def _key(self) -> str:
        return f"file:{self.config.path}"

    async def _position(self, st: os.stat_result) -> ReplayPosition:
        """Where this replay starts: after the last batch durably taken, by this process's
        last generation (a reload) or by the last run (a restart); else at line 1. Not where
        the last generation had read to: what a forced stop abandoned in flight is read again."""
        pos = await self._restored(st) or ReplayPosition()
        pos.inode, pos.device = st.st_ino, st.st_dev
        return pos

    async def _head_crc(self, size: int) -> int:
        """CRC-32 of the file's first `size` bytes (read in bounded pieces), then back to 0."""
        assert self._fh is not None
        crc, left = 0, size
        while left > 0:
            data = await self._fh.read(min(left, 1 << 20))
            if not data:
                break
            crc, left = zlib.crc32(data, crc), left - len(data)
        await self._fh.seek(0)
        return crc

    async def _restored(self, st: os.stat_result) -> ReplayPosition | None:
        saved = self.ctx.restored(self._key)
        if saved is None:
            return None
        pos = ReplayPosition.from_saved(saved)
        reason = None
        if pos is None:
            reason = "unreadable"
        elif (pos.inode, pos.device) != (st.st_ino, st.st_dev):
            reason = "replaced"
        elif st.st_size < pos.chunk_offset:
            reason = "truncated"
        elif await self._head_crc(pos.chunk_offset) != pos.head_crc:
            reason = "replaced"
        if reason is not None or pos is None:
            self.ctx.log.warning(
                events.SOURCE_POSITION_RESET,
                source=self.ctx.label,
                path=self.config.path,
                reason=reason,
            )
            return None
        self.ctx.log.info(
            events.SOURCE_RESUMED,
            source=self.ctx.label,
            path=self.config.path,
            line=pos.next_line,
            offset=pos.chunk_offset,
        )
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


async def stopped_within(stop: Token, seconds: float) -> bool:
    """Wait up to `seconds` (pacing); True as soon as `stop` is set."""
    if seconds > 0:
        try:
            async with asyncio.timeout(seconds):
                await stop.wait()
        except TimeoutError:
            return False
    return stop.is_set()

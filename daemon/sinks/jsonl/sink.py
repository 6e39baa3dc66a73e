"""`jsonl`: readings appended to a file as JSON lines, rotated by size, fsynced by policy.

Guarantees, and why they are cheap:
- Batches arrive encoded by a child process when `encode_ahead` (see daemon/wire/ahead.py): the
  second core encodes while the first runs the stages; this sink alone touches the file.
- One `write` per batch of the whole encoded batch (aiofiles, unbuffered): when `write()`
  returns, the bytes are in the OS file, so a crash of the daemon loses nothing acknowledged.
  A write that fails half-way is truncated back to the previous end of file, so the retry that
  follows does not leave a torn line behind.
- fsync (the expensive part) follows `fsync`: every batch, at most every `fsync_interval_s`,
  or never. The resilience wrapper calls `flush()` after every write, so `flush()` applies the
  policy rather than forcing an fsync each time; `sync()` forces one, and `close()` syncs too.
  With `batch`, a write returns once its bytes are on disk. With `interval`, nothing waits for
  the disk: the fsync runs in the background while the next batches are written (a 150 MB
  fsync took ~80 ms, 6% of a benchmark run, during which the whole pipeline stood still); it
  covers every byte written before it started, and its failure fails the next write or flush.
  Off the hot path, a short interval (0.25 s) costs nothing measurable, bounds what a power cut
  loses to a quarter second, and leaves little for the fsync at close (26-36 ms, not ~120).
- Rotation: once the file exceeds `rotate_bytes` after a write it becomes `<path>.<n>` (see
  `rotation.py`) and a new `<path>` is opened. Nothing else is ever written beside `path`.
- A path that cannot be used (no permission, a directory, a missing mount) never stops the
  daemon: `open()` logs it and the file is opened on the next write, which raises `SinkError`
  while the path stays unusable, so the wrapper retries, opens the breaker and spools.
"""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import aiofiles
from aiofiles.threadpool.binary import AsyncFileIO

from daemon.batch import Batch
from daemon.components import Sink, SinkError
from daemon.config.fields import Range
from daemon.durable import fsync_dir
from daemon.observability import events
from daemon.runtime import ComponentContext
from daemon.sinks.jsonl import rotation
from daemon.wire.encode import encode_for_sink

FsyncPolicy = Literal["batch", "interval", "never"]


@dataclass(frozen=True)
class JsonlConfig:
    """The `jsonl` sink's keys."""

    path: Annotated[str, "file the lines are appended to; its directory is created"]
    rotate_bytes: Annotated[
        int, Range(ge=0), "rotate once the file exceeds this many bytes (0: never)"
    ] = 256 * 1024 * 1024
    fsync: Annotated[
        FsyncPolicy,
        "force lines to disk: every batch, at most every fsync_interval_s, or never",
    ] = "interval"
    fsync_interval_s: Annotated[
        float,
        Range(gt=0),
        "with fsync = interval: fsync at the first write or flush this long after the last",
    ] = 0.25
    encode_ahead: Annotated[
        bool, "encode batches in a child process ahead of the sink (the second core)"
    ] = True

    def check(self) -> list[tuple[str, str]]:
        if not self.path.strip():
            return [("path", "must not be empty")]
        return []


class JsonlSink(Sink[JsonlConfig], name="jsonl"):
    """Appends readings as JSON lines to a file, rotating it by size into `<path>.<n>`."""

    wants_wire_bytes = True

    def __init__(self, config: JsonlConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._path = Path(config.path)
        self._clock = ctx.clock
        self._file: AsyncFileIO | None = None
        self._size = 0  # bytes in the current file
        self._regular = True  # a regular file (not a device or pipe): rotated, fsynced
        self._last_rotation: int | None = None  # highest n of <path>.<n>; scanned on first open
        self._unsynced = False
        self._synced_at = self._clock()
        self._background: asyncio.Task[None] | None = None  # an interval fsync under way
        self._background_failure: SinkError | None = None
        self._gauge = ctx.gauge()

    @property
    def path(self) -> Path:
        return self._path

    async def open(self) -> None:
        try:
            await self._ensure_open()
        except SinkError as exc:
            self.ctx.log.warning(events.SINK_OPEN_FAILED, sink=self.ctx.label, error=str(exc))

    def uses_wire_bytes(self) -> bool:
        """Configurable: `encode_ahead = false` encodes in the event loop instead."""
        return self.config.encode_ahead

    async def write(self, batch: Batch) -> None:
        data = encode_for_sink(batch)
        if not data:
            return
        self._raise_background_failure()
        file = await self._ensure_open()
        start = self._size
        try:
            await _write_all(file, data)
        except OSError as exc:
            await self._truncate(file, start)
            raise SinkError(f"cannot write {self._path}: {exc}") from exc
        self._size = start + len(data)
        self._unsynced = True
        self._gauge["file_bytes"] = self._size
        limit = self.config.rotate_bytes
        rotate = 0 < limit < self._size and self._regular
        if rotate and self.config.fsync != "never":
            await self.sync()
        else:
            await self._apply_policy()
        if rotate:
            await self._rotate()

    async def flush(self) -> None:
        """Apply the fsync policy now (called after every write by the resilience wrapper)."""
        self._raise_background_failure()
        await self._apply_policy()

    async def sync(self) -> None:
        """fsync the current file if anything was written since the last one (after any
        background fsync under way)."""
        await self.synced()
        self._raise_background_failure()
        file = self._file
        if file is None or not self._unsynced or not self._regular:
            return
        try:
            await asyncio.to_thread(os.fsync, file.fileno())
        except OSError as exc:
            raise SinkError(f"cannot fsync {self._path}: {exc}") from exc
        self._unsynced = False
        self._synced_at = self._clock()

    async def synced(self) -> None:
        """Wait for the background fsync under way, if any (its failure is raised by the next
        write, flush or sync)."""
        if self._background is not None:
            await asyncio.wait([self._background])

    async def close(self) -> None:
        try:
            if self.config.fsync != "never":
                await self.sync()
            else:
                await self.synced()
        except SinkError as exc:
            self.ctx.log.warning(events.SINK_CLOSE_FAILED, sink=self.ctx.label, error=str(exc))
        file, self._file = self._file, None
        if file is not None:
            try:
                await file.close()
            except OSError as exc:
                self.ctx.log.warning(events.SINK_CLOSE_FAILED, sink=self.ctx.label, error=str(exc))

    # -- internals ---------------------------------------------------------------------------

    async def _apply_policy(self) -> None:
        if not self._sync_due():
            return
        if self.config.fsync == "batch":
            await self.sync()
        elif self._background is None or self._background.done():
            file = self._file
            if file is not None:  # covers what is written now; the next is due an interval on
                self._unsynced = False
                self._synced_at = self._clock()
                self._background = asyncio.create_task(self._fsync_in_background(file))

    async def _fsync_in_background(self, file: AsyncFileIO) -> None:
        try:
            await asyncio.to_thread(os.fsync, file.fileno())
        except (OSError, ValueError) as exc:  # ValueError: the file was closed meanwhile
            self._unsynced = True  # the next write or flush retries at once
            self._synced_at = float("-inf")
            self._background_failure = SinkError(f"cannot fsync {self._path}: {exc}")

    def _raise_background_failure(self) -> None:
        failure, self._background_failure = self._background_failure, None
        if failure is not None:
            raise failure

    def _sync_due(self) -> bool:
        if not self._unsynced or not self._regular:
            return False
        policy = self.config.fsync
        if policy == "batch":
            return True
        if policy == "interval":
            return self._clock() - self._synced_at >= self.config.fsync_interval_s
        return False

    async def _ensure_open(self) -> AsyncFileIO:
        """The current file, opening (and creating its directory) first if needed."""
        if self._file is not None:
            return self._file
        try:
            await asyncio.to_thread(self._prepare)
            file = await aiofiles.open(self._path, "ab", buffering=0)
        except OSError as exc:
            raise SinkError(f"cannot open {self._path}: {exc}") from exc
        try:
            status = os.fstat(file.fileno())
        except OSError as exc:
            await file.close()
            raise SinkError(f"cannot open {self._path}: {exc}") from exc
        # A device or pipe (e.g. /dev/null in a benchmark) is written to, never rotated,
        # truncated or fsynced: renaming /dev/null as root replaces it for the whole machine.
        self._regular = stat.S_ISREG(status.st_mode)
        self._size = status.st_size
        self._file = file
        self._unsynced = False
        self._synced_at = self._clock()
        self._gauge["file_bytes"] = self._size
        return file

    def _prepare(self) -> None:
        """Create the directory; learn the highest `<path>.<n>` (blocking: in a thread)."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if self._last_rotation is None:
            self._last_rotation = rotation.highest_rotation(self._path)

    async def _truncate(self, file: AsyncFileIO, size: int) -> None:
        """Cut a partly written batch off, so the retry does not follow a torn line."""
        if not self._regular:
            return
        try:
            await asyncio.to_thread(os.ftruncate, file.fileno(), size)
        except OSError as exc:
            self.ctx.log.error(
                events.SINK_TRUNCATE_FAILED,
                sink=self.ctx.label,
                path=str(self._path),
                error=str(exc),
            )

    async def _rotate(self) -> None:
        """Seal the current file as `<path>.<n>` and open a new `<path>`.

        The batch that triggered this is already acknowledged, so failures are logged, not
        raised: the file stays over the limit and the next write tries again.
        """
        file, self._file = self._file, None
        try:
            if file is not None:
                await file.close()
            n = await asyncio.to_thread(self._rename)
        except OSError as exc:
            self.ctx.log.warning(
                events.SINK_ROTATE_FAILED, sink=self.ctx.label, path=str(self._path), error=str(exc)
            )
            return
        self.ctx.log.info(
            events.SINK_ROTATED,
            sink=self.ctx.label,
            path=str(self._path),
            rotated_to=str(rotation.rotated_path(self._path, n)),
        )
        self._gauge["rotations"] = self._gauge.get("rotations", 0) + 1
        try:
            await self._ensure_open()
        except SinkError as exc:  # the next write retries the open and raises
            self.ctx.log.warning(events.SINK_OPEN_FAILED, sink=self.ctx.label, error=str(exc))

    def _rename(self) -> int:
        after = self._last_rotation
        if after is None:
            after = rotation.highest_rotation(self._path)
        n = rotation.rotate(self._path, after)
        self._last_rotation = n
        self._size = 0
        if self.config.fsync != "never":
            fsync_dir(self._path.parent)
        return n


async def _write_all(file: AsyncFileIO, data: bytes | memoryview) -> None:
    """Write all of `data`: an unbuffered write may be partial (a signal, a nearly full disk)."""
    view = memoryview(data)
    while view:
        written = await file.write(view)
        if not written:
            raise OSError(f"write accepted 0 of {len(view)} bytes")
        view = view[written:]

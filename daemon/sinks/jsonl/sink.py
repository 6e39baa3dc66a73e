"""`jsonl`: readings appended to a file as JSON lines, rotated by size, fsynced by policy.

Guarantees, and why they are cheap:
- Batches arrive encoded by a child process when `encode_ahead` (see daemon/wire/ahead.py): the
  second core encodes while the first runs the stages; this sink alone touches the file.
- One `write` per batch of the whole encoded batch (aiofiles, unbuffered): when `write()`
  returns, the bytes are in the OS file, so a crash of the daemon loses nothing acknowledged.
  A write that fails half-way is truncated back to the previous end of file, so the retry that
  follows does not leave a torn line behind; a torn line a killed run left is repaired at every
  open (`tail.py`: cut, dead-lettered, logged).
- fsync (the expensive part) follows `fsync` (`syncing.py`): every batch, at most every
  `fsync_interval_s` in the background, or never. The resilience wrapper calls `flush()` after
  every write, so `flush()` applies the policy rather than forcing an fsync each time; `sync()`
  forces one, and `close()` syncs too. With `batch`, a write returns once its bytes are on disk.
  Off the hot path, a short interval (0.25 s) costs nothing measurable, bounds what a power cut
  loses to a quarter second, and leaves little for the fsync at close (26-36 ms, not ~120).
- Rotation: once the file exceeds `rotate_bytes` after a write it becomes `<path>.<n>` (see
  `rotation.py`) and a new `<path>` is opened. Nothing else is ever written beside `path`.
- A deleted or replaced file is noticed, so `rm -rf data/` cannot make the sink write into an
  inode no path names and count it written. A batch is acknowledged (`write()` then `flush()`
  returned) only after a `stat` of `path`, taken after its bytes were written (and synced, with
  `fsync = "batch"`), named the file holding them: every acknowledged batch was, when
  acknowledged, in the file at `path` (or at the `<path>.<n>` rotation renamed it to). `write()`
  checks before writing (a file moved away gets no batch), after its bytes are in, and before
  rotating; finding the file gone or replaced after writing, it logs `file_reopened`, recreates
  directory and file and writes the batch again there before it returns. `flush()` checks last;
  a file gone since is reopened, and if a write since the last flush went into it, the flush
  fails (`SinkError`), so the guard writes that batch again and counts it once. What was
  acknowledged before a deletion went with the deleted file: the sink cannot bring it back and
  does not count it again. Cost: a `stat` (~1 us) per check, three per batch.
- A path that cannot be used (no permission, a directory, a missing mount) never stops the
  daemon: `open()` logs it and the file is opened on the next write, which raises `SinkError`
  while the path stays unusable, so the wrapper retries, opens the breaker and spools.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import aiofiles
from aiofiles.threadpool.binary import AsyncFileIO

from daemon.batch import Batch
from daemon.components import Sink, SinkError
from daemon.config.fields import Range
from daemon.durable import FileId, Moved, file_id, moved
from daemon.observability import events
from daemon.runtime import ComponentContext
from daemon.sinks.jsonl import rotation
from daemon.sinks.jsonl.syncing import FsyncPolicy, Syncer
from daemon.sinks.jsonl.tail import repair_torn_tail
from daemon.wire.encode import encode_for_sink

__all__ = ["FsyncPolicy", "JsonlConfig", "JsonlSink"]

_ATTEMPTS = 3  # writes of one batch into a file that keeps vanishing before it is an error


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
        self._file: AsyncFileIO | None = None
        self._size = 0  # bytes in the current file
        self._regular = True  # a regular file (not a device or pipe): rotated, fsynced
        self._file_id: FileId | None = None  # the open file's, to notice it left the path
        self._unflushed = False  # written since the last flush (see `flush`)
        self._last_rotation: int | None = None  # highest n of <path>.<n>; scanned on first open
        self._syncer = Syncer(config.fsync, config.fsync_interval_s, ctx.clock, self._path)
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
        self._syncer.raise_failure()
        await self._left_path()  # since the last check: then nothing goes into the old file
        for _ in range(_ATTEMPTS):
            await self._append(await self._ensure_open(), data)
            self._unflushed = True
            if await self._settle():
                return
        raise SinkError(f"{self._path} was deleted or replaced during each of {_ATTEMPTS} writes")

    async def flush(self) -> None:
        """Apply the fsync policy now (called after every write by the resilience wrapper), then
        check that the file is still at the path (see the module's guarantee)."""
        self._syncer.raise_failure()
        await self._syncer.apply(self._syncable())
        unflushed, self._unflushed = self._unflushed, False
        cause = await self._left_path()
        if cause is not None and unflushed:
            raise SinkError(f"{self._path} was {cause} after the last write; it is written again")

    async def sync(self) -> None:
        """fsync the current file if anything was written since the last one."""
        await self._syncer.sync(self._syncable())

    async def synced(self) -> None:
        """Wait for the background fsync under way, if any."""
        await self._syncer.synced()

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

    async def _append(self, file: AsyncFileIO, data: bytes | memoryview) -> None:
        start = self._size
        try:
            await _write_all(file, data)
        except OSError as exc:
            await self._truncate(file, start)
            raise SinkError(f"cannot write {self._path}: {exc}") from exc
        self._size = start + len(data)
        self._syncer.written()
        self._gauge["file_bytes"] = self._size

    async def _settle(self) -> bool:
        """After a batch was appended: check the file is still at the path, apply the fsync
        policy, rotate if due. False: the file had left the path (reopened, logged); the batch
        must be written again."""
        if await self._left_path():
            return False
        rotate = 0 < self.config.rotate_bytes < self._size and self._regular
        if rotate and self.config.fsync != "never":
            await self.sync()
        else:
            await self._syncer.apply(self._syncable())
        return await self._rotate() if rotate else True

    def _syncable(self) -> AsyncFileIO | None:
        """The file to fsync: none for a device or pipe."""
        return self._file if self._regular else None

    async def _left_path(self) -> Moved | None:
        """Whether the open (regular) file is no longer the one at the path (one `stat`); if so,
        it is let go of (`_reopen`) and the next `_ensure_open` recreates directory and file."""
        if self._file is None or self._file_id is None or not self._regular:
            return None
        cause = moved(self._path, self._file_id)
        if cause is not None:
            await self._reopen(cause)
        return cause

    async def _reopen(self, cause: Moved) -> None:
        """Let go of a file that left the path, after its background fsync (whose failure is
        moot: no path names the file), and log it."""
        await self._syncer.synced()
        self._syncer.forget_failure()
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                await file.close()
        self.ctx.log.warning(
            events.FILE_REOPENED, sink=self.ctx.label, path=str(self._path), cause=cause
        )
        self._gauge["reopened"] = self._gauge.get("reopened", 0) + 1

    async def _ensure_open(self) -> AsyncFileIO:
        """The current file, opening (and creating its directory) first if needed."""
        if self._file is not None:
            return self._file
        try:
            await asyncio.to_thread(self._prepare)
            await repair_torn_tail(self._path, self.ctx)
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
        self._file_id = file_id(status)
        self._size = status.st_size
        self._file = file
        self._syncer.opened()
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

    async def _rotate(self) -> bool:
        """Seal the current file as `<path>.<n>` and open a new `<path>`.

        The batch that triggered this is in the file, so failures are logged, not raised: the
        file stays over the limit and the next write tries again. False only if the file had
        left the path (the batch must be written again, into the file reopened there).
        """
        if await self._left_path():
            return False
        file, self._file = self._file, None
        try:
            if file is not None:
                await file.close()
            after = self._last_rotation
            sync_dir = self.config.fsync != "never"
            n = await asyncio.to_thread(rotation.seal, self._path, after, sync_dir=sync_dir)
        except FileNotFoundError:  # deleted between the check and the rename
            await self._reopen("deleted")
            return False
        except OSError as exc:
            self.ctx.log.warning(
                events.SINK_ROTATE_FAILED, sink=self.ctx.label, path=str(self._path), error=str(exc)
            )
            return True
        self._last_rotation, self._size = n, 0
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
        return True


async def _write_all(file: AsyncFileIO, data: bytes | memoryview) -> None:
    """Write all of `data`: an unbuffered write may be partial (a signal, a nearly full disk)."""
    view = memoryview(data)
    while view:
        written = await file.write(view)
        if not written:
            raise OSError(f"write accepted 0 of {len(view)} bytes")
        view = view[written:]

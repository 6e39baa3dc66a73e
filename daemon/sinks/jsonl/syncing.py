"""The jsonl sink's fsync policy: every batch, at most every `fsync_interval_s`, or never.

Why a background fsync for `interval`: nothing waits for the disk. The fsync runs while the next
batches are written (a 150 MB fsync took ~80 ms, 6% of a benchmark run, during which the whole
pipeline stood still); it covers every byte written before it started, and its failure fails
the next write or flush (`raise_failure`), so the guard retries and the breaker sees the disk.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from aiofiles.threadpool.binary import AsyncFileIO

from daemon.components import SinkError

FsyncPolicy = Literal["batch", "interval", "never"]


class Syncer:
    """When to fsync one sink's file and whether it is synced. A `file` argument of None is a
    file that is never synced (none open, or a device or pipe)."""

    def __init__(
        self, policy: FsyncPolicy, interval_s: float, clock: Callable[[], float], path: Path
    ) -> None:
        self.policy = policy
        self._interval_s = interval_s
        self._clock = clock
        self._path = path
        self.unsynced = False
        self._synced_at = clock()
        self._background: asyncio.Task[None] | None = None  # an interval fsync under way
        self._failure: SinkError | None = None

    def written(self) -> None:
        self.unsynced = True

    def opened(self) -> None:
        """A file was (re)opened: nothing in it is ours to sync yet."""
        self.unsynced = False
        self._synced_at = self._clock()

    async def sync(self, file: AsyncFileIO | None) -> None:
        """fsync `file` if anything was written since the last one (after any background fsync
        under way)."""
        await self.synced()
        self.raise_failure()
        if file is None or not self.unsynced:
            return
        try:
            await asyncio.to_thread(os.fsync, file.fileno())
        except OSError as exc:
            raise SinkError(f"cannot fsync {self._path}: {exc}") from exc
        self.unsynced = False
        self._synced_at = self._clock()

    async def synced(self) -> None:
        """Wait for the background fsync under way, if any (its failure is raised by the next
        write, flush or sync)."""
        if self._background is not None:
            await asyncio.wait([self._background])

    async def apply(self, file: AsyncFileIO | None) -> None:
        """Sync now if the policy says so: wait for it with `batch`, start it with `interval`."""
        if file is None or not self._due():
            return
        if self.policy == "batch":
            await self.sync(file)
        elif self._background is None or self._background.done():
            # covers what is written now; the next is due an interval on
            self.unsynced = False
            self._synced_at = self._clock()
            self._background = asyncio.create_task(self._in_background(file))

    def raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def forget_failure(self) -> None:
        """The file the background fsync failed on left the path: its failure is moot."""
        self._failure = None

    async def _in_background(self, file: AsyncFileIO) -> None:
        try:
            await asyncio.to_thread(os.fsync, file.fileno())
        except (OSError, ValueError) as exc:  # ValueError: the file was closed meanwhile
            self.unsynced = True  # the next write or flush retries at once
            self._synced_at = float("-inf")
            self._failure = SinkError(f"cannot fsync {self._path}: {exc}")

    def _due(self) -> bool:
        if not self.unsynced:
            return False
        if self.policy == "batch":
            return True
        if self.policy == "interval":
            return self._clock() - self._synced_at >= self._interval_s
        return False

"""Where the spool puts what it cannot use: corrupt bytes, and entries in its way.

Why it never raises: quarantine exists so that an operator can look at what went wrong later; it
must not become a way to go wrong now. A full disk, a `quarantine` that is a file (or a FIFO), a
directory that cannot be created: each is logged once (`spool_quarantine_failed`) and the spool
carries on without the copy — the skipped bytes are still counted and logged where they were.

Why copies are bounded: a corrupt region can be a GiB of zeros. Its first `COPY_MAX` bytes are
kept (read and written a chunk at a time), which is plenty to see what it was; the log line has
its full size. Copying all of it would double the damage on a disk that may be nearly full.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from daemon.observability import events
from daemon.resilience.report import Reports

COPY_MAX = 1 << 20
_CHUNK = 1 << 16


class Quarantine:
    def __init__(self, spool_dir: Path, reports: Reports, label: str) -> None:
        self.directory = spool_dir / "quarantine"
        self.reports = reports
        self.label = label
        self._failed = False  # logged once, until a copy succeeds again

    def copy(self, fd: int, start: int, end: int, name: str) -> str | None:
        """Copy bytes [start, min(end, start + COPY_MAX)) of `fd` into `name`; its path or None."""
        target = self._ready()
        if target is None:
            return None
        path = target / name
        try:
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            try:
                pos, stop = start, min(end, start + COPY_MAX)
                while pos < stop:
                    chunk = os.pread(fd, min(_CHUNK, stop - pos), pos)
                    if not chunk:
                        break
                    os.write(out, chunk)
                    pos += len(chunk)
            finally:
                os.close(out)
        except OSError as exc:
            with_partial_removed(path)
            self._fail(f"cannot copy into {path}: {exc}")
            return None
        self._failed = False
        return str(path)

    def move_aside(self, entry: Path, reason: str) -> str | None:
        """Move `entry` (a directory or FIFO where a segment should be) into quarantine so it
        stops being in the way; its new path, or None when it could not be moved."""
        target = self._ready()
        moved_to = None if target is None else _free_name(target / entry.name)
        if moved_to is not None:
            try:
                entry.rename(moved_to)
            except OSError as exc:
                self._fail(f"cannot move {entry}: {exc}")
                moved_to = None
        self.reports.warning(
            events.SPOOL_ENTRY_MOVED,
            sink=self.label,
            entry=str(entry),
            reason=reason,
            moved_to=None if moved_to is None else str(moved_to),
        )
        return None if moved_to is None else str(moved_to)

    def _ready(self) -> Path | None:
        """The quarantine directory, created if needed; something else in its place is moved
        aside first (to `quarantine.<n>`). None when it cannot be had."""
        try:
            mode = os.lstat(self.directory).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            self._fail(str(exc))
            return None
        try:
            if mode is not None and not stat.S_ISDIR(mode):
                aside = _free_name(self.directory)
                self.directory.rename(aside)
                self.reports.warning(
                    events.SPOOL_ENTRY_MOVED,
                    sink=self.label,
                    entry=str(self.directory),
                    reason="not a directory",
                    moved_to=str(aside),
                )
                mode = None
            if mode is None:
                self.directory.mkdir(exist_ok=True)
        except OSError as exc:
            self._fail(f"cannot make {self.directory}: {exc}")
            return None
        return self.directory

    def _fail(self, error: str) -> None:
        if not self._failed:
            self._failed = True
            self.reports.warning(events.SPOOL_QUARANTINE_FAILED, sink=self.label, error=error)


def _free_name(path: Path) -> Path:
    """`path`, or `path.<n>` with the first n that names nothing."""
    candidate, n = path, 0
    while os.path.lexists(candidate):  # a dangling link names something too
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def with_partial_removed(path: Path) -> None:
    """Remove a half-written copy; a copy that cannot be finished is not worth keeping."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)

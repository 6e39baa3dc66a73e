"""Segment files of a spool: their names, opening them safely, counting what they hold.

Why every open checks the file type on the descriptor: anything can sit where a segment should
be. `open()` on a FIFO blocks until a writer appears (a daemon that never starts and that two
SIGTERMs cannot end), and a directory opens fine for reading. So segments are opened with
O_NONBLOCK and O_NOFOLLOW, then `fstat` decides: not a regular file is `NotASegment`.

Why counting reads headers only: what a spool holds (batches, readings) is a gauge, and start-up
must not read a GiB to fill it in. A record header and the payload's row count are 16 bytes, so
counting is one small read per record; CRCs are checked at replay, which reads the bytes anyway.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from daemon.resilience.records import next_magic, peek_header

SEGMENT_NAME = re.compile(r"^(\d{10,19})\.(open|seg)$")  # 10 digits, more past 9,999,999,999
AUTO_CAP_MAX = 1 << 30  # spool_max_bytes = 0: at most 1 GiB ...
AUTO_CAP_SHARE = 4  # ... and at most a quarter of the free space


class NotASegment(OSError):
    """Something that is not a regular file stands where a segment should be."""


@dataclass(slots=True)
class Segment:
    number: int
    sealed: bool
    size: int
    batches: int = 0  # unacknowledged, by their headers
    readings: int = 0

    @property
    def name(self) -> str:
        return f"{self.number:010d}.{'seg' if self.sealed else 'open'}"


def kind_of(mode: int) -> str:
    """A file type as a word, for log lines."""
    for test, word in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return word
    return "regular file" if stat.S_ISREG(mode) else "unknown"


def open_segment(path: Path) -> tuple[int, int]:
    """(fd, size) of the regular file at `path`, opened for reading without ever blocking."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise NotASegment(errno.EINVAL, f"a {kind_of(status.st_mode)}", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd, status.st_size


def count_records(fd: int, pos: int, size: int) -> tuple[int, int]:
    """(batches, readings) in bytes [pos, size) of a segment, by headers; garbage is stepped
    over by scanning for the next magic (a chunk at a time, like replay will)."""
    batches = readings = 0
    while pos < size:
        found = peek_header(fd, pos, size)
        if found is None:
            pos = next_magic(fd, pos + 1, size)
            continue
        pos, rows = found
        batches += 1
        readings += rows
    return batches, readings


def auto_cap(directory: Path, held: int) -> int:
    """The `spool_max_bytes = 0` cap: min(1 GiB, held + a quarter of the free space)."""
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        vfs = os.statvfs(probe)
    except OSError:
        return AUTO_CAP_MAX
    free = vfs.f_bavail * vfs.f_frsize
    return min(AUTO_CAP_MAX, held + free // AUTO_CAP_SHARE)


def is_full(exc: BaseException) -> bool:
    """An error that means "no space" (more will come back by itself), not "broken"."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)

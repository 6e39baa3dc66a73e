"""The spool's acknowledged position, durable across restarts at one fsync per acknowledgement.

Why two slots and not write-temp-then-rename: the cursor moves once per replayed batch, and a
rename costs a file fsync plus a directory fsync. Instead the file holds two fixed 32-byte slots,
each (magic, generation, segment, offset, crc32); a move overwrites the older slot and fsyncs. A
torn write can only damage the slot being written, whose CRC then fails, and the reader falls back
to the other one — the previous position, which at worst redelivers the record in progress
(at-least-once, never zero times).
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from daemon.durable import fsync_dir

_SLOT = struct.Struct("<4sQQQ")
_CRC = struct.Struct("<I")
_SLOT_SIZE = _SLOT.size + _CRC.size
_MAGIC = b"CUR1"

CursorStatus = Literal["missing", "unreadable", "intact"]


@dataclass(frozen=True, slots=True)
class Position:
    """The next unacknowledged record: byte `offset` of segment number `segment`."""

    segment: int
    offset: int


class CursorFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._generation = 0
        self.status: CursorStatus = "missing"

    def load(self) -> Position | None:
        """The newest intact position on disk, or None when there is none; `status` says
        why: "missing" (no file: a new spool), "unreadable" (no intact slot, or not a regular
        file: the caller must not trust any position) or "intact"."""
        self.status = "missing"
        try:
            data = _read_small(self.path, 2 * _SLOT_SIZE)
        except FileNotFoundError:
            return None
        except OSError:
            self.status = "unreadable"
            return None
        best: tuple[int, Position] | None = None
        for i in range(2):
            slot = data[i * _SLOT_SIZE : (i + 1) * _SLOT_SIZE]
            if len(slot) < _SLOT_SIZE:
                continue
            (crc,) = _CRC.unpack_from(slot, _SLOT.size)
            if zlib.crc32(slot[: _SLOT.size]) != crc:
                continue
            magic, generation, segment, offset = _SLOT.unpack_from(slot)
            if magic == _MAGIC and (best is None or generation > best[0]):
                best = (generation, Position(segment, offset))
        if best is None:
            self.status = "unreadable" if data else "missing"
            return None
        self.status = "intact"
        self._generation = best[0]
        return best[1]

    def store(self, position: Position) -> None:
        """Durably record `position` (one pwrite + fsync)."""
        if self._fd is None:
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(errno.EINVAL, "not a regular file", str(self.path))
            self._fd = fd
            if created:
                fsync_dir(self.path.parent)
        self._generation += 1
        body = _SLOT.pack(_MAGIC, self._generation, position.segment, position.offset)
        slot = self._generation % 2
        os.pwrite(self._fd, body + _CRC.pack(zlib.crc32(body)), slot * _SLOT_SIZE)
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_small(path: Path, limit: int) -> bytes:
    """Up to `limit` bytes of the regular file `path`; never blocks on a FIFO or a device
    (O_NONBLOCK, then the type is checked on the open descriptor)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return os.pread(fd, limit, 0)
    finally:
        os.close(fd)
